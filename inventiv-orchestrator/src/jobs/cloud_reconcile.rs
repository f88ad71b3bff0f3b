//! Cloud reconciliation, per provider and organization: list the tagged
//! servers and volumes the provider has, compare them with the database
//! (the rules are in `inventiv_providers::reconcile`), delete the orphans
//! older than the grace window, and mark recorded volumes that vanished.
//! A failed deletion is retried on later passes with exponential backoff.
//! Untagged resources are never listed, so never touched. One replica at a
//! time runs the job: a pass holds a Postgres advisory lock on a
//! connection of its own, released when the pass ends or the process dies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use inventiv_providers::reconcile::{classify, vanished, Facts, Finding, Kind, Verdict};
use inventiv_providers::{CloudProvider, ServerRef, VolumeRef};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::Orchestrator;

/// What one pass over an organization found and did.
#[derive(Debug, Default)]
pub struct Pass {
    pub findings: Vec<Finding>,
    pub deleted: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// Live instances whose server the provider no longer lists.
    pub vanished_instances: Vec<Uuid>,
    pub missing_volumes: Vec<String>,
}

/// When each failing deletion may be tried again.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, (u32, Instant)>>);

impl Backoff {
    const BASE: Duration = Duration::from_secs(30);
    const MAX: Duration = Duration::from_secs(3600);

    fn due(&self, id: &str) -> bool {
        self.0
            .lock()
            .map(|m| m.get(id).is_none_or(|(_, at)| Instant::now() >= *at))
            .unwrap_or(true)
    }

    fn failed(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            let entry = m.entry(id.to_owned()).or_insert((0, Instant::now()));
            entry.0 += 1;
            let delay = Self::BASE.saturating_mul(2u32.saturating_pow(entry.0 - 1));
            entry.1 = Instant::now() + delay.min(Self::MAX);
        }
    }

    fn succeeded(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }
}

/// Why a pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Cloud(#[from] crate::clouds::CloudError),
    #[error(transparent)]
    Provider(#[from] inventiv_providers::ProviderError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn facts(inv: inventiv_store::inventory::Inventory, org: Uuid) -> Facts {
    Facts {
        organization_id: org,
        live_instances: inv.live_instances,
        live_volumes: inv.live_volumes,
        dead_volumes: inv.dead_volumes,
        live_servers: inv.live_servers,
    }
}

/// What the provider has and the verdicts; the findings to delete; and the
/// volumes attached to each server (deleted with an orphan server, as a
/// root volume whose tagging never happened carries no tag).
type Survey = (Pass, Vec<Finding>, HashMap<String, Vec<VolumeRef>>);

async fn survey(
    o: &Orchestrator,
    provider: &dyn CloudProvider,
    code: &str,
    org: Uuid,
    grace: Duration,
) -> Result<Survey, ReconcileError> {
    let inv = inventiv_store::inventory::load(&o.db, org, code).await?;
    let listed = inventiv_providers::reconcile::list_managed(provider, &inv.zones).await?;
    let facts = facts(inv, org);
    let findings = classify(&listed, &facts, Utc::now(), grace);
    let (vanished_instances, missing_volumes) = vanished(&listed.servers, &listed.volumes, &facts);
    let doomed = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Delete)
        .cloned()
        .collect();
    let attached = listed
        .servers
        .iter()
        .map(|s| {
            (
                s.provider_id.clone(),
                s.volumes.iter().map(|v| v.reference()).collect(),
            )
        })
        .collect();
    Ok((
        Pass {
            findings,
            vanished_instances,
            missing_volumes,
            ..Pass::default()
        },
        doomed,
        attached,
    ))
}

