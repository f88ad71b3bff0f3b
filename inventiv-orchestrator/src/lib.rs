//! The orchestrator: drives instances from `provisioning` to `ready` and on
//! to `terminated` — commands from a Redis stream wake it, level-triggered
//! reconcile loops keep it converging, every step is recorded.

pub mod agent_info;
pub mod bootstrap;
pub mod cloud_reconcile;
pub mod clouds;
pub mod config;
pub mod consumer;
pub mod engine;
pub mod events;
pub mod firewall;
pub mod health;
pub mod install;
pub mod metrics;
pub mod probes;
pub mod reconcile;
pub mod ssh;
pub mod steps;
pub mod terminate;
pub mod volumes;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs the command consumer and the reconcile loop until shutdown, then
/// waits for the steps in flight.
pub async fn run(o: Arc<engine::Orchestrator>, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    let active = reconcile::Active::default();
    let consumer = tokio::spawn(consumer::run(
        o.clone(),
        active.clone(),
        tasks.clone(),
        shutdown.clone(),
    ));
    let clouds = tokio::spawn(cloud_reconcile::run(o.clone(), shutdown.clone()));
    reconcile::run(o, active, tasks.clone(), shutdown).await;
    let _ = consumer.await;
    let _ = clouds.await;
    tasks.close();
    tasks.wait().await;
}
