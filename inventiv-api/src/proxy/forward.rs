//! The `/v1` handlers: authenticate, resolve the model, pick a worker,
//! forward, and meter. Streams are passed through event by event as they
//! arrive; the proxy asks the engine for usage and hides the usage chunk
//! from clients that did not ask for it; a client that goes away cancels
//! the upstream request and the usage seen so far is still recorded.
//! Each request counts in its (organization, model) series
//! ([`crate::metrics::ModelSeries`]), reached through the routing table.
//! Each request is one trace under its request span: `auth`, `routing`
//! (the worker chosen), `upstream` per worker tried, `first_byte` of a
//! stream, `metering` (the record's hand-over until it is durable); those
//! are made only while traces are exported ([`inventiv_common::trace_span`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use inventiv_common::telemetry;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;
use uuid::Uuid;

use super::error::{OpenAiError, OpenAiErrorBody, V1Body};
use super::journal::Durable;
use super::keys::{self, KeyInfo};
use super::plausible::Bounds;
use super::routing::{InFlight, Lookup};
use super::usage::{SharedUse, UsageRecord};
use crate::metrics::ModelSeries;
use crate::request_id;
use crate::state::AppState;

/// Who is calling `/v1`.
struct Consumer {
    organization_id: Uuid,
    key: Option<Arc<KeyInfo>>,
    user_id: Option<Uuid>,
}

/// The fields of a `/v1` body the proxy reads. Everything else passes
/// through untouched, and is skipped rather than parsed into a tree.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    stream: Option<bool>,
    /// Outer `Some` when the key is present, even as `null`: whether the
    /// body already has the key decides how usage is asked for, never its
    /// parsed value (a spliced second key would lose to a `null` one).
    #[serde(default, deserialize_with = "present")]
    stream_options: Option<Option<StreamOptions>>,
    /// The prompt's text, for the prefix-aware worker choice.
    #[serde(borrow)]
    messages: Option<super::prefix::PromptText<'a>>,
    #[serde(borrow)]
    prompt: Option<super::prefix::PromptText<'a>>,
}

/// A field that is present (even as `null`) deserializes to `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
    continuous_usage_stats: Option<bool>,
}

/// The W3C trace context header, sent upstream while traces are exported.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the engine is asked for on every stream: the usage on every chunk
/// (vLLM's `continuous_usage_stats`), so that a stream cut short (client
/// gone, worker dead) is metered with the engine's own counts, prompt
/// included, exactly as the engine's counters have it. What the client did
/// not ask for is taken out again on the way back.
const ENGINE_STREAM_OPTIONS: &str = r#"{"include_usage":true,"continuous_usage_stats":true}"#;

/// Sets [`ENGINE_STREAM_OPTIONS`] in a parsed body, keeping the client's
/// other stream options.
fn ask_engine_usage(request: &mut serde_json::Map<String, Value>) {
    let options = request
        .entry("stream_options")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !options.is_object() {
        *options = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(o) = options {
        o.insert("include_usage".to_owned(), Value::Bool(true));
        o.insert("continuous_usage_stats".to_owned(), Value::Bool(true));
    }
}

/// The token counts of an answer or of a stream's usage chunk.
#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    /// vLLM (with `--enable-prompt-tokens-details`) reports the prompt
    /// tokens served from its prefix cache here, in the final usage only.
    prompt_tokens_details: Option<PromptTokensDetails>,
    /// Reasoning tokens, when an engine reports them (OpenAI's shape).
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<i64>,
}

#[derive(Deserialize)]
struct CompletionTokensDetails {
    reasoning_tokens: Option<i64>,
}

impl Usage {
    fn cached(&self) -> Option<i64> {
        self.prompt_tokens_details.as_ref()?.cached_tokens
    }

    fn reasoning(&self) -> Option<i64> {
        self.completion_tokens_details.as_ref()?.reasoning_tokens
    }
}

/// What the meter reads of a whole (not streamed) answer.
#[derive(Deserialize)]
struct Answer {
    usage: Option<Usage>,
}

/// What the meter reads of one streamed chunk: whether it carries content
/// (non-empty `choices`) and its usage, if any.
#[derive(Deserialize)]
struct Chunk {
    choices: Option<Vec<IgnoredAny>>,
    usage: Option<Usage>,
}

/// The body to send upstream: the client's as received, unless the engine
/// must be asked for usage (a stream: [`ENGINE_STREAM_OPTIONS`]) or knows
/// the model under another id (a share's `rename`). A stream whose body
/// has no `stream_options` key gets them spliced in front, without parsing
/// the body; a body with the key (even `null`) is re-encoded with it set,
/// so the engine always sees exactly one.
fn upstream_body(
    body: Bytes,
    streaming: bool,
    options: Option<Option<&StreamOptions>>,
    rename: Option<&str>,
) -> Result<Bytes, OpenAiError> {
    let asked = options
        .flatten()
        .is_some_and(|o| o.include_usage == Some(true) && o.continuous_usage_stats == Some(true));
    match (rename, streaming, options) {
        (None, false, _) => Ok(body),
        (None, true, _) if asked => Ok(body),
        (None, true, None) => {
            let rest = body.trim_ascii_start().get(1..).unwrap_or_default();
            let mut out = BytesMut::with_capacity(body.len() + 80);
            out.extend_from_slice(br#"{"stream_options":"#);
            out.extend_from_slice(ENGINE_STREAM_OPTIONS.as_bytes());
            out.extend_from_slice(b",");
            out.extend_from_slice(rest);
            Ok(out.freeze())
        }
        _ => {
            let mut request: serde_json::Map<String, Value> = serde_json::from_slice(&body)
                .map_err(|e| OpenAiError::bad_request(format!("invalid JSON body: {e}")))?;
            if let Some(model) = rename {
                request.insert("model".to_owned(), Value::String(model.to_owned()));
            }
            if streaming {
                ask_engine_usage(&mut request);
            }
            serde_json::to_vec(&request)
                .map(Bytes::from)
                .map_err(|e| OpenAiError::bad_request(e.to_string()))
        }
    }
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
    // Boxed: the dashboard's path, rarer than keys, with a larger state.
    let caller = Box::pin(crate::auth::caller::authenticate(state, token)).await?;
    Ok(Consumer {
        organization_id: caller.org_id.0,
        user_id: Some(caller.user_id.0),
        key: None,
    })
}

/// The models the caller can use, ready or cold, in OpenAI's list format.
#[utoipa::path(get, path = "/v1/models", operation_id = "list_v1_models", tag = "openai", security(("api_key" = [])),
    responses((status = 200, description = "OpenAI model list", body = Object), (status = 401, description = "invalid key", body = OpenAiErrorBody)))]
