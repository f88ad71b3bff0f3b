//! The one extractor that says who is calling: the user, their session, the
//! session's current organization and their role in it.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use inventiv_common::{can, Action, OrgId, OrgRole, SessionId, UserId};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The cookie holding the access token for the dashboard.
pub const ACCESS_COOKIE: &str = "inventiv_access";
/// The cookie holding the refresh token, sent only to `/auth`.
pub const REFRESH_COOKIE: &str = "inventiv_refresh";

/// An authenticated caller with a live session.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub org_id: OrgId,
    pub role: OrgRole,
    pub is_platform_admin: bool,
}

impl Caller {
    /// Refuses with 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> ApiResult<()> {
        if can(self.role, action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role does not allow this",
                self.role
            )))
        }
    }

    /// Refuses with 403 unless the caller is a platform administrator.
    pub fn require_platform_admin(&self) -> ApiResult<()> {
        if self.is_platform_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("platform administrators only"))
        }
    }
}

/// Reads a cookie's value from request headers.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or_else(|| cookie_in(&parts.headers, ACCESS_COOKIE))
}

/// Resolves a token to a caller. The session row is read on every request,
/// so a revoked session stops working at once (no cache TTL).
pub async fn authenticate(state: &AppState, token: &str) -> ApiResult<Caller> {
    let claims = state.jwt.verify(token).ok_or(ApiError::Unauthenticated)?;
    let row = sqlx::query!(
        r#"SELECT s.organization_id, m.role AS "role?", u.is_platform_admin,
                (SELECT o.id FROM organizations o WHERE o.created_by = u.id AND o.kind = 'personal') AS personal_org
           FROM user_sessions s
           JOIN users u ON u.id = s.user_id
           LEFT JOIN organization_memberships m
                  ON m.organization_id = s.organization_id AND m.user_id = s.user_id
          WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()"#,
        claims.sid as SessionId,
        claims.sub as UserId,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::Unauthenticated)?;
    let (org, role) = match row.role.as_deref().and_then(OrgRole::parse) {
        Some(role) => (row.organization_id, role),
        // No longer a member of the current organization (removed, or it was
        // deleted): fall back to the personal organization.
        None => {
            let personal = row.personal_org.ok_or(ApiError::Unauthenticated)?;
            sqlx::query!(
                "UPDATE user_sessions SET organization_id = $2 WHERE id = $1",
                claims.sid as SessionId,
                personal,
            )
            .execute(&state.db)
            .await?;
            (personal, OrgRole::Owner)
        }
    };
    sqlx::query!(
        "UPDATE user_sessions SET last_seen_at = now() WHERE id = $1 AND last_seen_at < now() - interval '60 seconds'",
        claims.sid as SessionId,
    )
    .execute(&state.db)
    .await?;
    Ok(Caller {
        user_id: claims.sub,
        session_id: claims.sid,
        org_id: OrgId(org),
        role,
        is_platform_admin: row.is_platform_admin,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?.to_owned();
        authenticate(state, &token).await
    }
}

/// A caller when credentials are present and valid, None otherwise (for
/// public routes that behave differently for a logged-in user).
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<MaybeCaller> {
        let Some(token) = bearer(parts).map(str::to_owned) else {
            return Ok(MaybeCaller(None));
        };
        match authenticate(state, &token).await {
            Ok(caller) => Ok(MaybeCaller(Some(caller))),
            Err(ApiError::Unauthenticated) => Ok(MaybeCaller(None)),
            Err(e) => Err(e),
        }
    }
}
