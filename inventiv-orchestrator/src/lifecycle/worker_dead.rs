//! `worker_dead`: the instance comes back to `ready` once its agent
//! heartbeats as ready again (the watchdog sweep, `jobs::watchdog`, is what
//! moved it here); a reinstall or a termination are the API's to ask for.

use chrono::Utc;
use inventiv_common::InstanceStatus;

use super::{move_to, InstanceRow, Outcome, StepResult};
use crate::context::Orchestrator;

/// `worker_dead`: back to `ready` once the agent heartbeats as ready again.
pub async fn check_recovery(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let fresh = inst.last_heartbeat_at.is_some_and(|t| {
        (Utc::now() - t).to_std().unwrap_or_default() < o.config.heartbeat_timeout
    });
    if fresh && inst.worker_status.as_deref() == Some("ready") {
        move_to(
            o,
            inst,
            InstanceStatus::Ready,
            None,
            "orchestrator:watchdog",
        )
        .await?;
        return Ok(Outcome::Idle);
    }
    Ok(Outcome::Idle)
}
