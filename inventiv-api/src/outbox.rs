//! The outbox relay: publishes queued commands to the Redis stream the
//! orchestrator reads, then marks them published. Woken right after a
//! command is written, and sweeps every second for anything left behind
//! (a crash between commit and publish, Redis down for a while). Entries
//! are `inventiv_common::messages::Command`s. With traces on, each publish
//! is a span of the trace that wrote the command, and the entry carries
//! its `traceparent` to the orchestrator.

use std::time::Duration;

use inventiv_common::messages::{self, Command, CommandKind, STREAM_MAX_LEN};
use inventiv_common::telemetry;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
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
    traceparent: Option<String>,
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
            traceparent: self.traceparent,
        })
    }
}

/// Publishes what is pending; returns how many went out.
pub async fn relay_once(state: &AppState) -> anyhow::Result<usize> {
    let pending = sqlx::query_as!(
        Pending,
        "SELECT id, organization_id, instance_id, command, request_id, traceparent FROM command_outbox
          WHERE published_at IS NULL ORDER BY id LIMIT 100",
    )
    .fetch_all(&state.db)
    .await?;
    let count = pending.len();
    let key = stream_key(state);
    let mut redis = state.redis.clone();
    for p in pending {
        let mut command = p.message()?;
        let span = tracing::info_span!(
            "outbox_publish",
            command = command.command.as_str(),
            instance_id = %command.instance_id,
            request_id = %command.request_id.as_deref().unwrap_or_default(),
        );
        telemetry::set_parent(&span, command.traceparent.as_deref());
        // This span when this process traces, else the writer's, so that
        // the trace goes on either way.
        if let Some(t) = telemetry::traceparent(&span) {
            command.traceparent = Some(t);
        }
        publish(state, &key, &mut redis, &command)
            .instrument(span)
            .await?;
    }
    Ok(count)
}

/// Adds `command` to the stream, then marks its outbox row published.
async fn publish(
    state: &AppState,
    key: &str,
    redis: &mut redis::aio::ConnectionManager,
    command: &Command,
) -> anyhow::Result<()> {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(key)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAX_LEN)
        .arg("*");
    for (field, value) in command.to_fields() {
        xadd.arg(field).arg(value);
    }
    let _: String = xadd.query_async(redis).await?;
    sqlx::query!(
        "UPDATE command_outbox SET published_at = now() WHERE id = $1",
        command.outbox_id,
    )
    .execute(&state.db)
    .await?;
    Ok(())
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
