//! The HTTP side of the Scaleway provider: every call carries the
//! organization's `X-Auth-Token`, has a timeout, and is retried with
//! exponential backoff on 429, 5xx and network errors when retrying is
//! safe (a create that got a 5xx may have happened: it is not retried, the
//! orchestrator looks for the tagged server instead). Error answers become
//! [`ProviderError`]s in [`super::errors`]. List answers expose their
//! paging headers: the Instance API sends its total in `X-Total-Count` and
//! the pages in `Link`, not in the body.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::errors;
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

/// What a list answer says about the pages, from its headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Paging {
    /// `X-Total-Count`: items in all pages.
    pub total: Option<u64>,
    /// From `Link`: whether it names a `rel="next"` page (`None` without
    /// a `Link` header).
    pub has_next: Option<bool>,
}

impl Paging {
    /// Reads `X-Total-Count` and `Link`.
    pub fn from_headers(headers: &HeaderMap) -> Paging {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Paging::parse(text("x-total-count"), text("link"))
    }

    /// Reads the values of `X-Total-Count` and `Link`.
    pub fn parse(total: Option<&str>, link: Option<&str>) -> Paging {
        Paging {
            total: total.and_then(|t| t.trim().parse().ok()),
            has_next: link.map(|l| {
                l.split(',')
                    .any(|part| part.split(';').skip(1).any(|p| p.trim() == "rel=\"next\""))
            }),
        }
    }

    /// Whether a page follows page `page` (from 1) of `per_page` items
    /// that held `got`: as `Link` says, else as the total says, else
    /// unless the page was short.
    pub fn more(&self, page: u64, per_page: u64, got: usize) -> bool {
        if got == 0 {
            return false;
        }
        if let Some(next) = self.has_next {
            return next;
        }
        match self.total {
            Some(total) => page.saturating_mul(per_page) < total,
            None => got as u64 >= per_page,
        }
    }
}

/// A list longer than this many pages is a loop, not a list.
const MAX_PAGES: u64 = 1000;

/// A client bound to one secret key.
pub struct Http {
    client: reqwest::Client,
    base_url: String,
    token: SecretString,
    retry: RetryPolicy,
}

/// A request body, serialized.
struct Payload {
    content_type: &'static str,
    bytes: Vec<u8>,
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

    /// Sends a request with an optional JSON body and decodes a JSON
    /// answer; `Ok(None)` for an empty body (204).
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        replay: Replay,
    ) -> Result<Option<T>, ProviderError> {
        let payload = match body {
            Some(b) => Some(Payload {
                content_type: "application/json",
                bytes: serde_json::to_vec(b).map_err(|e| {
                    ProviderError::Internal(format!("{method} {path}: cannot encode: {e}"))
                })?,
            }),
            None => None,
        };
        let (_, bytes) = self.send(&method, path, query, payload, replay).await?;
        decode(&method, path, &bytes)
    }

    /// A page of an Instance API list (GET, safe to replay): the body and
    /// what its headers say about the other pages.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(T, Paging), ProviderError> {
        let (headers, bytes) = self
            .send(&Method::GET, path, query, None, Replay::Safe)
            .await?;
        let body = decode(&Method::GET, path, &bytes)?.ok_or_else(|| {
            ProviderError::Internal(format!("GET {path}: an empty answer to a list"))
        })?;
        Ok((body, Paging::from_headers(&headers)))
    }

    /// Every item of an Instance API list at `path`, page after page of
    /// `per_page` items, as the headers (or a short page) say; `items`
    /// takes a page's items out of its body.
    pub async fn all_pages<T: DeserializeOwned, I>(
        &self,
        path: &str,
        query: &[(&str, String)],
        per_page: u64,
        mut items: impl FnMut(T) -> Vec<I>,
    ) -> Result<Vec<I>, ProviderError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", per_page.to_string()));
            let (body, paging) = self.list::<T>(path, &q).await?;
            let got = items(body);
            let count = got.len();
            all.extend(got);
            if !paging.more(page, per_page, count) {
                return Ok(all);
            }
        }
        Err(ProviderError::Internal(format!(
            "GET {path}: more than {MAX_PAGES} pages"
        )))
    }

    /// Sends a `text/plain` body (user data); the answer's body is ignored.
    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        text: &str,
    ) -> Result<(), ProviderError> {
        let payload = Payload {
            content_type: "text/plain",
            bytes: text.as_bytes().to_vec(),
        };
        self.send(&method, path, &[], Some(payload), Replay::Safe)
            .await
            .map(drop)
    }

    async fn send(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        payload: Option<Payload>,
        replay: Replay,
    ) -> Result<(HeaderMap, Vec<u8>), ProviderError> {
        let mut attempt = 1;
        loop {
            let outcome = self.once(method, path, query, payload.as_ref()).await;
            let retry = match &outcome {
                Err(Failure::RateLimited(_)) => true,
                Err(Failure::Unsure(_)) => replay == Replay::Safe,
                _ => false,
            };
            if !retry || attempt >= self.retry.attempts {
                return outcome.map_err(|f| f.into_error(method, path));
            }
            let delay = self.retry.base_delay * 2u32.saturating_pow(attempt - 1);
            tracing::debug!(%method, path, attempt, ?delay, "scaleway call retried");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        payload: Option<&Payload>,
    ) -> Result<(HeaderMap, Vec<u8>), Failure> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url))
            .header("X-Auth-Token", self.token.expose_secret())
            .query(query);
        if let Some(p) = payload {
            request = request
                .header(CONTENT_TYPE, p.content_type)
                .body(p.bytes.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Unsure(ProviderError::Transient(e.to_string())))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Unsure(ProviderError::Transient(e.to_string())))?;
        if status.is_success() {
            return Ok((headers, bytes.to_vec()));
        }
        let error = errors::classify(status.as_u16(), &bytes);
        Err(match status.as_u16() {
            429 => Failure::RateLimited(error),
            500..=599 => Failure::Unsure(error),
            _ => Failure::Final(error),
        })
    }
}

