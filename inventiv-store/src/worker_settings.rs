//! Worker settings per organization and provider, stored as the JSON of
//! [`WorkerSettings`]; no row means the defaults (the API's, and the
//! orchestrator's configured timeout and attempts).

use inventiv_common::worker_settings::WorkerSettings;
use sqlx::PgExecutor;
use uuid::Uuid;

/// The organization's settings on `provider`, `None` when it set none.
pub async fn load(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    provider: &str,
) -> sqlx::Result<Option<WorkerSettings>> {
    let stored = sqlx::query_scalar!(
        r#"SELECT settings AS "settings: sqlx::types::Json<WorkerSettings>" FROM worker_settings
            WHERE organization_id = $1 AND provider_code = $2"#,
        organization_id,
        provider,
    )
    .fetch_optional(db)
    .await?;
    Ok(stored.map(|j| j.0))
}

/// Stores (or replaces) validated settings.
pub async fn save(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    provider: &str,
    settings: &WorkerSettings,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO worker_settings (organization_id, provider_code, settings) VALUES ($1, $2, $3)
         ON CONFLICT (organization_id, provider_code) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()",
        organization_id,
        provider,
        sqlx::types::Json(settings) as _,
    )
    .execute(db)
    .await?;
    Ok(())
}
