//! A node's agent describing itself: `GET /info` (with the worker token)
//! gives its version and bundle checksum; `record` writes them on the
//! instance, where a mismatch with the installed bundle becomes visible.
//! No step calls it yet (the API records the same from the agent's
//! registrations and heartbeats); the SSH install tests check the installed
//! agent with it.

use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

/// What the agent says about itself.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentInfo {
    pub version: String,
    pub bundle_sha256: String,
    #[serde(default)]
    pub build_date: Option<String>,
}

/// Asks the agent at `host:port` for its `/info`.
pub async fn fetch(
    http: &reqwest::Client,
    host: &str,
    port: u16,
    token: &str,
) -> reqwest::Result<AgentInfo> {
    http.get(format!("http://{host}:{port}/info"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// Records the version on the instance; returns whether it differs from
/// the bundle the orchestrator installed.
pub async fn record(db: &PgPool, instance: Uuid, info: &AgentInfo) -> sqlx::Result<bool> {
    // A generated column, never NULL (its expression is a conjunction of
    // IS NOT NULL tests and a comparison of non-null values).
    let mismatch = sqlx::query_scalar!(
        r#"UPDATE instances SET worker_agent_version = $2, worker_bundle_sha256 = $3, updated_at = now()
            WHERE id = $1 RETURNING agent_version_mismatch AS "agent_version_mismatch!""#,
        instance,
        info.version,
        info.bundle_sha256,
    )
    .fetch_one(db)
    .await?;
    if mismatch {
        tracing::warn!(instance_id = %instance, version = %info.version, "agent version mismatch");
    }
    Ok(mismatch)
}
