//! Monthly budgets of the current organization: for all of it, for one API
//! key, or for one share it consumes. Owners and admins set them (they
//! decide the spending the platform enforces); managers read them with
//! their consumption, forecast and alerts (they approve spending); users
//! do not see them. Money is a decimal string, EUR limits meter
//! `usage_records.charged_eur` (requests through shares: own models cost
//! nothing per request), token limits meter prompt + completion tokens of
//! any model, and GPU-hour limits (organization budgets only) the cost
//! minutes of the organization's instances.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::budgets::{consumption, of_organization, Consumption, Row};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::budget_limits::{limits, Limits, SetBudget};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_budgets, create_budget))
        .routes(routes!(get_budget, set_budget, delete_budget))
}

/// A budget with its consumption this month.
#[derive(Serialize, ToSchema)]
pub struct Budget {
    pub id: Uuid,
    /// `organization`, `api_key` or `share`.
    pub scope: String,
    pub api_key_id: Option<Uuid>,
    pub share_id: Option<Uuid>,
    /// EUR per month (decimal string); null: no EUR limit.
    pub monthly_eur: Option<String>,
    pub monthly_tokens: Option<i64>,
    /// GPU hours per month (decimal string, organization budgets).
    pub monthly_gpu_hours: Option<String>,
    /// Alert thresholds in percent of each limit.
    pub thresholds: Vec<i16>,
    /// Refuse what would exceed a limit (requests: 429 `insufficient_quota`;
    /// deployments: 409 `BUDGET_EXCEEDED`).
    pub hard_limit: bool,
    /// Terminate the organization's instances once the GPU-hour limit is reached.
    pub stop_running: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub consumption: Consumption,
}

/// A new budget: its scope and target, and its limits.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    /// `organization`, `api_key` (with `api_key_id`) or `share` (with
    /// `share_id`: a share the organization consumes).
    scope: String,
    api_key_id: Option<Uuid>,
    share_id: Option<Uuid>,
    monthly_eur: Option<String>,
    monthly_tokens: Option<i64>,
    monthly_gpu_hours: Option<String>,
    thresholds: Option<Vec<i16>>,
    hard_limit: Option<bool>,
    stop_running: Option<bool>,
}

async fn view(state: &AppState, row: Row) -> ApiResult<Budget> {
    let consumption = consumption(state, &row).await?;
    Ok(Budget {
        id: row.id,
        scope: row.scope,
        api_key_id: row.api_key_id,
        share_id: row.share_id,
        monthly_eur: row.monthly_eur,
        monthly_tokens: row.monthly_tokens,
        monthly_gpu_hours: row.monthly_gpu_hours,
        thresholds: row.thresholds,
        hard_limit: row.hard_limit,
        stop_running: row.stop_running,
        created_at: row.created_at,
        updated_at: row.updated_at,
        consumption,
    })
}

async fn load(state: &AppState, org: Uuid, id: Uuid) -> ApiResult<Row> {
    of_organization(&state.db, OrgId(org), Some(id))
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// Reloads this replica's admission cache now (the others within
/// `INVENTIV_BUDGET_REFRESH_SECS`).
async fn reload(state: &AppState) {
    if let Err(e) = state.budgets.refresh(state).await {
        tracing::warn!(error = %e, "budget cache not reloaded; the watcher retries");
    }
}

/// The current organization's budgets with their consumption this month.
#[utoipa::path(get, path = "/organizations/current/budgets", tag = "budgets", security(("bearer" = [])),
    responses((status = 200, body = Vec<Budget>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_budgets(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Budget>>> {
    caller.require(Action::ViewBudgets)?;
    let rows = of_organization(&state.db, caller.org_id, None).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(view(&state, row).await?);
    }
    Ok(Json(out))
}

/// Sets a budget (owners and admins). One per scope and target: 409
/// `BUDGET_EXISTS` otherwise (change it with PUT).
#[utoipa::path(post, path = "/organizations/current/budgets", tag = "budgets", security(("bearer" = [])),
    request_body = NewBudget,
    responses((status = 201, body = Budget), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "the API key or share is not the organization's"),
              (status = 409, body = ErrorBody)))]
