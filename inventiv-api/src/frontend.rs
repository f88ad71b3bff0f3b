//! Serves the built dashboard (`INVENTIV_FRONTEND_DIR`, default
//! `inventiv-frontend/dist`) from the API's own origin, with tower-http's
//! file services: a browser navigation (a GET that accepts `text/html`) gets
//! the single-page app's `index.html` whatever the path, and files of the
//! build (scripts, styles, images) are served when no API route matched.
//! API calls (JSON) are untouched.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::handler::HandlerWithoutStateExt;
use axum::http::header::{ACCEPT, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeader;

use crate::error::ApiError;
use crate::state::AppState;

/// Build files under `/assets/` carry a content hash in their name: a new
/// build never changes a file under an old name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` and the build's other files keep their name across builds.
const REVALIDATE: &str = "no-cache";

/// Sets `Cache-Control` on a file served (or confirmed unchanged), never on
/// a "no such route": a missing asset must not be cached for a year.
fn cache<B>(value: &'static str) -> impl FnMut(&Response<B>) -> Option<HeaderValue> + Clone {
    move |response| {
        let status = response.status();
        (status.is_success() || status == StatusCode::NOT_MODIFIED)
            .then(|| HeaderValue::from_static(value))
    }
}

/// Fallback service: a file of the build, or the API's "no such route" for
/// a missing file, a directory or a method other than GET and HEAD.
/// `ServeDir` refuses paths that would leave the build.
pub fn files(root: &Path) -> Router {
    let directory = |dir: PathBuf| {
        ServeDir::new(dir)
            .append_index_html_on_directories(false)
            .call_fallback_on_method_not_allowed(true)
            .fallback((|| async { ApiError::RouteNotFound }).into_service())
    };
    Router::new()
        .nest_service(
            "/assets",
            SetResponseHeader::overriding(
                directory(root.join("assets")),
                CACHE_CONTROL,
                cache(IMMUTABLE),
            ),
        )
        .fallback_service(SetResponseHeader::overriding(
            directory(root.to_owned()),
            CACHE_CONTROL,
            cache(REVALIDATE),
        ))
}

/// The headers (conditional, range) of a browser navigation: a GET that
/// accepts `text/html`, outside Swagger UI and the OpenAPI document.
pub fn navigation(request: &Request) -> Option<HeaderMap> {
    let navigation = request.method() == Method::GET
        && request
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let path = request.uri().path();
    (navigation && !path.starts_with("/docs") && !path.starts_with("/openapi.json"))
        .then(|| request.headers().clone())
}

/// A navigation's answer: the app's `index.html`, given the navigation's
/// [headers](navigation); `None` without a build (the API answers then).
pub async fn page(state: &AppState, headers: HeaderMap) -> Option<Response> {
    let mut probe = Request::new(Body::empty());
    *probe.headers_mut() = headers;
    let page = ServeFile::new(state.config.frontend_dir.join("index.html"))
        .try_call(probe)
        .await
        .ok()
        .filter(|page| page.status() != StatusCode::NOT_FOUND)?;
    let mut page = page.into_response();
    page.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    Some(page)
}
