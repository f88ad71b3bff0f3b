//! Fixed-window rate limits in Redis (shared by every replica): at most
//! `max` hits per `window` per subject (a client address or a user), then
//! 429 `RATE_LIMITED` with Retry-After until the window ends.

use redis::AsyncCommands;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// One limit: its name (part of the Redis key), budget and window.
pub struct Limit {
    pub name: &'static str,
    pub max: u32,
    pub window_secs: u64,
}

/// Unauthenticated routes that hash a password (invitation acceptance,
/// password reset), per client address.
pub const PASSWORD_TOKEN_PER_IP: Limit = Limit {
    name: "password-token-ip",
    max: 20,
    window_secs: 600,
};

/// Password reset requests (each may send a mail), per client address.
pub const RESET_REQUEST_PER_IP: Limit = Limit {
    name: "reset-request-ip",
    max: 20,
    window_secs: 600,
};

/// Invitations sent (each sends a mail), per inviting user.
pub const INVITATIONS_PER_USER: Limit = Limit {
    name: "invitations-user",
    max: 50,
    window_secs: 3600,
};

/// Objects created (organizations, keys, deployments, offerings...), per user.
pub const CREATIONS_PER_USER: Limit = Limit {
    name: "creations-user",
    max: 120,
    window_secs: 600,
};

/// Counts one object created by `user` against [`CREATIONS_PER_USER`].
pub async fn creation(state: &AppState, user: inventiv_common::UserId) -> ApiResult<()> {
    hit(state, &CREATIONS_PER_USER, &user.to_string()).await
}

/// Counts one hit of `subject` against `limit`; 429 once over budget.
pub async fn hit(state: &AppState, limit: &Limit, subject: &str) -> ApiResult<()> {
    let key = state.redis_key(&format!("rate:{}:{subject}", limit.name));
    let window = i64::try_from(limit.window_secs).unwrap_or(60).max(1);
    let mut redis = state.redis.clone();
    let (count,): (u32,) = redis::pipe()
        .incr(&key, 1)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(window)
        .arg("NX")
        .ignore()
        .query_async(&mut redis)
        .await?;
    if count <= limit.max {
        return Ok(());
    }
    let ttl: i64 = redis.ttl(&key).await?;
    tracing::warn!(limit = limit.name, "rate limited");
    Err(ApiError::rate_limited(
        u64::try_from(ttl).unwrap_or(1).max(1),
    ))
}
