//! The HTTP side of the Scaleway provider: every call carries the
//! organization's `X-Auth-Token`, has a timeout, and is retried with
//! exponential backoff on 429, 5xx and network errors when retrying is
//! safe (a create that got a 5xx may have happened: it is not retried, the
//! orchestrator looks for the tagged server instead). Status codes map to
//! [`ProviderError`] kinds.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ProviderError;

/// How calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub base_delay: Duration,
}

/// Whether a request may be sent again after an answer that does not say
/// whether it happened (5xx, lost connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Safe,
    /// Only a 429 (refused before doing anything) is retried.
    OnlyRateLimited,
}

/// A client bound to one secret key.
pub struct Http {
    client: reqwest::Client,
    base_url: String,
    token: SecretString,
    retry: RetryPolicy,
}

impl Http {
    pub fn new(
        client: reqwest::Client,
        base_url: &str,
        token: SecretString,
        retry: RetryPolicy,
    ) -> Http {
        Http {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            retry,
        }
    }

    /// Sends a request and decodes a JSON answer; `Ok(None)` for an empty
    /// body (204).
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        replay: Replay,
    ) -> Result<Option<T>, ProviderError> {
        let mut attempt = 1;
        loop {
            let outcome = self.once(method.clone(), path, query, body).await;
            let retry = match &outcome {
                Err(Failure::RateLimited(_)) => true,
                Err(Failure::Unsure(_)) => replay == Replay::Safe,
                _ => false,
            };
            if !retry || attempt >= self.retry.attempts {
                return match outcome {
                    Ok(bytes) if bytes.is_empty() => Ok(None),
                    Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                        ProviderError::Internal(format!("{method} {path}: unexpected answer: {e}"))
                    }),
                    Err(f) => Err(f.into_error()),
                };
            }
            let delay = self.retry.base_delay * 2u32.saturating_pow(attempt - 1);
            tracing::debug!(%method, path, attempt, ?delay, "scaleway call retried");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn once<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Vec<u8>, Failure> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url))
            .header("X-Auth-Token", self.token.expose_secret())
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Unsure(format!("{method} {path}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Unsure(format!("{method} {path}: {e}")))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let detail = format!(
            "{method} {path}: {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
        Err(Failure::from_status(status, detail))
    }
}

/// A failed attempt, before deciding whether to retry.
enum Failure {
    RateLimited(String),
    /// 5xx or network: the request may or may not have happened.
    Unsure(String),
    Final(ProviderError),
}

impl Failure {
    fn from_status(status: StatusCode, detail: String) -> Failure {
        match status.as_u16() {
            429 => Failure::RateLimited(detail),
            500..=599 => Failure::Unsure(detail),
            401 | 403 => Failure::Final(ProviderError::Unauthorized(detail)),
            404 => Failure::Final(ProviderError::NotFound(detail)),
            409 | 412 => Failure::Final(ProviderError::Refused(detail)),
            _ if detail.contains("quota") => Failure::Final(ProviderError::Quota(detail)),
            _ => Failure::Final(ProviderError::InvalidRequest(detail)),
        }
    }

    fn into_error(self) -> ProviderError {
        match self {
            Failure::RateLimited(d) | Failure::Unsure(d) => ProviderError::Transient(d),
            Failure::Final(e) => e,
        }
    }
}
