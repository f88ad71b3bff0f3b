//! The orchestrator: drives instances from `provisioning` to `ready` and on
//! to `terminated` — commands from a Redis stream wake it, level-triggered
//! reconcile loops keep it converging, every step is recorded.
//!
//! - `context`: the shared [`context::Orchestrator`] every part works with
//!   (connections, providers, the SSH client, the agent bundle), built from
//!   `config`; `clouds` builds the cloud providers per organization.
//! - `lifecycle`: the instance state machine, one step per status.
//! - `jobs`: what runs on its own: the reconcile loop that drives
//!   instances, the heartbeat watchdog, the cloud reconciliation.
//! - `commands`: the Redis stream consumer that wakes the driver.
//! - `node`: reaching a worker node: SSH, the worker's install, its agent.
//! - `autoscaler`: the load signals read back from Redis, the scaling
//!   decision and the lease that lets one orchestrator act on it.
//! - `events`, `metrics`, `probes`: what the orchestrator tells the
//!   outside (live events, Prometheus, `/healthz` and `/readyz`).

pub mod autoscaler;
pub mod clouds;
pub mod commands;
pub mod config;
pub mod context;
pub mod events;
pub mod hosts;
pub mod jobs;
pub mod lifecycle;
pub mod measured;
pub mod metrics;
pub mod node;
pub mod probes;
pub mod scrape;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs the command consumer, the reconcile loop and the cloud
/// reconciliation until shutdown, then waits for the steps in flight.
pub async fn run(o: Arc<context::Orchestrator>, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    let active = jobs::reconcile::Active::default();
    let commands = tokio::spawn(commands::run(
        o.clone(),
        active.clone(),
        tasks.clone(),
        shutdown.clone(),
    ));
    let clouds = tokio::spawn(jobs::cloud_reconcile::run(o.clone(), shutdown.clone()));
    let autoscaler = tokio::spawn(autoscaler::run::run(o.clone(), shutdown.clone()));
    let hosts = tokio::spawn(hosts::run(o.clone(), shutdown.clone()));
    jobs::reconcile::run(o, active, tasks.clone(), shutdown).await;
    let _ = commands.await;
    let _ = clouds.await;
    let _ = autoscaler.await;
    let _ = hosts.await;
    tasks.close();
    tasks.wait().await;
}
