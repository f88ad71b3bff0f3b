//! The `/v1` handlers: authenticate, resolve the model, pick a worker,
//! forward, and meter. Streams are passed through event by event as they
//! arrive; the proxy asks the engine for usage and hides the usage chunk
//! from clients that did not ask for it; a client that goes away cancels
//! the upstream request and the usage seen so far is still recorded.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::{OpenAiError, V1Body};
use super::keys::{self, KeyInfo};
use super::routing::{InFlight, Lookup};
use super::usage::UsageRecord;
use crate::request_id;
use crate::state::AppState;

/// Who is calling `/v1`.
struct Consumer {
    organization_id: Uuid,
    key: Option<KeyInfo>,
    user_id: Option<Uuid>,
}

async fn consumer(state: &AppState, headers: &HeaderMap) -> Result<Consumer, OpenAiError> {
    // An API key or a session token as bearer, or the dashboard's session cookie.
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| crate::auth::caller::cookie_in(headers, crate::auth::caller::ACCESS_COOKIE))
        .ok_or_else(OpenAiError::unauthorized)?;
    if token.starts_with("inv_") {
        let key = keys::authenticate(state, token)
            .await
            .map_err(crate::error::ApiError::from)?
            .ok_or_else(OpenAiError::unauthorized)?;
        return Ok(Consumer {
            organization_id: key.organization_id,
            user_id: Some(key.created_by),
            key: Some(key),
        });
    }
    // The dashboard's playground calls with the session's token.
    let caller = crate::auth::caller::authenticate(state, token).await?;
    Ok(Consumer {
        organization_id: caller.org_id.0,
        user_id: Some(caller.user_id.0),
        key: None,
    })
}

/// The models the caller can use now, in OpenAI's list format.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("api_key" = [])),
    responses((status = 200, description = "OpenAI model list", body = Object), (status = 401, description = "invalid key", body = Object)))]
pub async fn list_models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let c = consumer(&state, &headers).await?;
    let created = Utc::now().timestamp();
    let data: Vec<Value> = state
        .routing
        .ready_models(c.organization_id)
        .into_iter()
        .filter(|m| {
            c.key
                .as_ref()
                .and_then(|k| k.models.as_ref())
                .is_none_or(|allowed| allowed.contains(m))
        })
        .map(|m| json!({ "id": m, "object": "model", "created": created, "owned_by": "inventiv" }))
        .collect();
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}

/// Chat completions (streaming or not), forwarded to a worker of the model.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", security(("api_key" = [])), request_body = Object,
    responses((status = 200, description = "OpenAI chat completion or SSE stream", body = Object),
              (status = 401, description = "invalid key", body = Object), (status = 404, description = "unknown model", body = Object),
              (status = 429, description = "rate limited", body = Object), (status = 503, description = "no capacity", body = Object)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    V1Body(body): V1Body,
) -> Result<Response, OpenAiError> {
    forward(state, headers, body, "/v1/chat/completions").await
}

/// Text completions (streaming or not).
#[utoipa::path(post, path = "/v1/completions", tag = "openai", security(("api_key" = [])), request_body = Object,
    responses((status = 200, description = "OpenAI completion or SSE stream", body = Object), (status = 401, description = "invalid key", body = Object)))]
pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    V1Body(body): V1Body,
) -> Result<Response, OpenAiError> {
    forward(state, headers, body, "/v1/completions").await
}

/// Embeddings.
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", security(("api_key" = [])), request_body = Object,
    responses((status = 200, description = "OpenAI embeddings", body = Object), (status = 401, description = "invalid key", body = Object)))]
pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    V1Body(body): V1Body,
) -> Result<Response, OpenAiError> {
    forward(state, headers, body, "/v1/embeddings").await
}

/// What the meter needs to know about one request.
struct Meter {
    state: AppState,
    record: UsageRecord,
    started: Instant,
}

impl Meter {
    fn finish(mut self, status: u16, prompt: i64, completion: i64) {
        self.record.status = i32::from(status);
        self.record.prompt_tokens = i32::try_from(prompt).unwrap_or(i32::MAX);
        self.record.completion_tokens = i32::try_from(completion).unwrap_or(i32::MAX);
        self.record.latency_ms =
            i32::try_from(self.started.elapsed().as_millis()).unwrap_or(i32::MAX);
        if self.state.usage.try_send(self.record).is_err() {
            tracing::error!("usage channel full: a usage record was lost");
        }
    }
}

