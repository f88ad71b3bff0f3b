//! Serves the built dashboard (`INVENTIV_FRONTEND_DIR`, default
//! `inventiv-frontend/dist`) from the API's own origin: a browser navigation
//! (a GET that accepts `text/html`) gets the single-page app's `index.html`
//! whatever the path, and files of the build (scripts, styles, images) are
//! served when no API route matched. API calls (JSON) are untouched.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file of the build a request path names, refusing anything that
/// could leave the build directory.
fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let relative = Path::new(request_path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(relative))
}

async fn file(path: &Path, immutable: bool) -> Option<Response> {
    let bytes = tokio::fs::read(path).await.ok()?;
    let mut response = Response::new(Body::from(bytes));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    Some(response)
}

fn wants_page(request: &Request) -> bool {
    let navigation = request.method() == Method::GET
        && request
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let path = request.uri().path();
    navigation && !path.starts_with("/docs") && !path.starts_with("/openapi.json")
}

/// Middleware: browser navigations get the app.
pub async fn pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if wants_page(&request) {
        if let Some(page) = file(&state.config.frontend_dir.join("index.html"), false).await {
            return page;
        }
    }
    next.run(request).await
}

/// Fallback: a file of the build, or the API's "no such route".
pub async fn assets(State(state): State<AppState>, request: Request) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        let path = request.uri().path();
        if let Some(found) = resolve(&state.config.frontend_dir, path) {
            if found.is_file() {
                let immutable = path.starts_with("/assets/");
                if let Some(response) = file(&found, immutable).await {
                    return response;
                }
            }
        }
    }
    let mut response = ApiError::RouteNotFound.into_response();
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_the_build() {
        let root = Path::new("/srv/dist");
        assert_eq!(
            resolve(root, "/assets/app.js"),
            Some(PathBuf::from("/srv/dist/assets/app.js"))
        );
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/assets/../../etc/passwd"), None);
    }
}
