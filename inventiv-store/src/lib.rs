//! Data access that the API and the orchestrator must do the same way:
//! instance transitions (validated by inventiv-common, each with a history
//! row), the action log, and the command outbox.

pub mod action_log;
pub mod instances;
pub mod outbox;
