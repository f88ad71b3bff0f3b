//! The mock provider: each VM is a directory `<state_dir>/mock-vms/<id>/`
//! holding its record (`vm.json`), its host key and a real OpenSSH server
//! bound to the VM's own loopback address (`127.0.x.y`), started once the
//! boot delay has passed. Install the worker under `<vm dir>/node`
//! (`Server::install_dir`), so deleting the VM finds and kills it.
//!
//! All state is on disk: a new provider on the same directory sees the same
//! VMs. Booting is driven by a task per VM *and* lazily by `get_server` /
//! `list_servers`, so a boot interrupted by a restart completes on the next
//! look. A `Running` VM whose sshd died stays `Running` (like a crashed
//! cloud VM); `start_server` starts its sshd again.

mod config;
mod lifecycle;
mod reaper;
mod sshd;
mod vm;
mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use config::{MockConfig, MockFaults};

use crate::error::ProviderError;
use crate::provider::{BoxFuture, CloudProvider};
use crate::types::{
    CreateServer, Firewall, FirewallGroup, ListFilter, Server, ServerRef, Volume, VolumeRef,
};
use config::Faults;
use volumes::VolumeStore;

const MAX_BOOT_DELAY: Duration = Duration::from_secs(24 * 3600);

/// A `CloudProvider` whose servers are local processes.
pub struct MockProvider {
    inner: Arc<Inner>,
}

