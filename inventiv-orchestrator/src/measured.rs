//! A cloud provider with every API call counted and timed: the one place
//! the orchestrator's provider calls pass ([`crate::context::Orchestrator::provider`]
//! hands providers out wrapped), so the provider call metrics see all of them.

use std::sync::Arc;
use std::time::Instant;

use inventiv_providers::types::{
    CreateServer, Firewall, FirewallGroup, ListFilter, Server, ServerRef, Volume, VolumeRef,
};
use inventiv_providers::{BoxFuture, CloudProvider, ProviderError};

use crate::metrics::Metrics;

/// `inner`, measured into `metrics`.
pub struct Measured {
    pub inner: Arc<dyn CloudProvider>,
    pub metrics: Arc<Metrics>,
}

impl Measured {
    fn timed<'a, T: Send + 'a>(
        &'a self,
        operation: &'static str,
        call: BoxFuture<'a, Result<T, ProviderError>>,
    ) -> BoxFuture<'a, Result<T, ProviderError>> {
        Box::pin(async move {
            let started = Instant::now();
            let out = call.await;
            let outcome = match &out {
                Ok(_) => "ok",
                Err(e) => e.code(),
            };
            self.metrics
                .calls(self.inner.name(), operation)
                .record(outcome, started.elapsed());
            out
        })
    }
}

impl CloudProvider for Measured {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn create_server(&self, req: CreateServer) -> BoxFuture<'_, Result<Server, ProviderError>> {
        self.timed("create_server", self.inner.create_server(req))
    }

    fn start_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.timed("start_server", self.inner.start_server(server))
    }

    fn get_server(
        &self,
        server: ServerRef,
    ) -> BoxFuture<'_, Result<Option<Server>, ProviderError>> {
        self.timed("get_server", self.inner.get_server(server))
    }

    fn list_servers(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<Server>, ProviderError>> {
        self.timed("list_servers", self.inner.list_servers(filter))
    }

    fn delete_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.timed("delete_server", self.inner.delete_server(server))
    }

    fn list_volumes(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<Volume>, ProviderError>> {
        self.timed("list_volumes", self.inner.list_volumes(filter))
    }

    fn resize_volume(
        &self,
        volume: VolumeRef,
        size_gb: u64,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.timed("resize_volume", self.inner.resize_volume(volume, size_gb))
    }

    fn delete_volume(&self, volume: VolumeRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.timed("delete_volume", self.inner.delete_volume(volume))
    }

    fn ensure_firewall(
        &self,
        server: ServerRef,
        rules: Firewall,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.timed("ensure_firewall", self.inner.ensure_firewall(server, rules))
    }

    fn delete_firewall(
        &self,
        zone: String,
        instance_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.timed(
            "delete_firewall",
            self.inner.delete_firewall(zone, instance_id),
        )
    }

    fn list_firewalls(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<FirewallGroup>, ProviderError>> {
        self.timed("list_firewalls", self.inner.list_firewalls(filter))
    }
}
