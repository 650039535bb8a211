//! Tests of the registry client: against the real server over a temporary directory
//! (`served`), and against tiny hand-written servers that misbehave on purpose
//! (`hostile`). Every server listens on 127.0.0.1 port 0; readiness is the bound
//! address, never a sleep.

mod hostile;
mod served;
mod support;
