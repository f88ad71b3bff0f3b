//! The `ssh` provider: an organization's own hosts behind the
//! [`CloudProvider`] trait, so the lifecycle treats them as any cloud.
//! "Create" seats the instance on free GPUs of a host of the pool
//! ([`inventiv_store::host_alloc`]); the "server" is that seat, already
//! running. "Delete" stops the engine and the agent, removes the install
//! and gives the GPUs back; on a host that does not answer, the seat is
//! marked releasing (the instance can end) and [`run`] finishes the
//! cleanup once the host answers again. Nothing is bought: no volume, no
//! firewall (the host's own; the worker's ports are TLS with a relay key).
//!
//! [`run`] also verifies every host that was verified once, each interval:
//! a host that stops answering becomes `unreachable` (out of placement),
//! one that answers again is `verified` (or `in_use`) again.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use inventiv_common::host::Reach;
use inventiv_providers::{
    tags, BoxFuture, CloudProvider, CreateServer, Firewall, FirewallGroup, ListFilter,
    ProviderError, Server, ServerRef, ServerState, Volume, VolumeRef,
};
use inventiv_store::crypto::Keyring;
use inventiv_store::host_alloc::{self, AllocateError, Allocation, Seats};
use inventiv_store::host_check::{self, Applied, Attempt};
use inventiv_store::hosts::{load_key, OrgSsh};
use inventiv_store::ssh::Target;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::Orchestrator;
use crate::jobs::cloud_reconcile::advisory_lock;
use crate::node::install::quote;

/// How long connecting to a host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a verification or a cleanup may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// One organization's hosts as a provider.
pub struct SshHosts {
    pub db: PgPool,
    pub keyring: Arc<Keyring>,
    pub org: Uuid,
    /// Parent of the private directories the organization's key is written
    /// to for the length of a connection.
    pub scratch: PathBuf,
}

fn db_error(e: sqlx::Error) -> ProviderError {
    ProviderError::Transient(format!("database: {e}"))
}

/// The address to reach a host at: its IP, or its DNS name resolved now.
async fn resolve(address: &str, port: i32) -> Result<IpAddr, ProviderError> {
    if let Ok(ip) = address.parse() {
        return Ok(ip);
    }
    let port = u16::try_from(port).unwrap_or(22);
    tokio::net::lookup_host((address, port))
        .await
        .ok()
        .and_then(|mut found| found.next())
        .map(|a| a.ip())
        .ok_or_else(|| ProviderError::Transient(format!("cannot resolve {address}")))
}

/// The seat as the lifecycle sees a server.
async fn server(a: &Allocation) -> Result<Server, ProviderError> {
    Ok(Server {
        provider_id: a.instance_id.to_string(),
        zone: a.pool.clone(),
        name: a.label.clone(),
        instance_type: String::new(),
        state: ServerState::Running,
        ip: Some(resolve(&a.address, a.ssh_port).await?),
        ssh_port: u16::try_from(a.ssh_port).unwrap_or(22),
        ssh_user: a.ssh_user.clone(),
        install_dir: Some(a.install_dir.clone()),
        tags: tags::standard(a.instance_id, a.organization_id),
        volumes: Vec::new(),
        created_at: a.created_at,
    })
}

fn target(a: &Allocation) -> Target {
    Target {
        host: a.address.clone(),
        port: u16::try_from(a.ssh_port).unwrap_or(22),
        user: a.ssh_user.clone(),
    }
}

