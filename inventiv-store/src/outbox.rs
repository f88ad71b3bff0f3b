//! The command outbox: a command is written in the same transaction as the
//! change that asks for it, then relayed to the Redis stream. The database
//! stays the truth; the stream only wakes the orchestrator. What a command
//! is on the stream is `inventiv_common::messages::Command`. When traces
//! are exported, the command and its instance keep the trace of the span
//! that asked (see `inventiv_common::telemetry`).

use inventiv_common::messages::CommandKind;
use inventiv_common::telemetry;
use sqlx::PgConnection;
use uuid::Uuid;

/// Queues a command in the caller's transaction, with the current span's
/// trace, which the instance's course then follows.
pub async fn enqueue(
    tx: &mut PgConnection,
    organization_id: Uuid,
    instance_id: Uuid,
    command: CommandKind,
    request_id: Option<&str>,
) -> sqlx::Result<i64> {
    let traceparent = telemetry::traceparent(&tracing::Span::current());
    if let Some(t) = &traceparent {
        sqlx::query!(
            "UPDATE instances SET trace_context = $2 WHERE id = $1",
            instance_id,
            t,
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query_scalar!(
        "INSERT INTO command_outbox (organization_id, instance_id, command, request_id, traceparent)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        organization_id,
        instance_id,
        command.as_str(),
        request_id,
        traceparent,
    )
    .fetch_one(tx)
    .await
}
