//! Spec 20 §18 scenario 38: `cargo xtask stress --iterations 5 --seed 7` exits 0 and
//! prints the report with `invariants: 5 x 7 checks passed`.
//!
//! The harness runs in-process through the xtask library with `--fen` set to the fen
//! this `cargo test` built (found as `util::fen_bin` finds it), rather than through
//! `cargo xtask`: a nested `cargo` would wait for the build directory lock that the
//! running `cargo test` holds, and would build a second, release fen. Running the
//! xtask binary instead is not possible either, since `cargo test` builds no binary of
//! another package for a test. Nothing is lost: the harness's code is the one
//! `cargo xtask stress` runs, and it still drives every fen command as its own OS
//! process against a real `fen registry serve`, which is the property under test.

use crate::util::fen_bin;

#[test]
fn stress_smoke_five_rounds_of_four_processes() {
    let fen = fen_bin().display().to_string();
    let args =
        xtask::stress::StressArgs::parse(&["--iterations", "5", "--seed", "7", "--fen", &fen])
            .unwrap();
    let printed = xtask::stress::run(args).unwrap_or_else(|failure| panic!("{failure}"));
    assert!(
        printed.starts_with("fen lifecycle stress: 5 rounds x 4 processes, seed 7, fen "),
        "{printed}"
    );
    assert!(
        printed.contains("\ninvariants: 5 x 7 checks passed\n"),
        "{printed}"
    );
}
