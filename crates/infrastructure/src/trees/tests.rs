//! Unit tests of `FsExtensionTrees`: the swap and its rollback, removal through the txn.

use super::*;
use fen_domain::journal::{JournalOp, JournalTarget};

fn journal() -> Journal {
    Journal {
        op: JournalOp::Install,
        pid: 1,
        host: "h".to_owned(),
        started_at: "t".to_owned(),
        targets: vec![JournalTarget {
            name: fen_domain::ExtensionName::parse("@t/a").unwrap(),
            key: "@t/a".to_owned(),
            new_version: None,
            new_checksum: None,
            sources: Vec::new(),
            prior: None,
        }],
    }
}

#[test]
fn swap_and_roll_back_restore_the_prior_tree() {
    let dir = tempfile::tempdir().unwrap();
    let trees = FsExtensionTrees::new(dir.path().to_path_buf());
    let live = dir.path().join(".fen/pulled-extensions/@t/a");
    fs::create_dir_all(&live).unwrap();
    fs::write(live.join("old.txt"), b"v1").unwrap();
    let stage = trees.new_stage().unwrap();
    fs::create_dir_all(stage.ext_dir()).unwrap();
    fs::write(stage.ext_dir().join("new.txt"), b"v2").unwrap();

    let txn = trees.begin_txn(&journal()).unwrap();
    assert_eq!(trees.txns().unwrap()[0].1.as_ref().unwrap(), &journal());
    trees.move_aside(&txn, 0, "@t/a").unwrap();
    trees.move_in(&stage, "@t/a").unwrap();
    assert!(live.join("new.txt").exists());
    trees.roll_back(&txn, 0, "@t/a", false).unwrap();
    assert!(live.join("old.txt").exists());
    assert!(!live.join("new.txt").exists());
    trees.delete_txn(&txn).unwrap();
    assert!(trees.txns().unwrap().is_empty());

    let (files, odd) = trees.list_root_files("@t/a").unwrap();
    assert_eq!(files, [".fen/pulled-extensions/@t/a/old.txt"]);
    assert!(!odd);
}

#[test]
fn removal_goes_through_the_txn_and_prunes_parents() {
    let dir = tempfile::tempdir().unwrap();
    let trees = FsExtensionTrees::new(dir.path().to_path_buf());
    fs::create_dir_all(dir.path().join(".fen/pulled-extensions/@t/a/models")).unwrap();
    fs::create_dir_all(dir.path().join(".fen/bundles/pulled/@t/a/models")).unwrap();
    let txn = trees.begin_txn(&journal()).unwrap();
    trees.move_out(&txn, 0, "@t/a").unwrap();
    assert!(!trees.roots("@t/a").any());
    trees.delete_txn(&txn).unwrap();
    assert_eq!(trees.prune_parents("@t/a"), 2);
    assert!(dir.path().join(".fen/pulled-extensions").exists());
    assert!(!dir.path().join(".fen/pulled-extensions/@t").exists());
    assert!(!dir.path().join(".fen/bundles/pulled/@t").exists());
}
