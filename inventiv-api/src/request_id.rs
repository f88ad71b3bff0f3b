//! Request ids: a well-formed client `x-request-id` is kept, otherwise one is
//! generated (tower-http sets and echoes it); the request's span carries it,
//! and [`current`] gives it to every error body and to the proxy. With
//! traces on, the request span is the root of the request's trace, or a
//! child of the caller's span when it sends a W3C `traceparent`.

use std::future::Future;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::{Instrument, Span};

/// The header that carries the id both ways.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// [`current`] for a log line's `request_id` field (empty outside a
/// request). The data plane's requests have no span unless traces are
/// exported or the log level is debug ([`crate::front`]): their warnings
/// name their request with it.
pub fn shown() -> String {
    current().unwrap_or_default()
}

/// Accepts 1 to 128 characters of `[A-Za-z0-9._:-]`; anything else is replaced.
pub fn well_formed(value: &[u8]) -> bool {
    (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
}

/// Drops a client id that is not [`well_formed`], so that
/// `SetRequestIdLayer` (which keeps any id present) generates one.
pub async fn drop_ill_formed(mut request: Request) -> Request {
    if !request
        .headers()
        .get(&HEADER)
        .is_none_or(|v| well_formed(v.as_bytes()))
    {
        request.headers_mut().remove(&HEADER);
    }
    request
}

/// A new id ([`generate`]).
#[derive(Clone, Copy, Default)]
pub struct Generate;

impl MakeRequestId for Generate {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        generate().parse().ok().map(RequestId::new)
    }
}

/// A new id: a v7 uuid (its time first, then random bits) without
/// hyphens. Ids made in time order land at the end of the usage rows'
/// `request_id` index rather than on a random page of it.
pub fn generate() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The request's span (`route`: its template, never the raw path); with
/// traces on, the root of its trace or a child of the caller's span.
pub fn request_span(id: &str, method: &Method, route: &str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    if inventiv_common::telemetry::enabled() {
        inventiv_common::telemetry::set_parent(
            &span,
            headers.get("traceparent").and_then(|v| v.to_str().ok()),
        );
    }
    span
}

/// Runs `work` with `id` as the [`current`] request id.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// Logs a request's outcome in its span: failures as errors, the data
/// plane's and the heartbeats' successes at debug, the rest at info.
pub fn outcome(span: &Span, route: &str, status: StatusCode, started: Instant) {
    let status = status.as_u16();
    span.in_scope(|| {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::error!(status, latency_ms, "request failed");
        } else if status < 400 && routine(route) {
            tracing::debug!(status, latency_ms, "request");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
}

/// Heartbeats every few seconds per node, and the data plane's traffic
/// (whose record is its usage row): routine, not news.
fn routine(route: &str) -> bool {
    route.starts_with("/internal/workers/") || route.starts_with("/v1/")
}

/// [`outcome`] for a request without a span: its id, method and route
/// are the log line's own fields.
pub fn outcome_of(id: &str, method: &Method, route: &str, status: StatusCode, started: Instant) {
    let status = status.as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(request_id = id, %method, route, status, latency_ms, "request failed");
    } else if status < 400 && routine(route) {
        tracing::debug!(request_id = id, %method, route, status, latency_ms, "request");
    } else {
        tracing::info!(request_id = id, %method, route, status, latency_ms, "request");
    }
}

/// Middleware inside `SetRequestIdLayer`: opens the request span, makes the
/// id [`current`] for the handler, logs the outcome.
pub async fn span(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The route template, never the raw path: paths can carry tokens
    // (invitation links) that must not reach the logs.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<no route>", MatchedPath::as_str)
        .to_owned();
    let span = request_span(&id, request.method(), &route, request.headers());
    let started = Instant::now();
    let response = scope(id, next.run(request).instrument(span.clone())).await;
    outcome(&span, &route, response.status(), started);
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn well_formed_ids() {
        assert!(super::well_formed(b"abc-123_x.y:z"));
        assert!(!super::well_formed(b""));
        assert!(!super::well_formed(b"has space"));
        assert!(!super::well_formed("a".repeat(129).as_bytes()));
    }
}
