//! Login throttling in Redis, so it holds across API replicas. Failures are
//! counted per (account, client address), per address and per account:
//!  - N failures for one account from one address: that pair waits;
//!  - 4N failures from one address (password spraying): that address waits;
//!  - 4N failures for one account from anywhere (a distributed guess): only
//!    addresses the account never logged in from wait; the owner's known
//!    addresses still get in, so nobody can lock a victim out.
//!
//! Each wait lasts until the window that began at the first failure ends.

use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The counters one login attempt touches.
pub struct Keys {
    pair: String,
    ip: String,
    account: String,
    known: String,
    client: String,
}

impl Keys {
    /// Counters for this email (hashed: no address in Redis) and client address.
    pub fn new(state: &AppState, email: &str, ip: &str) -> Keys {
        let digest = hex::encode(Sha256::digest(email.as_bytes()));
        let client = hex::encode(Sha256::digest(ip.as_bytes()));
        Keys {
            pair: state.redis_key(&format!("login-failures:pair:{digest}:{client}")),
            ip: state.redis_key(&format!("login-failures:ip:{client}")),
            account: state.redis_key(&format!("login-failures:account:{digest}")),
            known: state.redis_key(&format!("login-known:{digest}")),
            client,
        }
    }
}

/// Refuses with 429 while a limit of the module's rules is reached.
pub async fn check(state: &AppState, keys: &Keys) -> ApiResult<()> {
    let max = state.config.login_max_failures;
    let mut redis = state.redis.clone();
    let (pair, ip, account): (Option<u32>, Option<u32>, Option<u32>) =
        redis.mget(&[&keys.pair, &keys.ip, &keys.account]).await?;
    let blocked = if pair.unwrap_or(0) >= max {
        Some((&keys.pair, "account and address"))
    } else if ip.unwrap_or(0) >= max.saturating_mul(4) {
        Some((&keys.ip, "address"))
    } else if account.unwrap_or(0) >= max.saturating_mul(4) {
        let known: bool = redis.sismember(&keys.known, &keys.client).await?;
        (!known).then_some((&keys.account, "account from a new address"))
    } else {
        None
    };
    if let Some((key, kind)) = blocked {
        let ttl: i64 = redis.ttl(key).await?;
        tracing::warn!(kind, "login throttled");
        return Err(ApiError::rate_limited(
            u64::try_from(ttl).unwrap_or(1).max(1),
        ));
    }
    Ok(())
}

/// Counts one failed attempt; each window starts at its first failure.
pub async fn record_failure(state: &AppState, keys: &Keys) -> ApiResult<()> {
    let window = i64::try_from(state.config.login_lockout.as_secs())
        .unwrap_or(900)
        .max(1);
    let mut pipe = redis::pipe();
    for key in [&keys.pair, &keys.ip, &keys.account] {
        pipe.incr(key, 1).ignore();
        pipe.cmd("EXPIRE").arg(key).arg(window).arg("NX").ignore();
    }
    let mut redis = state.redis.clone();
    pipe.query_async::<()>(&mut redis).await?;
    Ok(())
}

/// After a successful login: forgets this pair's failures and remembers
/// the address as one the account uses (for as long as a session lives).
pub async fn clear(state: &AppState, keys: &Keys) -> ApiResult<()> {
    let ttl = i64::try_from(state.config.session_ttl.as_secs())
        .unwrap_or(604_800)
        .max(1);
    let mut redis = state.redis.clone();
    redis::pipe()
        .del(&keys.pair)
        .ignore()
        .sadd(&keys.known, &keys.client)
        .ignore()
        .expire(&keys.known, ttl)
        .ignore()
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}
