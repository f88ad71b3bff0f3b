//! Login, registration, token refresh, logout and the caller's own profile.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use inventiv_common::{DisplayName, Email, OrgId, OrgRole, Password, SessionId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::caller::{ACCESS_COOKIE, REFRESH_COOKIE};
use crate::auth::{throttle, tokens, Caller};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, OptionalJson};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(register))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(get_me, update_me))
        .routes(routes!(change_password))
}

/// Credentials for `POST /auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(format = "email")]
    email: String,
    #[schema(format = "password")]
    password: String,
}

/// A new account, when open sign-up is enabled.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(format = "email")]
    email: String,
    #[schema(min_length = 1, max_length = 100)]
    display_name: String,
    #[schema(format = "password", min_length = 10, max_length = 1024)]
    password: String,
}

/// The tokens of a session. The same values are also set as HttpOnly cookies.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Short-lived HS256 JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use token for `POST /auth/refresh`; rotated on each use.
    pub refresh_token: String,
    pub session_id: SessionId,
    pub organization_id: OrgId,
}

/// Where a request came from, recorded on the session.
pub struct Client {
    pub ip: String,
    pub user_agent: Option<String>,
}

impl Client {
    pub fn new(ip: IpAddr, headers: &HeaderMap) -> Client {
        let user_agent = headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Client {
            ip: ip.to_string(),
            user_agent,
        }
    }
}

fn cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> Option<HeaderValue> {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// Sets (or, with `None`, clears) the session cookies on a response.
pub fn with_cookies(
    state: &AppState,
    tokens: Option<&TokenResponse>,
    mut response: Response,
) -> Response {
    let session_secs = i64::try_from(state.config.session_ttl.as_secs()).unwrap_or(0);
    let cookies = match tokens {
        Some(t) => [
            cookie(state, ACCESS_COOKIE, &t.access_token, "/", t.expires_in),
            cookie(
                state,
                REFRESH_COOKIE,
                &t.refresh_token,
                "/auth",
                session_secs,
            ),
        ],
        None => [
            cookie(state, ACCESS_COOKIE, "", "/", 0),
            cookie(state, REFRESH_COOKIE, "", "/auth", 0),
        ],
    };
    for value in cookies.into_iter().flatten() {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

fn issue(
    state: &AppState,
    user: UserId,
    session: SessionId,
    org: OrgId,
    refresh: String,
) -> ApiResult<TokenResponse> {
    let access_token = state
        .jwt
        .issue(user, session, org)
        .map_err(|e| anyhow::anyhow!("jwt: {e}"))?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs(),
        refresh_token: refresh,
        session_id: session,
        organization_id: org,
    })
}

/// Opens a session for `user` in `org` and returns its tokens.
pub async fn open_session(
    db: impl sqlx::PgExecutor<'_>,
    state: &AppState,
    user: UserId,
    org: OrgId,
    client: &Client,
) -> ApiResult<TokenResponse> {
    let session = SessionId::new();
    let (refresh, refresh_hash) = tokens::generate();
    let expires = Utc::now() + state.config.session_ttl;
    sqlx::query!(
        "INSERT INTO user_sessions (id, user_id, organization_id, refresh_token_hash, ip, user_agent, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        session as SessionId,
        user as UserId,
        org as OrgId,
        refresh_hash,
        client.ip,
        client.user_agent,
        expires,
    )
    .execute(db)
    .await?;
    issue(state, user, session, org, refresh)
}

/// A fresh access token for an existing session (after switching organization).
pub fn reissue(state: &AppState, caller: &Caller, org: OrgId) -> ApiResult<String> {
    state
        .jwt
        .issue(caller.user_id, caller.session_id, org)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("jwt: {e}")))
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized {
        code: "INVALID_CREDENTIALS",
        message: "invalid email or password".into(),
    }
}

struct LoginRow {
    id: UserId,
    password_hash: String,
}

