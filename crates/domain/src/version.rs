//! `ExtensionVersion`: `0.0.0` for the local aggregate, CalVer `YYYY.MM.DD.MICRO`
//! otherwise (spec 10 §1.2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An extension version. `Local` sorts before every CalVer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ExtensionVersion {
    /// The local aggregate's version, displayed `0.0.0`.
    Local,
    /// A published calendar version.
    CalVer {
        /// Year.
        year: u16,
        /// Month, 1..=12.
        month: u8,
        /// Day, valid in its month.
        day: u8,
        /// Release counter within the day.
        micro: u64,
    },
}

/// Why text is not a version.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The text is empty.
    #[error("version is empty")]
    Empty,
    /// The text is not `YYYY.MM.DD.MICRO` (or `0.0.0`).
    #[error("version must look like YYYY.MM.DD.MICRO (e.g. 2026.03.01.0)")]
    Malformed,
    /// The month is not 01..=12.
    #[error("version month {0} is not 01..12")]
    BadMonth(u8),
    /// The day does not exist in that month.
    #[error("version day {y:04}-{m:02}-{d:02} does not exist")]
    BadDay {
        /// Year.
        y: u16,
        /// Month.
        m: u8,
        /// Day.
        d: u8,
    },
    /// `micro` has a leading zero.
    #[error("version micro part has a leading zero")]
    LeadingZero,
}

impl ExtensionVersion {
    /// Parses `0.0.0` or a CalVer.
    pub fn parse(text: &str) -> Result<ExtensionVersion, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        if text == "0.0.0" {
            return Ok(ExtensionVersion::Local);
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [y, m, d, micro] = parts.as_slice() else {
            return Err(VersionError::Malformed);
        };
        let digits = |s: &str, len: Option<usize>| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && len.is_none_or(|len| s.len() == len)
        };
        if !digits(y, Some(4)) || !digits(m, Some(2)) || !digits(d, Some(2)) || !digits(micro, None)
        {
            return Err(VersionError::Malformed);
        }
        if micro.len() > 1 && micro.starts_with('0') {
            return Err(VersionError::LeadingZero);
        }
        let year: u16 = y.parse().map_err(|_| VersionError::Malformed)?;
        let month: u8 = m.parse().map_err(|_| VersionError::Malformed)?;
        let day: u8 = d.parse().map_err(|_| VersionError::Malformed)?;
        let micro: u64 = micro.parse().map_err(|_| VersionError::Malformed)?;
        if !(1..=12).contains(&month) {
            return Err(VersionError::BadMonth(month));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(VersionError::BadDay {
                y: year,
                m: month,
                d: day,
            });
        }
        Ok(ExtensionVersion::CalVer {
            year,
            month,
            day,
            micro,
        })
    }

    /// True for `0.0.0`.
    pub fn is_local(&self) -> bool {
        matches!(self, ExtensionVersion::Local)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for ExtensionVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionVersion::Local => f.write_str("0.0.0"),
            ExtensionVersion::CalVer {
                year,
                month,
                day,
                micro,
            } => write!(f, "{year:04}.{month:02}.{day:02}.{micro}"),
        }
    }
}

impl fmt::Debug for ExtensionVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for ExtensionVersion {
    type Err = VersionError;
    fn from_str(text: &str) -> Result<ExtensionVersion, VersionError> {
        ExtensionVersion::parse(text)
    }
}

impl TryFrom<String> for ExtensionVersion {
    type Error = VersionError;
    fn try_from(text: String) -> Result<ExtensionVersion, VersionError> {
        ExtensionVersion::parse(&text)
    }
}

impl From<ExtensionVersion> for String {
    fn from(version: ExtensionVersion) -> String {
        version.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, expected: Result<&str, VersionError>) {
        let got = ExtensionVersion::parse(text).map(|v| v.to_string());
        assert_eq!(got, expected.map(str::to_owned), "{text}");
    }

    #[test]
    fn scenario_3() {
        check("2024.02.29.1", Ok("2024.02.29.1"));
        check(
            "2026.02.29.1",
            Err(VersionError::BadDay {
                y: 2026,
                m: 2,
                d: 29,
            }),
        );
        check("2026.13.01.1", Err(VersionError::BadMonth(13)));
        check("2026.01.05.01", Err(VersionError::LeadingZero));
        check("0.0.0", Ok("0.0.0"));
        let local = ExtensionVersion::parse("0.0.0").unwrap();
        assert_eq!(local, ExtensionVersion::Local);
        assert!(local < ExtensionVersion::parse("2000.01.01.0").unwrap());
    }

    #[test]
    fn more_rejections() {
        check("", Err(VersionError::Empty));
        check("1.2.3", Err(VersionError::Malformed));
        check("2026.1.05.0", Err(VersionError::Malformed));
        check("2026.01.05.-1", Err(VersionError::Malformed));
        check("2026.01.05.", Err(VersionError::Malformed));
        check(
            "2026.04.31.0",
            Err(VersionError::BadDay {
                y: 2026,
                m: 4,
                d: 31,
            }),
        );
        check("2026.00.01.0", Err(VersionError::BadMonth(0)));
        check(
            "2026.01.00.0",
            Err(VersionError::BadDay {
                y: 2026,
                m: 1,
                d: 0,
            }),
        );
        check(
            "1900.02.29.0",
            Err(VersionError::BadDay {
                y: 1900,
                m: 2,
                d: 29,
            }),
        );
        check("2000.02.29.0", Ok("2000.02.29.0"));
        check(
            "2026.01.05.99999999999999999999",
            Err(VersionError::Malformed),
        );
    }

    #[test]
    fn ordering_is_numeric() {
        let a = ExtensionVersion::parse("2026.01.05.9").unwrap();
        let b = ExtensionVersion::parse("2026.01.05.10").unwrap();
        assert!(a < b);
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(year in 1000u16..9999, month in 1u8..=12, day in 1u8..=28, micro in 0u64..1_000_000) {
            let v = ExtensionVersion::CalVer { year, month, day, micro };
            prop_assert_eq!(ExtensionVersion::parse(&v.to_string()).unwrap(), v);
        }
    }
}