pub async fn list_models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let c = consumer(&state, &headers).await?;
    let created = Utc::now().timestamp();
    let data: Vec<Value> = state
        .routing
        .models(c.organization_id)
        .into_iter()
        .filter(|(m, _)| {
            c.key
                .as_ref()
                .and_then(|k| k.models.as_ref())
                .is_none_or(|allowed| allowed.contains(m))
        })
        .map(|(m, cold)| {
            // A cold model is available: its first request is held until
            // a replica is ready.
            let state = if cold { "cold" } else { "ready" };
            json!({ "id": m, "object": "model", "created": created, "owned_by": "inventiv",
                    "inventiv": { "state": state } })
        })
        .collect();
    Ok(axum::Json(json!({ "object": "list", "data": data })).into_response())
}

/// Chat completions (streaming or not), forwarded to a worker of the model.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", security(("api_key" = [])), request_body = V1Body,
    responses((status = 200, description = "OpenAI chat completion or SSE stream", body = Object),
              (status = 401, description = "invalid key", body = OpenAiErrorBody),
              (status = 403, description = "the provider paused the sharing of this model (`share_paused`)", body = OpenAiErrorBody),
              (status = 404, description = "unknown model", body = OpenAiErrorBody),
              (status = 429, description = "rate limited, a hard budget would be exceeded (`insufficient_quota`), or the deployment is saturated (`deployment_saturated`, see Retry-After)", body = OpenAiErrorBody),
              (status = 502, description = "the worker failed or answered badly (`upstream_error`)", body = OpenAiErrorBody),
              (status = 503, description = "no capacity (`no_capacity`), a cold model's wait queue full or its wait over (`cold_start_queue_full`, `cold_start_timeout`), or usage cannot be metered now (`metering_unavailable`)", body = OpenAiErrorBody)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    V1Body(body): V1Body,
) -> Result<Response, OpenAiError> {
    serve(state, headers, body, Endpoint::ChatCompletions).await
}

/// Text completions (streaming or not).
#[utoipa::path(post, path = "/v1/completions", tag = "openai", security(("api_key" = [])), request_body = V1Body,
    responses((status = 200, description = "OpenAI completion or SSE stream", body = Object),
              (status = 401, description = "invalid key", body = OpenAiErrorBody),
              (status = 403, description = "the provider paused the sharing of this model (`share_paused`)", body = OpenAiErrorBody),
              (status = 404, description = "unknown model", body = OpenAiErrorBody),
              (status = 429, description = "rate limited, a hard budget would be exceeded (`insufficient_quota`), or the deployment is saturated (`deployment_saturated`, see Retry-After)", body = OpenAiErrorBody),
              (status = 502, description = "the worker failed or answered badly (`upstream_error`)", body = OpenAiErrorBody),
              (status = 503, description = "no capacity (`no_capacity`), a cold model's wait queue full or its wait over (`cold_start_queue_full`, `cold_start_timeout`), or usage cannot be metered now (`metering_unavailable`)", body = OpenAiErrorBody)))]
pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    V1Body(body): V1Body,
) -> Result<Response, OpenAiError> {
    serve(state, headers, body, Endpoint::Completions).await
}

/// Embeddings.
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", security(("api_key" = [])), request_body = V1Body,
    responses((status = 200, description = "OpenAI embeddings", body = Object),
              (status = 401, description = "invalid key", body = OpenAiErrorBody),
              (status = 403, description = "the provider paused the sharing of this model (`share_paused`)", body = OpenAiErrorBody),
              (status = 404, description = "unknown model", body = OpenAiErrorBody),
              (status = 429, description = "rate limited, a hard budget would be exceeded (`insufficient_quota`), or the deployment is saturated (`deployment_saturated`, see Retry-After)", body = OpenAiErrorBody),
              (status = 502, description = "the worker failed or answered badly (`upstream_error`)", body = OpenAiErrorBody),
              (status = 503, description = "no capacity (`no_capacity`), a cold model's wait queue full or its wait over (`cold_start_queue_full`, `cold_start_timeout`), or usage cannot be metered now (`metering_unavailable`)", body = OpenAiErrorBody)))]
pub async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    V1Body(body): V1Body,
) -> Result<Response, OpenAiError> {
    serve(state, headers, body, Endpoint::Embeddings).await
}

