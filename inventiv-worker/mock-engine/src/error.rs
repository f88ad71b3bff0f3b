//! The one error type of the engine, answered in vLLM's OpenAI error shape:
//! `{"error":{"message","type","param","code"}}`.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::generate::PlanError;

#[derive(Debug)]
pub enum ApiError {
    /// Malformed or invalid request (400), or a body that could not be read.
    BadRequest(StatusCode, String),
    /// A model this engine does not serve.
    ModelNotFound(String),
    /// No such route.
    RouteNotFound,
    /// The model is still loading.
    NotLoaded,
    /// A fault injected on purpose.
    Injected(StatusCode),
    /// The request was hanging (fault) when the server shut down.
    ShuttingDown,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(status, _) => *status,
            Self::ModelNotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::NotLoaded | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Injected(status) => *status,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::BadRequest(_, message) => message.clone(),
            Self::ModelNotFound(model) => format!("The model `{model}` does not exist."),
            Self::RouteNotFound => "Not Found".to_owned(),
            Self::NotLoaded => "The model is still loading.".to_owned(),
            Self::Injected(status) => format!("Injected fault: {status}."),
            Self::ShuttingDown => "The server is shutting down.".to_owned(),
        }
    }
}

/// The OpenAI `type` for a status, as vLLM names them.
fn kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "NotFoundError",
        413 => "RequestEntityTooLargeError",
        500 => "InternalServerError",
        502 => "BadGatewayError",
        503 => "ServiceUnavailableError",
        504 => "GatewayTimeoutError",
        400..=499 => "BadRequestError",
        _ => "ServerError",
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        Self::BadRequest(
            StatusCode::BAD_REQUEST,
            format!("Invalid request body: {e}"),
        )
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        Self::BadRequest(e.status(), e.body_text())
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        Self::BadRequest(StatusCode::BAD_REQUEST, e.to_string())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: (),
    code: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        tracing::debug!(status = status.as_u16(), %message, "request refused");
        let body = Body {
            error: Detail {
                message: &message,
                kind: kind(status),
                param: (),
                code: status.as_u16(),
            },
        };
        // Serializing this struct cannot fail; fall back to an empty body.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response()
    }
}
