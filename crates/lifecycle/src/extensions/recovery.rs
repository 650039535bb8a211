//! Crash-state recovery (spec 20 §13.3), run at the start of every locked section a
//! service opens: finishes or undoes every `txn-*` left by a dead process or by an
//! earlier `partially_applied` failure, then deletes abandoned staging and build
//! directories and stray lockfile temp files.
//!
//! Under the lifecycle lock no live process owns a `txn-*`, so acting on each is safe.
//! Roll-forward saves the journaled aggregates without evaluating any bundle; it first
//! re-hashes the entry points, and rolls back instead if a file changed after the crash.

use std::collections::BTreeMap;

use fen_domain::journal::{Journal, JournalOp, JournalTarget};
use fen_domain::ports::{LockDocument, RepoError, ScannedEntry, TxnId};
use fen_domain::{Extension, LoaderKind, Origin, RowState, SourceLocation};

use super::{live, Recovered};
use crate::adapters::Adapters;
use crate::engine::LifecycleError;

/// What recovery did.
#[derive(Clone, Debug, Default)]
pub struct RecoveryOutcome {
    /// One line per action.
    pub warnings: Vec<String>,
    /// The finished transactions.
    pub recovered: Vec<Recovered>,
}

/// Runs the procedure. The caller holds the lifecycle lock.
pub async fn recover(ad: &Adapters) -> Result<RecoveryOutcome, LifecycleError> {
    let mut out = RecoveryOutcome::default();
    for (txn, journal) in ad.trees.txns()? {
        let journal = match journal {
            Ok(journal) => journal,
            Err(_) => {
                // A txn directory whose journal was never completed: nothing was
                // mutated yet (the journal is written before the first rename).
                ad.trees.delete_txn(&txn)?;
                continue;
            }
        };
        match journal.op {
            JournalOp::Install => recover_install(ad, &txn, &journal, &mut out).await?,
            JournalOp::Rm => recover_rm(ad, &txn, &journal, &mut out).await?,
        }
    }
    ad.trees.gc_scratch();
    Ok(out)
}

fn record(
    out: &mut RecoveryOutcome,
    op: JournalOp,
    target: &JournalTarget,
    forward: bool,
    txn: &TxnId,
) {
    let verb = if forward {
        "rolled forward"
    } else {
        "rolled back"
    };
    let op_text = match op {
        JournalOp::Install => "install",
        JournalOp::Rm => "rm",
    };
    out.warnings.push(format!(
        "recovered interrupted {op_text} of {}: {verb}",
        target.name
    ));
    out.recovered.push(Recovered {
        op,
        name: target.name.clone(),
        action: if forward {
            "rolled_forward"
        } else {
            "rolled_back"
        },
        txn: txn.0.clone(),
    });
}

