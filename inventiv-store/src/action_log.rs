//! Recording steps in `action_logs`: a row opens `in_progress` and closes
//! once with its outcome, duration and details.

use std::time::Instant;

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// An open step.
pub struct Step {
    id: i64,
    started: Instant,
}

/// Where steps are recorded, and for which instance.
#[derive(Clone)]
pub struct ActionLog {
    pub db: PgPool,
    pub organization_id: Uuid,
    pub instance_id: Uuid,
    pub request_id: Option<String>,
}

impl ActionLog {
    /// Opens a step of `action_type` (e.g. `WORKER_SSH_INSTALL`).
    pub async fn start(&self, action_type: &str) -> sqlx::Result<Step> {
        let id = sqlx::query_scalar!(
            "INSERT INTO action_logs (organization_id, instance_id, action_type, status, request_id)
             VALUES ($1, $2, $3, 'in_progress', $4) RETURNING id",
            self.organization_id,
            self.instance_id,
            action_type,
            self.request_id.as_deref(),
        )
        .fetch_one(&self.db)
        .await?;
        Ok(Step {
            id,
            started: Instant::now(),
        })
    }

    /// Closes a step as a success, with details.
    pub async fn succeed(&self, step: Step, metadata: Value) -> sqlx::Result<()> {
        self.finish(step, "success", None, metadata).await
    }

    /// Closes a step as a failure with a stable code and a message.
    pub async fn fail(
        &self,
        step: Step,
        code: &str,
        message: &str,
        metadata: Value,
    ) -> sqlx::Result<()> {
        self.finish(step, "failed", Some((code, message)), metadata)
            .await
    }

    async fn finish(
        &self,
        step: Step,
        status: &str,
        error: Option<(&str, &str)>,
        metadata: Value,
    ) -> sqlx::Result<()> {
        let ms = i32::try_from(step.started.elapsed().as_millis()).unwrap_or(i32::MAX);
        sqlx::query!(
            "UPDATE action_logs SET status = $2, finished_at = now(), duration_ms = $3, error_code = $4,
                    error_message = $5, metadata = $6
              WHERE id = $1 AND status = 'in_progress'",
            step.id,
            status,
            ms,
            error.map(|e| e.0),
            error.map(|e| e.1),
            metadata,
        )
        .execute(&self.db)
        .await?;
        Ok(())
    }
}
