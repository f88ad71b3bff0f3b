//! Per-key rate limits shared by every replica through Redis: requests and
//! tokens per minute (fixed one-minute windows), with `x-ratelimit-*`
//! headers. Keys without limits cost no Redis round trip.

use axum::http::{HeaderMap, HeaderValue};
use uuid::Uuid;

use super::error::OpenAiError;
use super::keys::KeyInfo;
use crate::state::AppState;

/// The limits of one request's key and what was left when it was admitted.
#[derive(Clone, Default)]
pub struct Limits {
    key: Option<Uuid>,
    minute: i64,
    rpm: Option<i64>,
    tpm: Option<i64>,
    remaining_requests: Option<i64>,
    remaining_tokens: Option<i64>,
}

fn window_keys(state: &AppState, key: Uuid, minute: i64) -> (String, String) {
    (
        state.redis_key(&format!("rl:req:{key}:{minute}")),
        state.redis_key(&format!("rl:tok:{key}:{minute}")),
    )
}

/// Admits a request or answers 429.
pub async fn check(state: &AppState, key: Option<&KeyInfo>) -> Result<Limits, OpenAiError> {
    let Some(key) = key.filter(|k| k.rpm_limit.is_some() || k.tpm_limit.is_some()) else {
        return Ok(Limits::default());
    };
    let now = chrono::Utc::now().timestamp();
    let minute = now / 60;
    let retry = 60 - now % 60;
    let (req_key, tok_key) = window_keys(state, key.id, minute);
    let mut redis = state.redis.clone();
    // Boxed: only keys with limits pay for it, the others' requests
    // keep a small future.
    let (requests, tokens): (i64, Option<i64>) = Box::pin(
        redis::pipe()
            .atomic()
            .incr(&req_key, 1)
            .expire(&req_key, 120)
            .ignore()
            .get(&tok_key)
            .query_async(&mut redis),
    )
    .await
    .map_err(|e| OpenAiError::from(crate::error::ApiError::from(e)))?;
    let rpm = key.rpm_limit.map(i64::from);
    let tpm = key.tpm_limit.map(i64::from);
    if rpm.is_some_and(|l| requests > l) {
        return Err(OpenAiError::rate_limited(
            u64::try_from(retry).unwrap_or(60),
            "requests per minute",
        ));
    }
    let tokens = tokens.unwrap_or(0);
    if tpm.is_some_and(|l| tokens >= l) {
        return Err(OpenAiError::rate_limited(
            u64::try_from(retry).unwrap_or(60),
            "tokens per minute",
        ));
    }
    Ok(Limits {
        key: Some(key.id),
        minute,
        rpm,
        tpm,
        remaining_requests: rpm.map(|l| (l - requests).max(0)),
        remaining_tokens: tpm.map(|l| (l - tokens).max(0)),
    })
}

impl Limits {
    /// Counts the tokens a request used against its key's window.
    pub async fn spend(&self, state: &AppState, tokens: i64) {
        let (Some(key), Some(_)) = (self.key, self.tpm) else {
            return;
        };
        let (_, tok_key) = window_keys(state, key, self.minute);
        let mut redis = state.redis.clone();
        let result: redis::RedisResult<()> = Box::pin(
            redis::pipe()
                .incr(&tok_key, tokens)
                .ignore()
                .expire(&tok_key, 120)
                .ignore()
                .query_async(&mut redis),
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, request_id = %crate::request_id::shown(), "token count not recorded");
        }
    }

    /// Adds the `x-ratelimit-*` headers.
    pub fn headers(&self, headers: &mut HeaderMap) {
        let pairs = [
            ("x-ratelimit-limit-requests", self.rpm),
            ("x-ratelimit-remaining-requests", self.remaining_requests),
            ("x-ratelimit-limit-tokens", self.tpm),
            ("x-ratelimit-remaining-tokens", self.remaining_tokens),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                headers.insert(name, HeaderValue::from(v));
            }
        }
    }
}