fn decode<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    bytes: &[u8],
) -> Result<Option<T>, ProviderError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| ProviderError::Internal(format!("{method} {path}: unexpected answer: {e}")))
}

/// A failed attempt, before deciding whether to retry.
enum Failure {
    RateLimited(ProviderError),
    /// 5xx or network: the request may or may not have happened.
    Unsure(ProviderError),
    Final(ProviderError),
}

impl Failure {
    /// The error, with the call named where the text is not Scaleway's
    /// message for users (quota, stock, credentials keep theirs as is).
    fn into_error(self, method: &Method, path: &str) -> ProviderError {
        let (Failure::RateLimited(e) | Failure::Unsure(e) | Failure::Final(e)) = self;
        let at = |m: String| format!("{method} {path}: {m}");
        match e {
            ProviderError::Transient(m) => ProviderError::Transient(at(m)),
            ProviderError::NotFound(m) => ProviderError::NotFound(at(m)),
            ProviderError::InvalidRequest(m) => ProviderError::InvalidRequest(at(m)),
            ProviderError::Refused(m) => ProviderError::Refused(at(m)),
            ProviderError::Internal(m) => ProviderError::Internal(at(m)),
            user_facing => user_facing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Paging;

    #[test]
    fn paging_follows_link_then_total_then_short_pages() {
        let first = Paging::parse(
            Some("135"),
            Some(
                r#"</products/servers?page=2&per_page=50&>; rel="next",</products/servers?page=3&per_page=50&>; rel="last""#,
            ),
        );
        assert_eq!((first.total, first.has_next), (Some(135), Some(true)));
        assert!(first.more(1, 50, 50));
        let last = Paging::parse(
            Some("135"),
            Some(
                r#"</products/servers?page=1&per_page=50&>; rel="first",</products/servers?page=2&per_page=50&>; rel="previous",</products/servers?page=3&per_page=50&>; rel="last""#,
            ),
        );
        assert!(!last.more(3, 50, 35));
        assert!(Paging::parse(Some("75"), None).more(1, 50, 50));
        assert!(!Paging::parse(Some("75"), None).more(2, 50, 25));
        assert!(Paging::default().more(1, 50, 50));
        assert!(!Paging::default().more(1, 50, 49));
        assert!(!Paging::parse(Some("3"), None).more(1, 50, 0));
    }
}