async fn recover_install(
    ad: &Adapters,
    txn: &TxnId,
    journal: &Journal,
    out: &mut RecoveryOutcome,
) -> Result<(), LifecycleError> {
    let document = ad.lockfile_store.read().await?;
    let committed = journal.targets.iter().all(|t| {
        document
            .extensions
            .get(&t.name)
            .is_some_and(|e| Some(e.version) == t.new_version && e.checksum == t.new_checksum)
    });
    if !committed {
        for (index, target) in journal.targets.iter().enumerate() {
            ad.trees
                .roll_back(txn, index, &target.key, target.prior.is_none())?;
            ad.trees.prune_parents(&target.key);
        }
        ad.trees.delete_txn(txn)?;
        for target in &journal.targets {
            record(out, JournalOp::Install, target, false, txn);
        }
        return Ok(());
    }

    // Roll forward: the journaled aggregates, if the files are still what was indexed.
    let mut aggregates = Vec::new();
    let mut changed_after_crash = None;
    for target in &journal.targets {
        let root = ad.layout.pulled_root(&target.name);
        let aggregate = target
            .aggregate(&root)
            .map_err(|e| LifecycleError::Io(format!("journal of {}: {e}", txn.0)))?;
        if !fingerprints_match(ad, &aggregate).await {
            changed_after_crash = Some(target.name.clone());
        }
        aggregates.push(aggregate);
    }
    if let Some(name) = changed_after_crash {
        full_rollback(ad, txn, journal, document).await?;
        out.warnings.push(format!(
            "rolled back interrupted install of {name}@{}: its files changed after the crash",
            version_of(journal, &name)
        ));
        for target in &journal.targets {
            out.recovered.push(Recovered {
                op: JournalOp::Install,
                name: target.name.clone(),
                action: "rolled_back",
                txn: txn.0.clone(),
            });
        }
        return Ok(());
    }
    let mut batch: Vec<Extension> = Vec::new();
    for aggregate in &aggregates {
        for other in live(ad.repo.load_by_name(&aggregate.id().name).await?) {
            if other.id().version != aggregate.id().version {
                batch.push(other.tombstone_all());
            }
        }
    }
    batch.extend(aggregates);
    match ad.repo.save_all(&batch).await {
        Ok(_) => {
            ad.trees.delete_txn(txn)?;
            for target in &journal.targets {
                record(out, JournalOp::Install, target, true, txn);
            }
        }
        Err(RepoError::DuplicateType(dup)) => {
            full_rollback(ad, txn, journal, document).await?;
            let name = &dup.conflicting.extension.name;
            out.warnings.push(format!(
                "rolled back interrupted install of {}: type {} collides with {}",
                dup.conflicting.extension, dup.type_name, dup.existing.extension.name
            ));
            let _ = name;
            for target in &journal.targets {
                out.recovered.push(Recovered {
                    op: JournalOp::Install,
                    name: target.name.clone(),
                    action: "rolled_back",
                    txn: txn.0.clone(),
                });
            }
        }
        Err(error) => {
            for target in &journal.targets {
                out.warnings.push(format!(
                    "interrupted install of {}@{} still not indexed ({error})",
                    target.name,
                    target
                        .new_version
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

fn version_of(journal: &Journal, name: &fen_domain::ExtensionName) -> String {
    journal
        .targets
        .iter()
        .find(|t| &t.name == name)
        .and_then(|t| t.new_version)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The full rollback of spec 20 §9.4 steps 1–3 for a journal: roots restored, every
/// target's lockfile entry restored from the journal's `prior` (or removed), txn
/// deleted. The caller holds the lock.
pub(crate) async fn full_rollback(
    ad: &Adapters,
    txn: &TxnId,
    journal: &Journal,
    mut document: LockDocument,
) -> Result<(), LifecycleError> {
    for (index, target) in journal.targets.iter().enumerate() {
        ad.trees
            .roll_back(txn, index, &target.key, target.prior.is_none())?;
        ad.trees.prune_parents(&target.key);
        match &target.prior {
            Some(prior) => {
                document
                    .extensions
                    .insert(target.name.clone(), prior.clone());
            }
            None => {
                document.extensions.remove(&target.name);
            }
        }
    }
    ad.lockfile_store.write(&document).await?;
    ad.trees.delete_txn(txn)?;
    Ok(())
}

/// True when every entry point of a staged aggregate still has its journaled
/// fingerprint on disk, and every bundle it names exists.
async fn fingerprints_match(ad: &Adapters, aggregate: &Extension) -> bool {
    let scanner = ad.scanners.new_pass();
    let pair = [(aggregate.id().name.clone(), aggregate.root().clone())];
    let roots: BTreeMap<LoaderKind, fen_domain::ports::ScanRoot> = LoaderKind::ALL
        .into_iter()
        .flat_map(|lk| scanner.scan_roots(lk, &pair))
        .filter(|r| r.origin == Origin::Pulled)
        .map(|r| (r.loader_kind, r))
        .collect();
    for source in aggregate.sources() {
        if matches!(source.state(), RowState::Tombstoned { .. }) {
            continue;
        }
        // A reinstall of the same bytes leaves the lockfile equal to the journal's new
        // entry before the commit point; a swap cut between its renames is told apart
        // by the bundles the journal promises.
        if let Some(bundle) = source.state().bundle() {
            if !scanner.exists(&bundle.path).await {
                return false;
            }
        }
        let Some(rel) = source.path().relative_to(aggregate.root()) else {
            return false;
        };
        let Some(kind) = fen_domain::layout::entry_point_kind(rel) else {
            return false;
        };
        let Some(root) = roots.get(&kind) else {
            return false;
        };
        let entry = ScannedEntry {
            location: SourceLocation::from_canonical(
                source.path().clone(),
                aggregate.root().clone(),
            ),
            root: root.clone(),
            native_path: std::path::PathBuf::from(source.path().as_str()),
            unreadable: None,
        };
        let measured = scanner.fingerprint(&entry, None).await;
        if Some(&measured.fingerprint) != source.fingerprint() {
            return false;
        }
    }
    true
}

async fn recover_rm(
    ad: &Adapters,
    txn: &TxnId,
    journal: &Journal,
    out: &mut RecoveryOutcome,
) -> Result<(), LifecycleError> {
    let mut document = ad.lockfile_store.read().await?;
    let mut tombstones = Vec::new();
    for target in &journal.targets {
        for ext in live(ad.repo.load_by_name(&target.name).await?) {
            if ext.origin() == fen_domain::ExtensionOrigin::Pulled {
                tombstones.push(ext.tombstone_all());
            }
        }
    }
    if !tombstones.is_empty() {
        ad.repo.save_all(&tombstones).await?;
    }
    let mut rewrite = false;
    for target in &journal.targets {
        rewrite |= document.extensions.remove(&target.name).is_some();
    }
    if rewrite {
        ad.lockfile_store.write(&document).await?;
    }
    for target in &journal.targets {
        ad.trees.delete_roots(&target.key)?;
    }
    ad.trees.delete_txn(txn)?;
    for target in &journal.targets {
        ad.trees.prune_parents(&target.key);
        record(out, JournalOp::Rm, target, true, txn);
    }
    Ok(())
}
