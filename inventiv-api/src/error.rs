//! The one API error type: a status, a stable machine code, a message safe to
//! show, and the request id. Internal causes are logged, never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use inventiv_common::ValueError;
use serde::Serialize;

use crate::request_id;

/// Every way a request can fail, each with its HTTP status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The input is well-formed JSON but a value is wrong.
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    /// The body is not JSON, or not the JSON the route takes.
    #[error("{0}")]
    MalformedBody(String),
    /// No valid credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    /// Credentials were presented and refused.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// The caller is known but their role does not allow this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Nothing with this id exists for the caller (including another organization's object).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too many attempts; try again after the given number of seconds.
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// The body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body is not `application/json`.
    #[error("expected content-type application/json")]
    UnsupportedMediaType,
    /// No route has this path.
    #[error("no such route")]
    RouteNotFound,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A dependency (database, Redis) is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// A worker (tenant-controlled) could not be reached or answered badly.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    /// A worker did not answer in time.
    #[error("{message}")]
    GatewayTimeout { code: &'static str, message: String },
    /// A bug or an unexpected failure; details go to the log only.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with a specific code.
    pub fn validation(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            code,
            message: message.into(),
        }
    }

    /// A 403 for a role that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code: "FORBIDDEN",
            message: message.into(),
        }
    }

    /// A 409 with a specific code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A 429 `RATE_LIMITED`: try again after `retry_after_secs`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        ApiError::TooManyRequests {
            code: "RATE_LIMITED",
            message: "too many requests".into(),
            retry_after_secs,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients may branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::TooManyRequests { code, .. }
            | ApiError::BadGateway { code, .. }
            | ApiError::GatewayTimeout { code, .. } => code,
            ApiError::MalformedBody(_) => "MALFORMED_BODY",
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::RouteNotFound => "ROUTE_NOT_FOUND",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<ValueError> for ApiError {
    fn from(e: ValueError) -> Self {
        ApiError::validation("VALIDATION_ERROR", e.to_string())
    }
}

/// The values PostgreSQL refuses to store, by SQLSTATE: only a request
/// carries them (serde and chrono accept a year -200000 or a NUL character),
/// so each is the caller's 400, never a 500.
const REFUSED_VALUES: [(&str, &str, &str); 4] = [
    // datetime_field_overflow ("timestamp out of range")
    (
        "22008",
        "VALUE_OUT_OF_RANGE",
        "a date is too far in the past or the future",
    ),
    // numeric_value_out_of_range
    ("22003", "VALUE_OUT_OF_RANGE", "a number is too large"),
    // string_data_right_truncation
    ("22001", "VALUE_OUT_OF_RANGE", "a text is too long"),
    // character_not_in_repertoire ("invalid byte sequence for encoding UTF8: 0x00")
    (
        "22021",
        "INVALID_CHARACTER",
        "a text contains a NUL character",
    ),
];

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) = &e {
            tracing::error!(error = %e, "database unavailable");
            return ApiError::Unavailable("the database is unavailable".into());
        }
        let state = e
            .as_database_error()
            .and_then(|db| db.code())
            .unwrap_or_default();
        match REFUSED_VALUES.iter().find(|(s, _, _)| *s == state) {
            Some((_, code, message)) => {
                tracing::warn!(error = %e, "a value the database refuses");
                ApiError::validation(code, *message)
            }
            None => ApiError::Internal(e.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        tracing::error!(error = %e, "redis unavailable");
        ApiError::Unavailable("redis is unavailable".into())
    }
}

/// The JSON body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, with the id to quote when reporting it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `NOT_FOUND`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request's `x-request-id`.
    pub request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = request_id::current().unwrap_or_default();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error; quote the request id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                request_id,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}

/// Handler result shorthand.
pub type ApiResult<T> = Result<T, ApiError>;
