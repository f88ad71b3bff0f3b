//! Chargeback and usage reports of the current organization (owners and
//! managers): monthly statements per pair of organizations and offering
//! (`GET /finops/statements`: consumer debits and provider credits, sums of
//! the charges stored on the usage rows, so they reconcile exactly), token
//! usage over time (`GET /finops/usage/series`) and, for a provider, cost
//! recovery per offering (`GET /finops/cost-recovery`). JSON or CSV.
//!
//! A consumer sees only its own calls; a provider sees the totals of the
//! calls made through its offerings, never the consumer's other usage.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::finops::{csv, range, Format};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(statements))
        .routes(routes!(usage_series))
        .routes(routes!(cost_recovery))
}

/// Which month.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// `YYYY-MM` (UTC), default the current month.
    month: Option<String>,
    /// `json` by default.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// One pair of organizations and one offering in a month.
#[derive(Serialize, ToSchema)]
pub struct StatementLine {
    /// `debit` (the current organization consumed) or `credit` (it provided).
    pub direction: String,
    /// The other organization.
    pub counterparty_org_slug: String,
    pub offering_id: Uuid,
    pub address: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Of the prompt tokens, those served from the engine's prefix cache:
    /// charged at the offering's cached rate, the others at its input rate.
    pub cached_prompt_tokens: i64,
    /// Exact sum of the rows' charges (EUR).
    pub amount_eur: String,
}

/// A month's chargeback for the current organization.
#[derive(Serialize, ToSchema)]
pub struct Statement {
    pub month: String,
    pub debit_total_eur: String,
    pub credit_total_eur: String,
    pub lines: Vec<StatementLine>,
}

fn month_bounds(month: Option<&str>) -> ApiResult<(String, DateTime<Utc>, DateTime<Utc>)> {
    let bad = || ApiError::validation("INVALID_QUERY", "month: YYYY-MM");
    let start = match month {
        Some(m) => NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").map_err(|_| bad())?,
        None => Utc::now().date_naive().with_day(1).ok_or_else(bad)?,
    };
    let end = start
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(bad)?;
    let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
    Ok((
        start.format("%Y-%m").to_string(),
        at(start).ok_or_else(bad)?,
        at(end).ok_or_else(bad)?,
    ))
}

