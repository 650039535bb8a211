//! The size limits of spec 20 §5.2 S7 and the manifest cap of §5.3, counted the same
//! way by the packer and the extractor.

/// At most this many entries (directories included, metadata headers and silently
/// skipped AppleDouble entries not).
pub(crate) const MAX_ENTRIES: u64 = 4096;
/// At most this many bytes in one file.
pub(crate) const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// At most this many bytes in all files together.
pub(crate) const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// `manifest.yaml` is at most this long.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// At most this many bytes are decompressed from one archive: the files' total plus
/// 4 KiB of headers, padding and AppleDouble companions per entry, plus 1 MiB of
/// slack for the end blocks and record padding. A gzip bomb stops here whatever its
/// headers claim.
pub(crate) const MAX_DECOMPRESSED_BYTES: u64 =
    MAX_TOTAL_BYTES + (MAX_ENTRIES + 1) * 4096 + 1024 * 1024;

/// A limit was passed: `value > max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LimitExceeded {
    /// What is limited, as the message names it (`entry count`, `file size`, ...).
    pub limit: &'static str,
    /// The count that broke it.
    pub value: u64,
    /// The limit.
    pub max: u64,
}

/// Running totals of one archive.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    entries: u64,
    total_bytes: u64,
}

impl Tally {
    /// Counts one entry.
    pub(crate) fn add_entry(&mut self) -> Result<(), LimitExceeded> {
        self.entries += 1;
        check("entry count", self.entries, MAX_ENTRIES)
    }

    /// Counts one file of `size` bytes (call `add_entry` for it too).
    pub(crate) fn add_file(&mut self, size: u64) -> Result<(), LimitExceeded> {
        check("file size", size, MAX_FILE_BYTES)?;
        self.total_bytes = self.total_bytes.saturating_add(size);
        check("total size", self.total_bytes, MAX_TOTAL_BYTES)
    }
}

fn check(limit: &'static str, value: u64, max: u64) -> Result<(), LimitExceeded> {
    if value > max {
        Err(LimitExceeded { limit, value, max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_files_and_total_are_capped() {
        let mut tally = Tally::default();
        for _ in 0..MAX_ENTRIES {
            tally.add_entry().unwrap();
        }
        let over = tally.add_entry().unwrap_err();
        assert_eq!(
            (over.limit, over.value, over.max),
            ("entry count", 4097, 4096)
        );

        let mut tally = Tally::default();
        let over = tally.add_file(MAX_FILE_BYTES + 1).unwrap_err();
        assert_eq!(over.limit, "file size");
        for _ in 0..4 {
            tally.add_file(MAX_FILE_BYTES).unwrap();
        }
        let over = tally.add_file(1).unwrap_err();
        assert_eq!(
            (over.limit, over.value),
            ("total size", MAX_TOTAL_BYTES + 1)
        );
    }
}
