//! The autoscaler's inputs and brain, independent of how services are
//! stored: `signals` reads the load the API replicas publish in Redis and
//! combines it per (organization, model) into a service's history;
//! `decide` turns a policy, the replicas and that history into "keep" or
//! "scale to N" with its reason; `lease` makes sure one orchestrator's
//! autoscaler acts at a time; `run` is the loop that ties them to the
//! services' table.

pub mod decide;
pub mod lease;
pub mod run;
pub mod signals;

pub use decide::{decide, Decision, Policy, Replicas};
pub use lease::Lease;
pub use signals::{Combined, History, Load, Reader, Sample};
