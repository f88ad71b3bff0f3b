//! The heartbeat watchdog, swept on every tick of the reconcile loop:
//! `ready` instances whose agent stopped heartbeating become `worker_dead`
//! (`lifecycle::worker_dead` brings them back), never too many at once.

use inventiv_common::InstanceStatus;

use crate::context::Orchestrator;
use crate::lifecycle::{self, move_to};

/// The watchdog sweep: ready instances whose heartbeat is older than the
/// threshold become `worker_dead` — never more than the configured share
/// of ready workers in one sweep (a control-plane hiccup must not kill the fleet).
pub async fn sweep(o: &Orchestrator) -> anyhow::Result<usize> {
    let ready =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM instances WHERE status = 'ready'"#)
            .fetch_one(&o.db)
            .await?;
    let cap = ((ready as f64) * o.config.max_dead_share).floor().max(1.0) as i64;
    let stale = sqlx::query_scalar!(
        "SELECT id FROM instances WHERE status = 'ready' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < now() - make_interval(secs => $1))
          ORDER BY last_heartbeat_at NULLS FIRST",
        o.config.heartbeat_timeout.as_secs_f64(),
    )
    .fetch_all(&o.db)
    .await?;
    if stale.len() as i64 > cap {
        tracing::warn!(
            alert = true,
            stale = stale.len(),
            cap,
            "many workers silent at once; declaring only some dead this sweep"
        );
    }
    let mut declared = 0;
    for id in stale.into_iter().take(usize::try_from(cap).unwrap_or(0)) {
        let Some(inst) = lifecycle::load(o, id).await? else {
            continue;
        };
        let message = format!(
            "no heartbeat for more than {} s",
            o.config.heartbeat_timeout.as_secs()
        );
        tracing::warn!(alert = true, instance_id = %id, "worker dead: {message}");
        move_to(
            o,
            &inst,
            InstanceStatus::WorkerDead,
            Some(("WORKER_HEARTBEAT_TIMEOUT", &message)),
            "orchestrator:watchdog",
        )
        .await?;
        declared += 1;
    }
    Ok(declared)
}
