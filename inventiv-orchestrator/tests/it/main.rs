//! The orchestrator's integration tests, one test binary: those that need
//! no API (the worker's install over real SSH, the binary's refusal of unsafe
//! secrets, the autoscaler's lease and signal reading on a real Redis).
//! The tests that run it with the API are in `inventiv-e2e`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod autoscaler;
mod node_install;
mod secrets;
mod ssh_output;
