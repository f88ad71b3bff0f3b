//! The outbox relay: publishes queued commands to the Redis stream the
//! orchestrator reads, then marks them published. Woken right after a
//! command is written, and sweeps every second for anything left behind
//! (a crash between commit and publish, Redis down for a while). Entries
//! are `inventiv_common::messages::Command`s.

use std::time::Duration;

use inventiv_common::messages::{self, Command, CommandKind, STREAM_MAX_LEN};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::state::AppState;

/// The stream's name under the deployment's Redis prefix.
pub fn stream_key(state: &AppState) -> String {
    messages::command_stream(&state.config.redis_prefix)
}

struct Pending {
    id: i64,
    organization_id: Uuid,
    instance_id: Uuid,
    command: String,
    request_id: Option<String>,
}

impl Pending {
    fn message(self) -> anyhow::Result<Command> {
        let command = CommandKind::parse(&self.command).ok_or_else(|| {
            anyhow::anyhow!("outbox row {} holds command {:?}", self.id, self.command)
        })?;
        Ok(Command {
            outbox_id: self.id,
            organization_id: self.organization_id,
            instance_id: self.instance_id,
            command,
            request_id: self.request_id,
        })
    }
}

/// Publishes what is pending; returns how many went out.
pub async fn relay_once(state: &AppState) -> anyhow::Result<usize> {
    let pending = sqlx::query_as!(
        Pending,
        "SELECT id, organization_id, instance_id, command, request_id FROM command_outbox
          WHERE published_at IS NULL ORDER BY id LIMIT 100",
    )
    .fetch_all(&state.db)
    .await?;
    let count = pending.len();
    let key = stream_key(state);
    let mut redis = state.redis.clone();
    for p in pending {
        let command = p.message()?;
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*");
        for (field, value) in command.to_fields() {
            xadd.arg(field).arg(value);
        }
        let _: String = xadd.query_async(&mut redis).await?;
        sqlx::query!(
            "UPDATE command_outbox SET published_at = now() WHERE id = $1",
            command.outbox_id,
        )
        .execute(&state.db)
        .await?;
    }
    Ok(count)
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
