//! Tests that drive the built `fen` binary: one test binary, one module per area.

mod init;
mod lock;
mod output;
mod util;
