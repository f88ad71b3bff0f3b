//! What a worker's answer may make the proxy hold. Workers are
//! tenant-controlled: a whole answer is read up to a size limit and a
//! stream's single event too; past either, the request is an upstream
//! error instead of memory growing with whatever the worker sends.

use axum::body::Bytes;
use axum::http::StatusCode;
use bytes::BytesMut;
use futures_util::{Stream, StreamExt};

use super::error::OpenAiError;

/// A whole answer larger than `max` bytes.
pub fn answer_too_large(max: usize) -> OpenAiError {
    OpenAiError::new(
        StatusCode::BAD_GATEWAY,
        "server_error",
        "upstream_answer_too_large",
        format!("the worker's answer is larger than {max} bytes"),
    )
}

/// A worker that stopped sending within the read timeout, or whose body broke.
pub fn read_failed(e: &super::engine::ReadError) -> OpenAiError {
    match e {
        super::engine::ReadError::Timeout(_) => OpenAiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "upstream_timeout",
            "the worker stopped sending before its answer was complete",
        ),
        super::engine::ReadError::Broken(e) => {
            OpenAiError::upstream(format!("reading the worker's answer failed: {e}"))
        }
    }
}

/// Why a bounded read gave up; `E` is the client's read error.
pub enum ReadError<E> {
    /// The answer is (or declares itself) larger than the limit.
    TooLarge,
    /// The body broke or stopped within the client's timeout.
    Failed(E),
}

/// A body of `declared` length (if it said one) coming as `chunks`,
/// refused past `max` bytes (by its declared length at once, else as soon
/// as the bytes read pass it): for any answer of a worker, whose size it
/// sets.
pub async fn collect<E>(
    declared: Option<u64>,
    chunks: impl Stream<Item = Result<Bytes, E>>,
    max: usize,
) -> Result<Bytes, ReadError<E>> {
    let declared = declared.and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ReadError::TooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8192).min(max));
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(ReadError::Failed)?;
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The whole body of a worker's `response` to another caller than the
/// proxy (reqwest), bounded as [`collect`].
pub async fn read_at_most(
    response: reqwest::Response,
    max: usize,
) -> Result<Bytes, ReadError<reqwest::Error>> {
    collect(response.content_length(), response.bytes_stream(), max).await
}

/// A worker's whole answer to the proxy, with the `/v1` errors.
pub async fn read(answer: super::engine::Answer, max: usize) -> Result<Bytes, OpenAiError> {
    let declared = answer.declared();
    collect(declared, answer.into_stream(), max)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => answer_too_large(max),
            ReadError::Failed(e) => read_failed(&e),
        })
}

/// The SSE error event that ends a stream whose worker sent an event
/// larger than `max` bytes.
pub fn event_too_large(max: usize) -> Bytes {
    let error = serde_json::json!({ "error": {
        "message": format!("the worker sent a stream event larger than {max} bytes"),
        "type": "server_error", "code": "upstream_event_too_large" } });
    Bytes::from(format!("data: {error}\n\n"))
}