/// Logs in with email and password. Unknown email and wrong password get the
/// same answer in comparable time; repeated failures are throttled.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many failures; see Retry-After")))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Response> {
    let email = Email::parse(&body.email)?;
    if body.password.len() > Password::MAX_LEN {
        return Err(invalid_credentials());
    }
    let client = Client::new(ip, &headers);
    let keys = throttle::Keys::new(&state, email.as_str(), &client.ip);
    throttle::check(&state, &keys).await?;
    let row = sqlx::query_as!(
        LoginRow,
        r#"SELECT id AS "id: UserId", password_hash FROM users WHERE email = $1"#,
        email.as_str(),
    )
    .fetch_optional(&state.db)
    .await?;
    let ok = state
        .hasher
        .verify(
            &body.password,
            row.as_ref().map(|r| r.password_hash.as_str()),
        )
        .await?;
    let Some(row) = row.filter(|_| ok) else {
        throttle::record_failure(&state, &keys).await?;
        return Err(invalid_credentials());
    };
    throttle::clear(&state, &keys).await?;
    let user = row.id;
    // Resume in the organization of the most recent session, if still a member.
    let org = sqlx::query_scalar!(
        r#"SELECT COALESCE(
            (SELECT s.organization_id FROM user_sessions s
               JOIN organization_memberships m ON m.organization_id = s.organization_id AND m.user_id = s.user_id
              WHERE s.user_id = $1 ORDER BY s.created_at DESC LIMIT 1),
            (SELECT id FROM organizations WHERE created_by = $1 AND kind = 'personal')) AS "org!: OrgId""#,
        user as UserId,
    )
    .fetch_one(&state.db)
    .await?;
    let mut tx = state.db.begin().await?;
    let tokens = open_session(&mut *tx, &state, user, org, &client).await?;
    let entry = audit::Entry {
        org,
        actor: Some(user),
        action: "auth.login",
        // Never the session id: with it, whoever can read the audit log
        // holds half of what a session token is made of.
        target_type: "user",
        target_id: user.to_string(),
        details: serde_json::json!({ "ip": client.ip }),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user, session_id = %tokens.session_id, "login");
    Ok(with_cookies(
        &state,
        Some(&tokens),
        Json(&tokens).into_response(),
    ))
}

/// Creates an account with its personal organization (only with `INVENTIV_OPEN_SIGNUP=true`).
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<Response> {
    if !state.config.open_signup {
        return Err(ApiError::Forbidden {
            code: "SIGNUP_DISABLED",
            message: "sign-up is by invitation; ask an organization to invite you".into(),
        });
    }
    let email = Email::parse(&body.email)?;
    let name = DisplayName::parse(&body.display_name)?;
    let password = Password::parse(&body.password)?;
    let hash = state.hasher.hash(password.expose()).await?;
    let client = Client::new(ip, &headers);
    let mut tx = state.db.begin().await?;
    let (user, org) = crate::accounts::create(&mut tx, &email, &name, &hash, false).await?;
    let tokens = open_session(&mut *tx, &state, user, org, &client).await?;
    let entry = audit::Entry {
        org,
        actor: Some(user),
        action: "user.registered",
        target_type: "user",
        target_id: user.to_string(),
        details: serde_json::json!({}),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    Ok(with_cookies(
        &state,
        Some(&tokens),
        (StatusCode::CREATED, Json(&tokens)).into_response(),
    ))
}

/// Body of `POST /auth/refresh`; without it the refresh cookie is used.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

struct RefreshRow {
    id: SessionId,
    user_id: UserId,
    organization_id: OrgId,
}

/// Trades a refresh token (body or cookie) for a new access token and a new
/// refresh token, while the session lives.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body(content = Option<RefreshRequest>),
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> ApiResult<Response> {
    let token = match body {
        Some(body) => Some(body.refresh_token),
        None => crate::auth::caller::cookie_in(&headers, REFRESH_COOKIE).map(str::to_owned),
    };
    let invalid = || ApiError::Unauthorized {
        code: "INVALID_REFRESH_TOKEN",
        message: "the session has ended; log in again".into(),
    };
    let token = token
        .filter(|t| tokens::well_formed(t))
        .ok_or_else(invalid)?;
    let (next, next_hash) = tokens::generate();
    let row = sqlx::query_as!(
        RefreshRow,
        r#"UPDATE user_sessions SET refresh_token_hash = $2, last_seen_at = now()
          WHERE refresh_token_hash = $1 AND revoked_at IS NULL AND expires_at > now()
          RETURNING id AS "id: SessionId", user_id AS "user_id: UserId", organization_id AS "organization_id: OrgId""#,
        tokens::hash(&token),
        next_hash,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(invalid)?;
    let tokens = issue(&state, row.user_id, row.id, row.organization_id, next)?;
    Ok(with_cookies(
        &state,
        Some(&tokens),
        Json(&tokens).into_response(),
    ))
}

/// Ends the current session and clears the cookies.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    sqlx::query!(
        "UPDATE user_sessions SET revoked_at = now(), revoked_reason = 'logout' WHERE id = $1 AND revoked_at IS NULL",
        caller.session_id as SessionId,
    )
    .execute(&state.db)
    .await?;
    crate::events::access_changed(&state, None, Some(caller.user_id.0)).await;
    Ok(with_cookies(
        &state,
        None,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

/// The caller's account.
#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub is_platform_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// An organization the caller belongs to, with their role in it.
#[derive(Clone, Serialize, ToSchema)]
pub struct Membership {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// `personal` or `team`.
    pub kind: String,
    pub sidebar_color: Option<String>,
    pub role: OrgRole,
}

/// Who is calling, where, and with which role.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    pub current_organization: Membership,
    pub memberships: Vec<Membership>,
    pub session_id: SessionId,
}

struct MembershipRow {
    id: Uuid,
    name: String,
    slug: String,
    kind: String,
    sidebar_color: Option<String>,
    role: String,
}

/// The caller's memberships, most recent first.
pub async fn memberships(state: &AppState, user: UserId) -> ApiResult<Vec<Membership>> {
    let rows = sqlx::query_as!(
        MembershipRow,
        "SELECT o.id, o.name, o.slug, o.kind, o.sidebar_color, m.role
           FROM organization_memberships m JOIN organizations o ON o.id = m.organization_id
          WHERE m.user_id = $1 ORDER BY o.kind = 'personal' DESC, m.created_at",
        user as UserId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let role = OrgRole::parse(&r.role)?;
            Some(Membership {
                id: r.id,
                name: r.name,
                slug: r.slug,
                kind: r.kind,
                sidebar_color: r.sidebar_color,
                role,
            })
        })
        .collect())
}

