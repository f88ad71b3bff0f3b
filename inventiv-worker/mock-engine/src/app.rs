//! The application: shared state, the router, the per-request bookkeeping
//! (load gate, faults, in-flight accounting) and serving with graceful
//! shutdown. [`build_app`] is what `main` and the tests both run.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::ApiError;
use crate::faults::{Action, Faults};
use crate::generate::{self, FinishReason, Plan};
use crate::metrics::{Metrics, Outcome};
use crate::openai::{Generation, ModelCard, ModelList, ResponseId};
use crate::prefill::PrefillQueue;
use crate::prefix_cache::{BlockHashes, PrefixCache};
use crate::{completions, embeddings};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub metrics: Metrics,
    /// None with prefix caching off.
    prefix_cache: Option<PrefixCache>,
    prefills: PrefillQueue,
    faults: Faults,
    loaded: AtomicBool,
    /// Cancelled by SIGTERM/Ctrl-C, by `exit_after`, or by the owner.
    pub shutdown: CancellationToken,
    id_high: u64,
    id_low: AtomicU64,
    created: u64,
}

impl AppState {
    /// A fresh response id: a per-process random half and a counter.
    pub fn next_id(&self, prefix: &'static str) -> ResponseId {
        ResponseId {
            prefix,
            high: self.id_high,
            low: self.id_low.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// 404 unless `requested` is absent (vLLM then uses the served model)
    /// or names the served model.
    pub fn check_model(&self, requested: Option<&str>) -> Result<(), ApiError> {
        match requested {
            Some(model) if model != self.config.model => {
                Err(ApiError::ModelNotFound(model.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// The answer length for a prompt of `prompt_tokens` under `generation`.
    pub fn plan(&self, prompt_tokens: u32, generation: &Generation) -> Result<Plan, ApiError> {
        let c = &self.config;
        Ok(generate::plan(
            prompt_tokens,
            generation.max_tokens,
            generation.ignore_eos,
            c.output_len,
            c.max_model_len,
        )?)
    }

    /// An empty prompt cut in this engine's blocks.
    pub fn blocks(&self) -> BlockHashes {
        BlockHashes::new(self.config.block_size)
    }

    /// Runs the prompts of a request arrived at `now` through the prefix
    /// cache (in order) and queues the prefill of their uncached tokens.
    pub fn prefill<'a>(
        &self,
        now: Instant,
        prompts: impl IntoIterator<Item = &'a BlockHashes>,
    ) -> Prefill {
        let (mut queried, mut cached, mut blocks) = (0u32, 0u32, 0usize);
        for prompt in prompts {
            queried = queried.saturating_add(prompt.tokens());
            blocks = blocks.saturating_add(prompt.blocks());
            if let Some(cache) = &self.prefix_cache {
                cached = cached.saturating_add(cache.admit(prompt));
            }
        }
        if self.prefix_cache.is_some() {
            self.metrics.prefix_cache(queried, cached);
        }
        Prefill {
            cached: Some(cached).filter(|n| {
                *n > 0 && self.prefix_cache.is_some() && self.config.prompt_tokens_details
            }),
            ready: self.prefills.reserve(now, queried.saturating_sub(cached)),
            blocks: u64::try_from(blocks).unwrap_or(u64::MAX),
        }
    }

    /// The seed of a request's text.
    pub fn seed(&self, generation: &Generation) -> u64 {
        generation.seed.unwrap_or(self.config.seed)
    }
}

/// What the prefill of a request's prompts gave.
#[derive(Debug, Clone, Copy)]
pub struct Prefill {
    /// Cached tokens to report in its usage: `None` when none were cached
    /// or details are off, as vLLM reports it.
    pub cached: Option<u32>,
    /// When its prefill ends: its first token is due then (plus `--ttft-ms`).
    pub ready: Instant,
    /// KV-cache blocks its prompts hold while it runs.
    pub blocks: u64,
}

impl Prefill {
    /// Nothing cached, nothing queued, no block held.
    pub fn instant(now: Instant) -> Self {
        Self {
            cached: None,
            ready: now,
            blocks: 0,
        }
    }
}

/// Seconds since the Unix epoch (OpenAI's `created`).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request that passed the load gate and the faults. If it is the last
/// one before `exit_after`, dropping it (once its response is written or
/// abandoned) starts the graceful shutdown.
#[derive(Debug)]
pub struct Admitted {
    exit: Option<Arc<AppState>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(state) = self.exit.take() {
            tracing::warn!("exit-after reached: shutting down");
            state.shutdown.cancel();
        }
    }
}

/// Load gate and fault injection for every `/v1/*` request.
pub async fn admit(state: &Arc<AppState>) -> Result<Admitted, ApiError> {
    if !state.loaded.load(Ordering::Acquire) {
        return Err(ApiError::NotLoaded);
    }
    let verdict = state.faults.admit();
    let admitted = Admitted {
        exit: verdict.exit_when_done.then(|| Arc::clone(state)),
    };
    match verdict.action {
        Action::Serve => Ok(admitted),
        // Dropping `admitted` here may start the shutdown; the graceful
        // shutdown still delivers this error response.
        Action::Fail(status) => Err(ApiError::Injected(status)),
        Action::Hang => {
            // A stuck engine shows its stuck requests as running.
            tracing::info!("hanging a request (fault injection)");
            state.metrics.request_started(0);
            let _ended = Ended(&state.metrics);
            state.shutdown.cancelled().await;
            Err(ApiError::ShuttingDown)
        }
        Action::Crash => {
            tracing::error!("exit-after reached in crash mode: exiting now, unanswered");
            std::process::exit(1)
        }
    }
}

/// Ends a hung request's accounting however its future ends (shutdown, or
/// the client going away).
struct Ended<'a>(&'a Metrics);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.request_ended(0, Outcome::Abort);
    }
}

/// One generation or embedding request between its admission and its end:
/// counts it as running, and on drop records its tokens and outcome.
#[derive(Debug)]
pub struct InFlight {
    pub state: Arc<AppState>,
    start: Instant,
    /// When its prefill ends (at `start` or later).
    ready: Instant,
    blocks: u64,
    generated: u32,
    outcome: Outcome,
    _admitted: Admitted,
}

impl InFlight {
    pub fn start(
        state: Arc<AppState>,
        admitted: Admitted,
        start: Instant,
        prompt: u32,
        prefill: &Prefill,
    ) -> Self {
        state.metrics.request_started(prompt);
        state.metrics.kv_blocks_held(prefill.blocks);
        Self {
            state,
            start,
            ready: prefill.ready.max(start),
            blocks: prefill.blocks,
            generated: 0,
            outcome: Outcome::Abort,
            _admitted: admitted,
        }
    }

    /// Waits until token number `index` (0-based) is due: after the
    /// prefill (queued behind the others, see [`PrefillQueue`]), the
    /// configured TTFT and decode speed; returns at once when all are
    /// zero. After a shutdown began, pacing stops so that in-flight answers
    /// finish at full speed instead of holding the shutdown.
    pub async fn until_token(&self, index: u32) {
        let c = &self.state.config;
        if c.ttft.is_zero() && c.inter_token.is_zero() && self.ready <= self.start {
            return;
        }
        let delay = c.ttft.saturating_add(c.inter_token.saturating_mul(index));
        // A deadline past what `Instant` can hold is "never".
        let sleep = async {
            match self.ready.checked_add(delay) {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = self.state.shutdown.cancelled() => {}
        }
    }

    pub fn first_token(&self) {
        self.state.metrics.first_token(self.start.elapsed());
    }

    pub fn sent(&mut self, tokens: u32) {
        self.generated = self.generated.saturating_add(tokens);
    }

    pub fn finish(&mut self, reason: FinishReason) {
        self.outcome = Outcome::Finished(reason);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.metrics.kv_blocks_freed(self.blocks);
        self.state
            .metrics
            .request_ended(self.generated, self.outcome);
    }
}

/// A JSON response serialized straight into one buffer.
pub fn json<T: Serialize>(value: &T, capacity: usize) -> Response {
    let mut buf = Vec::with_capacity(capacity);
    if let Err(e) = serde_json::to_writer(&mut buf, value) {
        tracing::error!(error = %e, "cannot serialize a response");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Bytes::from(buf),
    )
        .into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> StatusCode {
    if state.loaded.load(Ordering::Acquire) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(state.prefills.waiting(Instant::now())),
    )
        .into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let _admitted = admit(&state).await?;
    let model = state.config.model.as_str();
    let list = ModelList {
        object: "list",
        data: [ModelCard {
            id: model,
            object: "model",
            created: state.created,
            owned_by: "vllm",
            root: model,
            parent: (),
            max_model_len: state.config.max_model_len,
        }],
    };
    Ok(json(&list, 256))
}

/// vLLM's `POST /reset_prefix_cache` (a development endpoint there):
/// empties the prefix cache, so that a benchmark's runs start alike.
async fn reset_prefix_cache(State(state): State<Arc<AppState>>) -> StatusCode {
    if let Some(cache) = &state.prefix_cache {
        cache.reset();
    }
    StatusCode::OK
}

async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

#[expect(
    clippy::disallowed_methods,
    reason = "the mock engine is not part of the documented API"
)]
fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/reset_prefix_cache", post(reset_prefix_cache))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(completions::chat))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state)
}

