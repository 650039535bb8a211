//! The commit's scanners: `Replay` (the catalog did not change since prepare) and
//! `Hinted` (it did: a fresh walk trusting prepare's non-racy stat records).

use super::*;

/// The commit's view of the disk when the catalog did not change since prepare: the
/// entries prepare walked and the fingerprints it measured, except for the entries it
/// found stale, which are fingerprinted again (their results apply only if the disk
/// still matches). Existence probes and hashing counters are the fresh scanner's.
pub(super) struct Replay {
    pub(super) fresh: Arc<dyn SourceScanner>,
    pub(super) stale: BTreeSet<CanonicalPath>,
    pub(super) observed: BTreeMap<CanonicalPath, (ScannedEntry, Fingerprinted)>,
}

#[async_trait::async_trait]
impl SourceScanner for Replay {
    fn scan_roots(
        &self,
        loader_kind: LoaderKind,
        pulled: &[(ExtensionName, CanonicalPath)],
    ) -> Vec<ScanRoot> {
        self.fresh.scan_roots(loader_kind, pulled)
    }

    async fn walk(
        &self,
        root: &ScanRoot,
        _known: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Vec<ScannedEntry> {
        self.observed
            .values()
            .filter(|(entry, _)| entry.root == *root)
            .map(|(entry, _)| entry.clone())
            .collect()
    }

    async fn fingerprint(
        &self,
        entry: &ScannedEntry,
        known: Option<(&SourceFingerprint, &FileStats)>,
    ) -> Fingerprinted {
        let path = entry.location.canonical();
        match self.observed.get(path) {
            Some((_, measured)) if !self.stale.contains(path) => measured.clone(),
            _ => self.fresh.fingerprint(entry, known).await,
        }
    }

    async fn exists(&self, path: &CanonicalPath) -> bool {
        self.fresh.exists(path).await
    }

    fn files_hashed(&self) -> usize {
        self.fresh.files_hashed()
    }
}

/// The commit's view of the disk when it observes the whole tree again (a cold start,
/// or another writer committed since prepare): a fresh walk and fresh fingerprints,
/// with the stat records prepare took standing in for sources the catalog has none
/// for. A file whose stat still equals such a non-racy record is not read a second
/// time (the stat fast path of spec 10 §6.2, with prepare's records).
pub(super) struct Hinted {
    pub(super) fresh: Arc<dyn SourceScanner>,
    /// The catalog's records, plus prepare's for the sources it has none for.
    pub(super) known: BTreeMap<CanonicalPath, FileStats>,
    /// Prepare's fingerprint and records, for the sources the catalog has none for.
    pub(super) taken: BTreeMap<CanonicalPath, (SourceFingerprint, FileStats)>,
}

impl Hinted {
    pub(super) fn new(
        fresh: Arc<dyn SourceScanner>,
        observed: &BTreeMap<CanonicalPath, (ScannedEntry, Fingerprinted)>,
        stored: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Hinted {
        let taken: BTreeMap<_, _> = observed
            .iter()
            .filter(|(path, _)| !stored.contains_key(*path))
            .filter_map(|(path, (_, measured))| {
                let stats = measured.fresh_stats.clone()?;
                Some((path.clone(), (measured.fingerprint, stats)))
            })
            .collect();
        let mut known = stored.clone();
        if !taken.is_empty() {
            known.extend(
                taken
                    .iter()
                    .map(|(p, (_, stats))| (p.clone(), stats.clone())),
            );
        }
        Hinted {
            fresh,
            known,
            taken,
        }
    }
}

#[async_trait::async_trait]
impl SourceScanner for Hinted {
    fn scan_roots(
        &self,
        loader_kind: LoaderKind,
        pulled: &[(ExtensionName, CanonicalPath)],
    ) -> Vec<ScanRoot> {
        self.fresh.scan_roots(loader_kind, pulled)
    }

    async fn walk(
        &self,
        root: &ScanRoot,
        _known: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Vec<ScannedEntry> {
        self.fresh.walk(root, &self.known).await
    }

    async fn fingerprint(
        &self,
        entry: &ScannedEntry,
        known: Option<(&SourceFingerprint, &FileStats)>,
    ) -> Fingerprinted {
        let hint = match known {
            None => self.taken.get(entry.location.canonical()),
            Some(_) => None,
        };
        let Some((fingerprint, stats)) = hint else {
            return self.fresh.fingerprint(entry, known).await;
        };
        let again = self
            .fresh
            .fingerprint(entry, Some((fingerprint, stats)))
            .await;
        if again.fresh_stats.is_some() || again.fingerprint != *fingerprint {
            return again;
        }
        if !again.hashed {
            // Every file unchanged since prepare: its records are the ones to store.
            return Fingerprinted {
                fresh_stats: Some(stats.clone()),
                ..again
            };
        }
        // A racy record made it read a file again: fingerprint it as a source without
        // records (from the pass's cache), so the records stored are taken now.
        self.fresh.fingerprint(entry, known).await
    }

    async fn exists(&self, path: &CanonicalPath) -> bool {
        self.fresh.exists(path).await
    }

    fn files_hashed(&self) -> usize {
        self.fresh.files_hashed()
    }
}

/// Two reads of the catalog hold the same rows, descriptors aside (an outline has none).
pub(super) fn same_outline(a: &Loaded, b: &Loaded) -> bool {
    a.skipped == b.skipped
        && a.file_stats == b.file_stats
        && a.extensions.len() == b.extensions.len()
        && a.extensions.iter().zip(&b.extensions).all(|(x, y)| {
            x.id() == y.id()
                && x.origin() == y.origin()
                && x.root() == y.root()
                && x.sources().len() == y.sources().len()
                && x.sources().zip(y.sources()).all(|(s, t)| same_source(s, t))
        })
}

pub(super) fn same_source(s: &Source, t: &Source) -> bool {
    let same_state = match (s.state(), t.state()) {
        (
            RowState::Indexed {
                type_name: a,
                bundle: b,
                meta: m,
            },
            RowState::Indexed {
                type_name: c,
                bundle: d,
                meta: n,
            },
        ) => {
            a == c
                && b == d
                && m.declared_version == n.declared_version
                && m.description == n.description
        }
        (x, y) => x == y,
    };
    same_state
        && s.location() == t.location()
        && s.kind() == t.kind()
        && s.origin() == t.origin()
        && s.fingerprint() == t.fingerprint()
        && s.mtime() == t.mtime()
        && s.superseded_by() == t.superseded_by()
}
