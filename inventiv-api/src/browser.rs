//! What browsers get besides the answer: security headers on every
//! response, and a check that a write authenticated by the session cookie
//! comes from the API's own origin (cross-site request forgery; SameSite
//! cookies alone leave older browsers and sibling sites open).

use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CONTENT_SECURITY_POLICY, COOKIE, HOST, ORIGIN, REFERRER_POLICY,
    STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::caller::{ACCESS_COOKIE, REFRESH_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;

/// The dashboard and Swagger UI load scripts from this origin only; nothing
/// may frame them.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
                   base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Middleware, one layer for all that browsers need: a cross-origin
/// cookie write is refused ([`cross_origin_write`]), a browser navigation
/// gets the dashboard ([`crate::frontend::page`]), anything else goes on;
/// every answer gets the security headers (HSTS when the public URL is
/// https). One layer rather than three: each `from_fn` layer boxes the
/// rest of the stack and its future on every request, `/v1` included.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A navigation is a GET: never a refused write.
    let page = match crate::frontend::navigation(&request) {
        Some(headers) => crate::frontend::page(&state, headers).await,
        None => None,
    };
    let mut response =
        if let Some(refused) = cross_origin_write(request.method(), request.headers(), &state) {
            refused
        } else if let Some(page) = page {
            page
        } else {
            next.run(request).await
        };
    secure(response.headers_mut(), &state);
    response
}

/// Adds the security headers every answer gets.
pub fn secure(h: &mut HeaderMap, state: &AppState) {
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    if state.config.public_url.starts_with("https://") {
        h.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

/// Whether the request carries a session cookie and no bearer token (so a
/// browser sent it on its own).
fn cookie_authenticated(headers: &HeaderMap) -> bool {
    headers.get(AUTHORIZATION).is_none()
        && headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, _)| k == ACCESS_COOKIE || k == REFRESH_COOKIE)
}

/// Whether `origin` (scheme://host[:port]) is the API's public origin or the
/// host the request was sent to.
fn same_origin(origin: &str, headers: &HeaderMap, public_url: &str) -> bool {
    let public_origin = public_url
        .splitn(4, '/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    if origin.eq_ignore_ascii_case(&public_origin) {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Refuses (403 `CROSS_ORIGIN_REQUEST`) a cookie-authenticated write whose
/// `Origin` is another site. Browsers send `Origin` on every cross-origin
/// write, so a request without it did not come from another site's page.
pub fn cross_origin_write(
    method: &Method,
    headers: &HeaderMap,
    state: &AppState,
) -> Option<Response> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || !cookie_authenticated(headers) {
        return None;
    }
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok())?;
    if same_origin(origin, headers, &state.config.public_url) {
        return None;
    }
    Some(
        ApiError::Forbidden {
            code: "CROSS_ORIGIN_REQUEST",
            message: "a cookie-authenticated write must come from the dashboard's origin".into(),
        }
        .into_response(),
    )
}
