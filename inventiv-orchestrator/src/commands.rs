//! Commands from the API arrive on a Redis stream read through a consumer
//! group: each wakes the driver for its instance and is acknowledged once a
//! step ran; entries of a dead consumer are reclaimed (XAUTOCLAIM), and one
//! delivered too often is dead-lettered into the instance's action log.
//! The database stays the truth: a lost message only delays the reconcile.
//! Entries are `inventiv_common::messages::Command`s; the request id they
//! carry follows the command into the drive it wakes, and so does their
//! trace (the command's span is a child of the API's relay span).

use std::sync::Arc;
use std::time::Duration;

use inventiv_common::messages::{self, Command, MessageError, COMMAND_GROUP as GROUP};
use inventiv_common::telemetry;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::context::Orchestrator;
use crate::jobs::reconcile::{spawn_drive, Active};

/// The stream the API's outbox relay writes.
pub fn stream(o: &Orchestrator) -> String {
    messages::command_stream(&o.config.redis_prefix)
}

/// Decodes a stream entry (fields that are not strings count as missing).
pub fn decode(entry: &StreamId) -> Result<Command, MessageError> {
    let fields = entry
        .map
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), redis::from_redis_value::<String>(v).ok()?)))
        .collect();
    Command::from_fields(&fields)
}

async fn ensure_group(o: &Orchestrator) -> redis::RedisResult<()> {
    let mut redis = o.redis.clone();
    let created: redis::RedisResult<()> = redis.xgroup_create_mkstream(stream(o), GROUP, "0").await;
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Handles one entry in a span that carries its command and request id.
async fn handle(
    o: &Arc<Orchestrator>,
    tasks: &TaskTracker,
    active: &Active,
    entry: StreamId,
    deliveries: u64,
) {
    let command = decode(&entry);
    let span = match &command {
        Ok(c) => tracing::info_span!(
            "command",
            entry_id = %entry.id,
            command = c.command.as_str(),
            instance_id = %c.instance_id,
            request_id = %c.request_id.as_deref().unwrap_or_default(),
        ),
        Err(_) => tracing::info_span!("command", entry_id = %entry.id),
    };
    if let Ok(c) = &command {
        telemetry::set_parent(&span, c.traceparent.as_deref());
    }
    handle_command(o, tasks, active, entry.id, command, deliveries)
        .instrument(span)
        .await;
}

async fn handle_command(
    o: &Arc<Orchestrator>,
    tasks: &TaskTracker,
    active: &Active,
    entry_id: String,
    command: Result<Command, MessageError>,
    deliveries: u64,
) {
    let key = stream(o);
    let mut redis = o.redis.clone();
    let command = match command {
        Ok(c) => c,
        Err(e) => {
            // Retrying cannot mend it; the reconcile loop covers the instance.
            tracing::warn!(error = %e, "malformed command dropped");
            let _: redis::RedisResult<i64> = redis.xack(&key, GROUP, &[&entry_id]).await;
            return;
        }
    };
    if deliveries > o.config.max_deliveries {
        dead_letter(o, &command, &entry_id, deliveries).await;
        let _: redis::RedisResult<i64> = redis.xack(&key, GROUP, &[&entry_id]).await;
        return;
    }
    tracing::info!("command received");
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_drive(
        o,
        tasks,
        active,
        command.instance_id,
        command.request_id,
        telemetry::traceparent(&tracing::Span::current()),
        Some(tx),
    );
    let o = o.clone();
    tasks.spawn(async move {
        if rx.await.unwrap_or(false) {
            let mut redis = o.redis.clone();
            let _: redis::RedisResult<i64> = redis.xack(stream(&o), GROUP, &[&entry_id]).await;
        }
    });
}

async fn dead_letter(o: &Orchestrator, command: &Command, entry_id: &str, deliveries: u64) {
    let instance = command.instance_id;
    tracing::warn!(alert = true, deliveries, "command dead-lettered");
    o.metrics.dead_letters.inc();
    let org = sqlx::query_scalar!(
        "SELECT organization_id FROM instances WHERE id = $1",
        instance,
    )
    .fetch_optional(&o.db)
    .await
    .ok()
    .flatten();
    if let Some(org) = org {
        let log = inventiv_store::action_log::ActionLog {
            db: o.db.clone(),
            organization_id: org,
            instance_id: instance,
            request_id: command.request_id.clone(),
        };
        if let Ok(step) = log.start("COMMAND_DEAD_LETTER").await {
            let meta = serde_json::json!({ "entry_id": entry_id, "deliveries": deliveries, "command": command });
            let _ = log
                .fail(
                    step,
                    "COMMAND_DEAD_LETTER",
                    "the command failed too many times; the reconcile loop keeps trying",
                    meta,
                )
                .await;
        }
    }
}

/// Reads commands until shutdown.
pub async fn run(
    o: Arc<Orchestrator>,
    active: Active,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut last_claim = tokio::time::Instant::now();
    // The blocking read gets a connection of its own: on the shared one it
    // would hold every other command (event publishes, acks) for up to its
    // block time, i.e. up to a second per recorded step.
    let mut reader: Option<redis::aio::ConnectionManager> = None;
    while !shutdown.is_cancelled() {
        if let Err(e) = ensure_group(&o).await {
            tracing::warn!(error = %e, "redis stream unavailable; retrying");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        }
        if last_claim.elapsed() > Duration::from_secs(10) {
            last_claim = tokio::time::Instant::now();
            reclaim(&o, &tasks, &active).await;
        }
        let opts = StreamReadOptions::default()
            .group(GROUP, &o.config.consumer)
            .count(50)
            .block(1000);
        let mut redis = match reader.clone() {
            Some(r) => r,
            None => match reader_connection(&o).await {
                Ok(r) => reader.insert(r).clone(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the command stream reader; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let keys = [stream(&o)];
        let ids = [">"];
        let read: redis::RedisResult<StreamReadReply> = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = redis.xread_options(&keys, &ids, &opts) => r,
        };
        match read {
            Ok(reply) => {
                for key in reply.keys {
                    for entry in key.ids {
                        handle(&o, &tasks, &active, entry, 1).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading commands failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn reader_connection(o: &Orchestrator) -> redis::RedisResult<redis::aio::ConnectionManager> {
    redis::aio::ConnectionManager::new(redis::Client::open(o.config.redis_url.as_str())?).await
}

/// Takes over entries another consumer read but never acknowledged.
async fn reclaim(o: &Arc<Orchestrator>, tasks: &TaskTracker, active: &Active) {
    let mut redis = o.redis.clone();
    let claimed: redis::RedisResult<redis::streams::StreamAutoClaimReply> =
        redis::cmd("XAUTOCLAIM")
            .arg(stream(o))
            .arg(GROUP)
            .arg(&o.config.consumer)
            .arg(30_000)
            .arg("0")
            .arg("COUNT")
            .arg(100)
            .query_async(&mut redis)
            .await;
    let Ok(claimed) = claimed else { return };
    for entry in claimed.claimed {
        let pending: redis::RedisResult<redis::streams::StreamPendingCountReply> = redis
            .xpending_count(stream(o), GROUP, &entry.id, &entry.id, 1)
            .await;
        let deliveries = pending
            .ok()
            .and_then(|p| p.ids.first().map(|i| i.times_delivered as u64))
            .unwrap_or(1);
        handle(o, tasks, active, entry, deliveries).await;
    }
}
