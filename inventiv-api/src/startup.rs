//! Building and running the application. Tests call the same functions as
//! `main`, so they exercise exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use axum::Router;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::compression::{CompressionLayer, DefaultPredicate};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::error::ApiError;
use crate::mail::Mailer;
use crate::openapi::ApiDoc;
use crate::proxy::journal::{self, Background};
use crate::state::AppState;
use crate::{bootstrap, request_id, routes};

/// Builds the state: connections, hasher, keys, mailer, and metering (this
/// replica's usage journal, replayed from where the last run stopped).
pub async fn build_state(config: Config) -> anyhow::Result<(AppState, Background)> {
    let db = inventiv_store::db::connect(config.database_url()).await?;
    let client = redis::Client::open(config.redis_url.expose_secret())
        .map_err(|e| anyhow::anyhow!("REDIS_URL is invalid: {e}"))?;
    let redis = redis::aio::ConnectionManager::new(client.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to redis: {e}"))?;
    let hasher = Hasher::new(config.max_concurrent_hashes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let jwt = JwtKeys::new(&config.jwt_secret, config.access_token_ttl);
    let mailer = Arc::new(Mailer::from_config(&config)?);
    let (usage, background) = if config.usage_journal {
        journal::open(
            &journal::root(&config.state_dir),
            &config.replica_id,
            config.usage_journal_max_bytes,
            journal::writer::GATHER_WAIT,
        )
        .await?
    } else {
        tracing::warn!("INVENTIV_USAGE_JOURNAL=off: usage waits in memory and is lost on a crash (benchmark baseline)");
        journal::in_memory()
    };
    let cloud_http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?;
    let heartbeat_limit =
        crate::heartbeat_limit::HeartbeatLimit::new(config.heartbeat_min_interval);
    let admission = Arc::new(crate::proxy::admission::Admission::new(config.admission));
    let routing = crate::proxy::routing::Routing::new(config.prefix_routing);
    let state = AppState::new(crate::state::Shared {
        db,
        redis,
        config: Arc::new(config),
        hasher,
        jwt,
        mailer,
        tasks: TaskTracker::new(),
        outbox: Arc::new(tokio::sync::Notify::new()),
        redis_client: client,
        events: crate::events::Hub::new(),
        keys: crate::proxy::keys::KeyCache::default(),
        routing,
        admission,
        budgets: crate::proxy::budgets::BudgetCache::default(),
        system_prompts: crate::system_prompts::PromptCache::default(),
        usage,
        heartbeats: crate::heartbeats::Queue::default(),
        heartbeat_limit,
        metrics: Arc::default(),
        cloud_http,
    });
    Ok((state, background))
}

/// The documented routes and the OpenAPI document they produce.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (control, data, doc) = planes();
    (control.merge(data), doc)
}

/// The control plane's routes apart from the data plane's (`/v1`, the
/// proxy's hot path), and the document of both.
fn planes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (control, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::router())
        .split_for_parts();
    let (data, data_doc) = crate::proxy::router().split_for_parts();
    doc.merge(data_doc);
    // After the merge: the modifier needs the routes' operations.
    crate::openapi_errors::ErrorResponses.modify(&mut doc);
    (control, data, doc)
}

/// The complete HTTP application: API routes, `/openapi.json`, Swagger UI at
/// `/docs`, the dashboard at `/`, error-shaped fallbacks, gzip, request ids
/// and the body limit. Layers run outermost last-added first.
pub fn app(state: AppState) -> Router {
    let (control, data, doc) = planes();
    let max_body = state.config.max_body_bytes;
    control
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback_service(crate::frontend::files(&state.config.frontend_dir))
        // A layer wraps the routes present when it is added: `/v1` joins
        // after it, so the proxy streams answers through as the engine sent
        // them. The default predicate leaves small answers, images and
        // server-sent events (`/events/stream`) alone.
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new()))
        .merge(data)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::browser::guard,
        ))
        .layer(axum::middleware::from_fn(request_id::span))
        .layer(PropagateRequestIdLayer::new(request_id::HEADER.clone()))
        .layer(SetRequestIdLayer::new(
            request_id::HEADER.clone(),
            request_id::Generate,
        ))
        .layer(axum::middleware::map_request(request_id::drop_ill_formed))
        // Outermost: counts what the client got, whatever answered it.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}

/// A bound, ready-to-serve API.
pub struct Application {
    listener: TcpListener,
    metrics: TcpListener,
    state: AppState,
    usage: Background,
}

