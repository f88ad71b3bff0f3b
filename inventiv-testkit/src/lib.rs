//! Test harness shared by the integration tests of the workspace: a fresh
//! migrated database per test, a real sshd on loopback, a fake Scaleway
//! API and the real Scaleway recordings it is checked against, a stand-in
//! for a node's relay (TLS + relay key), the deadline-poll helper, and the
//! workspace's binaries built on first use.
//! Test code only, so failing loudly (panicking) is the right answer to a
//! broken harness.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness"
)]

pub mod binaries;
pub mod db;
pub mod engine;
pub mod fake_scaleway;
pub mod recordings;
pub mod relay;
pub mod sshd;
pub mod wait;
