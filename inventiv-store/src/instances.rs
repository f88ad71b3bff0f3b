//! Instance transitions: a conditional update from the status read under a
//! row lock, validated by the state machine, recorded in
//! `instance_state_history`. A repeated transition is a no-op; an illegal
//! one is an error and changes nothing.

use inventiv_common::instance::{transition, IllegalTransition, Transition};
use inventiv_common::{InstanceId, InstanceStatus};
use sqlx::PgConnection;

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("instance not found")]
    NotFound,
    #[error("stored status {0:?} is unknown")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A requested change of status.
pub struct Change<'a> {
    pub instance_id: InstanceId,
    pub to: InstanceStatus,
    /// For failure states: a stable code and a message.
    pub error: Option<(&'a str, &'a str)>,
    /// What caused it (e.g. `user`, `orchestrator:watchdog`).
    pub actor: &'a str,
    pub request_id: Option<&'a str>,
}

/// Applies a change inside the caller's transaction; returns the previous
/// status and whether anything changed.
pub async fn apply(
    tx: &mut PgConnection,
    change: Change<'_>,
) -> Result<(InstanceStatus, Transition), TransitionError> {
    let row = sqlx::query!(
        "SELECT organization_id, status FROM instances WHERE id = $1 FOR UPDATE",
        change.instance_id as InstanceId,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(TransitionError::NotFound)?;
    let org = row.organization_id;
    let from = InstanceStatus::parse(&row.status).ok_or(TransitionError::Corrupt(row.status))?;
    let outcome = transition(from, change.to)?;
    if outcome == Transition::Unchanged {
        return Ok((from, outcome));
    }
    let (code, message) = change.error.unzip();
    sqlx::query!(
        "UPDATE instances SET status = $2, updated_at = now(), status_changed_at = now(),
                error_code = CASE WHEN $5 THEN $3 ELSE NULL END,
                error_message = CASE WHEN $5 THEN $4 ELSE NULL END
          WHERE id = $1 AND status = $6",
        change.instance_id as InstanceId,
        change.to.as_str(),
        code,
        message,
        change.to.is_failure(),
        from.as_str(),
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO instance_state_history (instance_id, organization_id, from_status, to_status, error_code, error_message, actor, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        change.instance_id as InstanceId,
        org,
        from.as_str(),
        change.to.as_str(),
        code,
        message,
        change.actor,
        change.request_id,
    )
    .execute(&mut *tx)
    .await?;
    tracing::info!(instance_id = %change.instance_id, from = %from, to = %change.to, actor = change.actor, "instance transition");
    Ok((from, outcome))
}
