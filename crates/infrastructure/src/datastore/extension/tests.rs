//! Unit tests of the datastore-extension adapter: return values, capabilities and the
//! confined file roots.

use serde_json::json;

use super::roots::{copy, FileRoot};
use super::{capabilities_of, files_transferred};

#[test]
fn path_rules_are_checked_before_any_syscall() {
    let root = FileRoot::remote("/nonexistent-fen-root".into());
    for bad in [
        "",
        "/etc/passwd",
        "a\\b",
        "a\0b",
        "a//b",
        "./a",
        "a/./b",
        "../x",
        "a/../b",
        "a/",
        ".fen-locks/global.lock",
        ".fen-locks",
    ] {
        let error = root.check("writeText", bad).unwrap_err();
        assert_eq!(error.code, "path_denied", "{bad:?}: {}", error.message);
    }
    assert!(root.check("writeText", "data/web/latest").is_ok());
    assert!(root.check("writeText", "x/.fen-locks").is_ok());
    // Only the remote root reserves `.fen-locks/`.
    let local = FileRoot::local("/nonexistent-fen-root".into());
    assert!(local.check("writeText", ".fen-locks/a").is_ok());
}

#[test]
fn roots_write_read_list_stat_copy_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let local = FileRoot::local(dir.path().join("local"));
    let remote = FileRoot::remote(dir.path().join("remote"));
    std::fs::create_dir_all(dir.path().join("local")).unwrap();
    std::fs::create_dir_all(dir.path().join("remote/.fen-locks")).unwrap();
    local.write_text("web/a/data.json", "{\"n\":1}").unwrap();
    assert_eq!(
        local.read_text("web/a/data.json").unwrap(),
        json!("{\"n\":1}")
    );
    assert_eq!(local.read_text("web/missing").unwrap(), json!(null));
    copy(&local, &remote, "web/a/data.json").unwrap();
    assert_eq!(
        remote.list("").unwrap(),
        json!([{ "path": "web/a/data.json", "size": 7 }])
    );
    assert_eq!(local.stat("web/a/data.json").unwrap()["size"], json!(7));
    assert_eq!(remote.stat("nope").unwrap(), json!(null));
    assert_eq!(remote.remove("web/a/data.json").unwrap(), json!(true));
    assert_eq!(remote.remove("web/a/data.json").unwrap(), json!(false));
}

#[cfg(unix)]
#[test]
fn a_planted_symlink_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "s").unwrap();
    let remote_dir = dir.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    std::os::unix::fs::symlink(&outside, remote_dir.join("link")).unwrap();
    let remote = FileRoot::remote(remote_dir);
    for error in [
        remote.read_text("link/secret").unwrap_err(),
        remote.write_text("link/new", "x").unwrap_err(),
        remote.list("").unwrap_err(),
        remote.stat("link").unwrap_err(),
    ] {
        assert_eq!(error.code, "path_denied", "{}", error.message);
    }
    assert!(!outside.join("new").exists());
}

#[test]
fn return_values_and_capabilities_are_read_strictly() {
    assert_eq!(
        files_transferred(&json!(3)).unwrap().files_transferred,
        Some(3)
    );
    assert_eq!(
        files_transferred(&json!(null)).unwrap().files_transferred,
        None
    );
    assert!(files_transferred(&json!(-1)).is_err());
    assert!(files_transferred(&json!(1.5)).is_err());
    assert!(files_transferred(&json!("3")).is_err());
    let caps = capabilities_of(&json!({ "scopedSync": true, "lazyHydration": 1 })).unwrap();
    assert!(caps.scoped_sync && !caps.lazy_hydration);
    assert!(
        !capabilities_of(&json!({ "scopedSync": "yes" }))
            .unwrap()
            .scoped_sync
    );
    assert!(capabilities_of(&json!("garbage")).is_err());
    assert!(capabilities_of(&json!([true])).is_err());
}
