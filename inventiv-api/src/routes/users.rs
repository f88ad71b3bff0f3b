//! Platform administration of user accounts (platform admins only).

use axum::extract::State;
use axum::http::StatusCode;
use inventiv_common::{DisplayName, Email, Password, UserId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::auth::User;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user))
}

/// Every account, oldest first, a page at a time.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(super::Paging),
    responses((status = 200, body = [User]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<super::Paging>,
) -> ApiResult<Json<Vec<User>>> {
    caller.require_platform_admin()?;
    let users = sqlx::query_as!(
        User,
        "SELECT id, email, display_name, is_platform_admin, created_at FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2",
        page.limit(),
        page.offset(),
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(users))
}

/// A new account created by a platform admin.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(format = "email")]
    email: String,
    #[schema(min_length = 1, max_length = 100)]
    display_name: String,
    #[schema(format = "password", min_length = 10, max_length = 1024)]
    password: String,
    #[serde(default)]
    is_platform_admin: bool,
}

/// Creates an account (with its personal organization).
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require_platform_admin()?;
    let email = Email::parse(&body.email)?;
    let name = DisplayName::parse(&body.display_name)?;
    let password = Password::parse(&body.password)?;
    let hash = state.hasher.hash(password.expose()).await?;
    let mut tx = state.db.begin().await?;
    let (user, _) =
        crate::accounts::create(&mut tx, &email, &name, &hash, body.is_platform_admin).await?;
    let entry = audit::Entry::by(&caller, "user.created", "user", user.to_string())
        .details(serde_json::json!({ "is_platform_admin": body.is_platform_admin }));
    audit::record(&mut *tx, entry).await?;
    let created = sqlx::query_as!(
        User,
        "SELECT id, email, display_name, is_platform_admin, created_at FROM users WHERE id = $1",
        user as UserId,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Changes to an account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    display_name: Option<String>,
    is_platform_admin: Option<bool>,
}

/// Renames an account or grants/withdraws platform administration. The last
/// platform admin cannot be demoted.
#[utoipa::path(patch, path = "/users/{user_id}", tag = "users", security(("bearer" = [])), request_body = UpdateUser,
    params(("user_id" = Uuid, Path, description = "user id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateUser>,
) -> ApiResult<Json<User>> {
    caller.require_platform_admin()?;
    let name = body
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()?;
    let mut tx = state.db.begin().await?;
    // Serialize admin changes so two demotions cannot both pass the check.
    sqlx::query!(
        r#"SELECT pg_advisory_xact_lock(hashtext('inventiv.platform_admins')) AS "locked: ()""#
    )
    .execute(&mut *tx)
    .await?;
    let user = sqlx::query_as!(
        User,
        "UPDATE users SET display_name = COALESCE($2, display_name),
                          is_platform_admin = COALESCE($3, is_platform_admin), updated_at = now()
          WHERE id = $1 RETURNING id, email, display_name, is_platform_admin, created_at",
        id,
        name.as_ref().map(DisplayName::as_str),
        body.is_platform_admin,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    let admins =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM users WHERE is_platform_admin"#)
            .fetch_one(&mut *tx)
            .await?;
    if admins == 0 {
        return Err(ApiError::conflict(
            "LAST_PLATFORM_ADMIN",
            "at least one platform administrator must remain",
        ));
    }
    if let Some(flag) = body.is_platform_admin {
        let entry = audit::Entry::by(
            &caller,
            if flag {
                "user.platform_admin_granted"
            } else {
                "user.platform_admin_revoked"
            },
            "user",
            UserId(id).to_string(),
        );
        audit::record(&mut *tx, entry).await?;
    }
    tx.commit().await?;
    Ok(Json(user))
}
