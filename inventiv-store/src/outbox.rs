//! The command outbox: a command is written in the same transaction as the
//! change that asks for it, then relayed to the Redis stream. The database
//! stays the truth; the stream only wakes the orchestrator.

use sqlx::PgConnection;
use uuid::Uuid;

/// What the orchestrator is asked to do for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Provision,
    Reinstall,
    Terminate,
}

impl Command {
    /// The name carried on the stream.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Provision => "provision",
            Command::Reinstall => "reinstall",
            Command::Terminate => "terminate",
        }
    }
}

/// Queues a command in the caller's transaction.
pub async fn enqueue(
    tx: &mut PgConnection,
    organization_id: Uuid,
    instance_id: Uuid,
    command: Command,
    request_id: Option<&str>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO command_outbox (organization_id, instance_id, command, request_id) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(organization_id)
    .bind(instance_id)
    .bind(command.as_str())
    .bind(request_id)
    .fetch_one(tx)
    .await
}