/// The routes that forward to a worker: served by [`crate::front`]
/// straight from the connection, and by the handlers above through the
/// router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// Each one, in the order of their discriminants.
    pub const ALL: [Endpoint; 3] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ];

    /// The endpoint of a request's path, if it is one.
    pub fn of(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }

    /// Its path, here and on the worker.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }
}

/// Serves one request of `endpoint`: authenticated, routed, forwarded,
/// metered.
pub async fn serve(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Result<Response, OpenAiError> {
    forward(state, headers, body, endpoint.path()).await
}

/// What the meter needs to know about one request.
struct Meter {
    state: AppState,
    record: UsageRecord,
    started: Instant,
    series: Arc<ModelSeries>,
    /// The serving organization's series, where the load counts.
    owner: Arc<ModelSeries>,
    /// What the worker may plausibly report for this request.
    bounds: Bounds,
    /// Counted by the journal until the record is handed over.
    answering: Option<super::journal::writer::Answering>,
    /// The request's span: a stream is metered after it closed.
    span: tracing::Span,
}

impl Meter {
    /// Notes the parts of the counts the worker reported: cached prompt
    /// tokens and reasoning tokens, bounded by the billed counts in `finish`.
    fn parts(&mut self, cached: Option<i64>, reasoning: Option<i64>) {
        let saturate = |n: Option<i64>| i32::try_from(n.unwrap_or(0).max(0)).unwrap_or(i32::MAX);
        self.record.cached_prompt_tokens = saturate(cached);
        self.record.reasoning_tokens = saturate(reasoning);
    }

    /// Bills the worker's report, bounded (see [`super::plausible`]), given
    /// the bytes it sent back; returns the counts billed. The record is
    /// journaled by [`Meter::record`], after what the request held is
    /// settled: a row in the database is always already settled, so the
    /// budget watcher's raise to the database's sums never counts it twice.
    fn bill(&mut self, status: u16, prompt: i64, completion: i64, answer_bytes: usize) -> Billed {
        let billed = self.bounds.bill(prompt, completion, answer_bytes);
        if billed.disputed {
            tracing::warn!(instance_id = ?self.record.instance_id, request_id = %self.record.request_id, prompt, completion,
                           billed_prompt = billed.prompt, billed_completion = billed.completion,
                           "implausible usage report; billed at the bound and recorded as a dispute");
            self.record.disputed = Some((prompt, completion));
        }
        self.record.status = i32::from(status);
        self.record.prompt_tokens = i32::try_from(billed.prompt).unwrap_or(i32::MAX);
        self.record.completion_tokens = i32::try_from(billed.completion).unwrap_or(i32::MAX);
        // Parts of the billed counts, never more.
        self.record.cached_prompt_tokens = self
            .record
            .cached_prompt_tokens
            .min(self.record.prompt_tokens);
        self.record.reasoning_tokens = self
            .record
            .reasoning_tokens
            .min(self.record.completion_tokens);
        let elapsed = self.started.elapsed();
        self.record.latency_ms = i32::try_from(elapsed.as_millis()).unwrap_or(i32::MAX);
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        self.series.duration.observe(elapsed);
        self.series
            .prompt_tokens
            .add(count(self.record.prompt_tokens));
        self.series
            .completion_tokens
            .add(count(self.record.completion_tokens));
        self.series
            .cached_tokens
            .add(count(self.record.cached_prompt_tokens));
        self.owner.serving.completed.inc();
        self.owner
            .serving
            .tokens
            .add(count(self.record.completion_tokens));
        Billed {
            prompt: billed.prompt,
            cached: i64::from(self.record.cached_prompt_tokens),
            completion: billed.completion,
        }
    }

    /// Hands the billed record to the journal; its durability is what the
    /// answer's end waits for.
    fn record(self) -> Durable {
        // Counted off before the handover: a writer that sees the record
        // sees this request gone too, and waits for nobody it has.
        drop(self.answering);
        self.state.usage.record(self.record)
    }
}

/// A request's end: its meter billed, what it held still to settle.
struct Closing {
    meter: Meter,
    billed: Billed,
    limits: super::forward_limits::Limits,
    budget: super::budgets::Reservation,
}

impl Closing {
    /// The span of the hand-over, in the request's trace.
    fn span(&self) -> tracing::Span {
        inventiv_common::trace_span!(parent: &self.meter.span, "metering")
    }

    /// Settles the rate limit window and the budget reservation, then
    /// journals the record.
    async fn finish(self) -> Durable {
        let state = self.meter.state.clone();
        self.billed.spend(&state, &self.limits, self.budget).await;
        self.meter.record()
    }
}

/// The counts a request is billed for (what its usage row says).
#[derive(Clone, Copy)]
struct Billed {
    prompt: i64,
    /// Of `prompt`, the tokens the engine served from its prefix cache.
    cached: i64,
    completion: i64,
}

impl Billed {
    /// Settles what the request held: its key's token window and its
    /// budget reservation.
    async fn spend(
        self,
        state: &AppState,
        limits: &super::forward_limits::Limits,
        budget: super::budgets::Reservation,
    ) {
        limits.spend(state, self.prompt + self.completion).await;
        budget
            .settle(self.prompt, self.cached, self.completion)
            .await;
    }
}

/// Where a request goes: the workers, its series (the caller's), the
/// serving organization's series, the share it goes through and the
/// model's id there.
type Found = (
    Vec<Arc<super::routing::Worker>>,
    Arc<ModelSeries>,
    Arc<ModelSeries>,
    Option<SharedUse>,
    Option<String>,
);

/// What routing found for a request.
enum Routed {
    Found(Found),
    /// A cold service's model: the request waits, counted in the owner's series.
    Cold(Arc<ModelSeries>),
}

/// Routes a request: the organization's own model first, else another
/// organization's share; `first` counts the request (not again after a hold).
fn route(
    state: &AppState,
    c: &Consumer,
    model: &str,
    session: Option<&str>,
    prompt: Option<&super::prefix::PromptBlocks>,
    resolved: &mut Option<Arc<ModelSeries>>,
    first: bool,
) -> Result<Routed, OpenAiError> {
    let mut lookup = state
        .routing
        .lookup(c.organization_id, model, session, prompt);
    let mut shared = None;
    let mut upstream_model = None;
    match &lookup {
        Lookup::Workers(_, s) | Lookup::NoCapacity(s) | Lookup::Cold(s) => {
            *resolved = Some(s.clone())
        }
        Lookup::Unknown => {}
    }
    if matches!(lookup, Lookup::Unknown) {
        if let Some(share) = state.routing.share_for(c.organization_id, model) {
            *resolved = Some(share.series.clone());
            if let Some(s) = resolved.as_deref().filter(|_| first) {
                s.requests.inc();
            }
            if share.paused {
                return Err(OpenAiError::share_paused(model));
            }
            if share.over_max {
                return Err(OpenAiError::price_above_maximum(model));
            }
            lookup = state
                .routing
                .lookup(share.provider_org, &share.model_code, session, prompt);
            // The provider's engine knows the model by its own id.
            upstream_model = Some(share.model_code.clone());
            shared = Some(SharedUse {
                provider_organization_id: share.provider_org,
                offering_id: share.offering_id,
                share_id: share.share_id,
            });
        }
    }
    if shared.is_none() && first {
        if let Some(s) = resolved.as_deref() {
            s.requests.inc();
        }
    }
    // The lookup's series is the serving organization's (the provider's
    // for a share): the load counts there, for its autoscaler.
    match (lookup, resolved.clone()) {
        (Lookup::Workers(w, owner), Some(s)) => {
            Ok(Routed::Found((w, s, owner, shared, upstream_model)))
        }
        (Lookup::Cold(owner), Some(_)) => Ok(Routed::Cold(owner)),
        (Lookup::NoCapacity(owner), _) => {
            owner.serving.refused.inc();
            Err(OpenAiError::no_capacity(model))
        }
        _ => Err(OpenAiError::model_not_found(model)),
    }
}

async fn forward(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    path: &'static str,
) -> Result<Response, OpenAiError> {
    let mut resolved = None;
    let mut admitted = None;
    let answer = forward_to(
        state.clone(),
        headers,
        body,
        path,
        &mut resolved,
        &mut admitted,
    )
    .await;
    if let Err(e) = &answer {
        match &resolved {
            Some(s) => s.errors.count(e.code),
            None => state.metrics.unresolved.count(e.code),
        }
    }
    answer.map(|r| super::admission::hold(r, admitted))
}

/// [`forward`]'s work; `resolved` is set once the (organization, model)
/// is known, for the errors to count there; `admitted` holds the
/// request's slot on its deployment, for its stream to keep.
async fn forward_to(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    path: &'static str,
    resolved: &mut Option<Arc<ModelSeries>>,
    admitted: &mut Option<super::admission::Permit>,
) -> Result<Response, OpenAiError> {
    let mut started = Instant::now();
    let c = consumer(&state, &headers)
        .instrument(inventiv_common::trace_span!("auth"))
        .await?;
    // Nothing is served that could not be metered.
    state.usage.admit()?;
    // From here the journal's writer counts this request among those whose
    // record may join its next sync.
    let mut answering = state.usage.answering();
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(OpenAiError::bad_request("the body must be a JSON object"));
    }
    let Peek {
        model,
        stream,
        stream_options,
        messages,
        prompt,
    } = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::bad_request(format!("invalid JSON body: {e}")))?;
    let model = model
        .ok_or_else(|| OpenAiError::bad_request("`model` is required"))?
        .into_owned();
    if c.key
        .as_ref()
        .and_then(|k| k.models.as_ref())
        .is_some_and(|allowed| !allowed.contains(&model))
    {
        return Err(OpenAiError::model_not_found(&model));
    }
    let streaming = stream.unwrap_or(false);
    let stream_options = stream_options.as_ref().map(Option::as_ref);
    let client_usage = ClientUsage::asked(stream_options.flatten());
    let session = headers
        .get("x-inventiv-session")
        .and_then(|v| v.to_str().ok());
    let prompt = match session {
        Some(_) => None,
        None => state
            .routing
            .prompt_blocks(messages.as_ref().or(prompt.as_ref())),
    };
    let routing = inventiv_common::trace_span!(
        "routing",
        %model,
        instance_id = tracing::field::Empty,
        candidates = tracing::field::Empty
    );
    // A cold model's request waits for a worker (see [`super::held`]):
    // counted once, metered from when it leaves the queue.
    let mut arrival = None;
    let until = started + state.config.held.timeout;
    let (workers, series, owner, shared, upstream_model) = loop {
        let found = {
            let _routing = routing.enter();
            route(
                &state,
                &c,
                &model,
                session,
                prompt.as_ref(),
                resolved,
                arrival.is_none(),
            )?
        };
        let owner = match found {
            Routed::Found(found) => break found,
            Routed::Cold(owner) => owner,
        };
        let max = state.config.held.max_per_model;
        if max == 0 || state.config.held.timeout.is_zero() {
            owner.serving.refused.inc();
            return Err(OpenAiError::no_capacity(&model));
        }
        // Not answering while it waits: the journal's writer waits for
        // nobody held, and the typical answer's duration is not skewed.
        drop(answering.take());
        let place = *arrival.get_or_insert_with(|| state.routing.held.arrival());
        state
            .routing
            .held
            .wait(&owner, place, max, until)
            .instrument(inventiv_common::trace_span!("held", %model))
            .await
            .map_err(|refused| match refused {
                super::held::Refused::Full => OpenAiError::held_full(&model),
                super::held::Refused::TimedOut => OpenAiError::held_timeout(&model),
            })?;
        state.usage.admit()?;
        answering = state.usage.answering();
        started = Instant::now();
    };
    // The first is the choice; the others are its fallbacks.
    if let Some(w) = workers.first() {
        routing.record("instance_id", tracing::field::display(w.instance_id));
    }
    routing.record("candidates", workers.len());
    // The system prompt that applies, before anything reads the body: it
    // is prompt text like any other (bounds, metering).
    let body = match path {
        "/v1/chat/completions" => {
            let key = c.key.as_ref().map(|k| k.id);
            match crate::system_prompts::effective(&state, key, c.organization_id, &model)
                .await
                .map_err(crate::error::ApiError::from)?
            {
                Some(prompt) => crate::system_prompts::apply(body, &prompt)?,
                None => body,
            }
        }
        _ => body,
    };
    let limits = super::forward_limits::check(&state, c.key.as_deref()).await?;
    let bounds = Bounds::new(&body, workers.first().and_then(|w| w.context_length));
    let budget = super::budgets::admit(
        &state,
        super::budgets::Request {
            organization_id: c.organization_id,
            api_key_id: c.key.as_ref().map(|k| k.id),
            share_id: shared.map(|s| s.share_id),
            bounds,
            context_length: workers.first().and_then(|w| w.context_length),
        },
    )
    .await?;
    // A slot of the deployment, shared fairly between the organizations
    // using it (see [`super::admission`]).
    *admitted = super::admission::admit(
        &state,
        c.organization_id,
        c.key.as_ref().map(|k| k.priority),
        &model,
        &owner,
        shared.is_some(),
        workers.len(),
        &mut answering,
    )
    .instrument(inventiv_common::trace_span!("admission"))
    .await?;
    // Only a stream's body (usage asked for) or a shared model's name
    // changes; others go as they came.
    let payload = upstream_body(body, streaming, stream_options, upstream_model.as_deref())?;
    let request_id = request_id::current().unwrap_or_else(request_id::generate);
    let request_header = HeaderValue::from_str(&request_id).ok();
    let upstream_limits = state.config.upstream;
    // Made only when a worker failed: the message is a string to allocate.
    let mut last_error = None;
    for (attempt, worker) in workers.iter().take(3).enumerate() {
        if attempt > 0 {
            series.retries.inc();
        }
        let failed = |worker: &super::routing::Worker| {
            if worker.failed() {
                series.ejections.inc();
            }
        };
        worker.outstanding.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(worker.clone());
        let url = worker.url(path).ok_or_else(|| {
            OpenAiError::upstream(format!("bad worker address {}", worker.base_url))
        })?;
        let call = inventiv_common::trace_span!(
            "upstream",
            instance_id = %worker.instance_id,
            status = tracing::field::Empty
        );
        let traceparent = telemetry::traceparent(&call).and_then(|t| HeaderValue::try_from(t).ok());
        let headers = [
            request_header.as_ref().map(|id| (&request_id::HEADER, id)),
            traceparent.as_ref().map(|t| (&TRACEPARENT, t)),
        ];
        let sent = worker
            .client
            .post(url, headers.into_iter().flatten(), payload.clone())
            .instrument(call.clone())
            .await;
        if let Ok(r) = &sent {
            call.record("status", r.status().as_u16());
        }
        let upstream = match sent {
            // 401 is the relay refusing the key (the engine asks for none):
            // the worker's failure, never shown to the caller as theirs.
            Ok(r)
                if r.status() == StatusCode::BAD_GATEWAY
                    || r.status() == StatusCode::SERVICE_UNAVAILABLE
                    || r.status() == StatusCode::UNAUTHORIZED =>
            {
                failed(worker);
                last_error = Some(OpenAiError::upstream(format!(
                    "worker answered {}",
                    r.status()
                )));
                continue;
            }
            Ok(r) if r.status().is_redirection() => {
                tracing::warn!(instance_id = %worker.instance_id, %request_id, status = %r.status(), "worker answered a redirect; not followed");
                failed(worker);
                last_error = Some(OpenAiError::upstream_redirect(r.status()));
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                failed(worker);
                last_error = Some(OpenAiError::upstream(format!("worker unreachable: {e}")));
                continue;
            }
        };
        worker.succeeded();
        let mut meter = Meter {
            answering: answering.take(),
            state: state.clone(),
            started,
            series: series.clone(),
            owner: owner.clone(),
            bounds,
            span: tracing::Span::current(),
            record: UsageRecord {
                // Time-ordered (v7): each row's id lands at the end of
                // the unique index a batch is checked against, not on a
                // random page of it (measured under the proxy bench's
                // load: about 20 → 12 µs of PostgreSQL CPU per row).
                usage_id: Uuid::now_v7(),
                // The last use of the id: moved, not copied.
                request_id,
                at: Utc::now(),
                organization_id: c.organization_id,
                api_key_id: c.key.as_ref().map(|k| k.id),
                user_id: c.user_id,
                model: model.clone(),
                endpoint: path,
                instance_id: Some(worker.instance_id),
                prompt_tokens: 0,
                completion_tokens: 0,
                cached_prompt_tokens: 0,
                reasoning_tokens: 0,
                latency_ms: 0,
                ttft_ms: None,
                status: 0,
                streamed: streaming,
                shared,
                disputed: None,
            },
        };
        let status = upstream.status();
        let mut response = if streaming && status.is_success() {
            let stream = relay_stream(
                upstream.into_stream(),
                meter,
                client_usage,
                in_flight,
                limits.clone(),
                budget,
                upstream_limits.max_event_bytes,
            );
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            r
        } else {
            let bytes = match super::bounded::read(upstream, upstream_limits.max_answer_bytes).await
            {
                Ok(b) => b,
                Err(e) => {
                    // Nothing reached the client: nothing is charged.
                    failed(worker);
                    meter.bill(e.status.as_u16(), 0, 0, 0);
                    let _ = meter.record();
                    return Err(e);
                }
            };
            if !status.is_success() {
                series.errors.count("engine_error");
            }
            let usage = serde_json::from_slice::<Answer>(&bytes)
                .ok()
                .and_then(|a| a.usage);
            meter.parts(
                usage.as_ref().and_then(Usage::cached),
                usage.as_ref().and_then(Usage::reasoning),
            );
            let prompt = usage.as_ref().and_then(|u| u.prompt_tokens).unwrap_or(0);
            let completion = usage.and_then(|u| u.completion_tokens).unwrap_or(0);
            let billed = meter.bill(status.as_u16(), prompt, completion, bytes.len());
            async {
                billed.spend(&state, &limits, budget).await;
                let durable = meter.record();
                drop(in_flight);
                state.metrics.usage_write(durable.wait()).await
            }
            .instrument(inventiv_common::trace_span!("metering"))
            .await?;
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        limits.headers(response.headers_mut());
        return Ok(response);
    }
    Err(last_error.unwrap_or_else(|| OpenAiError::upstream("no worker answered")))
}

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
    fn asked(options: Option<&StreamOptions>) -> ClientUsage {
        let flag = |f: fn(&StreamOptions) -> Option<bool>| options.and_then(f).unwrap_or(false);
        match (
            flag(|o| o.include_usage),
            flag(|o| o.continuous_usage_stats),
        ) {
            (false, _) => ClientUsage::None,
            (true, false) => ClientUsage::Final,
            (true, true) => ClientUsage::EveryChunk,
        }
    }
}