/// The current organization's statement for a month.
#[utoipa::path(get, path = "/finops/statements", tag = "finops", security(("bearer" = [])), params(StatementQuery),
    responses((status = 200, body = Statement, description = "JSON, or CSV of the lines with format=csv"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn statements(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StatementQuery>,
) -> ApiResult<Response> {
    caller.require(Action::ViewFinOps)?;
    let (month, from, to) = month_bounds(q.month.as_deref())?;
    let as_csv = q.format == Format::Csv;
    let lines = sqlx::query_as!(
        StatementLine,
        r#"WITH mine AS (
            SELECT CASE WHEN u.organization_id = $1 THEN 'debit' ELSE 'credit' END AS direction,
                   CASE WHEN u.organization_id = $1 THEN u.provider_organization_id ELSE u.organization_id END AS counterparty,
                   u.offering_id, u.prompt_tokens, u.completion_tokens, u.cached_prompt_tokens, u.charged_eur
              FROM usage_records u
             WHERE u.offering_id IS NOT NULL AND u.at >= $2 AND u.at < $3
               AND (u.organization_id = $1 OR u.provider_organization_id = $1))
         SELECT m.direction AS "direction!", c.slug AS counterparty_org_slug, m.offering_id AS "offering_id!",
                p.slug || '/' || o.model_code AS "address!",
                count(*) AS "requests!", sum(m.prompt_tokens)::bigint AS "prompt_tokens!",
                sum(m.completion_tokens)::bigint AS "completion_tokens!",
                sum(m.cached_prompt_tokens)::bigint AS "cached_prompt_tokens!",
                trim_scale(sum(m.charged_eur))::text AS "amount_eur!"
           FROM mine m JOIN organizations c ON c.id = m.counterparty
           JOIN offerings o ON o.id = m.offering_id JOIN organizations p ON p.id = o.organization_id
          GROUP BY m.direction, c.slug, m.offering_id, p.slug, o.model_code ORDER BY 1, 2, 4"#,
        caller.org_id as OrgId,
        from,
        to,
    )
    .fetch_all(&state.db)
    .await?;
    if as_csv {
        let rows = lines
            .into_iter()
            .map(|l| {
                vec![
                    month.clone(),
                    l.direction,
                    l.counterparty_org_slug,
                    l.address,
                    l.requests.to_string(),
                    l.prompt_tokens.to_string(),
                    l.completion_tokens.to_string(),
                    l.cached_prompt_tokens.to_string(),
                    l.amount_eur,
                ]
            })
            .collect();
        let header = [
            "month",
            "direction",
            "counterparty",
            "offering",
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cached_prompt_tokens",
            "amount_eur",
        ];
        return Ok(csv("statement.csv", &header, rows));
    }
    let directions: Vec<String> = lines.iter().map(|l| l.direction.clone()).collect();
    let amounts: Vec<String> = lines.iter().map(|l| l.amount_eur.clone()).collect();
    let totals = sqlx::query!(
        r#"SELECT trim_scale(COALESCE(sum(a::numeric) FILTER (WHERE d = 'debit'), 0))::text AS "debit!",
                trim_scale(COALESCE(sum(a::numeric) FILTER (WHERE d = 'credit'), 0))::text AS "credit!"
           FROM unnest($1::text[], $2::text[]) AS t(d, a)"#,
        &directions,
        &amounts,
    )
    .fetch_one(&state.db)
    .await?;
    let (debit, credit) = (totals.debit, totals.credit);
    Ok(Json(Statement {
        month,
        debit_total_eur: debit,
        credit_total_eur: credit,
        lines,
    })
    .into_response())
}

/// Which usage to sum, and how.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageSeriesQuery {
    /// Start (RFC 3339), default 30 days before `to`.
    from: Option<DateTime<Utc>>,
    /// End (RFC 3339, exclusive), default now.
    to: Option<DateTime<Utc>>,
    /// `hour` (at most 93 days) or `day` (default).
    #[serde(default)]
    #[param(inline)]
    bucket: UsageBucket,
    /// `model` by default.
    #[serde(default)]
    #[param(inline)]
    group_by: UsageSeriesGroup,
    /// `json` by default.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// The width of a usage bucket.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum UsageBucket {
    Hour,
    #[default]
    Day,
}

/// What usage points are grouped by.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum UsageSeriesGroup {
    #[default]
    Model,
    ApiKey,
    User,
}

/// The current organization's calls of one group in one time bucket.
#[derive(Serialize, ToSchema)]
pub struct UsagePoint {
    pub bucket: DateTime<Utc>,
    pub group: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Of the prompt tokens, those served from the engine's prefix cache.
    pub cached_prompt_tokens: i64,
    /// Charged through shares (EUR, exact).
    pub charged_eur: String,
}

