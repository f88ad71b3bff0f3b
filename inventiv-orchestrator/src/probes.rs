//! The orchestrator's probes port: liveness and readiness, and a JSON 404
//! for anything else (`/metrics` is on its own listener: `crate::scrape`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use sqlx::PgPool;

#[derive(Clone)]
struct Probes {
    db: PgPool,
    redis: redis::aio::ConnectionManager,
}

/// `/healthz` and `/readyz` (Postgres and Redis reachable).
#[expect(
    clippy::disallowed_methods,
    reason = "the orchestrator's probes are not API routes"
)]
pub fn router(db: PgPool, redis: redis::aio::ConnectionManager) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(Probes { db, redis })
}

/// The error shape of the platform for a route that is not here.
pub async fn not_found() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": {
            "code": "ROUTE_NOT_FOUND",
            "message": "no such route",
            "request_id": null,
        } })),
    )
}

async fn readyz(State(p): State<Probes>) -> (StatusCode, Json<serde_json::Value>) {
    let limit = Duration::from_secs(2);
    let pg = matches!(
        tokio::time::timeout(limit, sqlx::query!("SELECT 1 AS one").fetch_one(&p.db)).await,
        Ok(Ok(_))
    );
    let mut conn = p.redis.clone();
    let ping =
        tokio::time::timeout(limit, redis::cmd("PING").query_async::<String>(&mut conn)).await;
    let rd = matches!(ping, Ok(Ok(_)));
    let status = if pg && rd {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    (
        status,
        Json(
            serde_json::json!({ "status": word(pg && rd), "checks": { "postgres": word(pg), "redis": word(rd) } }),
        ),
    )
}
