//! GPU-hour costs of the current organization: the burn rate of what runs
//! now (`GET /finops/cost/current`) and cost over time from the cost job's
//! minute buckets (`GET /finops/cost/series`), as JSON or CSV. Owners and
//! managers only. Amounts are decimal strings: sums of buckets rounded half
//! away from zero to 4 decimals.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::finops::{csv, range, Format};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cost_current))
        .routes(routes!(cost_series))
}

/// One running instance and what it costs.
#[derive(Serialize, ToSchema)]
pub struct RunningInstance {
    pub instance_id: Uuid,
    pub provider: String,
    pub instance_type: String,
    pub model_id: String,
    pub started_at: DateTime<Utc>,
    pub price_eur_per_hour: String,
}

/// The burn rate of what runs now, and what this month cost so far.
#[derive(Serialize, ToSchema)]
pub struct CurrentCost {
    pub running_instances: i64,
    pub per_minute_eur: String,
    pub per_hour_eur: String,
    pub per_day_eur: String,
    pub per_30_days_eur: String,
    pub per_365_days_eur: String,
    /// Buckets written by the cost job since the first of the month (UTC).
    pub month_to_date_eur: String,
    pub instances: Vec<RunningInstance>,
}

/// The current organization's burn rate (forecasts rounded to 4 decimals).
#[utoipa::path(get, path = "/finops/cost/current", tag = "finops", security(("bearer" = [])),
    responses((status = 200, body = CurrentCost), (status = 403, body = ErrorBody)))]
async fn cost_current(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<CurrentCost>> {
    caller.require(Action::ViewFinOps)?;
    let instances = sqlx::query_as!(
        RunningInstance,
        r#"SELECT i.id AS instance_id, i.provider, i.instance_type, i.model_id, i.started_at AS "started_at!",
                p.price::text AS "price_eur_per_hour!"
           FROM instances i
           CROSS JOIN LATERAL (SELECT COALESCE(i.price_eur_per_hour,
                  (SELECT t.price_eur_per_hour FROM instance_types t WHERE t.provider_code = i.provider AND t.code = i.instance_type))) AS p(price)
          WHERE i.organization_id = $1 AND i.started_at IS NOT NULL AND i.terminated_at IS NULL AND p.price IS NOT NULL
          ORDER BY i.started_at"#,
        caller.org_id as OrgId,
    )
    .fetch_all(&state.db)
    .await?;
    let prices: Vec<String> = instances
        .iter()
        .map(|i| i.price_eur_per_hour.clone())
        .collect();
    let rates = sqlx::query!(
        r#"WITH rate AS (SELECT COALESCE(sum(p::numeric), 0) AS h FROM unnest($2::text[]) AS p)
         SELECT round(h / 60, 4)::text AS "minute!", round(h, 4)::text AS "hour!", round(h * 24, 4)::text AS "day!",
                round(h * 24 * 30, 4)::text AS "month!", round(h * 24 * 365, 4)::text AS "year!",
                (SELECT round(COALESCE(sum(cost_eur), 0), 4)::text FROM cost_buckets
                  WHERE organization_id = $1 AND minute >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS "mtd!"
           FROM rate"#,
        caller.org_id as OrgId,
        &prices,
    )
    .fetch_one(&state.db)
    .await?;
    let (minute, hour, day, month, year, mtd) = (
        rates.minute,
        rates.hour,
        rates.day,
        rates.month,
        rates.year,
        rates.mtd,
    );
    Ok(Json(CurrentCost {
        running_instances: i64::try_from(instances.len()).unwrap_or(i64::MAX),
        per_minute_eur: minute,
        per_hour_eur: hour,
        per_day_eur: day,
        per_30_days_eur: month,
        per_365_days_eur: year,
        month_to_date_eur: mtd,
        instances,
    }))
}

/// Which costs to sum, and how.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// Start (RFC 3339), default 1 day before `to`.
    from: Option<DateTime<Utc>>,
    /// End (RFC 3339, exclusive), default now.
    to: Option<DateTime<Utc>>,
    /// `minute` (at most 7 days), `hour` (default, at most 366 days) or `day`.
    #[serde(default)]
    #[param(inline)]
    bucket: CostBucket,
    /// `none` by default.
    #[serde(default)]
    #[param(inline)]
    group_by: CostGroup,
    /// `json` by default.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// The width of a cost bucket.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum CostBucket {
    Minute,
    #[default]
    Hour,
    Day,
}

/// What cost points are grouped by.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum CostGroup {
    #[default]
    None,
    Provider,
    InstanceType,
    Model,
    Instance,
}

/// The cost of one group in one time bucket.
#[derive(Serialize, ToSchema)]
pub struct CostPoint {
    /// Start of the bucket (UTC).
    pub bucket: DateTime<Utc>,
    /// The group's value, `all` when not grouped.
    pub group: String,
    pub cost_eur: String,
    /// Instance-seconds counted.
    pub seconds: String,
}

/// The `date_trunc` unit and the longest range for a bucket size.
fn bucket_unit(bucket: CostBucket) -> (&'static str, i64) {
    match bucket {
        CostBucket::Minute => ("minute", 7),
        CostBucket::Hour => ("hour", 366),
        CostBucket::Day => ("day", 3660),
    }
}

/// The GPU cost of the current organization over time.
#[utoipa::path(get, path = "/finops/cost/series", tag = "finops", security(("bearer" = [])), params(SeriesQuery),
    responses((status = 200, body = [CostPoint], description = "JSON, or CSV with format=csv"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn cost_series(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<SeriesQuery>,
) -> ApiResult<Response> {
    caller.require(Action::ViewFinOps)?;
    let (unit, max_days) = bucket_unit(q.bucket);
    let (from, to) = range(q.from, q.to, 1, max_days)?;
    let as_csv = q.format == Format::Csv;
    // The unit and the grouping are bound: the scan (the organization's
    // minute index) is the same for every choice.
    let group = match q.group_by {
        CostGroup::None => "none",
        CostGroup::Provider => "provider",
        CostGroup::InstanceType => "instance_type",
        CostGroup::Model => "model",
        CostGroup::Instance => "instance",
    };
    let points = sqlx::query_as!(
        CostPoint,
        r#"SELECT date_trunc($4::text, minute AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS "bucket!",
                  CASE $5::text WHEN 'provider' THEN provider
                                WHEN 'instance_type' THEN provider || ':' || instance_type
                                WHEN 'model' THEN model_id
                                WHEN 'instance' THEN instance_id::text
                                ELSE 'all' END AS "group!",
                  round(sum(cost_eur), 4)::text AS "cost_eur!", sum(seconds)::text AS "seconds!"
             FROM cost_buckets WHERE organization_id = $1 AND minute >= $2 AND minute < $3
            GROUP BY 1, 2 ORDER BY 1, 2"#,
        caller.org_id as OrgId,
        from,
        to,
        unit,
        group,
    )
    .fetch_all(&state.db)
    .await?;
    if as_csv {
        let rows = points
            .into_iter()
            .map(|p| vec![p.bucket.to_rfc3339(), p.group, p.cost_eur, p.seconds])
            .collect();
        return Ok(csv(
            "cost.csv",
            &["bucket", "group", "cost_eur", "seconds"],
            rows,
        ));
    }
    Ok(Json(points).into_response())
}
