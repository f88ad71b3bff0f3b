//! The messages that cross a process boundary through Redis, and where they
//! travel: the command stream (the API's outbox relay → the orchestrators)
//! and the live-event channel (the API and the orchestrator → every API
//! replica → the dashboards). Producers encode and consumers decode only
//! through these types, so both sides agree on one definition.

mod command;
mod event;

pub use command::{Command, CommandKind, STREAM_MAX_LEN};
pub use event::{AccessSubject, Event, WorkerHeartbeat};

/// The command stream's key under the deployment's Redis prefix.
pub const COMMAND_STREAM: &str = "commands";

/// The consumer group the orchestrators read the command stream through.
pub const COMMAND_GROUP: &str = "orchestrators";

/// The live-event pub/sub channel under the deployment's Redis prefix.
pub const EVENT_CHANNEL: &str = "events";

/// The full key of the command stream for a Redis prefix.
pub fn command_stream(prefix: &str) -> String {
    format!("{prefix}{COMMAND_STREAM}")
}

/// The full name of the event channel for a Redis prefix.
pub fn event_channel(prefix: &str) -> String {
    format!("{prefix}{EVENT_CHANNEL}")
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("field {0:?} is missing")]
    Missing(&'static str),
    #[error("field {field:?} holds {value:?}, not {expected}")]
    Invalid {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("malformed event: {0}")]
    Json(#[from] serde_json::Error),
}
