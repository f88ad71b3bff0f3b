//! A worker's event log, for the instance page: `GET /instances/{id}/logs`
//! reads the agent's `/logs` through the node's relay (TLS with the pinned
//! certificate, the relay key; the relay's `/agent/logs` path), as the
//! proxy reaches the engine. Members read it; another organization's
//! instance is a 404. Follow mode is the client's: it asks again with
//! `since` set to the last event's `ts`.
//!
//! The worker is tenant-controlled, so its answer is bounded before it is
//! believed: a deadline, no redirect followed, the body read up to
//! [`MAX_ANSWER_BYTES`], the JSON checked event by event (an event without
//! a valid `ts` and `event` is left out and counted), each text cut.

use std::time::Duration;

use axum::extract::State;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use inventiv_common::{Action, InstanceStatus, OrgId};
use inventiv_store::relay::{self, StoredRelay};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::proxy::bounded::{read_at_most, ReadError};
use crate::state::AppState;

/// The most events one read returns.
pub const MAX_TAIL: u16 = 1000;
const DEFAULT_TAIL: u16 = 200;
/// The most of a worker's answer read (1000 events of a few hundred bytes
/// fit many times over).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Characters kept of an event's other fields, as one line of JSON.
pub const MAX_DETAIL_CHARS: usize = 2000;
const MAX_EVENT_CHARS: usize = 128;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole exchange with the worker, connection included.
const DEADLINE: Duration = Duration::from_secs(10);
/// The relay's path to the agent's `/logs` (the agent's `haproxy.py`).
const AGENT_LOGS_PATH: &str = "/agent/logs";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(instance_logs))
}

/// How many events: 0 to [`MAX_TAIL`].
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "u16")]
pub struct Tail(u16);

impl TryFrom<u16> for Tail {
    type Error = String;

    fn try_from(n: u16) -> Result<Self, String> {
        if n <= MAX_TAIL {
            Ok(Tail(n))
        } else {
            Err(format!("tail: at most {MAX_TAIL}"))
        }
    }
}

/// Which events.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// The last N events: 0 to 1000, default 200.
    #[param(value_type = Option<u16>, minimum = 0, maximum = 1000)]
    tail: Option<Tail>,
    /// Only events after this instant (RFC 3339): follow mode passes the
    /// last event's `ts`.
    since: Option<DateTime<Utc>>,
}

/// How serious an event is: the agent's own `level` when it gives one,
/// else `error` for an event named `*_failed`, `*_invalid` or `*_refused`,
/// else `info`.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

/// One event of the agent's log.
#[derive(Serialize, ToSchema)]
pub struct LogEvent {
    /// When the agent recorded it.
    pub ts: DateTime<Utc>,
    /// What happened, e.g. `engine_ready` (at most 128 characters).
    pub event: String,
    pub level: LogLevel,
    /// The event's other fields as one line of JSON, cut at 2000 characters.
    pub detail: String,
    /// Whether `detail` was cut.
    pub truncated: bool,
}

/// The tail of a worker's log.
#[derive(Serialize, ToSchema)]
pub struct InstanceLogs {
    /// Oldest first.
    pub events: Vec<LogEvent>,
    /// Entries of the worker's answer left out as malformed (no valid `ts`
    /// or `event`), or past `tail`.
    pub dropped: u32,
}

/// The tail of the instance's worker log, read live from the worker.
#[utoipa::path(get, path = "/instances/{instance_id}/logs", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id"), LogsQuery),
    responses((status = 200, body = InstanceLogs), (status = 404, body = ErrorBody),
        (status = 409, description = "The instance has no worker to ask: not installed yet, or terminated (`NO_WORKER`)", body = ErrorBody),
        (status = 502, description = "The worker could not be reached (`WORKER_UNREACHABLE`) or its answer was refused: a redirect, an error status, too large, not the log's JSON (`WORKER_BAD_ANSWER`)", body = ErrorBody),
        (status = 504, description = "The worker did not answer within 10 s (`WORKER_TIMEOUT`)", body = ErrorBody)))]
