//! Cloud providers behind one trait: the orchestrator holds an
//! `Arc<dyn CloudProvider>` and never knows which cloud it talks to.
//!
//! - [`provider`]: the [`CloudProvider`] trait.
//! - [`types`]: what goes in and out of it (servers, volumes, filters).
//! - [`error`]: [`ProviderError`], which says whether a retry makes sense.
//! - [`tags`]: the tag convention that ties a cloud server to an instance.
//! - [`mock`]: VMs that are local processes on their own loopback address,
//!   each with a real sshd.
//! - [`reconcile`]: which listed resources are leaks (pure rules).
//! - [`scaleway`]: Scaleway's Instance and Block Storage APIs over HTTP.

pub mod error;
pub mod mock;
pub mod provider;
pub mod reconcile;
pub mod scaleway;
pub mod tags;
pub mod types;

pub use error::ProviderError;
pub use provider::{BoxFuture, CloudProvider};
pub use types::{
    CreateServer, Firewall, FirewallGroup, ListFilter, Server, ServerRef, ServerState, Volume,
    VolumeRef,
};