/// Token usage of the current organization's calls over time.
#[utoipa::path(get, path = "/finops/usage/series", tag = "finops", security(("bearer" = [])), params(UsageSeriesQuery),
    responses((status = 200, body = [UsagePoint], description = "JSON, or CSV with format=csv"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn usage_series(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<UsageSeriesQuery>,
) -> ApiResult<Response> {
    caller.require(Action::ViewFinOps)?;
    let (unit, max_days) = match q.bucket {
        UsageBucket::Hour => ("hour", 93),
        UsageBucket::Day => ("day", 3660),
    };
    let (from, to) = range(q.from, q.to, 30, max_days)?;
    let as_csv = q.format == Format::Csv;
    // The unit and the grouping are bound: the scan (the organization's
    // time index) is the same for every choice.
    let group = match q.group_by {
        UsageSeriesGroup::Model => "model",
        UsageSeriesGroup::ApiKey => "api_key",
        UsageSeriesGroup::User => "user",
    };
    let points = sqlx::query_as!(
        UsagePoint,
        r#"SELECT date_trunc($4::text, at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS "bucket!",
                  CASE $5::text WHEN 'api_key' THEN COALESCE(api_key_id::text, 'session')
                                WHEN 'user' THEN COALESCE(user_id::text, 'unknown')
                                ELSE model END AS "group!",
                  count(*) AS "requests!", COALESCE(sum(prompt_tokens), 0)::bigint AS "prompt_tokens!",
                  COALESCE(sum(completion_tokens), 0)::bigint AS "completion_tokens!",
                  COALESCE(sum(cached_prompt_tokens), 0)::bigint AS "cached_prompt_tokens!",
                  trim_scale(COALESCE(sum(charged_eur), 0))::text AS "charged_eur!"
             FROM usage_records WHERE organization_id = $1 AND at >= $2 AND at < $3 GROUP BY 1, 2 ORDER BY 1, 2"#,
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
            .map(|p| {
                vec![
                    p.bucket.to_rfc3339(),
                    p.group,
                    p.requests.to_string(),
                    p.prompt_tokens.to_string(),
                    p.completion_tokens.to_string(),
                    p.cached_prompt_tokens.to_string(),
                    p.charged_eur,
                ]
            })
            .collect();
        let header = [
            "bucket",
            "group",
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cached_prompt_tokens",
            "charged_eur",
        ];
        return Ok(csv("usage.csv", &header, rows));
    }
    Ok(Json(points).into_response())
}

/// The period to look at.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecoveryQuery {
    /// Start (RFC 3339), default 30 days before `to`.
    from: Option<DateTime<Utc>>,
    /// End (RFC 3339, exclusive), default now.
    to: Option<DateTime<Utc>>,
}

/// One offering's economics over the period.
#[derive(Serialize, ToSchema)]
pub struct Recovery {
    pub offering_id: Uuid,
    pub address: String,
    /// GPU cost of the organization's instances serving the model (EUR, 4 decimals).
    pub gpu_cost_eur: String,
    /// Charged to consumers through shares (EUR, exact).
    pub revenue_eur: String,
    /// revenue - GPU cost.
    pub margin_eur: String,
    /// Tokens served through shares.
    pub shared_tokens: i64,
    /// Tokens served by the model in all (own calls too).
    pub total_tokens: i64,
    /// GPU cost per 1k of all tokens served (6 decimals): the price that
    /// recovers the cost; none without tokens.
    pub break_even_eur_per_1k: Option<String>,
}

/// Cost recovery per offering of the current organization.
#[utoipa::path(get, path = "/finops/cost-recovery", tag = "finops", security(("bearer" = [])), params(RecoveryQuery),
    responses((status = 200, body = [Recovery]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn cost_recovery(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RecoveryQuery>,
) -> ApiResult<Json<Vec<Recovery>>> {
    caller.require(Action::ViewFinOps)?;
    let (from, to) = range(q.from, q.to, 30, 3660)?;
    let lines = sqlx::query_as!(
        Recovery,
        r#"SELECT o.id AS offering_id, org.slug || '/' || o.model_code AS "address!",
                round(c.cost, 4)::text AS "gpu_cost_eur!", trim_scale(r.revenue)::text AS "revenue_eur!",
                trim_scale(round(r.revenue - c.cost, 4))::text AS "margin_eur!", r.tokens AS "shared_tokens!",
                r.tokens + own.tokens AS "total_tokens!",
                CASE WHEN r.tokens + own.tokens > 0 THEN round(c.cost * 1000 / (r.tokens + own.tokens), 6)::text END
                  AS "break_even_eur_per_1k?"
           FROM offerings o JOIN organizations org ON org.id = o.organization_id
           CROSS JOIN LATERAL (SELECT COALESCE(sum(cost_eur), 0) AS cost FROM cost_buckets b
                                WHERE b.organization_id = $1 AND b.model_id = o.model_code AND b.minute >= $2 AND b.minute < $3) c
           CROSS JOIN LATERAL (SELECT COALESCE(sum(charged_eur), 0) AS revenue,
                                      COALESCE(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens FROM usage_records u
                                WHERE u.provider_organization_id = $1 AND u.offering_id = o.id AND u.at >= $2 AND u.at < $3) r
           CROSS JOIN LATERAL (SELECT COALESCE(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens FROM usage_records u
                                WHERE u.organization_id = $1 AND u.model = o.model_code AND u.offering_id IS NULL AND u.at >= $2 AND u.at < $3) own
          WHERE o.organization_id = $1 ORDER BY 2"#,
        caller.org_id as OrgId,
        from,
        to,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(lines))
}
