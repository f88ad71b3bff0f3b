//! The meter, request by request: `GET /usage/requests` (the current
//! organization's `/v1` requests, newest first, filtered, paged by a cursor)
//! and `GET /usage/latency` (per model latency and time-to-first-token
//! percentiles and error rate over a window).

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::routes::api_keys::sees_all;
use crate::state::AppState;

/// The largest page of the request log.
const MAX_LIMIT: u16 = 200;
/// The longest window of the latency statistics.
const MAX_LATENCY_DAYS: i64 = 92;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_requests))
        .routes(routes!(latency))
}

/// Rows per page: 1 to [`MAX_LIMIT`].
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "u16")]
pub struct Limit(u16);

impl TryFrom<u16> for Limit {
    type Error = String;

    fn try_from(n: u16) -> Result<Self, String> {
        if (1..=MAX_LIMIT).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(format!("limit: 1 to {MAX_LIMIT}"))
        }
    }
}

/// Where the previous page ended: its last row's time and id, as an opaque
/// string (base64url of `<microseconds since the epoch>.<id>`).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct Cursor {
    at: DateTime<Utc>,
    id: i64,
}

impl Cursor {
    fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.at.timestamp_micros(), self.id))
    }
}

impl TryFrom<String> for Cursor {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, &'static str> {
        const BAD: &str = "before: not a cursor from next_before";
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| BAD)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| BAD)?;
        let (micros, id) = text.split_once('.').ok_or(BAD)?;
        let at = micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or(BAD)?;
        let id = id.parse().map_err(|_| BAD)?;
        Ok(Cursor { at, id })
    }
}

/// Which requests by their HTTP status.
#[derive(Deserialize, ToSchema, Clone, Copy)]
pub enum StatusFilter {
    /// Below 400.
    #[serde(rename = "ok")]
    Ok,
    /// 400 and above.
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "4xx")]
    ClientError,
    #[serde(rename = "5xx")]
    ServerError,
}

impl StatusFilter {
    /// The statuses it keeps, bounds included.
    fn bounds(filter: Option<Self>) -> (i32, i32) {
        match filter {
            None => (i32::MIN, i32::MAX),
            Some(StatusFilter::Ok) => (i32::MIN, 399),
            Some(StatusFilter::Error) => (400, i32::MAX),
            Some(StatusFilter::ClientError) => (400, 499),
            Some(StatusFilter::ServerError) => (500, i32::MAX),
        }
    }
}

/// Which requests, and which page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    /// Only this model.
    model: Option<String>,
    /// Only requests made with this API key.
    api_key_id: Option<Uuid>,
    /// `ok` (below 400), `error` (400 and above), `4xx` or `5xx`.
    #[param(inline)]
    status: Option<StatusFilter>,
    /// Requests at or after this instant (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Requests before this instant (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Only the request with this id (the `x-request-id` of its answer).
    request_id: Option<String>,
    /// Rows per page: 1 to 200, default 50.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 200)]
    limit: Option<Limit>,
    /// The previous page's `next_before`.
    #[param(value_type = Option<String>)]
    before: Option<Cursor>,
}

/// One metered `/v1` request.
#[derive(Serialize, ToSchema)]
pub struct RequestEntry {
    pub at: DateTime<Utc>,
    pub request_id: String,
    /// Absent for a session's request (the playground).
    pub api_key_id: Option<Uuid>,
    /// The key's name and prefix: shown for the caller's own keys, and for
    /// every key to those who see all the organization's keys.
    pub api_key_name: Option<String>,
    pub api_key_prefix: Option<String>,
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub model: String,
    pub endpoint: String,
    pub streamed: bool,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    /// Time to the first token (streamed requests only).
    pub ttft_ms: Option<i32>,
    pub latency_ms: i32,
    pub status: i32,
}

/// A page of the request log.
#[derive(Serialize, ToSchema)]
pub struct RequestPage {
    pub items: Vec<RequestEntry>,
    /// Pass as `before` for the next page; null on the last page.
    pub next_before: Option<String>,
}

struct Row {
    id: i64,
    at: DateTime<Utc>,
    request_id: String,
    api_key_id: Option<Uuid>,
    key_name: Option<String>,
    key_public_id: Option<String>,
    key_created_by: Option<Uuid>,
    user_id: Option<Uuid>,
    user_email: Option<String>,
    model: String,
    endpoint: String,
    streamed: bool,
    prompt_tokens: i32,
    completion_tokens: i32,
    ttft_ms: Option<i32>,
    latency_ms: i32,
    status: i32,
}

/// The current organization's `/v1` requests, newest first.
#[utoipa::path(get, path = "/usage/requests", tag = "usage", security(("bearer" = [])), params(RequestsQuery),
    responses((status = 200, body = RequestPage), (status = 400, body = ErrorBody)))]
