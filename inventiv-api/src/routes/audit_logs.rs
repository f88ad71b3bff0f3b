//! The organization's audit log, read-only, newest first, paged by id.

use axum::extract::State;
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_logs))
}

/// One recorded action.
#[derive(Serialize, ToSchema)]
pub struct AuditLog {
    pub id: i64,
    pub actor_user_id: Option<Uuid>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Paging: `before` is the smallest id of the previous page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// 1 to 500, default 100.
    limit: Option<u16>,
    before: Option<i64>,
}

/// The current organization's audit log (owners and admins).
#[utoipa::path(get, path = "/organizations/current/audit-logs", tag = "organizations", security(("bearer" = [])),
    params(Page),
    responses((status = 200, body = [AuditLog]), (status = 403, body = ErrorBody)))]
async fn list_audit_logs(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> ApiResult<Json<Vec<AuditLog>>> {
    caller.require(Action::ViewAuditLog)?;
    let limit = i64::from(page.limit.unwrap_or(100).clamp(1, 500));
    let rows = sqlx::query_as!(
        AuditLog,
        r#"SELECT a.id, a.actor_user_id, u.email AS "actor_email?", a.action, a.target_type, a.target_id, a.details,
                a.request_id, a.created_at
           FROM audit_logs a LEFT JOIN users u ON u.id = a.actor_user_id
          WHERE a.organization_id = $1 AND ($2::bigint IS NULL OR a.id < $2)
          ORDER BY a.id DESC LIMIT $3"#,
        caller.org_id as OrgId,
        page.before,
        limit,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}
