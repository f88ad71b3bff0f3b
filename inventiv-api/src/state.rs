//! The shared application state every handler receives.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::task::TaskTracker;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::mail::Mailer;

/// The state every handler receives: one pointer, so the clones axum makes
/// per request (extractors, middleware) cost an atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
pub struct Shared {
    pub db: PgPool,
    pub redis: redis::aio::ConnectionManager,
    pub config: Arc<Config>,
    pub hasher: Hasher,
    pub jwt: JwtKeys,
    pub mailer: Arc<Mailer>,
    /// Background work that must finish before shutdown (e.g. sending mail).
    pub tasks: TaskTracker,
    /// Wakes the outbox relay after a command is written.
    pub outbox: Arc<tokio::sync::Notify>,
    /// Opens the dedicated pub/sub connection of the event hub.
    pub redis_client: redis::Client,
    /// Live events for this replica's SSE clients.
    pub events: crate::events::Hub,
    /// API keys seen recently (the `/v1` hot path).
    pub keys: crate::proxy::keys::KeyCache,
    /// Hard budgets (the `/v1` admission).
    pub budgets: crate::proxy::budgets::BudgetCache,
    /// The system prompts that apply, by (key, organization, model).
    pub system_prompts: crate::system_prompts::PromptCache,
    /// Ready workers per model.
    pub routing: crate::proxy::routing::Routing,
    /// Fair admission on each deployment (slots, queues, bands).
    pub admission: Arc<crate::proxy::admission::Admission>,
    /// Where answered requests' usage goes (the durable journal).
    pub usage: crate::proxy::journal::Metering,
    /// What the replica counts for `/metrics` (HTTP, `/v1`, SSE, keys).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Accepted worker heartbeats waiting for the next batched write.
    pub heartbeats: crate::heartbeats::Queue,
    /// The least time between two accepted heartbeats of one worker.
    pub heartbeat_limit: crate::heartbeat_limit::HeartbeatLimit,
    /// The client that talks to cloud providers' APIs (with timeouts).
    pub cloud_http: reqwest::Client,
}

impl Shared {
    /// A Redis key under this deployment's prefix.
    pub fn redis_key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.config.redis_prefix)
    }
}
