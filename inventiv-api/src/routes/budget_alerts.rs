//! The thresholds the current organization's budgets crossed (see
//! `crate::budgets`): owners, admins and managers read them.

use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use inventiv_common::{Action, OrgId};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_alerts))
}

/// A threshold crossed in a month.
#[derive(Serialize, ToSchema)]
pub struct BudgetAlert {
    pub id: i64,
    pub budget_id: Uuid,
    /// The first day of the month.
    pub month: NaiveDate,
    /// `eur`, `tokens` or `gpu_hours`.
    pub metric: String,
    pub threshold: i16,
    /// The consumption and the limit when it was recorded (decimal strings).
    pub consumed: String,
    pub monthly_limit: String,
    pub created_at: DateTime<Utc>,
    /// When the owners were mailed; null: not yet.
    pub mailed_at: Option<DateTime<Utc>>,
}

/// The thresholds the organization's budgets crossed, newest first.
#[utoipa::path(get, path = "/organizations/current/budget-alerts", tag = "budgets", security(("bearer" = [])),
    params(super::Paging),
    responses((status = 200, body = Vec<BudgetAlert>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<super::Paging>,
) -> ApiResult<Json<Vec<BudgetAlert>>> {
    caller.require(Action::ViewBudgets)?;
    let rows: Vec<BudgetAlert> = sqlx::query_as!(
        BudgetAlert,
        r#"SELECT id, budget_id, month, metric, threshold, consumed::text AS "consumed!", monthly_limit::text AS "monthly_limit!",
                created_at, mailed_at
           FROM budget_alerts WHERE organization_id = $1
          ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"#,
        caller.org_id as OrgId,
        page.limit(),
        page.offset(),
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}