async fn forward(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    path: &'static str,
) -> Result<Response, OpenAiError> {
    let started = Instant::now();
    let c = consumer(&state, &headers).await?;
    let mut request: Value = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::bad_request(format!("invalid JSON body: {e}")))?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| OpenAiError::bad_request("`model` is required"))?
        .to_owned();
    if c.key
        .as_ref()
        .and_then(|k| k.models.as_ref())
        .is_some_and(|allowed| !allowed.contains(&model))
    {
        return Err(OpenAiError::model_not_found(&model));
    }
    let streaming = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let client_usage = ClientUsage::asked(&request);
    if streaming {
        request["stream_options"] = ENGINE_STREAM_OPTIONS.clone();
    }
    let session = headers
        .get("x-inventiv-session")
        .and_then(|v| v.to_str().ok());
    let workers = match state.routing.lookup(c.organization_id, &model, session) {
        Lookup::Workers(w) => w,
        Lookup::NoCapacity => return Err(OpenAiError::no_capacity(&model)),
        Lookup::Unknown => return Err(OpenAiError::model_not_found(&model)),
    };
    let limits = super::forward_limits::check(&state, c.key.as_ref()).await?;
    // Only a stream's body changes (usage asked for); others go as they came.
    let payload = if streaming {
        Bytes::from(
            serde_json::to_vec(&request).map_err(|e| OpenAiError::bad_request(e.to_string()))?,
        )
    } else {
        body
    };
    let request_id = request_id::current().unwrap_or_else(|| Uuid::new_v4().simple().to_string());
    let mut last_error = String::from("no worker answered");
    for worker in workers.iter().take(3) {
        worker.outstanding.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(worker.clone());
        let sent = state
            .proxy_http
            .post(format!("{}{path}", worker.base_url))
            .header(CONTENT_TYPE, "application/json")
            .header("x-request-id", &request_id)
            .body(payload.clone())
            .send()
            .await;
        let upstream = match sent {
            Ok(r)
                if r.status() == StatusCode::BAD_GATEWAY
                    || r.status() == StatusCode::SERVICE_UNAVAILABLE =>
            {
                worker.failed();
                last_error = format!("worker answered {}", r.status());
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                worker.failed();
                last_error = format!("worker unreachable: {e}");
                continue;
            }
        };
        worker.succeeded();
        let meter = Meter {
            state: state.clone(),
            started,
            record: UsageRecord {
                request_id: request_id.clone(),
                at: Utc::now(),
                organization_id: c.organization_id,
                api_key_id: c.key.as_ref().map(|k| k.id),
                user_id: c.user_id,
                model: model.clone(),
                endpoint: path,
                instance_id: Some(worker.instance_id),
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: 0,
                ttft_ms: None,
                status: 0,
                streamed: streaming,
            },
        };
        let status = upstream.status();
        let mut response = if streaming && status.is_success() {
            let stream = relay_stream(
                upstream.bytes_stream(),
                meter,
                client_usage,
                in_flight,
                limits.clone(),
            );
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r
        } else {
            let bytes = upstream
                .bytes()
                .await
                .map_err(|e| OpenAiError::upstream(e.to_string()))?;
            let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
            let usage = parsed.as_ref().map(|v| &v["usage"]);
            let prompt = usage.and_then(|u| u["prompt_tokens"].as_i64()).unwrap_or(0);
            let completion = usage
                .and_then(|u| u["completion_tokens"].as_i64())
                .unwrap_or(0);
            limits.spend(&state, prompt + completion).await;
            meter.finish(status.as_u16(), prompt, completion);
            drop(in_flight);
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        limits.headers(response.headers_mut());
        return Ok(response);
    }
    Err(OpenAiError::upstream(last_error))
}

/// What the engine is asked for on every stream: the usage on every chunk
/// (vLLM's `continuous_usage_stats`), so that a stream cut short (client
/// gone, worker dead) is metered with the engine's own counts, prompt
/// included, exactly as the engine's counters have it.
static ENGINE_STREAM_OPTIONS: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({ "include_usage": true, "continuous_usage_stats": true }));

/// The usage the client asked to see in its stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientUsage {
    None,
    /// The final `choices: []` usage chunk (`include_usage`).
    Final,
    /// That and the usage on every chunk (`continuous_usage_stats` too).
    EveryChunk,
}

