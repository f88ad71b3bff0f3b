//! The OpenAI-compatible data plane under `/v1`: API-key (or session)
//! authentication from an in-memory cache, model resolution and worker
//! choice from an in-memory routing table, forwarding with streaming passed
//! through event by event, and usage made durable in a local journal before an answer completes,
//! then committed to the database in batches. No
//! database query per request in the steady state.

pub mod admission;
pub mod bounded;
pub mod budget_store;
pub mod budgets;
pub mod engine;
pub mod error;
pub mod forward;
pub mod forward_limits;
pub mod held;
pub mod journal;
pub mod keys;
pub mod plausible;
pub mod prefix;
pub mod routing;
pub mod signals;
pub mod usage;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(forward::list_models))
        .routes(routes!(forward::chat_completions))
        .routes(routes!(forward::completions))
        .routes(routes!(forward::embeddings))
}