/// A content chunk without the per-chunk usage the client did not ask for
/// (`event` as it came if it cannot be).
fn without_usage(json: &[u8], event: &Bytes) -> Bytes {
    if let Some(cut) = trailing_usage_cut(json) {
        let mut out = BytesMut::with_capacity(cut + 9);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(json.get(..cut).unwrap_or_default());
        out.extend_from_slice(b"}\n\n");
        return out.freeze();
    }
    match serde_json::from_slice::<serde_json::Map<String, Value>>(json) {
        Ok(mut fields) => {
            fields.remove("usage");
            Bytes::from(format!("data: {}\n\n", Value::Object(fields)))
        }
        Err(_) => event.clone(),
    }
}

/// Where a chunk's top-level `"usage"` member starts when it is the last
/// one, as vLLM writes it (`…,"usage":{…}}`): cutting there and closing the
/// object drops it without re-encoding the chunk. None when the chunk has
/// another shape (the caller re-encodes it then).
fn trailing_usage_cut(json: &[u8]) -> Option<usize> {
    const KEY: &[u8] = br#","usage":"#;
    let body = json.strip_suffix(b"}")?;
    let at = body.windows(KEY.len()).rposition(|w| w == KEY)?;
    // What follows the key must be exactly one JSON value up to the final
    // brace; a nested `"usage"` key leaves extra closing braces behind.
    serde_json::from_slice::<IgnoredAny>(body.get(at + KEY.len()..)?).ok()?;
    Some(at)
}

