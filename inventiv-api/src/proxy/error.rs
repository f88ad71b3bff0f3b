//! Errors on `/v1` in OpenAI's shape: `{"error":{"message","type","code"}}`,
//! so SDKs raise the right exception.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

use serde::Serialize;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// A `/v1` failure.
#[derive(Debug)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl OpenAiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> OpenAiError {
        OpenAiError {
            status,
            kind,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> OpenAiError {
        OpenAiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "invalid or missing API key",
        )
    }

    pub fn model_not_found(model: &str) -> OpenAiError {
        OpenAiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("the model `{model}` does not exist or you do not have access to it"),
        )
    }

    /// The model is shared with the caller but the provider paused the share.
    pub fn share_paused(model: &str) -> OpenAiError {
        OpenAiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "share_paused",
            format!("the provider paused the sharing of `{model}`"),
        )
    }

    /// The price of the share is above the maximum its consumer set.
    pub fn price_above_maximum(model: &str) -> OpenAiError {
        OpenAiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "price_above_maximum",
            format!("the price of `{model}` is above the maximum your organization set for it"),
        )
    }

    /// A hard budget would be exceeded; the message names it.
    pub fn insufficient_quota(message: String) -> OpenAiError {
        OpenAiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "insufficient_quota",
            message,
        )
    }

    pub fn bad_request(message: impl Into<String>) -> OpenAiError {
        OpenAiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        )
    }

    pub fn no_capacity(model: &str) -> OpenAiError {
        let mut e = OpenAiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "no_capacity",
            format!("no ready worker serves `{model}` right now"),
        );
        e.retry_after = Some(5);
        e
    }

    /// The model is cold (its service at zero replicas) and as many
    /// requests as may wait for it already do.
    pub fn held_full(model: &str) -> OpenAiError {
        let mut e = OpenAiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "cold_start_queue_full",
            format!("`{model}` is starting and too many requests already wait for it; retry later"),
        );
        e.retry_after = Some(10);
        e
    }

    /// The request waited for a cold model's first replica longer than the
    /// hold timeout.
    pub fn held_timeout(model: &str) -> OpenAiError {
        let mut e = OpenAiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "cold_start_timeout",
            format!("`{model}` did not become ready in time; retry later"),
        );
        e.retry_after = Some(10);
        e
    }

    /// Usage cannot be kept right now (the usage journal is full while the
    /// database is away, or failed to write): nothing is served unmetered.
    pub fn metering_unavailable() -> OpenAiError {
        let mut e = OpenAiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "metering_unavailable",
            "usage metering is unavailable on this server right now, so the request was not served; retry later",
        );
        e.retry_after = Some(5);
        e
    }

    pub fn upstream(message: impl Into<String>) -> OpenAiError {
        OpenAiError::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_error",
            message,
        )
    }

    /// A worker answered with a redirect. Workers are tenant-controlled, so
    /// it is never followed: it could point at the control plane's own
    /// services.
    pub fn upstream_redirect(status: StatusCode) -> OpenAiError {
        OpenAiError::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_redirect",
            format!(
                "the worker answered a redirect ({}); redirects from workers are not followed",
                status.as_u16()
            ),
        )
    }

    pub fn rate_limited(retry_after: u64, what: &str) -> OpenAiError {
        let mut e = OpenAiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            format!("{what} limit reached for this key"),
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }
}

/// The JSON body of every `/v1` error response, in OpenAI's shape.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiErrorDetail,
}

/// What went wrong, as OpenAI's SDKs read it, with our request id.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorDetail {
    /// Human-readable explanation.
    pub message: String,
    /// OpenAI's error type, e.g. `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Stable machine-readable code, e.g. `invalid_api_key`.
    pub code: String,
    /// Always null: no single parameter is blamed.
    pub param: Option<String>,
    /// The request's `x-request-id`.
    pub request_id: String,
}

impl OpenAiError {
    fn body(self) -> OpenAiErrorBody {
        OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.message,
                kind: self.kind.to_owned(),
                code: self.code.to_owned(),
                param: None,
                request_id: crate::request_id::current().unwrap_or_default(),
            },
        }
    }

    /// The error as a stream's last server-sent event.
    pub fn sse_event(self) -> axum::body::Bytes {
        let json = serde_json::to_string(&self.body()).unwrap_or_default();
        axum::body::Bytes::from(format!("data: {json}\n\n"))
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<crate::error::ApiError> for OpenAiError {
    fn from(e: crate::error::ApiError) -> OpenAiError {
        match e {
            crate::error::ApiError::Unauthenticated
            | crate::error::ApiError::Unauthorized { .. } => OpenAiError::unauthorized(),
            crate::error::ApiError::PayloadTooLarge => OpenAiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "payload_too_large",
                "request body too large",
            ),
            crate::error::ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, request_id = %crate::request_id::shown(), "internal error on /v1");
                OpenAiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal_error",
                    "internal error",
                )
            }
            other => OpenAiError::new(
                other.status(),
                "invalid_request_error",
                "invalid_request",
                other.to_string(),
            ),
        }
    }
}

/// A `/v1` request body: JSON, within the size limit, rejected in OpenAI's shape.
pub struct V1Body(pub axum::body::Bytes);

/// Documented as what the proxy reads of it: a JSON object with the `model`
/// to route to; every other field goes to the engine as sent.
impl utoipa::PartialSchema for V1Body {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(
                "model",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("A model id, as `GET /v1/models` lists it")),
            )
            .required("model")
            .property(
                "stream",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some("Answer as server-sent events")),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some("An OpenAI request body; fields other than `model` and `stream` go to the engine as sent"))
            .into()
    }
}

impl utoipa::ToSchema for V1Body {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("V1Request")
    }
}

impl axum::extract::FromRequest<crate::state::AppState> for V1Body {
    type Rejection = OpenAiError;

    async fn from_request(
        req: axum::extract::Request,
        state: &crate::state::AppState,
    ) -> Result<V1Body, OpenAiError> {
        let (parts, body) = req.into_parts();
        read_body(&parts.headers, body, state.config.max_body_bytes)
            .await
            .map(V1Body)
    }
}

/// A `/v1` request's body: JSON (by its content type), at most `max`
/// bytes (a larger declared length is refused before anything is read).
pub async fn read_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    max: usize,
) -> Result<axum::body::Bytes, OpenAiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..16)
                .is_some_and(|t| t.eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Err(OpenAiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    let too_large = || {
        OpenAiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "payload_too_large",
            "request body too large",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, max)).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(OpenAiError::bad_request(format!(
            "failed to read the request body: {e}"
        ))),
    }
}
