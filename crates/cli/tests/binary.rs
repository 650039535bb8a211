//! Smoke test of the built binary. Having an integration test here also makes
//! `cargo test --workspace` build `target/<profile>/fen`, which the `fen-integration`
//! tests drive.

use std::process::Command;

#[test]
fn version_prints_on_stdout_and_exits_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_fen"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    // The first line is the version; the formats follow (issue 13).
    assert_eq!(
        stdout.lines().next(),
        Some(format!("fen {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert!(stdout.contains("bundle layout "), "{stdout}");
}
