//! The JSON bodies of R1, R2 and R4 (spec 20 §2.3), decoded strictly where fen relies
//! on a field and leniently elsewhere: unknown fields are ignored, a version must be
//! CalVer, a checksum 64 hex digits of sha256. Each failure is the DETAIL of a
//! `registry_protocol` message.

use fen_domain::ports::{Deprecation, ExtensionMeta};
use fen_domain::{ExtensionName, ExtensionVersion};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Reported when a JSON endpoint answers with a web page (a login wall, a proxy).
pub(crate) const HTML_DETAIL: &str = "the registry returned an HTML page instead of JSON";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaWire {
    name: String,
    #[serde(default)]
    latest_version: Option<String>,
    #[serde(default)]
    deprecated: Option<DeprecatedWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeprecatedWire {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    superseded_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LatestWire {
    // A `Value`, not an `Option`: serde fills a missing `Option` field with `None`,
    // and a missing `latestVersion` is a protocol error, not "nothing published".
    latest_version: serde_json::Value,
}

#[derive(Deserialize)]
struct ChecksumWire {
    #[serde(default)]
    algorithm: Option<String>,
    checksum: String,
}

/// R1: the name must be the one asked for; `latestVersion` may be null or absent.
pub(crate) fn metadata(
    body: &[u8],
    html: bool,
    name: &ExtensionName,
) -> Result<ExtensionMeta, String> {
    let wire: MetaWire = decode(body, html)?;
    if wire.name != name.as_str() {
        return Err(format!(
            "name {:?} does not match the requested {name}",
            wire.name
        ));
    }
    let latest_version = wire.latest_version.as_deref().map(calver).transpose()?;
    let deprecated = wire.deprecated.map(|d| Deprecation {
        reason: d.reason.unwrap_or_default(),
        superseded_by: d.superseded_by,
    });
    Ok(ExtensionMeta {
        name: name.clone(),
        latest_version,
        deprecated,
    })
}

/// R2: `latestVersion` is required; null means nothing is published (like a 404).
pub(crate) fn latest(body: &[u8], html: bool) -> Result<Option<ExtensionVersion>, String> {
    let wire: LatestWire = decode(body, html)?;
    match wire.latest_version {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(text) => calver(&text).map(Some),
        other => Err(format!("latestVersion {other} is not a string")),
    }
}

/// R4: the checksum in lower case.
pub(crate) fn checksum(body: &[u8], html: bool) -> Result<String, String> {
    let wire: ChecksumWire = decode(body, html)?;
    if let Some(algorithm) = &wire.algorithm {
        if !algorithm.eq_ignore_ascii_case("sha256") {
            return Err(format!("algorithm {algorithm:?} is not sha256"));
        }
    }
    let hex = wire.checksum.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "checksum {:?} is not 64 hex digits",
            shorten(&wire.checksum)
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

fn decode<T: DeserializeOwned>(body: &[u8], html: bool) -> Result<T, String> {
    let text = String::from_utf8_lossy(body);
    if html || text.trim_start().starts_with('<') {
        return Err(HTML_DETAIL.to_owned());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("unexpected JSON: {e}"))
}

fn calver(text: &str) -> Result<ExtensionVersion, String> {
    match ExtensionVersion::parse(text) {
        Ok(version) if !version.is_local() => Ok(version),
        _ => Err(format!(
            "latestVersion {:?} is not a CalVer version (YYYY.MM.DD.MICRO)",
            shorten(text)
        )),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name() -> ExtensionName {
        ExtensionName::parse("@s/n").unwrap()
    }

    #[test]
    fn metadata_ignores_unknown_fields_and_reads_deprecation() {
        let body = br#"{"name":"@s/n","latestVersion":"2026.05.05.2","versions":[],"x":1,
            "deprecated":{"reason":"old","supersededBy":"@s/m"}}"#;
        let meta = metadata(body, false, &name()).unwrap();
        assert_eq!(meta.latest_version.unwrap().to_string(), "2026.05.05.2");
        let deprecated = meta.deprecated.unwrap();
        assert_eq!(deprecated.reason, "old");
        assert_eq!(deprecated.superseded_by.as_deref(), Some("@s/m"));
        let empty = metadata(br#"{"name":"@s/n","latestVersion":null}"#, false, &name()).unwrap();
        assert_eq!(empty.latest_version, None);
    }

    #[test]
    fn bad_bodies_are_named() {
        let check = |result: Result<ExtensionMeta, String>, expected: &str| {
            let detail = result.unwrap_err();
            assert!(detail.contains(expected), "{detail}");
        };
        check(metadata(b"{", false, &name()), "invalid JSON");
        check(metadata(b"{}", false, &name()), "missing field `name`");
        check(metadata(b"<!doctype html>", false, &name()), HTML_DETAIL);
        check(metadata(br#"{"name":"@s/n"}"#, true, &name()), HTML_DETAIL);
        check(
            metadata(br#"{"name":"@x/y"}"#, false, &name()),
            "does not match",
        );
        check(
            metadata(
                br#"{"name":"@s/n","latestVersion":"0.0.0"}"#,
                false,
                &name(),
            ),
            "not a CalVer",
        );
        check(
            metadata(
                br#"{"name":"@s/n","latestVersion":"1.2.3"}"#,
                false,
                &name(),
            ),
            "not a CalVer",
        );
    }

    #[test]
    fn latest_requires_the_field() {
        assert_eq!(
            latest(br#"{"latestVersion":"2026.01.02.3"}"#, false)
                .unwrap()
                .unwrap()
                .to_string(),
            "2026.01.02.3"
        );
        assert!(latest(b"{}", false).unwrap_err().contains("latestVersion"));
        assert!(latest(br#"{"latestVersion":"v2"}"#, false)
            .unwrap_err()
            .contains("not a CalVer"));
    }

    #[test]
    fn checksums_are_64_hex_of_sha256() {
        let hex = "AB".repeat(32);
        assert_eq!(
            checksum(format!(r#"{{"checksum":"{hex}"}}"#).as_bytes(), false).unwrap(),
            "ab".repeat(32)
        );
        assert!(checksum(br#"{"checksum":"abc"}"#, false)
            .unwrap_err()
            .contains("not 64 hex"));
        let md5 = format!(r#"{{"algorithm":"md5","checksum":"{hex}"}}"#);
        assert!(checksum(md5.as_bytes(), false)
            .unwrap_err()
            .contains("not sha256"));
    }
}
