//! The end-to-end tests, one test binary: the real API (in this process)
//! and the real orchestrator (in this process, or its binary as a child
//! process that a test can SIGKILL) over a fresh database, a Redis prefix
//! and a state directory per test (see `support`). One module per subject.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

mod autoscaling;
mod crash;
mod dead_man;
mod dead_worker;
mod deadlines;
mod hosts;
mod huggingface_token;
mod lifecycle;
mod messages;
mod metrics;
mod prometheus;
mod redis;
mod replicas;
mod rollout;
mod scale_to_zero;
mod scaleway;
mod scaleway_crash;
mod service_limits;
mod step_errors;
mod traces;
mod worker_redirects;
