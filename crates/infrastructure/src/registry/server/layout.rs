//! The served directory (spec 20 §3.1): `DIR/@scope/seg[/seg…]/<CalVer>.tar.gz`, an
//! optional `<file>.sha256` sidecar per archive and an optional `meta.json`. It is
//! read afresh on every request, so tests may add versions while the server runs.
//! Callers pass validated names and versions only, so no `..` ever reaches the disk.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fen_domain::{ExtensionName, ExtensionVersion};
use serde::Deserialize;
use sha2::{Digest, Sha256};

const ARCHIVE_SUFFIX: &str = ".tar.gz";

/// An extension directory holding at least one archive.
#[derive(Debug)]
pub(crate) struct Published {
    dir: PathBuf,
    /// Ascending.
    versions: Vec<ExtensionVersion>,
    meta: MetaFile,
}

/// `meta.json`; a missing or unreadable file counts as empty.
#[derive(Debug, Default, Deserialize)]
struct MetaFile {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    latest: Option<String>,
    #[serde(default)]
    deprecated: Option<serde_json::Value>,
}

/// The extension directory of `name` below `root`, if it holds an archive.
pub(crate) fn find(root: &Path, name: &ExtensionName) -> std::io::Result<Option<Published>> {
    let mut dir = root.join(format!("@{}", name.scope()));
    for segment in name.segments() {
        dir.push(segment);
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(error) => return Err(error),
    };
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(version) = file_name
            .to_str()
            .and_then(|file_name| file_name.strip_suffix(ARCHIVE_SUFFIX))
            .and_then(|stem| ExtensionVersion::parse(stem).ok())
            .filter(|version| !version.is_local())
        else {
            continue;
        };
        if std::fs::metadata(entry.path()).is_ok_and(|meta| meta.is_file()) {
            versions.push(version);
        }
    }
    if versions.is_empty() {
        return Ok(None);
    }
    versions.sort();
    let meta = std::fs::read(dir.join("meta.json"))
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default();
    Ok(Some(Published {
        dir,
        versions,
        meta,
    }))
}

impl Published {
    /// Every version, ascending.
    pub(crate) fn versions(&self) -> &[ExtensionVersion] {
        &self.versions
    }

    /// `meta.json`'s `latest` if that archive exists, else the highest version.
    pub(crate) fn latest(&self) -> ExtensionVersion {
        let pinned = self
            .meta
            .latest
            .as_deref()
            .and_then(|text| ExtensionVersion::parse(text).ok())
            .filter(|version| self.versions.contains(version));
        match pinned {
            Some(version) => version,
            // `find` returns no `Published` without a version.
            None => self
                .versions
                .last()
                .copied()
                .unwrap_or(ExtensionVersion::Local),
        }
    }

    /// True when the archive of `version` exists.
    pub(crate) fn has(&self, version: &ExtensionVersion) -> bool {
        self.versions.contains(version)
    }

    /// `meta.json`'s description.
    pub(crate) fn description(&self) -> Option<&str> {
        self.meta.description.as_deref()
    }

    /// `meta.json`'s deprecation object, as written; `null` otherwise.
    pub(crate) fn deprecated(&self) -> serde_json::Value {
        match &self.meta.deprecated {
            Some(value @ serde_json::Value::Object(_)) => value.clone(),
            _ => serde_json::Value::Null,
        }
    }

    /// The archive file of `version`.
    pub(crate) fn archive(&self, version: &ExtensionVersion) -> PathBuf {
        self.dir.join(format!("{version}{ARCHIVE_SUFFIX}"))
    }

    /// When `version` was published: its archive's modification time.
    pub(crate) fn published_at(&self, version: &ExtensionVersion) -> Option<SystemTime> {
        std::fs::metadata(self.archive(version))
            .and_then(|meta| meta.modified())
            .ok()
    }

    /// The first token of the sidecar, served verbatim (so tests can plant a wrong
    /// one), else the sha256 of the archive, computed now: a cache keyed by mtime could
    /// serve a stale value when a test re-packs within one second.
    pub(crate) fn checksum(&self, version: &ExtensionVersion) -> std::io::Result<String> {
        let archive = self.archive(version);
        let mut sidecar = archive.clone().into_os_string();
        sidecar.push(".sha256");
        if let Ok(text) = std::fs::read_to_string(&sidecar) {
            if let Some(token) = text.split_whitespace().next() {
                return Ok(token.to_owned());
            }
        }
        let mut file = std::fs::File::open(&archive)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(crate::random::hex(&hasher.finalize()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn version(text: &str) -> ExtensionVersion {
        ExtensionVersion::parse(text).unwrap()
    }

    #[test]
    fn versions_meta_and_checksums_come_from_the_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("@s/a/b");
        std::fs::create_dir_all(&dir).unwrap();
        for file in [
            "2026.01.02.1.tar.gz",
            "2026.01.02.10.tar.gz",
            "2026.01.01.1.tar.gz",
            "notes.txt",
            "2026.1.1.1.tar.gz",
            "0.0.0.tar.gz",
        ] {
            std::fs::write(dir.join(file), b"abc").unwrap();
        }
        std::fs::write(dir.join("2026.01.01.1.tar.gz.sha256"), "XYZ  file\n").unwrap();
        let name = ExtensionName::parse("@s/a/b").unwrap();
        let published = find(root.path(), &name).unwrap().unwrap();
        assert_eq!(
            published.versions(),
            [
                version("2026.01.01.1"),
                version("2026.01.02.1"),
                version("2026.01.02.10")
            ]
        );
        assert_eq!(published.latest(), version("2026.01.02.10"));
        assert_eq!(published.checksum(&version("2026.01.01.1")).unwrap(), "XYZ");
        assert_eq!(
            published.checksum(&version("2026.01.02.1")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );

        std::fs::write(
            dir.join("meta.json"),
            r#"{"latest":"2026.01.02.1","description":"d","deprecated":{"reason":"r"}}"#,
        )
        .unwrap();
        let published = find(root.path(), &name).unwrap().unwrap();
        assert_eq!(published.latest(), version("2026.01.02.1"));
        assert_eq!(published.description(), Some("d"));
        assert_eq!(published.deprecated()["reason"], "r");

        std::fs::write(dir.join("meta.json"), r#"{"latest":"2026.09.09.9"}"#).unwrap();
        let published = find(root.path(), &name).unwrap().unwrap();
        assert_eq!(published.latest(), version("2026.01.02.10"));

        let missing = ExtensionName::parse("@s/zz").unwrap();
        assert!(find(root.path(), &missing).unwrap().is_none());
        let empty = ExtensionName::parse("@s/a").unwrap();
        assert!(find(root.path(), &empty).unwrap().is_none());
    }
}
