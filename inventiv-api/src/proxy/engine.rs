//! The proxy's client for one worker's relay: hyper's pooled HTTP/1 client
//! over TLS that accepts exactly the relay's pinned certificate, with the
//! relay key on every request. Hyper directly rather than reqwest: on this
//! path reqwest parsed each request's URL three times (its cookie,
//! redirect and pending layers) and cloned its layers per request, about a
//! tenth of the API's CPU per request (see docs/architecture.md, "Hot
//! path"). What reqwest gave is kept: a short connect timeout (a dead node
//! is skipped quickly), TCP_NODELAY, HTTPS only, no redirect ever followed
//! (a 3xx is the worker's answer), and a read timeout that applies to the
//! answer's head and to every read of its body.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use futures_util::Stream;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use inventiv_store::relay::{ClientError, RelayAccess, RELAY_KEY_HEADER};

/// How long connecting to a relay may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The relay key's header, parsed once.
const RELAY_KEY: HeaderName = HeaderName::from_static(RELAY_KEY_HEADER);
/// Idle connections kept per relay.
const MAX_IDLE: usize = 256;

/// One worker's client.
pub struct EngineClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    key: HeaderValue,
    read_timeout: Duration,
}

impl std::fmt::Debug for EngineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never shown.
        f.debug_struct("EngineClient")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

/// Why a request did not get an answer's head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Why reading an answer's body stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the worker sent nothing for {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Broken(#[from] hyper::Error),
}

/// A worker's answer: its head read, its body still to come.
pub struct Answer {
    status: StatusCode,
    declared: Option<u64>,
    body: Incoming,
    read_timeout: Duration,
}

impl EngineClient {
    /// The client of the relay `access` describes; `read_timeout` bounds
    /// the wait for the answer's head and each wait for its body's bytes.
    pub fn new(access: &RelayAccess, read_timeout: Duration) -> Result<EngineClient, ClientError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        // The connector sets ALPN itself (http/1.1, from `enable_http1`).
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(inventiv_store::relay::pinned_tls(access)?)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE)
            .build(https);
        Ok(EngineClient {
            client,
            key: inventiv_store::relay::key_header(access)?,
            read_timeout,
        })
    }

    /// POSTs a JSON `body` to `uri` with `headers` (and the relay key);
    /// the answer once its head arrived.
    pub async fn post<'h>(
        &self,
        uri: Uri,
        headers: impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
        body: Bytes,
    ) -> Result<Answer, SendError> {
        // Built in place rather than through `Request::builder`, whose every
        // step moves the whole head.
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let h = request.headers_mut();
        h.reserve(2 + headers.size_hint().1.unwrap_or(0));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(RELAY_KEY, self.key.clone());
        for (name, value) in headers {
            h.append(name, value.clone());
        }
        let answer = tokio::time::timeout(self.read_timeout, self.client.request(request))
            .await
            .map_err(|_| SendError::Timeout(self.read_timeout))??;
        let declared = http_body::Body::size_hint(answer.body()).exact();
        let (head, body) = answer.into_parts();
        Ok(Answer {
            status: head.status,
            declared,
            body,
            read_timeout: self.read_timeout,
        })
    }
}

impl Answer {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body's length, when the worker declared one.
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// The body's bytes as they come (trailers skipped); a wait longer
    /// than the read timeout ends it with [`ReadError::Timeout`].
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static {
        let wait = self.read_timeout;
        futures_util::stream::unfold(Some(self.body), move |body| async move {
            let mut body = body?;
            loop {
                match tokio::time::timeout(wait, body.frame()).await {
                    Err(_) => return Some((Err(ReadError::Timeout(wait)), None)),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(ReadError::Broken(e)), None)),
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some(body)));
                        }
                    }
                }
            }
        })
    }
}
