//! The life of a mock VM: create (stopped), start (boot delay, then sshd),
//! observe (the state a reader sees, finishing a due boot on the way),
//! remove (kill every process, then the directory).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;
use uuid::Uuid;

use super::reaper::{self, VmMarks};
use super::vm::{self, Power, VmRecord};
use super::{sshd, Inner};
use crate::error::ProviderError;
use crate::types::{CreateServer, ListFilter, Server, ServerState};

/// How long sshd may take to answer once launched.
const SSHD_READY: Duration = Duration::from_secs(5);
/// How long a boot task keeps driving a boot before leaving it to readers.
const BOOT_DRIVE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
const NODE_DIR: &str = "node";

impl Inner {
    pub(super) async fn create(&self, req: CreateServer) -> Result<Server, ProviderError> {
        tokio::time::sleep(self.cfg.create_delay).await;
        if self.faults.take_fail_create() {
            return Err(ProviderError::Transient(
                "injected fault: create failed (INVENTIV_MOCK_FAIL_CREATE)".into(),
            ));
        }
        if self.faults.out_of_stock(&req.zone) {
            return Err(ProviderError::OutOfStock(format!(
                "no capacity for {} in {} (injected: INVENTIV_MOCK_OUT_OF_STOCK_ZONES)",
                req.instance_type, req.zone
            )));
        }
        for (field, value) in [
            ("zone", &req.zone),
            ("instance_type", &req.instance_type),
            ("name", &req.name),
        ] {
            if value.trim().is_empty() {
                return Err(ProviderError::InvalidRequest(format!("{field} is empty")));
            }
        }
        let _guard = self.lock.lock().await;
        let (port, fallback) = (self.cfg.ssh_port, self.cfg.fallback_ssh_port);
        let mut given_up = HashSet::new();
        let (id, dir, record, root_volume) = loop {
            let mut used: HashSet<_> = vm::list(&self.vms)?
                .into_iter()
                .filter_map(|(_, r)| r.map(|r| r.address))
                .collect();
            used.extend(&given_up);
            let address = vm::allocate(self.cfg.first_address, &used, |a| {
                sshd::port_free(a, port) || sshd::port_free(a, fallback)
            })
            .ok_or_else(|| ProviderError::Quota("no free loopback address for a mock VM".into()))?;
            let id = Uuid::new_v4().hyphenated().to_string();
            let root_volume = Uuid::new_v4().hyphenated().to_string();
            let dir = self.vms.join(&id);
            let record = VmRecord {
                provider_id: id.clone(),
                instance_id: req.instance_id,
                organization_id: req.organization_id,
                tags: req.all_tags(),
                name: req.name.clone(),
                zone: req.zone.clone(),
                instance_type: req.instance_type.clone(),
                image: req.image.clone(),
                address,
                ssh_port: sshd::pick_port(address, port, fallback),
                volumes: vec![root_volume.clone()],
                created_at: Utc::now(),
                power: Power::Stopped,
            };
            // Assembled aside (record first, host key) and renamed into
            // place: a VM directory is always complete and listed, whatever
            // fails or crashes meanwhile.
            let staging = vm::staging_dir(&self.vms, &id);
            let made = async {
                std::fs::create_dir_all(staging.join(NODE_DIR))
                    .map_err(|e| ProviderError::io(format!("create {}", staging.display()), e))?;
                vm::save(&staging, &record)?;
                sshd::generate_host_key(&staging).await?;
                std::fs::rename(&staging, &dir)
                    .map_err(|e| ProviderError::io(format!("create {}", dir.display()), e))
            }
            .await;
            if let Err(e) = made {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            // Another process on this state directory (an orchestrator
            // replica) may have picked the same address meanwhile; `lock`
            // only serializes this one. Each saves its record, then looks:
            // of two racing creates, at least the one that looks last sees
            // the other and picks again, so two VMs never keep one address.
            let clash = vm::list(&self.vms)?
                .into_iter()
                .any(|(d, r)| d != dir && r.is_some_and(|r| r.address == address));
            if !clash {
                break (id, dir, record, root_volume);
            }
            tracing::info!(%address, "mock VM address taken meanwhile by another process; picking another");
            let _ = std::fs::remove_dir_all(&dir);
            given_up.insert(address);
        };
        let made = self
            .volumes
            .create(&root_volume, &record, self.cfg.root_volume_gb);
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        tracing::info!(provider_id = %id, instance_id = %record.instance_id, address = %record.address, "mock VM created");
        Ok(self.server(&dir, &record, ServerState::Stopped))
    }

    pub(super) async fn start(self: &Arc<Self>, provider_id: &str) -> Result<(), ProviderError> {
        let not_found = || ProviderError::NotFound(format!("server {provider_id}"));
        let dir = vm::dir_of(&self.vms, provider_id).ok_or_else(not_found)?;
        let _guard = self.lock.lock().await;
        let mut record = vm::load(&dir)?.ok_or_else(not_found)?;
        match record.power {
            Power::Stopped => {
                let boot_at = Utc::now()
                    + TimeDelta::from_std(self.cfg.boot_delay).unwrap_or(TimeDelta::zero());
                record.power = Power::Starting { boot_at };
                vm::save(&dir, &record)?;
                tracing::info!(provider_id = %record.provider_id, %boot_at, "mock VM powered on");
                self.drive_boot(&record.provider_id, boot_at);
            }
            Power::Starting { boot_at } => self.drive_boot(&record.provider_id, boot_at),
            Power::Running => {
                if sshd::running_pid(&dir).is_none() {
                    tracing::info!(provider_id = %record.provider_id, "restarting the sshd of a running mock VM");
                    self.launch(&dir, &mut record).await?;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn get(&self, provider_id: &str) -> Result<Option<Server>, ProviderError> {
        let Some(dir) = vm::dir_of(&self.vms, provider_id) else {
            return Ok(None);
        };
        let _guard = self.lock.lock().await;
        let Some(mut record) = vm::load(&dir)? else {
            return Ok(None);
        };
        let state = self.observe(&dir, &mut record).await?;
        Ok(Some(self.server(&dir, &record, state)))
    }

    pub(super) async fn list(&self, filter: &ListFilter) -> Result<Vec<Server>, ProviderError> {
        let _guard = self.lock.lock().await;
        let mut servers = Vec::new();
        for (dir, record) in vm::list(&self.vms)? {
            let Some(mut record) = record else { continue };
            if filter.matches(&record.zone, &record.tags) {
                let state = self.observe(&dir, &mut record).await?;
                servers.push(self.server(&dir, &record, state));
            }
        }
        Ok(servers)
    }

    /// Kills the VM's processes and removes it; its volumes are detached.
    /// A missing VM is fine.
    pub(super) async fn remove(&self, provider_id: &str) -> Result<(), ProviderError> {
        let Some(dir) = vm::dir_of(&self.vms, provider_id) else {
            return Ok(());
        };
        let _guard = self.lock.lock().await;
        if let Some(id) = dir.file_name().and_then(|n| n.to_str()) {
            self.forget_boot(id, true);
        }
        if !dir.exists() {
            return Ok(());
        }
        let record = vm::load(&dir).ok().flatten();
        let task_dir = dir.clone();
        let task_record = record.clone();
        tokio::task::spawn_blocking(move || destroy(&task_dir, task_record.as_ref()))
            .await
            .map_err(|e| ProviderError::Internal(format!("VM removal task: {e}")))??;
        if let Some(record) = record {
            self.volumes.detach(&record.volumes)?;
        }
        tracing::info!(provider_id, "mock VM deleted");
        Ok(())
    }

    /// The state a reader sees now. A boot whose delay is over is completed
    /// here (sshd launched and awaited), whoever looks first.
    async fn observe(
        &self,
        dir: &Path,
        record: &mut VmRecord,
    ) -> Result<ServerState, ProviderError> {
        let Power::Starting { boot_at } = record.power else {
            return Ok(match record.power {
                Power::Running => ServerState::Running,
                _ => ServerState::Stopped,
            });
        };
        if Utc::now() < boot_at {
            return Ok(ServerState::Starting);
        }
        let up = if sshd::running_pid(dir).is_some() {
            sshd::answers(record.address, record.ssh_port).await
        } else {
            self.launch(dir, record).await?
        };
        if !up {
            return Ok(ServerState::Starting);
        }
        record.power = Power::Running;
        vm::save(dir, record)?;
        tracing::info!(provider_id = %record.provider_id, address = %record.address, port = record.ssh_port, "mock VM running");
        Ok(ServerState::Running)
    }

    /// Starts the VM's sshd (port re-chosen, keys rewritten) and waits a
    /// bounded time for it to answer; says whether it did.
    async fn launch(&self, dir: &Path, record: &mut VmRecord) -> Result<bool, ProviderError> {
        record.ssh_port = sshd::pick_port(
            record.address,
            self.cfg.ssh_port,
            self.cfg.fallback_ssh_port,
        );
        vm::save(dir, record)?;
        sshd::launch(&self.cfg.sshd_path, dir, record, &self.cfg.authorized_key)?;
        let deadline = Instant::now() + SSHD_READY;
        loop {
            if sshd::answers(record.address, record.ssh_port).await {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                tracing::warn!(provider_id = %record.provider_id, log = %sshd::log_path(dir).display(), "mock VM sshd does not answer");
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn server(&self, dir: &Path, record: &VmRecord, state: ServerState) -> Server {
        Server {
            provider_id: record.provider_id.clone(),
            zone: record.zone.clone(),
            name: record.name.clone(),
            instance_type: record.instance_type.clone(),
            state,
            ip: Some(record.address.into()),
            ssh_port: record.ssh_port,
            ssh_user: "root".into(),
            install_dir: Some(dir.join(NODE_DIR).to_string_lossy().into_owned()),
            tags: record.tags.clone(),
            volumes: record
                .volumes
                .iter()
                .filter_map(|id| self.volumes.get(id).ok().flatten())
                .collect(),
            created_at: record.created_at,
        }
    }

    /// Makes sure a task drives this VM's boot to `Running` (one per VM).
    fn drive_boot(self: &Arc<Self>, provider_id: &str, boot_at: DateTime<Utc>) {
        let mut boots = self.boots.lock().unwrap_or_else(PoisonError::into_inner);
        if boots.get(provider_id).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let task = tokio::spawn(Arc::clone(self).boot(provider_id.to_owned(), boot_at));
        boots.insert(provider_id.to_owned(), task);
    }

    fn forget_boot(&self, provider_id: &str, abort: bool) {
        let mut boots = self.boots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = boots.remove(provider_id) {
            if abort {
                task.abort();
            }
        }
    }

    /// Waits for the boot time, then polls the VM until it runs (observing
    /// completes the boot) and applies a pending vanish fault. Losing this
    /// task is harmless: the next reader completes the boot.
    async fn boot(self: Arc<Self>, provider_id: String, boot_at: DateTime<Utc>) {
        tokio::time::sleep((boot_at - Utc::now()).to_std().unwrap_or_default()).await;
        let deadline = Instant::now() + BOOT_DRIVE;
        loop {
            match self.get(&provider_id).await {
                Ok(Some(s)) if s.state == ServerState::Running => break,
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => tracing::warn!(%provider_id, error = %e, "mock VM boot"),
            }
            if Instant::now() >= deadline {
                tracing::warn!(%provider_id, "mock VM did not come up; readers will retry");
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        // Leave the table before a vanish, which would otherwise abort us.
        self.forget_boot(&provider_id, false);
        if let Some(after) = self.faults.take_vanish() {
            tokio::time::sleep(after).await;
            match self.remove(&provider_id).await {
                Ok(()) => tracing::info!(%provider_id, "mock VM vanished (INVENTIV_MOCK_VANISH)"),
                Err(e) => tracing::warn!(%provider_id, error = %e, "mock VM vanish"),
            }
        }
    }
}

/// Kills every process of the VM in `dir`, then removes the directory.
/// Blocking.
pub(super) fn destroy(dir: &Path, record: Option<&VmRecord>) -> Result<(), ProviderError> {
    let provider_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let marks = VmMarks {
        dir: dir.to_path_buf(),
        provider_id,
        endpoint: record.map(|r| (r.address, r.ssh_port)),
    };
    reaper::kill_all(&marks)?;
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ProviderError::Transient(
            format!("remove {}: {e}", dir.display()),
        )),
        _ => Ok(()),
    }
}