async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RequestsQuery>,
) -> ApiResult<Json<RequestPage>> {
    caller.require(Action::ViewInstances)?;
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from >= to {
            return Err(ApiError::validation(
                "INVALID_QUERY",
                "from must be before to",
            ));
        }
    }
    let limit = q.limit.map_or(50, |l| l.0);
    let (status_min, status_max) = StatusFilter::bounds(q.status);
    // Absent bounds are infinities rather than `IS NULL OR`, so every bound
    // stays an index condition (organization, at DESC, id DESC) even in a
    // generic plan. One row more than the page tells whether another follows.
    let mut rows = sqlx::query_as!(
        Row,
        r#"SELECT r.id, r.at, r.request_id, r.api_key_id, k.name AS "key_name?", k.public_id AS "key_public_id?",
                  k.created_by AS "key_created_by?", r.user_id, u.email AS "user_email?", r.model, r.endpoint,
                  r.streamed, r.prompt_tokens, r.completion_tokens, r.ttft_ms, r.latency_ms, r.status
             FROM usage_records r
             LEFT JOIN api_keys k ON k.id = r.api_key_id AND k.organization_id = r.organization_id
             LEFT JOIN users u ON u.id = r.user_id
            WHERE r.organization_id = $1
              AND (r.at, r.id) < (COALESCE($2, 'infinity'::timestamptz), COALESCE($3, 9223372036854775807::bigint))
              AND r.at >= COALESCE($4, '-infinity'::timestamptz) AND r.at < COALESCE($5, 'infinity'::timestamptz)
              AND ($6::text IS NULL OR r.model = $6)
              AND ($7::uuid IS NULL OR r.api_key_id = $7)
              AND ($8::text IS NULL OR r.request_id = $8)
              AND r.status BETWEEN $9 AND $10
            ORDER BY r.at DESC, r.id DESC
            LIMIT $11"#,
        caller.org_id as OrgId,
        q.before.map(|c| c.at),
        q.before.map(|c| c.id),
        q.from,
        q.to,
        q.model,
        q.api_key_id,
        q.request_id,
        status_min,
        status_max,
        i64::from(limit) + 1,
    )
    .fetch_all(&state.db)
    .await?;
    let next_before = if rows.len() > usize::from(limit) {
        rows.truncate(usize::from(limit));
        rows.last().map(|r| Cursor { at: r.at, id: r.id }.encode())
    } else {
        None
    };
    let all_keys = sees_all(&caller);
    let items = rows
        .into_iter()
        .map(|r| {
            let shown = all_keys || r.key_created_by == Some(caller.user_id.0);
            RequestEntry {
                at: r.at,
                request_id: r.request_id,
                api_key_id: r.api_key_id,
                api_key_name: r.key_name.filter(|_| shown),
                api_key_prefix: r
                    .key_public_id
                    .filter(|_| shown)
                    .map(|p| format!("inv_{p}")),
                user_id: r.user_id,
                user_email: r.user_email,
                model: r.model,
                endpoint: r.endpoint,
                streamed: r.streamed,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                ttft_ms: r.ttft_ms,
                latency_ms: r.latency_ms,
                status: r.status,
            }
        })
        .collect();
    Ok(Json(RequestPage { items, next_before }))
}

/// The window of the statistics.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LatencyQuery {
    /// Start (RFC 3339), default 24 hours before `to`.
    from: Option<DateTime<Utc>>,
    /// End (RFC 3339), default now; at most 92 days after `from`.
    to: Option<DateTime<Utc>>,
}

/// One model's requests over the window. Percentiles are over successful
/// requests (status below 400), null when there are none.
#[derive(Serialize, ToSchema)]
pub struct ModelLatency {
    pub model: String,
    pub requests: i64,
    pub errors: i64,
    /// Errors over requests, 0 to 1.
    pub error_rate: f64,
    pub latency_p50_ms: Option<i32>,
    pub latency_p95_ms: Option<i32>,
    /// Time to the first token, over streamed requests only.
    pub ttft_p50_ms: Option<i32>,
    pub ttft_p95_ms: Option<i32>,
}

struct LatencyRow {
    model: String,
    requests: i64,
    errors: i64,
    latency_p50_ms: Option<i32>,
    latency_p95_ms: Option<i32>,
    ttft_p50_ms: Option<i32>,
    ttft_p95_ms: Option<i32>,
}

/// Per model: request count, error rate, latency and TTFT percentiles.
#[utoipa::path(get, path = "/usage/latency", tag = "usage", security(("bearer" = [])), params(LatencyQuery),
    responses((status = 200, body = [ModelLatency]), (status = 400, body = ErrorBody)))]
async fn latency(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<LatencyQuery>,
) -> ApiResult<Json<Vec<ModelLatency>>> {
    caller.require(Action::ViewInstances)?;
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(ApiError::validation(
            "INVALID_QUERY",
            "from must be before to",
        ));
    }
    if to - from > Duration::days(MAX_LATENCY_DAYS) {
        return Err(ApiError::validation(
            "INVALID_QUERY",
            format!("the window is at most {MAX_LATENCY_DAYS} days"),
        ));
    }
    // percentile_disc: a latency that was measured, not an interpolation.
    let rows = sqlx::query_as!(
        LatencyRow,
        r#"SELECT model, count(*) AS "requests!", count(*) FILTER (WHERE status >= 400) AS "errors!",
                  percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status < 400) AS latency_p50_ms,
                  percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE status < 400) AS latency_p95_ms,
                  percentile_disc(0.5) WITHIN GROUP (ORDER BY ttft_ms) FILTER (WHERE status < 400 AND streamed) AS ttft_p50_ms,
                  percentile_disc(0.95) WITHIN GROUP (ORDER BY ttft_ms) FILTER (WHERE status < 400 AND streamed) AS ttft_p95_ms
             FROM usage_records
            WHERE organization_id = $1 AND at >= $2 AND at < $3
            GROUP BY model ORDER BY model"#,
        caller.org_id as OrgId,
        from,
        to,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ModelLatency {
                error_rate: r.errors as f64 / r.requests as f64,
                model: r.model,
                requests: r.requests,
                errors: r.errors,
                latency_p50_ms: r.latency_p50_ms,
                latency_p95_ms: r.latency_p95_ms,
                ttft_p50_ms: r.ttft_p50_ms,
                ttft_p95_ms: r.ttft_p95_ms,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let c = Cursor {
            at: DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::try_from(c.encode()), Ok(c));
        for bad in [
            "",
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("12"),
            &URL_SAFE_NO_PAD.encode("a.1"),
        ] {
            assert!(Cursor::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
