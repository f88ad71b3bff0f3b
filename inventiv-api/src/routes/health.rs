//! Liveness and readiness probes; both say the API's version.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Probe answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    status: &'static str,
    /// The API's version (its crate's), which the dashboard shows.
    version: &'static str,
    /// Per dependency: `ok` or what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Checks>,
}

/// Reachability of each dependency.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Checks {
    postgres: String,
    redis: String,
    /// `ok`, or `full` while usage not yet committed to the database
    /// fills the journal past its limit (`/v1` answers 503 then).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_journal: Option<String>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        checks: None,
    })
}

/// Postgres and Redis are reachable, and usage can be metered.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let limit = Duration::from_secs(2);
    let pg = tokio::time::timeout(
        limit,
        sqlx::query_scalar!("SELECT 1 AS one").fetch_one(&state.db),
    )
    .await;
    let postgres = match pg {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "timeout".to_owned(),
    };
    let mut conn = state.redis.clone();
    let ping =
        tokio::time::timeout(limit, redis::cmd("PING").query_async::<String>(&mut conn)).await;
    let redis = match ping {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "timeout".to_owned(),
    };
    let usage_journal = state.usage.fill().map(|f| {
        if f.pending_bytes > f.max_bytes {
            format!(
                "full: {} bytes of usage not committed yet (limit {})",
                f.pending_bytes, f.max_bytes
            )
        } else {
            "ok".to_owned()
        }
    });
    let ready =
        postgres == "ok" && redis == "ok" && usage_journal.as_deref().is_none_or(|j| j == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if ready { "ok" } else { "unavailable" },
        version: env!("CARGO_PKG_VERSION"),
        checks: Some(Checks {
            postgres,
            redis,
            usage_journal,
        }),
    };
    (status, Json(health))
}