/// One pass over `org` on provider `code`: deletes orphans older than `grace`.
pub async fn reconcile_org(
    o: &Orchestrator,
    backoff: &Backoff,
    code: &str,
    org: Uuid,
    grace: Duration,
) -> Result<Pass, ReconcileError> {
    let provider = o.provider(code, org).await?;
    let (mut pass, doomed, attached) = survey(o, provider.as_ref(), code, org, grace).await?;
    for f in &pass.findings {
        if matches!(f.verdict, Verdict::Delete | Verdict::KeepYoung) {
            o.metrics.orphans_found.count(f.kind);
        }
    }
    o.metrics
        .vanished_servers
        .add(u64::try_from(pass.vanished_instances.len()).unwrap_or(0));
    o.metrics
        .vanished_volumes
        .add(u64::try_from(pass.missing_volumes.len()).unwrap_or(0));
    for f in &doomed {
        if !backoff.due(&f.provider_id) {
            continue;
        }
        let gone = match f.kind {
            Kind::Server => {
                let r = ServerRef {
                    zone: f.zone.clone(),
                    provider_id: f.provider_id.clone(),
                };
                delete(o, backoff, &mut pass, f, provider.delete_server(r).await)
            }
            Kind::Volume => {
                let r = VolumeRef {
                    zone: f.zone.clone(),
                    provider_id: f.provider_id.clone(),
                };
                delete(o, backoff, &mut pass, f, provider.delete_volume(r).await)
            }
            Kind::SecurityGroup => match f.instance_id {
                Some(instance) => {
                    let outcome = provider.delete_firewall(f.zone.clone(), instance).await;
                    delete(o, backoff, &mut pass, f, outcome)
                }
                None => false,
            },
        };
        if !gone {
            continue;
        }
        // The server's volumes are detached now: they go with it.
        let volumes = match f.kind {
            Kind::Server => attached.get(&f.provider_id).cloned().unwrap_or_default(),
            Kind::Volume | Kind::SecurityGroup => Vec::new(),
        };
        for v in volumes {
            let finding = Finding {
                kind: Kind::Volume,
                provider_id: v.provider_id.clone(),
                zone: v.zone.clone(),
                instance_id: f.instance_id,
                created_at: f.created_at,
                verdict: Verdict::Delete,
            };
            if delete(
                o,
                backoff,
                &mut pass,
                &finding,
                provider.delete_volume(v).await,
            ) {
                inventiv_store::inventory::mark_deleted_volume(&o.db, code, &finding.provider_id)
                    .await?;
            }
        }
        if f.kind == Kind::Volume {
            inventiv_store::inventory::mark_deleted_volume(&o.db, code, &f.provider_id).await?;
        }
    }
    inventiv_store::inventory::mark_missing_volumes(&o.db, code, &pass.missing_volumes).await?;
    for id in &pass.vanished_instances {
        tracing::warn!(alert = true, instance_id = %id, provider = code, "the provider no longer has the server of a live instance");
    }
    Ok(pass)
}

/// Records the outcome of one deletion; true when it is gone.
fn delete(
    o: &Orchestrator,
    backoff: &Backoff,
    pass: &mut Pass,
    f: &Finding,
    outcome: Result<(), inventiv_providers::ProviderError>,
) -> bool {
    match outcome {
        Ok(()) => {
            backoff.succeeded(&f.provider_id);
            tracing::warn!(alert = true, kind = ?f.kind, id = %f.provider_id, instance_id = ?f.instance_id, "orphan deleted");
            pass.deleted.push(f.provider_id.clone());
            o.metrics.orphans_deleted.count(f.kind);
            true
        }
        Err(e) => {
            backoff.failed(&f.provider_id);
            tracing::warn!(kind = ?f.kind, id = %f.provider_id, error = %e, "orphan deletion failed; retried later");
            pass.failed.push((f.provider_id.clone(), e.to_string()));
            o.metrics.orphan_deletion_failures.count(f.kind);
            false
        }
    }
}

/// Every (provider, organization) that may have cloud resources.
async fn targets(o: &Orchestrator) -> sqlx::Result<Vec<(String, Uuid)>> {
    let rows = sqlx::query!(
        r#"SELECT provider_code AS "provider_code!", organization_id AS "organization_id!"
             FROM provider_credentials
           UNION
           SELECT DISTINCT provider, organization_id FROM instances WHERE provider = 'mock'"#,
    )
    .fetch_all(&o.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.provider_code, r.organization_id))
        .collect())
}

/// The advisory lock key of the job (any constant unique to it).
const LOCK_KEY: i64 = 0x696e_7643_6c52_6563; // "invClRec"

/// A connection to `database_url` holding the job's lock, or `None` when
/// another replica holds it. Dropping the connection releases the lock.
pub async fn take_lock(database_url: &str) -> sqlx::Result<Option<sqlx::PgConnection>> {
    advisory_lock(database_url, LOCK_KEY).await
}

/// A connection to `database_url` holding the advisory lock `key`, or
/// `None` when another connection holds it; dropping it releases the lock.
pub async fn advisory_lock(
    database_url: &str,
    key: i64,
) -> sqlx::Result<Option<sqlx::PgConnection>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await?;
    let locked = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, key)
        .fetch_one(&mut conn)
        .await?;
    Ok(locked.then_some(conn))
}

/// Runs a pass over every target each interval until shutdown, on one
/// replica at a time.
pub async fn run(o: Arc<Orchestrator>, shutdown: CancellationToken) {
    let backoff = Backoff::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(o.config.cloud_reconcile_interval) => {}
        }
        let _lock = match take_lock(&o.config.database_url).await {
            Ok(Some(conn)) => conn,
            Ok(None) => {
                tracing::debug!("cloud reconciliation: another replica is running it");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cloud reconciliation: cannot take its lock");
                continue;
            }
        };
        let targets = match targets(&o).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cloud reconciliation: cannot read targets");
                continue;
            }
        };
        for (code, org) in targets {
            if let Err(e) = reconcile_org(&o, &backoff, &code, org, o.config.orphan_grace).await {
                tracing::warn!(provider = %code, organization_id = %org, error = %e, "cloud reconciliation pass failed");
            }
        }
    }
}
