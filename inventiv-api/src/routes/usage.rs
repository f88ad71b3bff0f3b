//! Reading the meter: `GET /usage` (the current organization's token usage
//! by model, key or day, as JSON or CSV) and `GET /instances/{id}/metrics`
//! (an instance's GPU and system samples and its request counts per minute,
//! including calls other organizations made through a share).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::finops::{csv, Format};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(instance_metrics))
}

/// Which usage to sum, and how.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Start (RFC 3339), default 30 days ago.
    from: Option<DateTime<Utc>>,
    /// End (RFC 3339), default now.
    to: Option<DateTime<Utc>>,
    /// `model` by default.
    #[serde(default)]
    #[param(inline)]
    group_by: UsageGroup,
    /// `json` by default.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// What usage totals are grouped by.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    #[default]
    Model,
    ApiKey,
    Day,
}

/// One group's totals.
#[derive(Serialize, ToSchema)]
pub struct UsageLine {
    /// The model, the key id, or the day (YYYY-MM-DD), per `group_by`.
    pub group: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Of the prompt tokens, those the engine served from its prefix cache
    /// (priced at the offering's cached rate through a share).
    pub cached_prompt_tokens: i64,
    /// Of the completion tokens, the reasoning ones (when the engine reports them).
    pub reasoning_tokens: i64,
    pub errors: i64,
}

/// The current organization's usage of `/v1`.
#[utoipa::path(get, path = "/usage", tag = "usage", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, body = [UsageLine], description = "JSON, or CSV with format=csv"), (status = 400, body = ErrorBody)))]
async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Response> {
    caller.require(Action::ViewInstances)?;
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(30));
    if from > to {
        return Err(ApiError::validation(
            "INVALID_QUERY",
            "from must be before to",
        ));
    }
    // The grouping is a CASE on a bound key: the scan (the organization's
    // time index) is the same for every grouping.
    let group = match q.group_by {
        UsageGroup::Model => "model",
        UsageGroup::ApiKey => "api_key",
        UsageGroup::Day => "day",
    };
    let lines = sqlx::query_as!(
        UsageLine,
        r#"SELECT CASE $4::text WHEN 'api_key' THEN COALESCE(api_key_id::text, 'session')
                                WHEN 'day' THEN to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                                ELSE model END AS "group!",
                  count(*) AS "requests!", COALESCE(sum(prompt_tokens), 0)::bigint AS "prompt_tokens!",
                  COALESCE(sum(completion_tokens), 0)::bigint AS "completion_tokens!",
                  COALESCE(sum(cached_prompt_tokens), 0)::bigint AS "cached_prompt_tokens!",
                  COALESCE(sum(reasoning_tokens), 0)::bigint AS "reasoning_tokens!",
                  count(*) FILTER (WHERE status >= 400) AS "errors!"
             FROM usage_records WHERE organization_id = $1 AND at >= $2 AND at < $3 GROUP BY 1 ORDER BY 1"#,
        caller.org_id as OrgId,
        from,
        to,
        group,
    )
    .fetch_all(&state.db)
    .await?;
    if q.format == Format::Json {
        return Ok(Json(lines).into_response());
    }
    let header = [
        "group",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cached_prompt_tokens",
        "reasoning_tokens",
        "errors",
    ];
    let rows = lines
        .into_iter()
        .map(|l| {
            vec![
                l.group,
                l.requests.to_string(),
                l.prompt_tokens.to_string(),
                l.completion_tokens.to_string(),
                l.cached_prompt_tokens.to_string(),
                l.reasoning_tokens.to_string(),
                l.errors.to_string(),
            ]
        })
        .collect();
    Ok(csv("usage.csv", &header, rows))
}

/// How far back to look.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    /// 1 to 1440, default 60.
    minutes: Option<u16>,
}

/// A GPU sample.
#[derive(Serialize, ToSchema)]
pub struct GpuPoint {
    pub at: DateTime<Utc>,
    pub gpu_index: i16,
    pub utilization_pct: f32,
    pub memory_used_mib: f32,
    pub memory_total_mib: f32,
    pub temperature_c: Option<f32>,
    pub power_w: Option<f32>,
}

/// A system sample.
#[derive(Serialize, ToSchema)]
pub struct SystemPoint {
    pub at: DateTime<Utc>,
    pub cpu_pct: f32,
    pub load1: f32,
    pub memory_used_mib: f32,
    pub memory_total_mib: f32,
}

/// Requests served in one minute.
#[derive(Serialize, ToSchema)]
pub struct RequestPoint {
    pub minute: DateTime<Utc>,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub errors: i64,
}

/// An instance's recent samples and traffic.
#[derive(Serialize, ToSchema)]
pub struct InstanceMetrics {
    pub instance_id: Uuid,
    pub gpu: Vec<GpuPoint>,
    pub system: Vec<SystemPoint>,
    pub requests: Vec<RequestPoint>,
}

/// An instance's GPU and system samples and its requests per minute.
#[utoipa::path(get, path = "/instances/{instance_id}/metrics", tag = "usage", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id"), MetricsQuery),
    responses((status = 200, body = InstanceMetrics), (status = 404, body = ErrorBody)))]
async fn instance_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Json<InstanceMetrics>> {
    caller.require(Action::ViewInstances)?;
    crate::routes::instances::load(&state.db, caller.org_id.0, id).await?;
    let since = Utc::now() - Duration::minutes(i64::from(q.minutes.unwrap_or(60).clamp(1, 1440)));
    let gpu = sqlx::query_as!(
        GpuPoint,
        "SELECT sampled_at AS at, gpu_index, utilization_pct, memory_used_mib, memory_total_mib, temperature_c, power_w
           FROM gpu_samples WHERE instance_id = $1 AND organization_id = $2 AND sampled_at >= $3 ORDER BY sampled_at, gpu_index",
        id,
        caller.org_id as OrgId,
        since,
    )
    .fetch_all(&state.db)
    .await?;
    let system = sqlx::query_as!(
        SystemPoint,
        "SELECT sampled_at AS at, cpu_pct, load1, memory_used_mib, memory_total_mib
           FROM system_samples WHERE instance_id = $1 AND organization_id = $2 AND sampled_at >= $3 ORDER BY sampled_at",
        id,
        caller.org_id as OrgId,
        since,
    )
    .fetch_all(&state.db)
    .await?;
    let requests = sqlx::query_as!(
        RequestPoint,
        r#"SELECT date_trunc('minute', at) AS "minute!", count(*) AS "requests!",
                COALESCE(sum(prompt_tokens), 0)::bigint AS "prompt_tokens!",
                COALESCE(sum(completion_tokens), 0)::bigint AS "completion_tokens!",
                count(*) FILTER (WHERE status >= 400) AS "errors!"
           FROM usage_records WHERE instance_id = $1 AND (organization_id = $2 OR provider_organization_id = $2) AND at >= $3
          GROUP BY 1 ORDER BY 1"#,
        id,
        caller.org_id as OrgId,
        since,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(InstanceMetrics {
        instance_id: id,
        gpu,
        system,
        requests,
    }))
}
