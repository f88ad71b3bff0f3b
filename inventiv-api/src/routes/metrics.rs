//! `GET /metrics`: Prometheus text for operators — instances by status,
//! commands waiting for the orchestrator, SSE clients and the usage
//! journal's backlog of this replica, usage drift per instance —
//! served on its own listener (`INVENTIV_METRICS_ADDR`, loopback by
//! default), never on the public API port. Protected by
//! `INVENTIV_METRICS_TOKEN` (bearer) when it is set.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
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
        r#"SELECT status, count(*) AS "count!" FROM instances GROUP BY status ORDER BY status"#
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
    let mut out = String::with_capacity(1024);
    let _ = writeln!(
        out,
        "# HELP inventiv_instances Instances by lifecycle status.\n# TYPE inventiv_instances gauge"
    );
    for row in by_status {
        let (status, n) = (row.status, row.count);
        let _ = writeln!(out, "inventiv_instances{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP inventiv_commands_pending Commands written but not yet relayed to the orchestrator.");
    let _ = writeln!(
        out,
        "# TYPE inventiv_commands_pending gauge\ninventiv_commands_pending {pending}"
    );
    let _ = writeln!(
        out,
        "# HELP inventiv_sse_clients Live-event clients connected to this replica."
    );
    let _ = writeln!(
        out,
        "# TYPE inventiv_sse_clients gauge\ninventiv_sse_clients {}",
        state.events.clients()
    );
    let _ = writeln!(
        out,
        "# HELP inventiv_password_hashes_total Password hashes computed or verified by this replica.\n# TYPE inventiv_password_hashes_total counter\ninventiv_password_hashes_total {}",
        state.hasher.work_done()
    );
    let _ = writeln!(
        out,
        "# HELP inventiv_api_key_cache_entries API keys (known and unknown) cached by this replica.\n# TYPE inventiv_api_key_cache_entries gauge\ninventiv_api_key_cache_entries {}",
        state.keys.entries()
    );
    let _ = writeln!(
        out,
        "# HELP inventiv_usage_drift_ratio Drift between the proxy's metered tokens and the engines' counters over the last window (|engine - proxy| / engine), per live instance.\n# TYPE inventiv_usage_drift_ratio gauge"
    );
    for row in &drift {
        let (instance, ratio) = (row.instance_id, row.drift_ratio);
        let _ = writeln!(
            out,
            "inventiv_usage_drift_ratio{{instance_id=\"{instance}\"}} {ratio}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP inventiv_usage_drift_alert 1 while an instance's usage drift is above the threshold.\n# TYPE inventiv_usage_drift_alert gauge"
    );
    for row in &drift {
        let (instance, alerting) = (row.instance_id, u8::from(row.status == "alert"));
        let _ = writeln!(
            out,
            "inventiv_usage_drift_alert{{instance_id=\"{instance}\"}} {alerting}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP inventiv_usage_drift_alerts_total Usage drift alerts raised (moves into alert).\n# TYPE inventiv_usage_drift_alerts_total counter\ninventiv_usage_drift_alerts_total {drift_alerts}"
    );
    if let Some(fill) = state.usage.fill() {
        let _ = writeln!(
            out,
            "# HELP inventiv_usage_journal_pending_bytes Usage journal bytes of this replica not committed to the database yet.\n# TYPE inventiv_usage_journal_pending_bytes gauge\ninventiv_usage_journal_pending_bytes {}",
            fill.pending_bytes
        );
        let _ = writeln!(
            out,
            "# HELP inventiv_usage_journal_limit_bytes Pending bytes past which /v1 answers 503 metering_unavailable.\n# TYPE inventiv_usage_journal_limit_bytes gauge\ninventiv_usage_journal_limit_bytes {}",
            fill.max_bytes
        );
        let _ = writeln!(
            out,
            "# HELP inventiv_usage_journal_syncs_total Usage journal syncs (one write and one fdatasync per group of records).\n# TYPE inventiv_usage_journal_syncs_total counter\ninventiv_usage_journal_syncs_total {}",
            fill.syncs
        );
        let _ = writeln!(
            out,
            "# HELP inventiv_usage_journal_records_total Usage records made durable by the journal's syncs.\n# TYPE inventiv_usage_journal_records_total counter\ninventiv_usage_journal_records_total {}",
            fill.synced_records
        );
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response())
}