async fn instance_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<InstanceLogs>> {
    caller.require(Action::ViewInstances)?;
    let row = sqlx::query!(
        r#"SELECT status AS "status: InstanceStatus", ip_address, worker_engine_port,
                  relay_key_version, relay_key_nonce, relay_key_ciphertext, relay_cert_sha256
             FROM instances WHERE id = $1 AND organization_id = $2"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    let no_worker = |why: &str| {
        ApiError::conflict(
            "NO_WORKER",
            format!("the instance has no worker to read logs from: {why}"),
        )
    };
    if matches!(
        row.status,
        InstanceStatus::Terminated | InstanceStatus::Archived
    ) {
        return Err(no_worker("it is terminated"));
    }
    let stored = StoredRelay {
        relay_key_version: row.relay_key_version,
        relay_key_nonce: row.relay_key_nonce,
        relay_key_ciphertext: row.relay_key_ciphertext,
        relay_cert_sha256: row.relay_cert_sha256,
    };
    let access = stored
        .open(&state.config.keyring, id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("relay key of {id}: {e}")))?;
    let (Some(access), Some(ip), Some(port)) = (
        access,
        row.ip_address,
        row.worker_engine_port.and_then(|p| u16::try_from(p).ok()),
    ) else {
        return Err(no_worker("it is not installed yet"));
    };
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(DEADLINE)
        .no_proxy();
    let client = relay::pinned_client(builder, &access)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("relay client of {id}: {e}")))?;
    let tail = q.tail.map_or(DEFAULT_TAIL, |t| t.0);
    let mut query = vec![("tail", tail.to_string())];
    if let Some(since) = q.since {
        query.push(("since", since.to_rfc3339_opts(SecondsFormat::Micros, true)));
    }
    let url = format!("{}{AGENT_LOGS_PATH}", relay::base_url(&ip, port));
    let body = fetch(client.get(url).query(&query)).await.inspect_err(
        |e| tracing::warn!(instance_id = %id, error = %e, "reading the worker's log failed"),
    )?;
    parse(&body, usize::from(tail)).map(Json)
}

fn unreachable(e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::GatewayTimeout {
            code: "WORKER_TIMEOUT",
            message: format!("the worker did not answer within {} s", DEADLINE.as_secs()),
        }
    } else {
        ApiError::BadGateway {
            code: "WORKER_UNREACHABLE",
            message: "the worker could not be reached through its relay".into(),
        }
    }
}

fn bad_answer(message: impl Into<String>) -> ApiError {
    ApiError::BadGateway {
        code: "WORKER_BAD_ANSWER",
        message: message.into(),
    }
}

/// The worker's whole answer, refused unless a 200 of at most
/// [`MAX_ANSWER_BYTES`].
async fn fetch(request: reqwest::RequestBuilder) -> ApiResult<Bytes> {
    let response = request.send().await.map_err(|e| unreachable(&e))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(bad_answer(format!(
            "the worker answered a redirect ({status}), not followed"
        )));
    }
    if status != reqwest::StatusCode::OK {
        return Err(bad_answer(format!("the worker answered {status}")));
    }
    read_at_most(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => bad_answer(format!(
                "the worker's answer is larger than {MAX_ANSWER_BYTES} bytes"
            )),
            ReadError::Failed(e) => unreachable(&e),
        })
}

/// The agent's `{"events": [...]}`, each event checked and cut, the last
/// `tail` kept.
fn parse(body: &[u8], tail: usize) -> ApiResult<InstanceLogs> {
    #[derive(Deserialize)]
    struct Answer {
        events: Vec<Value>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| bad_answer("the worker's answer is not its log's JSON"))?;
    let total = answer.events.len();
    let events: Vec<LogEvent> = answer
        .events
        .into_iter()
        .skip(total.saturating_sub(tail))
        .filter_map(event)
        .collect();
    let dropped = u32::try_from(total - events.len()).unwrap_or(u32::MAX);
    Ok(InstanceLogs { events, dropped })
}

