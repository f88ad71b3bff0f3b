//! Members of the current organization: list, change role, remove, leave.
//! The last owner can be neither demoted, removed, nor leave.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::rbac::{can_assign, can_remove};
use inventiv_common::{Action, OrgId, OrgRole, UserId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::organizations::move_sessions_home;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(leave))
}

/// A member of the organization.
#[derive(Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: OrgRole,
    pub joined_at: DateTime<Utc>,
}

struct MemberRow {
    user_id: Uuid,
    email: String,
    display_name: String,
    role: String,
    joined_at: DateTime<Utc>,
}

/// The members of the current organization, a page at a time.
#[utoipa::path(get, path = "/organizations/current/members", tag = "members", security(("bearer" = [])), params(super::Paging),
    responses((status = 200, body = [Member]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<super::Paging>,
) -> ApiResult<Json<Vec<Member>>> {
    caller.require(Action::ViewOrganization)?;
    let rows = sqlx::query_as!(
        MemberRow,
        "SELECT u.id AS user_id, u.email, u.display_name, m.role, m.created_at AS joined_at
           FROM organization_memberships m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = $1 ORDER BY m.created_at, u.id LIMIT $2 OFFSET $3",
        caller.org_id as OrgId,
        page.limit(),
        page.offset(),
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .filter_map(|r| {
                Some(Member {
                    role: OrgRole::parse(&r.role)?,
                    user_id: r.user_id,
                    email: r.email,
                    display_name: r.display_name,
                    joined_at: r.joined_at,
                })
            })
            .collect(),
    ))
}

/// The organization's members and roles, locked for the transaction so
/// concurrent demotions cannot remove the last owner together.
async fn lock_roles(tx: &mut PgConnection, caller: &Caller) -> ApiResult<Vec<(Uuid, OrgRole)>> {
    let rows = sqlx::query!(
        "SELECT user_id, role FROM organization_memberships WHERE organization_id = $1 FOR UPDATE",
        caller.org_id as OrgId,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.user_id, OrgRole::parse(&r.role)?)))
        .collect())
}

fn last_owner() -> ApiError {
    ApiError::conflict(
        "LAST_OWNER",
        "the last owner cannot be removed, demoted or leave; make someone else owner first",
    )
}

fn owners(roles: &[(Uuid, OrgRole)]) -> usize {
    roles.iter().filter(|(_, r)| *r == OrgRole::Owner).count()
}

/// The new role of a member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    role: OrgRole,
}

/// Changes a member's role within the caller's own powers.
#[utoipa::path(put, path = "/organizations/current/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "member's user id")), request_body = ChangeRole,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<Uuid>,
    Json(body): Json<ChangeRole>,
) -> ApiResult<Json<Member>> {
    caller.require(Action::ManageMembers)?;
    let mut tx = state.db.begin().await?;
    let roles = lock_roles(&mut tx, &caller).await?;
    let current = roles
        .iter()
        .find(|(u, _)| *u == user_id)
        .map(|(_, r)| *r)
        .ok_or(ApiError::NotFound)?;
    if !can_assign(caller.role, Some(current), body.role) {
        return Err(ApiError::forbidden(format!(
            "{} cannot change {} into {}",
            caller.role.with_article(),
            current.with_article(),
            body.role.with_article()
        )));
    }
    if current == OrgRole::Owner && body.role != OrgRole::Owner && owners(&roles) == 1 {
        return Err(last_owner());
    }
    let row = sqlx::query_as!(
        MemberRow,
        "UPDATE organization_memberships m SET role = $3 FROM users u
          WHERE m.organization_id = $1 AND m.user_id = $2 AND u.id = m.user_id
          RETURNING u.id AS user_id, u.email, u.display_name, m.role, m.created_at AS joined_at",
        caller.org_id as OrgId,
        user_id,
        body.role.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    if current != body.role {
        let entry = audit::Entry::by(&caller, "member.role_changed", "user", user_id.to_string())
            .details(serde_json::json!({ "from": current, "to": body.role }));
        audit::record(&mut *tx, entry).await?;
    }
    tx.commit().await?;
    Ok(Json(Member {
        user_id: row.user_id,
        email: row.email,
        display_name: row.display_name,
        role: body.role,
        joined_at: row.joined_at,
    }))
}

async fn delete_membership(
    tx: &mut PgConnection,
    caller: &Caller,
    user_id: Uuid,
    action: &str,
) -> ApiResult<()> {
    sqlx::query!(
        "DELETE FROM organization_memberships WHERE organization_id = $1 AND user_id = $2",
        caller.org_id as OrgId,
        user_id,
    )
    .execute(&mut *tx)
    .await?;
    move_sessions_home(tx, user_id, caller.org_id).await?;
    let entry = audit::Entry::by(caller, action, "user", UserId(user_id).to_string());
    audit::record(&mut *tx, entry).await?;
    Ok(())
}

async fn is_personal(tx: &mut PgConnection, caller: &Caller) -> ApiResult<bool> {
    let kind = sqlx::query_scalar!(
        "SELECT kind FROM organizations WHERE id = $1",
        caller.org_id as OrgId,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(kind == "personal")
}

/// Removes a member; their sessions in this organization move to their personal one.
#[utoipa::path(delete, path = "/organizations/current/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "member's user id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageMembers)?;
    let mut tx = state.db.begin().await?;
    let roles = lock_roles(&mut tx, &caller).await?;
    let target = roles
        .iter()
        .find(|(u, _)| *u == user_id)
        .map(|(_, r)| *r)
        .ok_or(ApiError::NotFound)?;
    if !can_remove(caller.role, target) {
        return Err(ApiError::forbidden(format!(
            "{} cannot remove {}",
            caller.role.with_article(),
            target.with_article()
        )));
    }
    if target == OrgRole::Owner && owners(&roles) == 1 {
        return Err(last_owner());
    }
    delete_membership(&mut tx, &caller, user_id, "member.removed").await?;
    tx.commit().await?;
    crate::events::access_changed(&state, Some(caller.org_id.0), Some(user_id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Leaves the current organization (not a personal one, not as last owner).
#[utoipa::path(post, path = "/organizations/current/leave", tag = "members", security(("bearer" = [])),
    responses((status = 204), (status = 409, body = ErrorBody)))]
async fn leave(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    if is_personal(&mut tx, &caller).await? {
        return Err(ApiError::conflict(
            "PERSONAL_ORGANIZATION",
            "a personal organization cannot be left",
        ));
    }
    let roles = lock_roles(&mut tx, &caller).await?;
    if caller.role == OrgRole::Owner && owners(&roles) == 1 {
        return Err(last_owner());
    }
    delete_membership(&mut tx, &caller, caller.user_id.0, "member.left").await?;
    tx.commit().await?;
    crate::events::access_changed(&state, Some(caller.org_id.0), Some(caller.user_id.0)).await;
    Ok(StatusCode::NO_CONTENT)
}
