//! Test helpers: a tar writer that writes raw headers (so tests can build the hostile
//! archives the `tar` crate's own builder refuses to write), a minimal valid
//! extension, and a check that nothing was written outside a directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{EntryType, Header};

pub(crate) const NAME: &str = "@t/demo";
pub(crate) const VERSION: &str = "2026.05.05.1";

pub(crate) fn manifest_text(name: &str, version: &str, extra: &str) -> String {
    format!(
        "manifestVersion: 1\nname: \"{name}\"\nversion: \"{version}\"\nmodels: [noop.ts]\nfiles: [README.md]\n{extra}"
    )
}

pub(crate) const NOOP_TS: &str = "export const model = { type: \"@t/demo\" };\n";

/// A tar stream written header by header.
#[derive(Default)]
pub(crate) struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    /// The valid demo extension: manifest, one entry point, a helper, a README.
    pub(crate) fn demo() -> RawTar {
        RawTar::default()
            .dir("extension/")
            .file(
                "extension/manifest.yaml",
                manifest_text(NAME, VERSION, "").as_bytes(),
            )
            .dir("extension/models/")
            .file("extension/models/noop.ts", NOOP_TS.as_bytes())
            .file("extension/models/_lib/util.ts", b"export const x = 1;\n")
            .file("extension/files/README.md", b"# demo\n")
    }

    /// A regular file.
    pub(crate) fn file(self, path: &str, data: &[u8]) -> RawTar {
        self.entry(path.as_bytes(), EntryType::Regular, data)
    }

    /// A directory.
    pub(crate) fn dir(self, path: &str) -> RawTar {
        self.entry(path.as_bytes(), EntryType::Directory, b"")
    }

    /// Any entry, the path written as given (a GNU long-name entry first when it does
    /// not fit the 100-byte name field).
    pub(crate) fn entry(mut self, path: &[u8], entry_type: EntryType, data: &[u8]) -> RawTar {
        let mut header = self.header_for(path, entry_type);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.push(&header, data);
        self
    }

    /// A header with `declared` size followed by exactly `data` (which may be shorter
    /// or longer than declared; a longer tail is padded as if it were its own data).
    pub(crate) fn lying_entry(mut self, path: &str, declared: u64, data: &[u8]) -> RawTar {
        let mut header = self.header_for(path.as_bytes(), EntryType::Regular);
        header.set_size(declared);
        header.set_cksum();
        self.push(&header, data);
        self
    }

    /// A symlink or hard link to `target`.
    pub(crate) fn link(mut self, path: &str, entry_type: EntryType, target: &str) -> RawTar {
        let mut header = self.header_for(path.as_bytes(), entry_type);
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        header.set_size(0);
        header.set_cksum();
        self.push(&header, b"");
        self
    }

    /// A PAX extended header for the next entry, with `records` as `key=value`.
    pub(crate) fn pax(mut self, records: &[(&str, &str)]) -> RawTar {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = format!(" {key}={value}\n");
            // The length prefix counts itself.
            let mut len = body.len() + 1;
            while format!("{len}{body}").len() != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len}{body}").as_bytes());
        }
        let mut header = raw_header(b"././@PaxHeader", EntryType::XHeader);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.push(&header, &data);
        self
    }

    /// The stream with its two end blocks.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0u8; 1024]);
        self.bytes
    }

    /// The stream without end blocks.
    pub(crate) fn unfinished(self) -> Vec<u8> {
        self.bytes
    }

    /// `finish`, gzipped.
    pub(crate) fn gz(self) -> Vec<u8> {
        gzip(&self.finish())
    }

    fn header_for(&mut self, path: &[u8], entry_type: EntryType) -> Header {
        if path.len() <= 100 {
            return raw_header(path, entry_type);
        }
        let mut long = raw_header(b"././@LongLink", EntryType::GNULongName);
        let mut name = path.to_vec();
        name.push(0);
        long.set_size(name.len() as u64);
        long.set_cksum();
        self.push(&long, &name);
        raw_header(&path[..100], entry_type)
    }

    fn push(&mut self, header: &Header, data: &[u8]) {
        self.bytes.extend_from_slice(header.as_bytes());
        self.bytes.extend_from_slice(data);
        let padding = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, padding));
    }
}

/// A GNU header whose name field holds `path` byte for byte (no validation).
pub(crate) fn raw_header(path: &[u8], entry_type: EntryType) -> Header {
    let mut header = Header::new_gnu();
    header.as_old_mut().name[..path.len()].copy_from_slice(path);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(entry_type);
    header
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Every path below `root`, depth first.
pub(crate) fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Asserts that every path under `root` is `dest`, inside it, or one of its parents.
pub(crate) fn assert_nothing_outside(root: &Path, dest: &Path) {
    for path in all_paths(root) {
        assert!(
            path.starts_with(dest) || dest.starts_with(&path),
            "{} was written outside {}",
            path.display(),
            dest.display()
        );
    }
}
