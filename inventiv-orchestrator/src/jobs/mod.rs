//! The orchestrator's periodic work, each a level-triggered loop that
//! converges from what the database and the providers say, so that a lost
//! command or a crash only delays it:
//!
//! - `reconcile`: every interval, drives each instance that may need a step
//!   (the driver the command consumer wakes too), under a per-instance lease;
//! - `watchdog`: swept on each of those ticks, `ready` → `worker_dead` for
//!   instances whose agent stopped heartbeating;
//! - `cloud_reconcile`: per provider and organization, deletes the tagged
//!   cloud resources no instance owns.

pub mod cloud_reconcile;
pub mod reconcile;
pub mod watchdog;
