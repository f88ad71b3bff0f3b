//! The outbox relay: publishes queued commands to the Redis stream the
//! orchestrator reads, then marks them published. Woken right after a
//! command is written, and sweeps every second for anything left behind
//! (a crash between commit and publish, Redis down for a while).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::state::AppState;

/// The stream's name under the deployment's Redis prefix.
pub fn stream_key(state: &AppState) -> String {
    state.redis_key("commands")
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: i64,
    organization_id: Uuid,
    instance_id: Uuid,
    command: String,
    request_id: Option<String>,
}

/// Publishes what is pending; returns how many went out.
pub async fn relay_once(state: &AppState) -> anyhow::Result<usize> {
    let pending: Vec<Pending> = sqlx::query_as(
        "SELECT id, organization_id, instance_id, command, request_id FROM command_outbox
          WHERE published_at IS NULL ORDER BY id LIMIT 100",
    )
    .fetch_all(&state.db)
    .await?;
    let key = stream_key(state);
    let mut redis = state.redis.clone();
    for p in &pending {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("outbox_id")
            .arg(p.id)
            .arg("organization_id")
            .arg(p.organization_id.to_string())
            .arg("instance_id")
            .arg(p.instance_id.to_string())
            .arg("command")
            .arg(&p.command)
            .arg("request_id")
            .arg(p.request_id.as_deref().unwrap_or(""))
            .query_async(&mut redis)
            .await?;
        sqlx::query("UPDATE command_outbox SET published_at = now() WHERE id = $1")
            .bind(p.id)
            .execute(&state.db)
            .await?;
    }
    Ok(pending.len())
}

/// Runs the relay until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    loop {
        match relay_once(&state).await {
            Ok(n) if n > 0 => tracing::debug!(commands = n, "relayed to the orchestrator"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox relay failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = state.outbox.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
