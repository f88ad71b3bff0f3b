//! The caller's own sessions: list and revoke.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::{SessionId, UserId};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
}

/// A login session of the caller.
#[derive(Serialize, ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    /// True for the session making this request.
    pub is_current: bool,
}

/// The caller's sessions, newest first (the last 100).
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [Session]), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Session>>> {
    let sessions = sqlx::query_as!(
        Session,
        r#"SELECT s.id, s.organization_id, o.name AS organization_name, s.ip, s.user_agent, s.created_at,
                s.last_seen_at, s.expires_at, s.revoked_at, s.revoked_reason, s.id = $2 AS "is_current!"
           FROM user_sessions s JOIN organizations o ON o.id = s.organization_id
          WHERE s.user_id = $1 ORDER BY s.created_at DESC LIMIT 100"#,
        caller.user_id as UserId,
        caller.session_id as SessionId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(sessions))
}

/// Revokes one of the caller's sessions; its tokens stop working at once.
#[utoipa::path(post, path = "/auth/sessions/{session_id}/revoke", tag = "auth", security(("bearer" = [])),
    params(("session_id" = Uuid, Path, description = "session id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let found = sqlx::query!(
        "UPDATE user_sessions SET revoked_at = COALESCE(revoked_at, now()), revoked_reason = COALESCE(revoked_reason, 'revoked')
          WHERE id = $1 AND user_id = $2",
        id,
        caller.user_id as UserId,
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    if found == 0 {
        return Err(ApiError::NotFound);
    }
    crate::events::access_changed(&state, None, Some(caller.user_id.0)).await;
    Ok(StatusCode::NO_CONTENT)
}
