//! Password reset by email: a single-use token, stored hashed, valid one hour.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use inventiv_common::{Email, OrgId, Password, UserId};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::tokens;
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::ratelimit;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_reset))
        .routes(routes!(reset))
}

/// Whose password to reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schema(format = "email")]
    email: String,
}

/// Same answer whether or not the account exists.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    status: &'static str,
}

/// Emails a reset link if the account exists (at most one mail a minute per
/// account). The answer never says whether it does.
#[utoipa::path(post, path = "/auth/password-reset/request", tag = "auth", request_body = ResetRequest,
    responses((status = 202, body = Accepted), (status = 400, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many requests from this address; see Retry-After")))]
async fn request_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ResetRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let email = Email::parse(&body.email)?;
    ratelimit::hit(&state, &ratelimit::RESET_REQUEST_PER_IP, &ip.to_string()).await?;
    let accepted = (StatusCode::ACCEPTED, Json(Accepted { status: "accepted" }));
    let found = sqlx::query!(
        r#"SELECT u.id AS user_id, o.id AS "org_id: OrgId" FROM users u JOIN organizations o ON o.created_by = u.id AND o.kind = 'personal' WHERE u.email = $1"#,
        email.as_str(),
    )
    .fetch_optional(&state.db)
    .await?;
    let Some((user, org)) = found.map(|r| (r.user_id, r.org_id)) else {
        return Ok(accepted);
    };
    let mut redis = state.redis.clone();
    let gate = state.redis_key(&format!("password-reset:{user}"));
    let first: bool = redis.set_nx(&gate, 1).await?;
    if !first {
        return Ok(accepted);
    }
    let _: () = redis.expire(&gate, 60).await?;
    let (token, hash) = tokens::generate();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        Uuid::new_v4(),
        user,
        hash,
        Utc::now() + state.config.password_reset_ttl,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry {
        org,
        actor: None,
        action: "user.password_reset_requested",
        target_type: "user",
        target_id: user.to_string(),
        details: serde_json::json!({}),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    let link = format!("{}/reset-password?token={token}", state.config.public_url);
    let minutes = state.config.password_reset_ttl.as_secs() / 60;
    let text = format!(
        "Someone asked to reset the password of your Inventiv account.\n\n\
         To choose a new password, open this link within {minutes} minutes:\n\n{link}\n\n\
         If it was not you, ignore this message: your password stays as it is.\n"
    );
    let mailer = state.mailer.clone();
    let to = email.as_str().to_owned();
    state.tasks.spawn(async move {
        if let Err(e) = mailer.send(&to, "Reset your Inventiv password", text).await {
            tracing::error!(error = %e, user_id = %user, "password reset mail not sent");
        }
    });
    Ok(accepted)
}

/// A reset token and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    token: String,
    #[schema(format = "password")]
    new_password: String,
}

/// Sets a new password with a reset token, once, and revokes every session
/// and every other reset token of the account.
#[utoipa::path(post, path = "/auth/password-reset/reset", tag = "auth", request_body = ResetPassword,
    responses((status = 204), (status = 400, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many attempts from this address; see Retry-After")))]
async fn reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ResetPassword>,
) -> ApiResult<StatusCode> {
    ratelimit::hit(&state, &ratelimit::PASSWORD_TOKEN_PER_IP, &ip.to_string()).await?;
    let password = Password::parse(&body.new_password)?;
    let invalid = || {
        ApiError::validation(
            "INVALID_TOKEN",
            "this reset link is invalid, used or expired",
        )
    };
    if !tokens::well_formed(&body.token) {
        return Err(invalid());
    }
    // The token first: a made-up one must not cost a password hash (the
    // hasher's few permits are shared with every login).
    let live = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM password_reset_tokens
                         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()) AS "exists!""#,
        tokens::hash(&body.token),
    )
    .fetch_one(&state.db)
    .await?;
    if !live {
        return Err(invalid());
    }
    let new_hash = state.hasher.hash(password.expose()).await?;
    let mut tx = state.db.begin().await?;
    let user = sqlx::query_scalar!(
        "UPDATE password_reset_tokens SET used_at = now()
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id",
        tokens::hash(&body.token),
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(invalid)?;
    let org = sqlx::query_scalar!(
        r#"UPDATE users u SET password_hash = $2, updated_at = now() FROM organizations o
          WHERE u.id = $1 AND o.created_by = u.id AND o.kind = 'personal' RETURNING o.id AS "id: OrgId""#,
        user,
        new_hash,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE user_sessions SET revoked_at = now(), revoked_reason = 'password_reset' WHERE user_id = $1 AND revoked_at IS NULL",
        user,
    )
    .execute(&mut *tx)
    .await?;
    // Other links sent earlier die with this one.
    sqlx::query!(
        "UPDATE password_reset_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        user,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry {
        org,
        actor: Some(UserId(user)),
        action: "user.password_reset",
        target_type: "user",
        target_id: user.to_string(),
        details: serde_json::json!({}),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    crate::events::access_changed(&state, None, Some(user)).await;
    Ok(StatusCode::NO_CONTENT)
}