/// One line per request, as vLLM's API server writes (uvicorn's access log:
/// `"GET /health HTTP/1.1" 200`), probes included: the worker's log viewer
/// shows the engine's own lines, live (the agent leaves out its own probes').
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let version = request.version();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "\"{method} {path} {version:?}\" {}",
        response.status().as_u16()
    );
    response
}

/// A bound, ready-to-serve engine.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    state: Arc<AppState>,
}

/// Binds the listener, starts the (fake) model load and builds the router.
pub async fn build_app(config: Config) -> io::Result<Application> {
    let listener = TcpListener::bind((config.host, config.port)).await?;
    let addr = listener.local_addr()?;
    let load_delay = config.load_delay;
    let random = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), addr);
    let state = Arc::new(AppState {
        metrics: Metrics::new(&config.model, config.prefix_cache_blocks),
        prefills: PrefillQueue::new(config.prefill_rate),
        faults: Faults::new(config.faults.clone()),
        prefix_cache: config
            .prefix_caching
            .then(|| PrefixCache::new(config.prefix_cache_blocks)),
        loaded: AtomicBool::new(load_delay.is_zero()),
        shutdown: CancellationToken::new(),
        id_high: random,
        id_low: AtomicU64::new(0),
        created: unix_now(),
        config,
    });
    if !load_delay.is_zero() {
        tokio::spawn(load(Arc::clone(&state), load_delay));
    }
    tracing::info!(
        %addr,
        model = %state.config.model,
        workers = state.config.workers.get(),
        "listening"
    );
    Ok(Application {
        listener,
        addr,
        router: router(Arc::clone(&state)),
        state,
    })
}

/// The fake model load: flips `loaded` after the delay, unless shut down.
async fn load(state: Arc<AppState>, delay: Duration) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {
            state.loaded.store(true, Ordering::Release);
            tracing::info!("model loaded");
        }
        () = state.shutdown.cancelled() => {}
    }
}

impl Application {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cancelling it shuts the server down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled (signal, `exit_after`,
    /// owner) and every in-flight response is written.
    pub async fn serve(self) -> io::Result<()> {
        let shutdown = self.state.shutdown.clone();
        // Streamed tokens must leave at once, not wait for Nagle.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        tracing::info!("stopped");
        Ok(())
    }
}
