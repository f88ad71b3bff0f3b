//! Domain types shared by every Inventiv Rust process. Nothing here knows
//! about HTTP or SQL.

pub mod ids;
pub mod instance;
pub mod messages;
pub mod rbac;
pub mod secrets;
pub mod values;
pub mod worker;
pub mod worker_settings;

pub use ids::{InstanceId, InvitationId, OrgId, SessionId, UserId};
pub use instance::InstanceStatus;
pub use rbac::{can, Action, OrgRole};
pub use values::{DisplayName, Email, OrgName, Password, Slug, ValueError};
