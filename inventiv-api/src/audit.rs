//! The append-only audit log: who did what to which object, in which
//! organization, under which request id.

use inventiv_common::{OrgId, UserId};
use sqlx::PgExecutor;

use crate::auth::Caller;
use crate::request_id;

/// One audit entry to record.
pub struct Entry<'a> {
    pub org: OrgId,
    pub actor: Option<UserId>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: String,
    pub details: serde_json::Value,
}

impl<'a> Entry<'a> {
    /// What `caller` did, in its current organization, without details.
    pub fn by(
        caller: &Caller,
        action: &'a str,
        target_type: &'a str,
        target_id: impl Into<String>,
    ) -> Self {
        Self {
            org: caller.org_id,
            actor: Some(caller.user_id),
            action,
            target_type,
            target_id: target_id.into(),
            details: serde_json::json!({}),
        }
    }

    /// The entry with `details`.
    pub fn details(self, details: serde_json::Value) -> Self {
        Self { details, ..self }
    }
}

/// Appends an entry, in the caller's transaction when given one.
pub async fn record(db: impl PgExecutor<'_>, entry: Entry<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO audit_logs (organization_id, actor_user_id, action, target_type, target_id, details, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        entry.org as OrgId,
        entry.actor as Option<UserId>,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.details,
        request_id::current(),
    )
    .execute(db)
    .await?;
    Ok(())
}
