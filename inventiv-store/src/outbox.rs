//! The command outbox: a command is written in the same transaction as the
//! change that asks for it, then relayed to the Redis stream. The database
//! stays the truth; the stream only wakes the orchestrator. What a command
//! is on the stream is `inventiv_common::messages::Command`.

use inventiv_common::messages::CommandKind;
use sqlx::PgConnection;
use uuid::Uuid;

/// Queues a command in the caller's transaction.
pub async fn enqueue(
    tx: &mut PgConnection,
    organization_id: Uuid,
    instance_id: Uuid,
    command: CommandKind,
    request_id: Option<&str>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO command_outbox (organization_id, instance_id, command, request_id) VALUES ($1, $2, $3, $4) RETURNING id",
        organization_id,
        instance_id,
        command.as_str(),
        request_id,
    )
    .fetch_one(tx)
    .await
}
