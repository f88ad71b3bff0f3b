//! Organizations: create, list, switch, rename, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId, OrgName, OrgRole, SessionId, Slug, UserId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::accounts::{is_unique_violation, unique_slug};
use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::auth::{memberships, reissue, Membership};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(get_current, switch_current, update_current))
        .routes(routes!(delete_organization))
}

/// An organization as its members see it.
#[derive(Serialize, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// `personal` or `team`.
    pub kind: String,
    pub sidebar_color: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The current organization with the caller's role in it.
#[derive(Serialize, ToSchema)]
pub struct CurrentOrganization {
    pub organization: Organization,
    pub role: OrgRole,
}

async fn load(db: &mut PgConnection, org: OrgId) -> ApiResult<Organization> {
    sqlx::query_as!(
        Organization,
        "SELECT id, name, slug, kind, sidebar_color, created_at FROM organizations WHERE id = $1",
        org as OrgId,
    )
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

/// Points `user`'s sessions that sit in `org` back to their personal organization.
pub async fn move_sessions_home(db: &mut PgConnection, user: Uuid, org: OrgId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE user_sessions s SET organization_id = o.id FROM organizations o
          WHERE s.user_id = $1 AND s.organization_id = $2 AND o.created_by = s.user_id AND o.kind = 'personal'",
        user,
        org as OrgId,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A new team organization.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Derived from the name when absent.
    #[schema(min_length = 2, max_length = 48, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    slug: Option<String>,
}

/// Creates a team organization; the caller becomes its owner.
#[utoipa::path(post, path = "/organizations", tag = "organizations", security(("bearer" = [])),
    request_body = CreateOrganization,
    responses((status = 201, body = Organization), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many objects created; see Retry-After")))]
async fn create_organization(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateOrganization>,
) -> ApiResult<(StatusCode, Json<Organization>)> {
    crate::ratelimit::creation(&state, caller.user_id).await?;
    let name = OrgName::parse(&body.name)?;
    let slug = match body.slug.as_deref() {
        Some(s) => Slug::parse(s)?,
        None => unique_slug(name.as_str()),
    };
    let org = OrgId::new();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "INSERT INTO organizations (id, name, slug, kind, created_by) VALUES ($1, $2, $3, 'team', $4)",
        org as OrgId,
        name.as_str(),
        slug.as_str(),
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict(
                "SLUG_TAKEN",
                format!("the slug {:?} is taken", slug.as_str()),
            )
        } else {
            e.into()
        }
    })?;
    sqlx::query!(
        "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES ($1, $2, 'owner')",
        org as OrgId,
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry {
        org,
        actor: Some(caller.user_id),
        action: "organization.created",
        target_type: "organization",
        target_id: org.to_string(),
        details: serde_json::json!({ "name": name.as_str(), "slug": slug.as_str() }),
    };
    audit::record(&mut *tx, entry).await?;
    let created = load(&mut tx, org).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The organizations the caller belongs to, with their role in each.
#[utoipa::path(get, path = "/organizations", tag = "organizations", security(("bearer" = [])),
    responses((status = 200, body = [Membership]), (status = 401, body = ErrorBody)))]
async fn list_organizations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Membership>>> {
    memberships(&state, caller.user_id).await.map(Json)
}

/// The session's current organization and the caller's role in it.
#[utoipa::path(get, path = "/organizations/current", tag = "organizations", security(("bearer" = [])),
    responses((status = 200, body = CurrentOrganization), (status = 401, body = ErrorBody)))]
async fn get_current(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<CurrentOrganization>> {
    caller.require(Action::ViewOrganization)?;
    let mut conn = state.db.acquire().await?;
    let organization = load(&mut conn, caller.org_id).await?;
    Ok(Json(CurrentOrganization {
        organization,
        role: caller.role,
    }))
}

/// Which organization to work in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchOrganization {
    organization_id: Uuid,
}

/// The new current organization and a token that carries it.
#[derive(Serialize, ToSchema)]
pub struct Switched {
    pub organization: Organization,
    pub role: OrgRole,
    pub access_token: String,
    pub expires_in: i64,
}

/// Switches the session's current organization (the caller must be a
/// member) and re-issues the access token.
#[utoipa::path(put, path = "/organizations/current", tag = "organizations", security(("bearer" = [])),
    request_body = SwitchOrganization,
    responses((status = 200, body = Switched), (status = 404, body = ErrorBody)))]