/// The relay state of one stream; records usage once, even when dropped early.
struct Relay {
    meter: Option<Meter>,
    buffer: BytesMut,
    queue: VecDeque<Bytes>,
    client_usage: ClientUsage,
    prompt: i64,
    /// The engine's count of completion tokens, once it gave one.
    completion: Option<i64>,
    /// The last usage's parts (cached prompt, reasoning), as reported.
    cached: Option<i64>,
    reasoning: Option<i64>,
    content_events: i64,
    /// When the last content event came (the inter-token latency).
    last_content: Option<Instant>,
    /// Bytes the worker sent, for the completion's plausibility bound.
    received: usize,
    in_flight: InFlight,
    limits: super::forward_limits::Limits,
    /// The request's budget reservation, settled when the meter is.
    budget: super::budgets::Reservation,
    /// Largest single event the worker may send (see [`super::bounded`]).
    max_event: usize,
    ended: bool,
    /// The worker's stream broke before its end.
    broken: bool,
    /// The stream's `[DONE]`, sent once the usage record is durable.
    done: Option<Bytes>,
    /// Open from the answer's headers until its first bytes.
    first_byte: Option<tracing::Span>,
}

impl Relay {
    /// Splits complete SSE events out of the buffer and queues what to send.
    fn drain_events(&mut self) {
        while let Some(pos) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let event = self.buffer.split_to(pos + 2).freeze();
            let text = event.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let data = text.strip_prefix(b"data:").map(<[u8]>::trim_ascii);
            let mut forward = true;
            let mut strip = false;
            if let Some(chunk) = data
                .filter(|d| *d != b"[DONE]")
                .and_then(|d| serde_json::from_slice::<Chunk>(d).ok())
            {
                let content = chunk.choices.as_ref().is_some_and(|c| !c.is_empty());
                if let Some(usage) = chunk.usage {
                    self.prompt = usage.prompt_tokens.unwrap_or(self.prompt);
                    self.completion = usage.completion_tokens.or(self.completion);
                    self.cached = usage.cached().or(self.cached);
                    self.reasoning = usage.reasoning().or(self.reasoning);
                    if !content && self.client_usage == ClientUsage::None {
                        forward = false;
                    }
                    strip = content && self.client_usage != ClientUsage::EveryChunk;
                }
                if content {
                    let now = Instant::now();
                    if let Some(m) = self.meter.as_mut() {
                        match self.last_content {
                            None => {
                                let ttft = now.duration_since(m.started);
                                m.series.ttft.observe(ttft);
                                m.owner.serving.ttft.observe(ttft);
                                m.record.ttft_ms =
                                    Some(i32::try_from(ttft.as_millis()).unwrap_or(i32::MAX));
                            }
                            Some(last) => m.series.inter_token.observe(now.duration_since(last)),
                        }
                    }
                    self.last_content = Some(now);
                    self.content_events += 1;
                }
            }
            match (forward, strip, data) {
                (_, _, Some(b"[DONE]")) => self.done = Some(event),
                (false, _, _) => {}
                (true, true, Some(json)) => self.queue.push_back(without_usage(json, &event)),
                _ => self.queue.push_back(event),
            }
        }
    }

    /// Counts the worker's failure (and its ejection, if it came to that).
    fn worker_failed(&self) {
        if self.in_flight.0.failed() {
            if let Some(m) = &self.meter {
                m.series.ejections.inc();
            }
        }
    }

    /// The completion tokens seen: the engine's count when it gave one,
    /// else one per content event.
    fn completion_seen(&self) -> i64 {
        self.completion.unwrap_or(self.content_events)
    }
}

