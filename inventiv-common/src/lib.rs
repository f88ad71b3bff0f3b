//! Domain types shared by every Inventiv Rust process. Nothing here knows
//! about HTTP; SQL only through the optional `sqlx` feature (ids and stored
//! enums as column types). With the `runtime` feature, the start-up
//! plumbing every binary shares: the stop signal and the log set-up. The
//! Prometheus metrics every process exposes the same way are in `metrics`;
//! the load signals the API publishes for the autoscaler in `signals`.

#[macro_use]
mod stored;

pub mod host;
pub mod ids;
pub mod instance;
pub mod messages;
pub mod metrics;
pub mod rbac;
pub mod secrets;
pub mod service;
#[cfg(feature = "runtime")]
pub mod shutdown;
pub mod signals;
pub mod status;
#[cfg(feature = "runtime")]
pub mod telemetry;
pub mod values;
pub mod worker;
pub mod worker_settings;

pub use host::HostStatus;
pub use ids::{InstanceId, InvitationId, OrgId, SessionId, UserId};
pub use instance::InstanceStatus;
pub use rbac::{can, Action, OrgRole};
pub use service::{ServiceEventKind, ServiceState};
pub use status::{ActionStatus, InvitationStatus, KeyPriority, ShareStatus, VolumeStatus};
pub use values::{DisplayName, Email, OrgName, Password, Slug, ValueError};
pub use worker::WorkerStatus;