fn event(value: Value) -> Option<LogEvent> {
    let Value::Object(mut fields) = value else {
        return None;
    };
    let ts = match fields.remove("ts") {
        Some(Value::String(ts)) if ts.len() <= 64 => DateTime::parse_from_rfc3339(&ts).ok()?,
        _ => return None,
    };
    let name = match fields.remove("event") {
        Some(Value::String(name)) if !name.is_empty() => cut(&name, MAX_EVENT_CHARS).0,
        _ => return None,
    };
    let level = level(&fields, &name);
    let (detail, truncated) = detail(&fields);
    Some(LogEvent {
        ts: ts.with_timezone(&Utc),
        event: name,
        level,
        detail,
        truncated,
    })
}

fn level(fields: &Map<String, Value>, name: &str) -> LogLevel {
    match fields.get("level").and_then(Value::as_str) {
        Some("debug") => LogLevel::Debug,
        Some("info") => LogLevel::Info,
        Some("warning" | "warn") => LogLevel::Warning,
        Some("error") => LogLevel::Error,
        _ if ["_failed", "_invalid", "_refused"]
            .iter()
            .any(|end| name.ends_with(end)) =>
        {
            LogLevel::Error
        }
        _ => LogLevel::Info,
    }
}

fn detail(fields: &Map<String, Value>) -> (String, bool) {
    let fields: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "level")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if fields.is_empty() {
        return (String::new(), false);
    }
    cut(&Value::Object(fields).to_string(), MAX_DETAIL_CHARS)
}

/// `text` cut to `max` characters (never inside one), and whether it was.
fn cut(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (text[..end].to_owned(), true),
        None => (text.to_owned(), false),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn malformed_events_are_left_out_and_counted() {
        let body = serde_json::json!({ "events": [
            { "ts": "2026-12-06T10:00:00.123Z", "event": "engine_ready", "port": 8001 },
            { "ts": "yesterday", "event": "x" },
            { "event": "no_ts" },
            { "ts": "2026-12-06T10:00:01Z", "event": 7 },
            "a string",
            { "ts": "2026-12-06T10:00:02Z", "event": "register_failed", "error": "é".repeat(3000) },
        ]});
        let logs = parse(body.to_string().as_bytes(), 1000).unwrap();
        assert_eq!(logs.dropped, 4);
        assert_eq!(logs.events.len(), 2);
        assert_eq!(logs.events[0].detail, r#"{"port":8001}"#);
        assert_eq!(logs.events[0].level, LogLevel::Info);
        assert_eq!(logs.events[1].level, LogLevel::Error);
        assert!(logs.events[1].truncated);
        assert_eq!(logs.events[1].detail.chars().count(), MAX_DETAIL_CHARS);
    }

    #[test]
    fn only_the_tail_is_kept_and_a_given_level_wins() {
        let events: Vec<Value> = (0..5)
            .map(|i| serde_json::json!({ "ts": format!("2026-12-06T10:00:0{i}Z"), "event": "e", "level": "warning" }))
            .collect();
        let logs = parse(
            serde_json::json!({ "events": events })
                .to_string()
                .as_bytes(),
            2,
        )
        .unwrap();
        assert_eq!(logs.events.len(), 2);
        assert_eq!(logs.dropped, 3);
        assert_eq!(logs.events[1].ts.to_rfc3339(), "2026-12-06T10:00:04+00:00");
        assert_eq!(logs.events[1].level, LogLevel::Warning);
        assert_eq!(logs.events[1].detail, "");
    }

    #[test]
    fn an_answer_that_is_not_the_log_is_refused() {
        for body in ["", "[]", "{\"events\":3}", "<html>"] {
            let e = parse(body.as_bytes(), 10).err().unwrap();
            assert_eq!(e.code(), "WORKER_BAD_ANSWER", "{body}");
        }
    }
}
