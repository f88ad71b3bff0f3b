//! `GET /metrics`: Prometheus text for operators — instances by status
//! and the age of the oldest in each status, commands waiting for the orchestrator, SSE clients and the usage
//! journal's backlog of this replica, usage drift per instance, and what
//! the replica counts (`crate::metrics`: HTTP, `/v1`, SSE, keys, budget
//! levels, the organizations' costs of the month) —
//! served on its own listener (`INVENTIV_METRICS_ADDR`, loopback by
//! default), never on the public API port. Protected by
//! `INVENTIV_METRICS_TOKEN` (bearer) when it is set.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use inventiv_common::metrics::{self, Kind, Text};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The metrics listener's application: `/metrics` only.
#[expect(
    clippy::disallowed_methods,
    reason = "an operators' listener, not part of the documented API"
)]
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::RouteNotFound })
        .with_state(state)
}

/// Prometheus metrics of the control plane.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
            return Err(ApiError::Unauthenticated);
        }
    }
    let by_status = sqlx::query!(
        r#"SELECT status, count(*) AS "count!",
                  EXTRACT(EPOCH FROM now() - min(status_changed_at))::float8 AS "oldest!"
             FROM instances GROUP BY status ORDER BY status"#
    )
    .fetch_all(&state.db)
    .await?;
    let pending = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM command_outbox WHERE published_at IS NULL"#
    )
    .fetch_one(&state.db)
    .await?;
    let drift = sqlx::query!(
        "SELECT r.instance_id, r.drift_ratio, r.status FROM instance_usage_reconciliations r
           JOIN instances i ON i.id = r.instance_id
          WHERE i.status NOT IN ('terminated', 'archived') ORDER BY r.instance_id",
    )
    .fetch_all(&state.db)
    .await?;
    let drift_alerts = sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(alerts), 0)::bigint AS "alerts!" FROM instance_usage_reconciliations"#
    )
    .fetch_one(&state.db)
    .await?;
    let mut t = Text::new();
    t.family(
        "inventiv_instances",
        Kind::Gauge,
        "Instances by lifecycle status.",
    );
    for row in &by_status {
        t.sample("inventiv_instances", &[("status", &row.status)], row.count);
    }
    let oldest = "inventiv_instances_oldest_in_status_seconds";
    t.family(
        oldest,
        Kind::Gauge,
        "Seconds since the instance longest in a status entered it, by status (an instance stuck in provisioning, installing, ...).",
    );
    for row in &by_status {
        t.sample(oldest, &[("status", &row.status)], row.oldest.max(0.0));
    }
    t.single(
        "inventiv_commands_pending",
        Kind::Gauge,
        "Commands written but not yet relayed to the orchestrator.",
        pending,
    );
    t.single(
        "inventiv_sse_clients",
        Kind::Gauge,
        "Live-event clients connected to this replica.",
        state.events.clients(),
    );
    t.single(
        "inventiv_password_hashes_total",
        Kind::Counter,
        "Password hashes computed or verified by this replica.",
        state.hasher.work_done(),
    );
    t.single(
        "inventiv_api_key_cache_entries",
        Kind::Gauge,
        "API keys (known and unknown) cached by this replica.",
        state.keys.entries(),
    );
    t.single(
        "inventiv_admission_in_flight",
        Kind::Gauge,
        "Requests holding an admission slot of a deployment on this replica.",
        state.admission.in_flight(),
    );
    t.single(
        "inventiv_admission_waiting",
        Kind::Gauge,
        "Requests waiting for an admission slot of a saturated deployment on this replica.",
        state.admission.waiting(),
    );
    t.family(
        "inventiv_usage_drift_ratio",
        Kind::Gauge,
        "Drift between the proxy's metered tokens and the engines' counters over the last window (|engine - proxy| / engine), per live instance.",
    );
    let ids: Vec<String> = drift.iter().map(|r| r.instance_id.to_string()).collect();
    for (row, id) in drift.iter().zip(&ids) {
        t.sample(
            "inventiv_usage_drift_ratio",
            &[("instance_id", id)],
            row.drift_ratio,
        );
    }
    t.family(
        "inventiv_usage_drift_alert",
        Kind::Gauge,
        "1 while an instance's usage drift is above the threshold.",
    );
    for (row, id) in drift.iter().zip(&ids) {
        let alerting = u8::from(row.status == "alert");
        t.sample(
            "inventiv_usage_drift_alert",
            &[("instance_id", id)],
            alerting,
        );
    }
    t.single(
        "inventiv_usage_drift_alerts_total",
        Kind::Counter,
        "Usage drift alerts raised (moves into alert).",
        drift_alerts,
    );
    if let Some(fill) = state.usage.fill() {
        t.single(
            "inventiv_usage_journal_pending_bytes",
            Kind::Gauge,
            "Usage journal bytes of this replica not committed to the database yet (the usage writer's backlog).",
            fill.pending_bytes,
        );
        t.single(
            "inventiv_usage_journal_limit_bytes",
            Kind::Gauge,
            "Pending bytes past which /v1 answers 503 metering_unavailable.",
            fill.max_bytes,
        );
        t.single(
            "inventiv_usage_journal_syncs_total",
            Kind::Counter,
            "Usage journal syncs (one write and one fdatasync per group of records).",
            fill.syncs,
        );
        t.single(
            "inventiv_usage_journal_records_total",
            Kind::Counter,
            "Usage records made durable by the journal's syncs.",
            fill.synced_records,
        );
    }
    state.metrics.render(&mut t);
    crate::metrics::render_v1(&mut t, &state.metrics, &state.routing.series());
    t.family(
        "inventiv_v1_outstanding_requests",
        Kind::Gauge,
        "/v1 requests in flight per routed worker.",
    );
    for (series, instance, n) in state.routing.outstanding() {
        let (org, instance) = (series.organization_id.to_string(), instance.to_string());
        let labels = [
            ("organization_id", org.as_str()),
            ("model", &*series.model),
            ("instance_id", instance.as_str()),
        ];
        t.sample("inventiv_v1_outstanding_requests", &labels, n);
    }
    Ok(([(CONTENT_TYPE, metrics::CONTENT_TYPE)], t.finish()).into_response())
}