async fn switch_current(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SwitchOrganization>,
) -> ApiResult<Response> {
    let mut tx = state.db.begin().await?;
    let role = sqlx::query_scalar!(
        "SELECT role FROM organization_memberships WHERE organization_id = $1 AND user_id = $2",
        body.organization_id,
        caller.user_id as UserId,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    let role = OrgRole::parse(&role).ok_or_else(|| anyhow::anyhow!("stored role {role:?}"))?;
    sqlx::query!(
        "UPDATE user_sessions SET organization_id = $2 WHERE id = $1",
        caller.session_id as SessionId,
        body.organization_id,
    )
    .execute(&mut *tx)
    .await?;
    let organization = load(&mut tx, OrgId(body.organization_id)).await?;
    tx.commit().await?;
    let access_token = reissue(&state, &caller, OrgId(body.organization_id))?;
    let switched = Switched {
        organization,
        role,
        access_token,
        expires_in: state.jwt.ttl_secs(),
    };
    let cookie = format!(
        "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        crate::auth::caller::ACCESS_COOKIE,
        switched.access_token,
        switched.expires_in,
        if state.config.cookie_secure {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = Json(switched).into_response();
    if let Ok(value) = cookie.parse() {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Changes to the current organization.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    /// `#rrggbb`, or null to reset.
    #[serde(default, with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    sidebar_color: Option<Option<String>>,
}

fn parse_color(value: &str) -> ApiResult<String> {
    let v = value.trim().to_lowercase();
    let ok = v.len() == 7 && v.starts_with('#') && v[1..].chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(v)
    } else {
        Err(ApiError::validation(
            "VALIDATION_ERROR",
            "sidebar_color: expected #rrggbb",
        ))
    }
}

/// Renames the current organization or changes its sidebar color.
#[utoipa::path(patch, path = "/organizations/current", tag = "organizations", security(("bearer" = [])),
    request_body = UpdateOrganization,
    responses((status = 200, body = Organization), (status = 403, body = ErrorBody)))]
async fn update_current(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UpdateOrganization>,
) -> ApiResult<Json<Organization>> {
    caller.require(Action::UpdateOrganization)?;
    let name = body.name.as_deref().map(OrgName::parse).transpose()?;
    let color = match &body.sidebar_color {
        Some(Some(c)) => Some(Some(parse_color(c)?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE organizations SET name = COALESCE($2, name),
                sidebar_color = CASE WHEN $3 THEN $4 ELSE sidebar_color END, updated_at = now()
          WHERE id = $1",
        caller.org_id as OrgId,
        name.as_ref().map(OrgName::as_str),
        color.is_some(),
        color.clone().flatten(),
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(
        &caller,
        "organization.updated",
        "organization",
        caller.org_id.to_string(),
    )
    .details(
        serde_json::json!({ "name": name.as_ref().map(OrgName::as_str), "sidebar_color": color }),
    );
    audit::record(&mut *tx, entry).await?;
    let updated = load(&mut tx, caller.org_id).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

/// Deletes a team organization the caller owns. Personal organizations
/// cannot be deleted. Members' sessions move to their personal organization.
#[utoipa::path(delete, path = "/organizations/{organization_id}", tag = "organizations", security(("bearer" = [])),
    params(("organization_id" = Uuid, Path, description = "organization id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_organization(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = sqlx::query!(
        "SELECT m.role, o.kind FROM organizations o
           JOIN organization_memberships m ON m.organization_id = o.id AND m.user_id = $2
          WHERE o.id = $1 AND o.deleted_at IS NULL FOR UPDATE OF o",
        id,
        caller.user_id as UserId,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (role, kind) = row.map(|r| (r.role, r.kind)).ok_or(ApiError::NotFound)?;
    let role = OrgRole::parse(&role).ok_or_else(|| anyhow::anyhow!("stored role {role:?}"))?;
    if !inventiv_common::can(role, Action::DeleteOrganization) {
        return Err(ApiError::forbidden(
            "only owners can delete an organization",
        ));
    }
    if kind == "personal" {
        return Err(ApiError::conflict(
            "PERSONAL_ORGANIZATION",
            "a personal organization cannot be deleted",
        ));
    }
    let running = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM instances WHERE organization_id = $1 AND status NOT IN ('terminated', 'archived')"#,
        id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if running > 0 {
        return Err(ApiError::conflict(
            "ORGANIZATION_HAS_INSTANCES",
            format!("terminate the organization's {running} instance(s) first"),
        ));
    }
    sqlx::query!(
        "UPDATE user_sessions s SET organization_id = o.id FROM organizations o
          WHERE s.organization_id = $1 AND o.created_by = s.user_id AND o.kind = 'personal'",
        id,
    )
    .execute(&mut *tx)
    .await?;
    // Kept as a tombstone: instances and their history still refer to it.
    sqlx::query!(
        "DELETE FROM organization_invitations WHERE organization_id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM organization_memberships WHERE organization_id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE organizations SET deleted_at = now() WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry {
        org: OrgId(id),
        actor: Some(caller.user_id),
        action: "organization.deleted",
        target_type: "organization",
        target_id: id.to_string(),
        details: serde_json::json!({}),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    crate::events::access_changed(&state, Some(id), None).await;
    Ok(StatusCode::NO_CONTENT)
}