async fn load_me(state: &AppState, caller: &Caller) -> ApiResult<Me> {
    let user = sqlx::query_as!(
        User,
        "SELECT id, email, display_name, is_platform_admin, created_at FROM users WHERE id = $1",
        caller.user_id as UserId,
    )
    .fetch_one(&state.db)
    .await?;
    let memberships = memberships(state, caller.user_id).await?;
    let current = memberships
        .iter()
        .find(|m| m.id == caller.org_id.0)
        .cloned()
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Me {
        user,
        current_organization: current,
        memberships,
        session_id: caller.session_id,
    })
}

/// The caller, their current organization and role, and every membership.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn get_me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    load_me(&state, &caller).await.map(Json)
}

/// Profile changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    #[schema(min_length = 1, max_length = 100)]
    display_name: String,
}

/// Changes the caller's display name.
#[utoipa::path(put, path = "/auth/me", tag = "auth", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, body = Me), (status = 400, body = ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UpdateMe>,
) -> ApiResult<Json<Me>> {
    let name = DisplayName::parse(&body.display_name)?;
    sqlx::query!(
        "UPDATE users SET display_name = $2, updated_at = now() WHERE id = $1",
        caller.user_id as UserId,
        name.as_str(),
    )
    .execute(&state.db)
    .await?;
    load_me(&state, &caller).await.map(Json)
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(format = "password")]
    current_password: String,
    #[schema(format = "password", min_length = 10, max_length = 1024)]
    new_password: String,
}

/// Changes the caller's password and revokes their other sessions.
#[utoipa::path(put, path = "/auth/me/password", tag = "auth", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Caller,
    Json(body): Json<ChangePassword>,
) -> ApiResult<StatusCode> {
    let new = Password::parse(&body.new_password)?;
    let row = sqlx::query!(
        "SELECT email, password_hash FROM users WHERE id = $1",
        caller.user_id as UserId,
    )
    .fetch_one(&state.db)
    .await?;
    let (email, hash) = (row.email, row.password_hash);
    let keys = throttle::Keys::new(&state, &email, &ip.to_string());
    throttle::check(&state, &keys).await?;
    let current_ok = body.current_password.len() <= Password::MAX_LEN
        && state
            .hasher
            .verify(&body.current_password, Some(&hash))
            .await?;
    if !current_ok {
        throttle::record_failure(&state, &keys).await?;
        return Err(ApiError::validation(
            "WRONG_PASSWORD",
            "the current password is not correct",
        ));
    }
    let new_hash = state.hasher.hash(new.expose()).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        caller.user_id as UserId,
        new_hash,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE user_sessions SET revoked_at = now(), revoked_reason = 'password_changed'
          WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
        caller.user_id as UserId,
        caller.session_id as SessionId,
    )
    .execute(&mut *tx)
    .await?;
    // A reset link mailed earlier must not undo the change.
    sqlx::query!(
        "UPDATE password_reset_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(
        &caller,
        "user.password_changed",
        "user",
        caller.user_id.to_string(),
    );
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    crate::events::access_changed(&state, None, Some(caller.user_id.0)).await;
    Ok(StatusCode::NO_CONTENT)
}