/// Stops the seat's agent and engine and removes its install directory,
/// over SSH with the organization's key and the host's pinned key.
pub async fn clean_up(
    db: &PgPool,
    keyring: &Keyring,
    scratch: &std::path::Path,
    a: &Allocation,
) -> Result<(), String> {
    let key = load_key(db, keyring, a.organization_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the organization has no SSH key")?;
    let known = a
        .known_hosts
        .as_deref()
        .ok_or("the host key was never pinned")?;
    let client = OrgSsh::open(scratch, &key, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let dir = quote(&a.install_dir);
    let command = format!(
        "if [ -f {dir}/bootstrap.sh ]; then bash {dir}/bootstrap.sh --stop --install-dir {dir} --service-manager background; fi; rm -rf {dir}"
    );
    let ran = async {
        let session = client
            .ssh
            .session(a.host_id, target(a), Some(known))
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(EXCHANGE_TIMEOUT, session.run(&command, b"")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", EXCHANGE_TIMEOUT.as_secs())),
        }
    }
    .await;
    client.close().await.map_err(|e| e.to_string())?;
    ran
}

impl SshHosts {
    async fn seat(&self, server: &ServerRef) -> Result<Option<Allocation>, ProviderError> {
        let Ok(instance) = Uuid::parse_str(&server.provider_id) else {
            return Ok(None);
        };
        let found = host_alloc::find(&self.db, instance)
            .await
            .map_err(db_error)?;
        Ok(found.filter(|a| a.organization_id == self.org))
    }
}

impl CloudProvider for SshHosts {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn create_server(&self, req: CreateServer) -> BoxFuture<'_, Result<Server, ProviderError>> {
        Box::pin(async move {
            let seated = host_alloc::allocate(
                &self.db,
                req.instance_id,
                self.org,
                &req.zone,
                &req.instance_type,
            )
            .await;
            match seated {
                Ok(a) => server(&a).await,
                Err(AllocateError::NoFreeHost(why)) => Err(ProviderError::OutOfStock(why)),
                Err(AllocateError::Db(e)) => Err(db_error(e)),
            }
        })
    }

    fn start_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            match self.seat(&server).await? {
                Some(a) if !a.releasing => Ok(()),
                _ => Err(ProviderError::NotFound(format!(
                    "no seat {}",
                    server.provider_id
                ))),
            }
        })
    }

    fn get_server(
        &self,
        server: ServerRef,
    ) -> BoxFuture<'_, Result<Option<Server>, ProviderError>> {
        Box::pin(async move {
            match self.seat(&server).await? {
                Some(a) if !a.releasing => Ok(Some(self::server(&a).await?)),
                _ => Ok(None),
            }
        })
    }

    fn list_servers(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<Server>, ProviderError>> {
        Box::pin(async move {
            let seats = host_alloc::list(&self.db, Seats::Organization(self.org))
                .await
                .map_err(db_error)?;
            let mut out = Vec::new();
            for a in seats.iter().filter(|a| !a.releasing) {
                let tags = tags::standard(a.instance_id, a.organization_id);
                if filter.matches(&a.pool, &tags) {
                    out.push(server(a).await?);
                }
            }
            Ok(out)
        })
    }

    fn delete_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let Some(a) = self.seat(&server).await? else {
                return Ok(());
            };
            host_alloc::mark_releasing(&self.db, a.instance_id)
                .await
                .map_err(db_error)?;
            // The host checks may be cleaning it up already: they finish it.
            let Some((_claim, a)) = host_alloc::claim_cleanup(&self.db, a.instance_id)
                .await
                .map_err(db_error)?
            else {
                return Ok(());
            };
            match clean_up(&self.db, &self.keyring, &self.scratch, &a).await {
                Ok(()) => host_alloc::release(&self.db, &a).await.map_err(db_error),
                Err(why) => {
                    // The instance may end; the GPUs stay taken until the
                    // host answers and `run` finishes the cleanup.
                    tracing::warn!(instance_id = %a.instance_id, host = %a.host_id, %why,
                        "host cleanup failed; will retry when the host answers");
                    Ok(())
                }
            }
        })
    }

    fn list_volumes(&self, _: ListFilter) -> BoxFuture<'_, Result<Vec<Volume>, ProviderError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn resize_volume(&self, volume: VolumeRef, _: u64) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            Err(ProviderError::NotFound(format!(
                "hosts have no volume {}",
                volume.provider_id
            )))
        })
    }

    fn delete_volume(&self, _: VolumeRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn ensure_firewall(
        &self,
        _: ServerRef,
        _: Firewall,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn delete_firewall(&self, _: String, _: Uuid) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn list_firewalls(
        &self,
        _: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<FirewallGroup>, ProviderError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// One pass over the hosts: every host verified once (host key pinned) and
/// not removed is verified again; on each host that answers, the seats
/// being given back are cleaned up and released. Returns how many hosts
/// were reached.
pub async fn check_hosts(o: &Orchestrator) -> anyhow::Result<usize> {
    let db = &o.db;
    host_alloc::release_ended(db).await?;
    let hosts = sqlx::query!(
        "SELECT id, organization_id, address, ssh_port, ssh_user, ssh_known_hosts AS \"known_hosts!\"
           FROM hosts WHERE status <> 'removed' AND ssh_known_hosts IS NOT NULL ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    let scratch = scratch_dir(o);
    let mut reached = 0;
    for h in hosts {
        let Some(key) = load_key(db, &o.config.keyring, h.organization_id).await? else {
            continue;
        };
        let found = host_check::probe(Attempt {
            host_id: h.id,
            target: Target {
                host: h.address.clone(),
                port: u16::try_from(h.ssh_port).unwrap_or(22),
                user: h.ssh_user.clone(),
            },
            known_hosts: Some(&h.known_hosts),
            key: &key,
            scratch: &scratch,
            connect_timeout: CONNECT_TIMEOUT,
            timeout: EXCHANGE_TIMEOUT,
        })
        .await?;
        let mut tx = db.begin().await?;
        let applied =
            host_check::apply(&mut tx, h.organization_id, h.id, found, None, None).await?;
        tx.commit().await?;
        let Applied::Done {
            from, to, reach, ..
        } = applied
        else {
            continue;
        };
        if from != to {
            tracing::info!(host = %h.id, %from, %to, "host status changed at its check");
        }
        if reach != Reach::Reached {
            continue;
        }
        reached += 1;
        for seat in host_alloc::releasing_on(db, h.id).await? {
            // Termination may be cleaning it up already.
            let Some((_claim, a)) = host_alloc::claim_cleanup(db, seat.instance_id).await? else {
                continue;
            };
            match clean_up(db, &o.config.keyring, &scratch, &a).await {
                Ok(()) => host_alloc::release(db, &a).await?,
                Err(why) => {
                    tracing::warn!(instance_id = %a.instance_id, host = %h.id, %why, "host cleanup failed")
                }
            }
        }
    }
    Ok(reached)
}

/// Where the organizations' keys are written for a connection.
pub fn scratch_dir(o: &Orchestrator) -> PathBuf {
    o.config.state_dir.join("ssh-hosts")
}

/// Checks the hosts every interval until shutdown, on one replica at a
/// time (the cloud reconciliation's advisory lock pattern, its own key).
pub async fn run(o: Arc<Orchestrator>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(o.config.host_check_interval) => {}
        }
        let _lock = match advisory_lock(&o.config.database_url, LOCK_KEY).await {
            Ok(Some(conn)) => conn,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "host checks: cannot take their lock");
                continue;
            }
        };
        let started = Utc::now();
        match check_hosts(&o).await {
            Ok(n) => tracing::debug!(
                reached = n,
                took_ms = (Utc::now() - started).num_milliseconds(),
                "hosts checked"
            ),
            Err(e) => tracing::warn!(error = %e, "host checks failed; will retry"),
        }
    }
}

/// The advisory lock key of the host checks.
const LOCK_KEY: i64 = 0x696e_7648_6f73_7443; // "invHostC"
