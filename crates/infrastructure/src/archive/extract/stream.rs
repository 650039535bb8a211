//! The decompressed byte stream under a cap: every byte that leaves the gzip decoder
//! (entry data, headers, long names, padding, the tail after the end blocks) is
//! counted, and reading stops with an error once `MAX_DECOMPRESSED_BYTES` is passed,
//! whatever the tar headers claim. The meter also remembers whether an error came
//! from the decoder, so S1 can say "gzip" or "tar".

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use fen_domain::ports::ArchiveError;

use crate::archive::limits::{LimitExceeded, MAX_DECOMPRESSED_BYTES};
use crate::archive::messages::Subject;

/// Shared between the reader (inside the tar decoder) and the code that classifies
/// the errors coming out of it.
#[derive(Clone, Debug)]
pub(super) struct Meter(Rc<MeterState>);

#[derive(Debug)]
struct MeterState {
    cap: u64,
    read: Cell<u64>,
    over_cap: Cell<bool>,
    decoder_failed: Cell<bool>,
}

impl Meter {
    pub(super) fn new() -> Meter {
        Meter::with_cap(MAX_DECOMPRESSED_BYTES)
    }

    pub(super) fn with_cap(cap: u64) -> Meter {
        Meter(Rc::new(MeterState {
            cap,
            read: Cell::new(0),
            over_cap: Cell::new(false),
            decoder_failed: Cell::new(false),
        }))
    }

    /// Wraps the decoder.
    pub(super) fn reader<R: Read>(&self, inner: R) -> MeteredReader<R> {
        MeteredReader {
            inner,
            meter: self.clone(),
        }
    }

    /// The rule a read error breaks: the cap (S7), the gzip layer or the tar layer
    /// (S1).
    pub(super) fn classify(&self, subject: &Subject, error: &io::Error) -> ArchiveError {
        let state = &self.0;
        if state.over_cap.get() {
            subject.too_large(&LimitExceeded {
                limit: "decompressed size",
                value: state.read.get(),
                max: state.cap,
            })
        } else if state.decoder_failed.get() {
            subject.corrupt(format!("gzip stream: {error}"))
        } else {
            subject.corrupt(format!("tar stream: {error}"))
        }
    }
}

/// Counts what the inner reader produces and fails past the cap.
#[derive(Debug)]
pub(super) struct MeteredReader<R> {
    inner: R,
    meter: Meter,
}

impl<R: Read> Read for MeteredReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let state = &self.meter.0;
        if state.over_cap.get() {
            return Err(over_cap());
        }
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                state.decoder_failed.set(true);
            }
        })?;
        let total = state.read.get().saturating_add(n as u64);
        state.read.set(total);
        if total > state.cap {
            state.over_cap.set(true);
            return Err(over_cap());
        }
        Ok(n)
    }
}

fn over_cap() -> io::Error {
    io::Error::other("decompressed size limit reached")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fen_domain::ports::ArchiveErrorCode;
    use fen_domain::{ExtensionName, ExtensionVersion};

    fn subject() -> Subject {
        Subject::unpack(
            &ExtensionName::parse("@s/n").unwrap(),
            &ExtensionVersion::parse("2026.05.05.1").unwrap(),
        )
    }

    #[test]
    fn stops_past_the_cap_and_says_so() {
        let meter = Meter::with_cap(10);
        let mut reader = meter.reader(io::repeat(0).take(100));
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).unwrap(), 8);
        let error = reader.read(&mut buf).unwrap_err();
        let classified = meter.classify(&subject(), &error);
        assert_eq!(classified.code, ArchiveErrorCode::TooLarge);
        assert!(classified
            .message
            .contains("exceeds the decompressed size limit (16 > 10)"));
        assert!(reader.read(&mut buf).is_err(), "stays failed");
    }

    #[test]
    fn decoder_errors_are_gzip_errors() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("corrupt deflate stream"))
            }
        }
        let meter = Meter::with_cap(10);
        let error = meter.reader(Broken).read(&mut [0u8; 4]).unwrap_err();
        let classified = meter.classify(&subject(), &error);
        assert_eq!(classified.code, ArchiveErrorCode::Corrupt);
        assert!(classified
            .message
            .contains("is corrupt: gzip stream: corrupt deflate stream;"));
    }
}
