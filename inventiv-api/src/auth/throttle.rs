//! Login throttling in Redis, so it holds across API replicas: after N
//! failures for an account (or 4N from one address) within the lockout
//! window, further attempts get 429 with Retry-After until the window ends.

use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The counters one login attempt touches.
pub struct Keys {
    account: String,
    ip: String,
}

impl Keys {
    /// Counters for this email (hashed: no address in Redis) and client address.
    pub fn new(state: &AppState, email: &str, ip: &str) -> Keys {
        let digest = hex::encode(Sha256::digest(email.as_bytes()));
        Keys {
            account: state.redis_key(&format!("login-failures:account:{digest}")),
            ip: state.redis_key(&format!("login-failures:ip:{ip}")),
        }
    }
}

/// Refuses with 429 when either counter is at its limit.
pub async fn check(state: &AppState, keys: &Keys) -> ApiResult<()> {
    let max = state.config.login_max_failures;
    let mut redis = state.redis.clone();
    let (account, ip): (Option<u32>, Option<u32>) = redis.mget(&[&keys.account, &keys.ip]).await?;
    let blocked = if account.unwrap_or(0) >= max {
        Some(&keys.account)
    } else if ip.unwrap_or(0) >= max.saturating_mul(4) {
        Some(&keys.ip)
    } else {
        None
    };
    if let Some(key) = blocked {
        let ttl: i64 = redis.ttl(key).await?;
        tracing::warn!(
            kind = if key == &keys.account {
                "account"
            } else {
                "ip"
            },
            "login throttled"
        );
        return Err(ApiError::TooManyRequests {
            retry_after_secs: u64::try_from(ttl).unwrap_or(1).max(1),
        });
    }
    Ok(())
}

/// Counts one failed attempt; the window starts at the first failure.
pub async fn record_failure(state: &AppState, keys: &Keys) -> ApiResult<()> {
    let window = i64::try_from(state.config.login_lockout.as_secs())
        .unwrap_or(900)
        .max(1);
    let mut pipe = redis::pipe();
    for key in [&keys.account, &keys.ip] {
        pipe.incr(key, 1).ignore();
        pipe.cmd("EXPIRE").arg(key).arg(window).arg("NX").ignore();
    }
    let mut redis = state.redis.clone();
    pipe.query_async::<()>(&mut redis).await?;
    Ok(())
}

/// Forgets an account's failures after a successful login.
pub async fn clear(state: &AppState, keys: &Keys) -> ApiResult<()> {
    let mut redis = state.redis.clone();
    let _: () = redis.del(&keys.account).await?;
    Ok(())
}
