//! Data access that the API and the orchestrator must do the same way:
//! instance transitions (validated by inventiv-common, each with a history
//! row), the action log, the command outbox, and the secrets encrypted at
//! rest (provider credentials, Hugging Face tokens, relay keys), and the
//! pinned client to a worker's relay; the SSH client with pinned host keys
//! and an organization's hosts (its SSH key, their verification); and the
//! database at start-up (the schema migrations, embedded once, and the
//! services' pool).

pub mod action_log;
pub mod credentials;
pub mod crypto;
pub mod db;
pub mod host_alloc;
pub mod host_check;
pub mod hosts;
pub mod huggingface;
pub mod instances;
pub mod inventory;
pub mod outbox;
pub mod relay;
pub mod ssh;
pub mod worker_settings;

pub use db::MIGRATOR;
