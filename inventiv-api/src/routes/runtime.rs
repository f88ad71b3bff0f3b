//! The runtime view per model (`GET /runtime/models`): what the current
//! organization runs for each model (instances, GPUs, VRAM) and how it is
//! used (requests, tokens, failures) over a recent window.

use axum::extract::State;
use chrono::{Duration, Utc};
use inventiv_common::{Action, InstanceStatus, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(runtime_models))
}

/// The traffic window.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RuntimeQuery {
    /// Hours of traffic to count, 1 to 720, default 24.
    hours: Option<u16>,
}

/// One model's footprint and traffic in the current organization.
#[derive(Serialize, ToSchema)]
pub struct RuntimeModel {
    /// The model id (instances' `model_id`, requests' `model`).
    pub model: String,
    /// Instances alive (neither final nor failed).
    pub instances: i64,
    /// Of those, the ones serving (`ready`).
    pub ready: i64,
    /// Instances in a failure state, not yet archived.
    pub failed_instances: i64,
    /// GPUs of the alive instances.
    pub gpus: i64,
    /// VRAM of the alive instances, in GB.
    pub vram_gb: i64,
    /// Requests through `/v1` in the window.
    pub requests: i64,
    /// Of those, the ones that failed (HTTP status 400 and above).
    pub failed_requests: i64,
    /// Prompt + completion tokens in the window.
    pub tokens: i64,
}

/// Instances, GPUs, VRAM, requests and failures per model.
#[utoipa::path(get, path = "/runtime/models", tag = "usage", security(("bearer" = [])), params(RuntimeQuery),
    responses((status = 200, body = [RuntimeModel]), (status = 400, body = ErrorBody)))]
async fn runtime_models(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RuntimeQuery>,
) -> ApiResult<Json<Vec<RuntimeModel>>> {
    caller.require(Action::ViewInstances)?;
    let since = Utc::now() - Duration::hours(i64::from(q.hours.unwrap_or(24).clamp(1, 720)));
    let names = |keep: fn(InstanceStatus) -> bool| -> Vec<&'static str> {
        InstanceStatus::ALL
            .into_iter()
            .filter(|s| keep(*s))
            .map(InstanceStatus::as_str)
            .collect()
    };
    let alive = names(|s| !s.is_final() && !s.is_failure());
    let failed = names(InstanceStatus::is_failure);
    let rows = sqlx::query_as!(
        RuntimeModel,
        r#"WITH fleet AS (
            SELECT i.model_id AS model,
                   count(*) FILTER (WHERE i.status = ANY($3)) AS instances,
                   count(*) FILTER (WHERE i.status = 'ready') AS ready,
                   count(*) FILTER (WHERE i.status = ANY($4)) AS failed_instances,
                   COALESCE(sum(t.gpu_count) FILTER (WHERE i.status = ANY($3)), 0)::bigint AS gpus,
                   COALESCE(sum(t.gpu_count * t.vram_per_gpu_gb) FILTER (WHERE i.status = ANY($3)), 0)::bigint AS vram_gb
              FROM instances i
              LEFT JOIN instance_types t ON t.provider_code = i.provider AND t.code = i.instance_type
             WHERE i.organization_id = $1 AND i.status <> 'archived'
             GROUP BY 1),
         traffic AS (
            SELECT model, count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS failed_requests,
                   COALESCE(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens
              FROM usage_records WHERE organization_id = $1 AND at >= $2
             GROUP BY 1)
         SELECT COALESCE(f.model, r.model) AS "model!", COALESCE(f.instances, 0) AS "instances!",
                COALESCE(f.ready, 0) AS "ready!", COALESCE(f.failed_instances, 0) AS "failed_instances!",
                COALESCE(f.gpus, 0) AS "gpus!", COALESCE(f.vram_gb, 0) AS "vram_gb!",
                COALESCE(r.requests, 0) AS "requests!", COALESCE(r.failed_requests, 0) AS "failed_requests!",
                COALESCE(r.tokens, 0) AS "tokens!"
           FROM fleet f FULL OUTER JOIN traffic r ON r.model = f.model
          ORDER BY 1"#,
        caller.org_id as OrgId,
        since,
        &alive[..] as &[&str],
        &failed[..] as &[&str],
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}