async fn create_budget(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewBudget>,
) -> ApiResult<(StatusCode, Json<Budget>)> {
    caller.require(Action::ManageBudgets)?;
    let org = caller.org_id.0;
    let (key, share) = match (body.scope.as_str(), body.api_key_id, body.share_id) {
        ("organization", None, None) => (None, None),
        ("api_key", Some(k), None) => (Some(k), None),
        ("share", None, Some(s)) => (None, Some(s)),
        _ => return Err(ApiError::validation(
            "INVALID_SCOPE",
            "scope: organization (no target), api_key (with api_key_id) or share (with share_id)",
        )),
    };
    let limits = limits(
        key.is_none() && share.is_none(),
        SetBudget {
            monthly_eur: body.monthly_eur,
            monthly_tokens: body.monthly_tokens,
            monthly_gpu_hours: body.monthly_gpu_hours,
            thresholds: body.thresholds,
            hard_limit: body.hard_limit,
            stop_running: body.stop_running,
        },
    )?;
    let target_exists = sqlx::query_scalar!(
        r#"SELECT ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE id = $2 AND organization_id = $1))
              AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM offering_shares WHERE id = $3 AND consumer_organization_id = $1))
              AS "exists!""#,
        org,
        key,
        share,
    )
    .fetch_one(&state.db)
    .await?;
    if !target_exists {
        return Err(ApiError::NotFound);
    }
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO budgets (id, organization_id, scope, api_key_id, share_id, monthly_eur, monthly_tokens,
                              monthly_gpu_hours, thresholds, hard_limit, stop_running, created_by)
         VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7, $8::text::numeric, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
        id,
        org,
        body.scope,
        key,
        share,
        limits.eur,
        limits.tokens,
        limits.gpu_hours,
        &limits.thresholds,
        limits.hard,
        limits.stop_running,
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "BUDGET_EXISTS",
            "this scope already has a budget; change it with PUT",
        ));
    }
    record(&mut tx, &caller, "budget.created", id, &limits).await?;
    tx.commit().await?;
    reload(&state).await;
    let row = load(&state, org, id).await?;
    Ok((StatusCode::CREATED, Json(view(&state, row).await?)))
}

async fn record(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    action: &str,
    id: Uuid,
    limits: &Limits,
) -> sqlx::Result<()> {
    let details = serde_json::json!({
        "monthly_eur": limits.eur, "monthly_tokens": limits.tokens, "monthly_gpu_hours": limits.gpu_hours,
        "thresholds": limits.thresholds, "hard_limit": limits.hard, "stop_running": limits.stop_running,
    });
    let entry = audit::Entry::by(caller, action, "budget", id.to_string()).details(details);
    audit::record(&mut *tx, entry).await
}

/// One budget of the current organization with its consumption.
#[utoipa::path(get, path = "/organizations/current/budgets/{budget_id}", tag = "budgets", security(("bearer" = [])),
    params(("budget_id" = Uuid, Path, description = "budget id")),
    responses((status = 200, body = Budget), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn get_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Budget>> {
    caller.require(Action::ViewBudgets)?;
    let row = load(&state, caller.org_id.0, id).await?;
    Ok(Json(view(&state, row).await?))
}

/// Replaces a budget's limits (owners and admins). Lowering a limit below
/// the consumption refuses the next requests; it stops nothing in flight.
#[utoipa::path(put, path = "/organizations/current/budgets/{budget_id}", tag = "budgets", security(("bearer" = [])),
    params(("budget_id" = Uuid, Path, description = "budget id")), request_body = SetBudget,
    responses((status = 200, body = Budget), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SetBudget>,
) -> ApiResult<Json<Budget>> {
    caller.require(Action::ManageBudgets)?;
    let org = caller.org_id.0;
    let row = load(&state, org, id).await?;
    let limits = limits(row.scope == "organization", body)?;
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE budgets SET monthly_eur = $3::text::numeric, monthly_tokens = $4, monthly_gpu_hours = $5::text::numeric,
                thresholds = $6, hard_limit = $7, stop_running = $8, updated_at = now()
          WHERE id = $1 AND organization_id = $2",
        id,
        org,
        limits.eur,
        limits.tokens,
        limits.gpu_hours,
        &limits.thresholds,
        limits.hard,
        limits.stop_running,
    )
    .execute(&mut *tx)
    .await?;
    record(&mut tx, &caller, "budget.updated", id, &limits).await?;
    tx.commit().await?;
    reload(&state).await;
    let row = load(&state, org, id).await?;
    Ok(Json(view(&state, row).await?))
}

/// Removes a budget and its alerts (owners and admins).
#[utoipa::path(delete, path = "/organizations/current/budgets/{budget_id}", tag = "budgets", security(("bearer" = [])),
    params(("budget_id" = Uuid, Path, description = "budget id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageBudgets)?;
    let mut tx = state.db.begin().await?;
    let deleted = sqlx::query!(
        "DELETE FROM budgets WHERE id = $1 AND organization_id = $2",
        id,
        caller.org_id as OrgId,
    )
    .execute(&mut *tx)
    .await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    let entry = audit::Entry::by(&caller, "budget.deleted", "budget", id.to_string());
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    reload(&state).await;
    Ok(StatusCode::NO_CONTENT)
}
