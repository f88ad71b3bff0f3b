//! The `CloudProvider` trait: the handful of operations the orchestrator
//! needs from a cloud, shaped after Scaleway's Instance API (servers are
//! addressed by zone and id, created stopped, powered on separately, tagged,
//! and their volumes outlive them).
//!
//! Methods return boxed futures so the trait stays object safe
//! (`Arc<dyn CloudProvider>`) without a macro crate.

use std::future::Future;
use std::pin::Pin;

use crate::error::ProviderError;
use crate::types::{
    CreateServer, Firewall, FirewallGroup, ListFilter, Server, ServerRef, Volume, VolumeRef,
};

/// A `Send` future borrowed from the provider for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cloud that can run GPU servers for the orchestrator.
///
/// Every method may be called again after a crash or a lost answer: reads
/// are pure, `start_server`, `delete_server` and `delete_volume` are
/// idempotent. `create_server` is NOT (clouds do not deduplicate creates):
/// before creating again for an instance, look for a server tagged with
/// [`crate::tags::instance`] in `list_servers`.
pub trait CloudProvider: Send + Sync {
    /// Short stable name of the implementation (`"mock"`, `"scaleway"`).
    fn name(&self) -> &'static str;

    /// Creates a server, powered off (state `Stopped`), tagged with the
    /// standard tags of [`CreateServer::all_tags`] plus the extra ones.
    fn create_server(&self, req: CreateServer) -> BoxFuture<'_, Result<Server, ProviderError>>;

    /// Powers a server on. It reports `Starting`, then `Running` once it
    /// has booted. Calling it on a starting or running server is a no-op
    /// (the mock also restarts a dead sshd then). `NotFound` when gone;
    /// `Transient` while the server or its volumes are still changing.
    fn start_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// The server as the cloud sees it now, `None` when it does not exist.
    fn get_server(&self, server: ServerRef)
        -> BoxFuture<'_, Result<Option<Server>, ProviderError>>;

    /// Every server this provider's credentials can see that matches the
    /// filter, tracked or not: reconciliation uses it to find orphans.
    fn list_servers(&self, filter: ListFilter)
        -> BoxFuture<'_, Result<Vec<Server>, ProviderError>>;

    /// Deletes a server and everything running on it. Its volumes are
    /// detached but survive (as on Scaleway): delete them with
    /// `delete_volume`. Deleting a missing server is `Ok`.
    fn delete_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Every volume matching the filter, attached or not.
    fn list_volumes(&self, filter: ListFilter)
        -> BoxFuture<'_, Result<Vec<Volume>, ProviderError>>;

    /// Grows a volume to `size_gb`. Shrinking is `InvalidRequest`; the
    /// current size is a no-op; a volume still busy with a previous change
    /// (Scaleway: `updating`) is `Transient`.
    fn resize_volume(
        &self,
        volume: VolumeRef,
        size_gb: u64,
    ) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Deletes a detached volume. One attached to an existing server is
    /// `InvalidRequest`; one still detaching from a deleted server (or
    /// otherwise busy) is `Transient`. Deleting a missing volume is `Ok`.
    fn delete_volume(&self, volume: VolumeRef) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Applies `rules` to the server (on Scaleway: a security group of the
    /// instance, tagged like it, attached to the server). Idempotent.
    fn ensure_firewall(
        &self,
        server: ServerRef,
        rules: Firewall,
    ) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Deletes what `ensure_firewall` made for an instance in `zone`, once
    /// its server is gone. Nothing to delete is `Ok`.
    fn delete_firewall(
        &self,
        zone: String,
        instance_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), ProviderError>>;

    /// Every firewall object (on Scaleway: security group) matching the
    /// filter, attached or not: reconciliation uses it to find the groups
    /// of instances that are gone.
    fn list_firewalls(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<FirewallGroup>, ProviderError>>;
}
