//! The orchestrator's own HTTP endpoints: liveness and readiness.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::context::Orchestrator;
use sqlx::PgPool;

#[derive(Clone)]
struct Probes {
    db: PgPool,
    redis: redis::aio::ConnectionManager,
    orchestrator: Arc<OnceLock<Arc<Orchestrator>>>,
}

/// `/healthz`, `/readyz` (Postgres and Redis reachable) and, once the
/// orchestrator is running, `/metrics`.
#[expect(
    clippy::disallowed_methods,
    reason = "the orchestrator's probes are not API routes"
)]
pub fn router(
    db: PgPool,
    redis: redis::aio::ConnectionManager,
    orchestrator: Arc<OnceLock<Arc<Orchestrator>>>,
) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Probes {
            db,
            redis,
            orchestrator,
        })
}

async fn metrics(State(p): State<Probes>) -> Response {
    let by_status: Vec<(String, i64)> = sqlx::query!(
        r#"SELECT status, count(*) AS "count!" FROM instances GROUP BY status ORDER BY status"#
    )
    .fetch_all(&p.db)
    .await
    .map(|rows| rows.into_iter().map(|r| (r.status, r.count)).collect())
    .unwrap_or_default();
    let outbox = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM command_outbox WHERE published_at IS NULL"#
    )
    .fetch_one(&p.db)
    .await
    .unwrap_or(0);
    let stream = match p.orchestrator.get() {
        Some(o) => {
            let mut conn = p.redis.clone();
            let pending: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
                .arg(crate::commands::stream(o))
                .arg("orchestrators")
                .query_async(&mut conn)
                .await;
            match pending {
                Ok(redis::Value::Array(v)) => v
                    .first()
                    .and_then(|n| redis::from_redis_value::<i64>(n).ok()),
                _ => None,
            }
        }
        None => None,
    };
    let text = match p.orchestrator.get() {
        Some(o) => o.metrics.render(&by_status, outbox, stream),
        None => crate::metrics::Metrics::default().render(&by_status, outbox, stream),
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
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