/// Shared with the boot tasks.
struct Inner {
    cfg: MockConfig,
    vms: PathBuf,
    volumes: VolumeStore,
    faults: Faults,
    /// Serializes changes to VM records within this process.
    lock: tokio::sync::Mutex<()>,
    boots: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl MockProvider {
    /// Checks the configuration, creates the state directories and picks up
    /// the VMs already there. Does not start anything.
    pub fn new(mut cfg: MockConfig) -> Result<MockProvider, ProviderError> {
        let key = cfg.authorized_key.trim();
        if key.is_empty() || key.contains('\n') {
            return Err(ProviderError::InvalidRequest(
                "authorized_key must be one OpenSSH public key line".into(),
            ));
        }
        if !cfg.sshd_path.is_file() {
            return Err(ProviderError::InvalidRequest(format!(
                "no sshd at {} (Debian: apt-get install openssh-server)",
                cfg.sshd_path.display()
            )));
        }
        let [a, b, _, _] = cfg.first_address.octets();
        if (a, b) != (127, 0) {
            return Err(ProviderError::InvalidRequest(format!(
                "first_address {} is not in 127.0.0.0/16",
                cfg.first_address
            )));
        }
        if cfg.boot_delay > MAX_BOOT_DELAY || cfg.create_delay > MAX_BOOT_DELAY {
            return Err(ProviderError::InvalidRequest(
                "boot_delay and create_delay must be under a day".into(),
            ));
        }
        let vms = cfg.state_dir.join("mock-vms");
        let vols = cfg.state_dir.join("mock-volumes");
        for dir in [&vms, &vols] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ProviderError::io(format!("create {}", dir.display()), e))?;
        }
        // Process matching compares against kernel-resolved paths.
        cfg.state_dir = cfg
            .state_dir
            .canonicalize()
            .map_err(|e| ProviderError::io("resolve state_dir", e))?;
        let faults = Faults::default();
        faults.add(&cfg.faults);
        Ok(MockProvider {
            inner: Arc::new(Inner {
                vms: cfg.state_dir.join("mock-vms"),
                volumes: VolumeStore::new(cfg.state_dir.join("mock-volumes")),
                cfg,
                faults,
                lock: tokio::sync::Mutex::new(()),
                boots: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The (resolved) state directory.
    pub fn state_dir(&self) -> &Path {
        &self.inner.cfg.state_dir
    }

    /// The directory of a VM, whether or not it exists.
    pub fn vm_dir(&self, provider_id: &str) -> Option<PathBuf> {
        vm::dir_of(&self.inner.vms, provider_id)
    }

    /// Adds faults to inject from now on.
    pub fn inject(&self, faults: &MockFaults) {
        self.inner.faults.add(faults);
    }

    /// Gives a zone refused as out of stock its capacity back.
    pub fn restock(&self, zone: &str) {
        self.inner.faults.restock(zone);
    }

    /// Makes a VM disappear behind the orchestrator's back: its processes
    /// are killed and its directory removed, as by a delete, but no fault
    /// counter is consulted. Its volumes survive, detached.
    pub async fn vanish(&self, provider_id: &str) -> Result<(), ProviderError> {
        tracing::info!(provider_id, "mock VM vanishing");
        self.inner.remove(provider_id).await
    }

    /// Stops the boot tasks and destroys every VM and volume of the state
    /// directory, blocking. For test teardown and `make clean`-like resets.
    pub fn purge_blocking(&self) -> Result<usize, ProviderError> {
        self.inner.abort_boots();
        purge(&self.inner.cfg.state_dir)
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        // VMs outlive the provider; only the in-process boot drivers stop.
        self.inner.abort_boots();
    }
}

/// Kills every process of every mock VM under `state_dir` and removes the
/// VMs and volumes, blocking. Returns how many VMs there were.
pub fn purge(state_dir: &Path) -> Result<usize, ProviderError> {
    let Ok(state_dir) = state_dir.canonicalize() else {
        return Ok(0);
    };
    let vms = vm::list(&state_dir.join("mock-vms"))?;
    let count = vms.len();
    for (dir, record) in vms {
        lifecycle::destroy(&dir, record.as_ref())?;
    }
    vm::remove_staging(&state_dir.join("mock-vms"));
    match std::fs::remove_dir_all(state_dir.join("mock-volumes")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ProviderError::io("remove mock volumes", e))
        }
        _ => Ok(count),
    }
}

impl Inner {
    fn abort_boots(&self) {
        let mut boots = self.boots.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, task) in boots.drain() {
            task.abort();
        }
    }
}

impl CloudProvider for MockProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn create_server(&self, req: CreateServer) -> BoxFuture<'_, Result<Server, ProviderError>> {
        Box::pin(self.inner.create(req))
    }

    fn start_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move { self.inner.start(&server.provider_id).await })
    }

    fn get_server(
        &self,
        server: ServerRef,
    ) -> BoxFuture<'_, Result<Option<Server>, ProviderError>> {
        Box::pin(async move { self.inner.get(&server.provider_id).await })
    }

    fn list_servers(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<Server>, ProviderError>> {
        Box::pin(async move { self.inner.list(&filter).await })
    }

    fn delete_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            if self.inner.faults.take_refuse_delete() {
                return Err(ProviderError::Transient(
                    "injected fault: delete refused (INVENTIV_MOCK_REFUSE_DELETE)".into(),
                ));
            }
            self.inner.remove(&server.provider_id).await
        })
    }

    fn list_volumes(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<Volume>, ProviderError>> {
        Box::pin(async move {
            let _guard = self.inner.lock.lock().await;
            self.inner.volumes.list(&filter)
        })
    }

    fn resize_volume(
        &self,
        volume: VolumeRef,
        size_gb: u64,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let _guard = self.inner.lock.lock().await;
            self.inner.volumes.resize(&volume.provider_id, size_gb)
        })
    }

    fn delete_volume(&self, volume: VolumeRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let _guard = self.inner.lock.lock().await;
            self.inner.volumes.delete(&volume.provider_id)
        })
    }

    /// Mock VMs share the host's loopback: there is nothing to filter.
    fn ensure_firewall(
        &self,
        _server: ServerRef,
        _rules: Firewall,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn delete_firewall(
        &self,
        _zone: String,
        _instance_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    /// The mock keeps no firewall objects: there is nothing to list.
    fn list_firewalls(
        &self,
        _filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<FirewallGroup>, ProviderError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