impl Relay {
    /// Bills what was seen, once; None when it already was.
    fn close(&mut self) -> Option<Closing> {
        let mut meter = self.meter.take()?;
        let status = match (self.broken, self.ended) {
            (true, _) => 502,
            (false, true) => 200,
            (false, false) => 499,
        };
        match status {
            502 => meter.series.errors.count("upstream_error"),
            499 => meter.series.errors.count("client_closed"),
            _ => {}
        }
        let completion = self.completion_seen();
        meter.parts(self.cached, self.reasoning);
        let billed = meter.bill(status, self.prompt, completion, self.received);
        Some(Closing {
            meter,
            billed,
            limits: self.limits.clone(),
            budget: std::mem::take(&mut self.budget),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The client went away (or the worker did): the record is still
        // settled and journaled, nobody waits for it.
        if let Some(closing) = self.close() {
            let tasks = closing.meter.state.tasks.clone();
            let span = closing.span();
            tasks.spawn(
                async move {
                    let _ = closing.finish().await;
                }
                .instrument(span),
            );
        }
    }
}

fn relay_stream(
    upstream: impl Stream<Item = Result<Bytes, super::engine::ReadError>> + Send + 'static,
    meter: Meter,
    client_usage: ClientUsage,
    in_flight: InFlight,
    limits: super::forward_limits::Limits,
    budget: super::budgets::Reservation,
    max_event: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let relay = Relay {
        meter: Some(meter),
        buffer: BytesMut::with_capacity(4096),
        queue: VecDeque::new(),
        client_usage,
        prompt: 0,
        completion: None,
        cached: None,
        reasoning: None,
        content_events: 0,
        last_content: None,
        received: 0,
        in_flight,
        limits,
        budget,
        max_event,
        ended: false,
        broken: false,
        done: None,
        first_byte: Some(inventiv_common::trace_span!("first_byte")),
    };
    futures_util::stream::unfold(
        (Box::pin(upstream), relay),
        |(mut upstream, mut relay)| async move {
            loop {
                // Once the engine said `[DONE]`, what it sent with it waits
                // for the stream's end: the client then gets the last
                // events and the end together, in one write.
                if relay.done.is_none() || relay.ended {
                    if relay.ended {
                        // The end (`[DONE]`, then the body's end) only once
                        // the usage is durable; an error event instead if it
                        // cannot be.
                        if let Some(closing) = relay.close() {
                            let metrics = closing.meter.state.metrics.clone();
                            let span = closing.span();
                            let durable = async {
                                let durable = closing.finish().await;
                                metrics.usage_write(durable.wait()).await
                            };
                            if let Err(e) = durable.instrument(span).await {
                                relay.done = Some(e.sse_event());
                            }
                        }
                    }
                    if let Some(next) = relay.queue.pop_front() {
                        return Some((Ok(next), (upstream, relay)));
                    }
                    if relay.ended {
                        let done = relay.done.take()?;
                        return Some((Ok(done), (upstream, relay)));
                    }
                }
                match upstream.next().await {
                    Some(Ok(chunk)) => {
                        relay.first_byte = None;
                        relay.received += chunk.len();
                        relay.buffer.extend_from_slice(&chunk);
                        relay.drain_events();
                        // What is left is one incomplete event.
                        if relay.buffer.len() > relay.max_event {
                            tracing::warn!(
                                max = relay.max_event,
                                "worker stream event too large; stream ended"
                            );
                            relay.buffer.clear();
                            relay
                                .queue
                                .push_back(super::bounded::event_too_large(relay.max_event));
                            relay.ended = true;
                            relay.broken = true;
                            relay.worker_failed();
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "worker stream broke");
                        let error = json!({ "error": { "message": "the worker's stream broke", "type": "server_error", "code": "upstream_error" } });
                        relay
                            .queue
                            .push_back(Bytes::from(format!("data: {error}\n\n")));
                        relay.ended = true;
                        relay.broken = true;
                        relay.worker_failed();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(body: &str) -> Value {
        let options = serde_json::from_str::<Peek>(body)
            .ok()
            .and_then(|p| p.stream_options);
        let options = options.as_ref().map(Option::as_ref);
        let out = upstream_body(Bytes::from(body.to_owned()), true, options, None)
            .ok()
            .unwrap_or_default();
        serde_json::from_slice(&out).unwrap_or(Value::Null)
    }

    #[test]
    fn streams_ask_the_engine_for_usage_and_keep_everything_else() {
        let plain = sent(r#" {"model":"m","stream":true,"extra":{"a":[1,2]}}"#);
        let engine = json!({ "include_usage": true, "continuous_usage_stats": true });
        assert_eq!(plain["stream_options"], engine);
        assert_eq!(plain["extra"], json!({ "a": [1, 2] }));
        assert_eq!(plain["model"], "m");

        let other =
            sent(r#"{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true}}"#);
        assert_eq!(
            other["stream_options"],
            json!({ "continuous_usage_stats": true, "include_usage": true })
        );

        let asked = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}"#;
        assert_eq!(
            sent(asked),
            serde_json::from_str::<Value>(asked).unwrap_or_default()
        );
    }

    #[test]
    fn the_key_decides_never_its_value() {
        // A `null` is replaced: one key, usage on.
        let body = r#"{"model":"m","stream":true,"stream_options":null}"#;
        let options = serde_json::from_str::<Peek>(body)
            .ok()
            .and_then(|p| p.stream_options);
        assert!(matches!(options, Some(None)), "present, as null");
        let out = upstream_body(
            Bytes::from(body),
            true,
            options.as_ref().map(Option::as_ref),
            None,
        )
        .ok()
        .unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("\"stream_options\"").count(), 1, "{text}");
        assert_eq!(sent(body)["stream_options"]["include_usage"], true);
        // A body with the key twice is refused rather than guessed at.
        let twice = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"stream_options":null}"#;
        assert!(serde_json::from_str::<Peek>(twice).is_err());
    }

    #[test]
    fn a_shared_model_is_renamed_for_its_provider() {
        let renamed = |body: &str, streaming: bool| {
            let out = upstream_body(
                Bytes::from(body.to_owned()),
                streaming,
                None,
                Some("own/id"),
            )
            .ok()
            .unwrap_or_default();
            serde_json::from_slice::<Value>(&out).unwrap_or(Value::Null)
        };
        let plain = renamed(r#"{"model":"a-org/m","top_k":3}"#, false);
        assert_eq!(plain, json!({ "model": "own/id", "top_k": 3 }));
        let stream = renamed(r#"{"model":"a-org/m","stream":true}"#, true);
        assert_eq!(stream["model"], "own/id");
        assert_eq!(
            stream["stream_options"],
            json!({ "include_usage": true, "continuous_usage_stats": true })
        );
    }

    #[test]
    fn a_trailing_usage_is_cut_and_anything_else_re_encoded() {
        let strip = |json: &str| {
            let event = Bytes::from(format!("data: {json}\n\n"));
            let out = without_usage(json.as_bytes(), &event);
            let text = std::str::from_utf8(&out).unwrap_or_default().to_owned();
            let value = text
                .strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .unwrap_or(Value::Null);
            (text, value)
        };
        // vLLM's shape: usage last, cut without re-encoding.
        let vllm = r#"{"id":"c","choices":[{"delta":{"content":",\"usage\":"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let (text, value) = strip(vllm);
        assert_eq!(
            text,
            "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\",\\\"usage\\\":\"}}]}\n\n"
        );
        assert_eq!(value["choices"][0]["delta"]["content"], ",\"usage\":");
        // Usage elsewhere, or a nested "usage" last: re-encoded, same content.
        let first = r#"{"usage":{"prompt_tokens":3},"choices":[{"index":0}]}"#;
        assert_eq!(strip(first).1, json!({ "choices": [{ "index": 0 }] }));
        let nested = r#"{"choices":[{"index":0}],"x":{"a":1,"usage":{"b":2}},"usage":null}"#;
        assert_eq!(
            strip(nested).1,
            json!({ "choices": [{ "index": 0 }], "x": { "a": 1, "usage": { "b": 2 } } })
        );
        let inner_last = r#"{"choices":[{"index":0}],"x":{"a":1,"usage":{"b":2}}}"#;
        assert_eq!(
            strip(inner_last).1,
            serde_json::from_str::<Value>(inner_last).unwrap_or_default()
        );
    }

    #[test]
    fn chunks_with_content_and_usage_are_told_apart() {
        let chunk = |s: &str| serde_json::from_str::<Chunk>(s).ok();
        let content = chunk(r#"{"choices":[{"delta":{"content":"a"}}],"usage":null}"#);
        assert!(content
            .as_ref()
            .is_some_and(|c| c.choices.as_ref().is_some_and(|v| v.len() == 1)));
        assert!(content.is_some_and(|c| c.usage.is_none()));
        let usage = chunk(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#);
        assert!(
            usage.is_some_and(|c| c.choices.is_some_and(|v| v.is_empty())
                && c.usage
                    .is_some_and(|u| u.prompt_tokens == Some(3) && u.completion_tokens == Some(5)))
        );
    }
}
