//! `GET /metrics` of the orchestrator, on a listener of its own
//! (`INVENTIV_ORCHESTRATOR_METRICS_ADDR`, loopback by default), never on
//! the probes' port: the counters of [`crate::metrics`] with the gauges read
//! now (instances by status, the outbox, the command stream's pending
//! entries and lag). Protected by `INVENTIV_METRICS_TOKEN` (bearer) when
//! it is set, as the API's metrics listener is.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use inventiv_common::messages::COMMAND_GROUP;
use inventiv_common::metrics::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use crate::context::Orchestrator;
use crate::metrics::{Gauges, Metrics};

#[derive(Clone)]
struct Scrape {
    db: PgPool,
    redis: redis::aio::ConnectionManager,
    orchestrator: Arc<OnceLock<Arc<Orchestrator>>>,
    token: Option<Arc<SecretString>>,
}

/// The metrics listener's application: `/metrics` only (what the running
/// orchestrator counted, once it runs), behind `token` when there is one.
#[expect(
    clippy::disallowed_methods,
    reason = "an operators' listener, not an API route"
)]
pub fn router(
    db: PgPool,
    redis: redis::aio::ConnectionManager,
    orchestrator: Arc<OnceLock<Arc<Orchestrator>>>,
    token: Option<SecretString>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(crate::probes::not_found)
        .with_state(Scrape {
            db,
            redis,
            orchestrator,
            token: token.map(Arc::new),
        })
}

/// Whether the request carries the bearer token (always, without one).
fn authorized(expected: Option<&SecretString>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes()))
}

async fn metrics(State(s): State<Scrape>, headers: HeaderMap) -> Response {
    if !authorized(s.token.as_deref(), &headers) {
        let body = serde_json::json!({ "error": {
            "code": "UNAUTHENTICATED",
            "message": "a valid bearer token is required",
            "request_id": null,
        } });
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let by_status: Vec<(String, i64)> = sqlx::query!(
        r#"SELECT status, count(*) AS "count!" FROM instances GROUP BY status ORDER BY status"#
    )
    .fetch_all(&s.db)
    .await
    .map(|rows| rows.into_iter().map(|r| (r.status, r.count)).collect())
    .unwrap_or_default();
    let outbox_pending = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM command_outbox WHERE published_at IS NULL"#
    )
    .fetch_one(&s.db)
    .await
    .unwrap_or(0);
    let mut gauges = Gauges {
        by_status,
        outbox_pending,
        ..Gauges::default()
    };
    if let Some(o) = s.orchestrator.get() {
        let key = crate::commands::stream(o);
        let mut conn = s.redis.clone();
        let pending: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
            .arg(&key)
            .arg(COMMAND_GROUP)
            .query_async(&mut conn)
            .await;
        if let Ok(redis::Value::Array(v)) = pending {
            gauges.stream_pending = v
                .first()
                .and_then(|n| redis::from_redis_value::<i64>(n).ok());
        }
        let groups: redis::RedisResult<redis::streams::StreamInfoGroupsReply> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(&mut conn)
            .await;
        gauges.stream_lag = groups.ok().and_then(|g| {
            g.groups
                .iter()
                .find(|g| g.name == COMMAND_GROUP)
                .and_then(|g| g.lag)
                .and_then(|n| i64::try_from(n).ok())
        });
    }
    let text = match s.orchestrator.get() {
        Some(o) => o.metrics.render(&gauges),
        None => Metrics::default().render(&gauges),
    };
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