impl Application {
    /// Connects, migrates, bootstraps the admin and binds the listener
    /// (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let addr = config.addr;
        let (state, usage) = build_state(config).await?;
        inventiv_store::db::migrate(&state.db).await?;
        bootstrap::admin(&state).await?;
        let rotated = inventiv_store::credentials::rotate(&state.db, &state.config.keyring)
            .await
            .map_err(|e| anyhow::anyhow!("re-encrypting provider credentials failed: {e}"))?;
        if rotated > 0 {
            tracing::info!(
                rotated,
                "provider credentials re-encrypted with the current key"
            );
        }
        let rotated = inventiv_store::huggingface::rotate(&state.db, &state.config.keyring)
            .await
            .map_err(|e| anyhow::anyhow!("re-encrypting Hugging Face tokens failed: {e}"))?;
        if rotated > 0 {
            tracing::info!(
                rotated,
                "Hugging Face tokens re-encrypted with the current key"
            );
        }
        let rotated = inventiv_store::relay::rotate(&state.db, &state.config.keyring)
            .await
            .map_err(|e| anyhow::anyhow!("re-encrypting relay keys failed: {e}"))?;
        if rotated > 0 {
            tracing::info!(rotated, "relay keys re-encrypted with the current key");
        }
        let rotated = inventiv_store::hosts::rotate(&state.db, &state.config.keyring)
            .await
            .map_err(|e| anyhow::anyhow!("re-encrypting organization SSH keys failed: {e}"))?;
        if rotated > 0 {
            tracing::info!(
                rotated,
                "organization SSH keys re-encrypted with the current key"
            );
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let metrics_addr = state.config.metrics_addr;
        let metrics = TcpListener::bind(metrics_addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {metrics_addr} (INVENTIV_METRICS_ADDR): {e}")
        })?;
        Ok(Application {
            listener,
            metrics,
            state,
            usage,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics.local_addr()
    }

    /// The state, for tests that look behind the API.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then waits for background work.
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tasks = self.state.tasks.clone();
        tasks.spawn(prune_samples_forever(self.state.clone(), shutdown.clone()));
        tasks.spawn(crate::outbox::run(self.state.clone(), shutdown.clone()));
        tasks.spawn(crate::finops::cost_job::run(
            self.state.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(crate::drift::run(self.state.clone(), shutdown.clone()));
        tasks.spawn(crate::replicas::run(self.state.clone(), shutdown.clone()));
        tasks.spawn(crate::events::subscribe(
            self.state.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(crate::budgets::run(self.state.clone(), shutdown.clone()));
        tasks.spawn(crate::proxy::routing::run(
            self.state.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(crate::proxy::signals::run(
            self.state.clone(),
            shutdown.clone(),
        ));
        // Metering and the heartbeat writer stop after the server stopped
        // taking requests, so what it accepted is written.
        let writer_stop = CancellationToken::new();
        let heartbeats = tokio::spawn(crate::heartbeats::run(
            self.state.clone(),
            self.state.config.heartbeat_flush,
            writer_stop.clone(),
        ));
        let writer = tokio::spawn(self.usage.run(
            self.state.db.clone(),
            self.state.config.price_notice,
            writer_stop.clone(),
        ));
        let metrics_app = crate::routes::metrics::router(self.state.clone());
        tracing::info!(addr = %self.metrics.local_addr()?, "metrics listening");
        tasks.spawn({
            let shutdown = shutdown.clone();
            let metrics = self.metrics;
            async move {
                if let Err(e) = axum::serve(metrics, metrics_app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            }
        });
        // The data plane's hot routes are answered by the front, the rest by
        // the router (see [`crate::front`]).
        let app = crate::front::MakeFront::new(app(self.state.clone()), self.state);
        tracing::info!(addr = %self.listener.local_addr()?, "inventiv-api listening");
        // Small writes (SSE events, short answers) leave at once instead of
        // waiting for Nagle and the peer's delayed ACK (~40 ms).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        tasks.close();
        tasks.wait().await;
        writer_stop.cancel();
        if let Err(e) = heartbeats.await {
            tracing::error!(error = %e, "heartbeat writer failed");
        }
        match writer.await {
            Err(e) if !e.is_cancelled() => tracing::error!(error = %e, "usage writer failed"),
            _ => {}
        }
        tracing::info!("inventiv-api stopped");
        Ok(())
    }
}

/// Prunes worker samples past their retention, every prune interval.
async fn prune_samples_forever(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.sample_prune_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let drift = &state.config.usage_drift;
        let counters = crate::drift::counter_retention(drift.window, drift.settle);
        match routes::workers::prune_samples(&state.db, state.config.sample_retention, counters)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned old worker samples"),
            Err(e) => tracing::warn!(error = %e, "pruning worker samples failed; will retry"),
        }
    }
}