impl ClientUsage {
    fn asked(request: &Value) -> ClientUsage {
        let options = request.get("stream_options");
        let flag = |name: &str| {
            options
                .and_then(|o| o.get(name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        match (flag("include_usage"), flag("continuous_usage_stats")) {
            (false, _) => ClientUsage::None,
            (true, false) => ClientUsage::Final,
            (true, true) => ClientUsage::EveryChunk,
        }
    }
}

/// A content chunk re-encoded without the per-chunk usage the client did not ask for.
fn without_usage(mut chunk: Value) -> Bytes {
    if let Some(fields) = chunk.as_object_mut() {
        fields.remove("usage");
    }
    Bytes::from(format!("data: {chunk}\n\n"))
}

/// The relay state of one stream; records usage once, even when dropped early.
struct Relay {
    meter: Option<Meter>,
    buffer: Vec<u8>,
    queue: VecDeque<Bytes>,
    client_usage: ClientUsage,
    prompt: i64,
    /// The engine's count of completion tokens, once it gave one.
    completion: Option<i64>,
    content_events: i64,
    in_flight: InFlight,
    limits: super::forward_limits::Limits,
    ended: bool,
    /// The worker's stream broke before its end.
    broken: bool,
}

impl Relay {
    /// Splits complete SSE events out of the buffer and queues what to send.
    fn drain_events(&mut self) {
        while let Some(pos) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.buffer.drain(..pos + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let data = text.trim().strip_prefix("data:").map(str::trim);
            if text.trim().is_empty() {
                continue;
            }
            let mut forward = true;
            let mut strip = false;
            let mut reencoded = None;
            if let Some(json) = data
                .filter(|d| *d != "[DONE]")
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
            {
                let choices_empty = json["choices"].as_array().is_some_and(Vec::is_empty);
                if let Some(usage) = json.get("usage").filter(|u| !u.is_null()) {
                    self.prompt = usage["prompt_tokens"].as_i64().unwrap_or(self.prompt);
                    self.completion = usage["completion_tokens"].as_i64().or(self.completion);
                    if choices_empty && self.client_usage == ClientUsage::None {
                        forward = false;
                    }
                    strip = !choices_empty && self.client_usage != ClientUsage::EveryChunk;
                }
                if !choices_empty {
                    if let (Some(m), true) = (self.meter.as_mut(), self.content_events == 0) {
                        m.record.ttft_ms = Some(
                            i32::try_from(m.started.elapsed().as_millis()).unwrap_or(i32::MAX),
                        );
                    }
                    self.content_events += 1;
                }
                if strip {
                    reencoded = Some(json);
                }
            }
            match (forward, reencoded) {
                (false, _) => {}
                (true, Some(chunk)) => self.queue.push_back(without_usage(chunk)),
                (true, None) => self.queue.push_back(Bytes::from(event)),
            }
        }
    }

    /// The completion tokens seen: the engine's count when it gave one,
    /// else one per content event.
    fn completion_seen(&self) -> i64 {
        self.completion.unwrap_or(self.content_events)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(meter) = self.meter.take() {
            // The client went away (or the worker did): record what was seen.
            let status = match (self.broken, self.ended) {
                (true, _) => 502,
                (false, true) => 200,
                (false, false) => 499,
            };
            let completion = self.completion_seen();
            let tokens = self.prompt + completion;
            let (state, limits) = (meter.state.clone(), self.limits.clone());
            meter.finish(status, self.prompt, completion);
            let tasks = state.tasks.clone();
            tasks.spawn(async move { limits.spend(&state, tokens).await });
        }
    }
}

fn relay_stream(
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    meter: Meter,
    client_usage: ClientUsage,
    in_flight: InFlight,
    limits: super::forward_limits::Limits,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let relay = Relay {
        meter: Some(meter),
        buffer: Vec::with_capacity(4096),
        queue: VecDeque::new(),
        client_usage,
        prompt: 0,
        completion: None,
        content_events: 0,
        in_flight,
        limits,
        ended: false,
        broken: false,
    };
    futures_util::stream::unfold(
        (Box::pin(upstream), relay),
        |(mut upstream, mut relay)| async move {
            loop {
                if let Some(next) = relay.queue.pop_front() {
                    return Some((Ok(next), (upstream, relay)));
                }
                if relay.ended {
                    return None;
                }
                match upstream.next().await {
                    Some(Ok(chunk)) => {
                        relay.buffer.extend_from_slice(&chunk);
                        relay.drain_events();
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "worker stream broke");
                        let error = json!({ "error": { "message": "the worker's stream broke", "type": "server_error", "code": "upstream_error" } });
                        relay
                            .queue
                            .push_back(Bytes::from(format!("data: {error}\n\n")));
                        relay.ended = true;
                        relay.broken = true;
                        relay.in_flight.0.failed();
                    }
                    None => {
                        relay.buffer.extend_from_slice(b"\n\n");
                        relay.drain_events();
                        relay.ended = true;
                    }
                }
            }
        },
    )
}
