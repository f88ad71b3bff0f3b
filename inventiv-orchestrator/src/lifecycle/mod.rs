//! The instance state machine as the orchestrator drives it: one reconcile
//! step per status, in a file named after it. A step reads what the
//! instance needs, does one thing, records it (action log, progress, status
//! change with its history row) and says whether to continue now or later.
//! Every step may run twice (after a crash, on two replicas in turn)
//! harmlessly. The legal transitions are `inventiv_common::instance`'s; the
//! driver that leases an instance and runs its steps is `jobs::reconcile`.
//!
//! ```text
//!  provisioning ─► booting ─► installing ─► starting ─► ready ◄─► worker_dead
//!                                                    (the watchdog, the heartbeats)
//!
//!  provisioning, booting ── errors, deadline, boot timeout ──► provisioning_failed
//!  installing, starting ── errors, tries used up, start-up timeout ──► startup_failed
//!  startup_failed, worker_dead ── reinstall (API) ──► installing
//!  any but terminated, archived ── terminate (API) ──► terminating ─► terminated
//! ```
//!
//! | status | the step | in |
//! |---|---|---|
//! | `provisioning` | create or adopt the server, grow its root volume, power it on | `provisioning` (`volumes`) |
//! | `booting` | wait for a running server with an address, limit its inbound traffic | `booting` (`firewall`) |
//! | `installing` | install the worker over SSH, retried up to the settings' attempts | `installing` (`crate::node::install`) |
//! | `starting` | the engine answers through the relay, the agent heartbeats as ready | `starting` |
//! | `ready` | none: the heartbeat watchdog moves a silent one to `worker_dead` | `crate::jobs::watchdog` |
//! | `worker_dead` | back to `ready` when the heartbeats resume | `worker_dead` |
//! | `terminating` | delete the server, its security group and its volumes | `terminating` |
//! | `provisioning_failed` | release what was created, keeping the status | `terminating` |
//!
//! `draining`, `startup_failed`, `terminated` and `archived` have no step:
//! they wait for the API (a reinstall, a termination) or are final.

mod firewall;
mod installing;
mod starting;
mod terminating;
mod volumes;
mod worker_dead;

use std::time::Duration;

use chrono::{DateTime, Utc};
use inventiv_common::instance::milestone_progress;
use inventiv_common::InstanceStatus;
use inventiv_providers::{tags, CreateServer, ListFilter, ServerRef, ServerState};
use inventiv_store::action_log::ActionLog;
use inventiv_store::instances::{apply, Change};
use serde_json::json;
use uuid::Uuid;

use crate::clouds::CloudError;
use crate::context::Orchestrator;
use crate::events;

/// Runs the step the instance's status calls for.
pub async fn step(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let status = InstanceStatus::parse(&inst.status);
    if matches!(
        status,
        Some(InstanceStatus::Provisioning | InstanceStatus::Booting)
    ) {
        if let Some(outcome) = past_deadline(o, inst).await? {
            return Ok(outcome);
        }
    }
    match status {
        Some(InstanceStatus::Provisioning) => provision(o, inst).await,
        Some(InstanceStatus::Booting) => boot(o, inst).await,
        Some(InstanceStatus::ProvisioningFailed) => terminating::release(o, inst).await,
        Some(InstanceStatus::Installing) => installing::install(o, inst).await,
        Some(InstanceStatus::Starting) => starting::check_startup(o, inst).await,
        Some(InstanceStatus::Terminating) => terminating::terminate(o, inst).await,
        Some(InstanceStatus::WorkerDead) => worker_dead::check_recovery(o, inst).await,
        _ => Ok(Outcome::Idle),
    }
}

/// What the driver does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Something changed: run the next step right away.
    Continue,
    /// Nothing to do yet: look again after this long.
    RequeueAfter(Duration),
    /// Nothing more to do until something external happens.
    Idle,
}

/// The instance as a step sees it.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub status: String,
    pub progress: i16,
    pub provider: String,
    pub zone: String,
    pub instance_type: String,
    pub model_id: String,
    pub mode: String,
    pub provider_server_id: Option<String>,
    pub ip_address: Option<String>,
    pub worker_status: Option<String>,
    pub worker_agent_port: Option<i32>,
    pub worker_engine_port: Option<i32>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub bootstrap_attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// When the current start-up began: the creation, or the last reinstall.
    pub attempt_started_at: DateTime<Utc>,
    /// The API request this step follows from (see `jobs::reconcile::drive`);
    /// recorded with every action log entry and status change.
    pub request_id: Option<String>,
}

/// Loads the row a step works on.
pub async fn load(o: &Orchestrator, id: Uuid) -> sqlx::Result<Option<InstanceRow>> {
    // GREATEST skips a NULL (no reinstall yet): created_at is never NULL.
    // The request id is not stored on the row: the caller sets it.
    sqlx::query_as!(
        InstanceRow,
        r#"SELECT id, organization_id, name, status, progress, provider, zone, instance_type, model_id, mode, provider_server_id,
                  ip_address, worker_status, worker_agent_port, worker_engine_port, last_heartbeat_at, bootstrap_attempts, created_at, started_at,
                  GREATEST(created_at, (SELECT max(h.at) FROM instance_state_history h
                                         WHERE h.instance_id = instances.id AND h.to_status = 'installing'
                                           AND h.from_status <> 'booting')) AS "attempt_started_at!",
                  NULL::text AS "request_id?"
             FROM instances WHERE id = $1"#,
        id,
    )
    .fetch_optional(&o.db)
    .await
}

/// The request id of the instance's latest status change: the request
/// whose course the instance is on (the deployment, a reinstall, a
/// termination), carried on by the orchestrator's own status changes.
pub async fn last_request_id(o: &Orchestrator, id: Uuid) -> sqlx::Result<Option<String>> {
    let latest = sqlx::query_scalar!(
        "SELECT request_id FROM instance_state_history WHERE instance_id = $1 ORDER BY id DESC LIMIT 1",
        id,
    )
    .fetch_optional(&o.db)
    .await?;
    Ok(latest.flatten())
}

/// Why a step could not finish.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Transition(#[from] inventiv_store::instances::TransitionError),
    #[error("{0}")]
    Other(String),
}

pub type StepResult = Result<Outcome, StepError>;

/// The action log of an instance.
pub fn log(o: &Orchestrator, inst: &InstanceRow) -> ActionLog {
    ActionLog {
        db: o.db.clone(),
        organization_id: inst.organization_id,
        instance_id: inst.id,
        request_id: inst.request_id.clone(),
    }
}

/// Moves the instance (validated, with history) and announces it.
pub async fn move_to(
    o: &Orchestrator,
    inst: &InstanceRow,
    to: InstanceStatus,
    error: Option<(&str, &str)>,
    actor: &str,
) -> Result<(), StepError> {
    let mut tx = o.db.begin().await?;
    apply(
        &mut tx,
        Change {
            instance_id: inst.id,
            to,
            error,
            actor,
            request_id: inst.request_id.as_deref(),
        },
    )
    .await?;
    if to == InstanceStatus::Terminated {
        sqlx::query!(
            "UPDATE instances SET terminated_at = COALESCE(terminated_at, now()), lease_owner = NULL WHERE id = $1",
            inst.id,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let progress = sqlx::query_scalar!("SELECT progress FROM instances WHERE id = $1", inst.id)
        .fetch_one(&o.db)
        .await?;
    let mut redis = o.redis.clone();
    events::instance_changed(
        &mut redis,
        &o.config.redis_prefix,
        inst.organization_id,
        inst.id,
        to,
        progress,
    )
    .await;
    Ok(())
}

/// Records a completed milestone: its action log row and the progress it reaches.
pub async fn milestone(
    o: &Orchestrator,
    inst: &InstanceRow,
    action: &str,
    metadata: serde_json::Value,
) -> Result<(), StepError> {
    let log = log(o, inst);
    let step = log.start(action).await?;
    log.succeed(step, metadata).await?;
    advance(o, inst, action).await
}

/// Raises the progress to the milestone's value (never lowers it).
pub async fn advance(o: &Orchestrator, inst: &InstanceRow, action: &str) -> Result<(), StepError> {
    if let Some(p) = milestone_progress(action) {
        let changed = sqlx::query!(
            "UPDATE instances SET progress = $2 WHERE id = $1 AND progress < $2",
            inst.id,
            p,
        )
        .execute(&o.db)
        .await?
        .rows_affected();
        if let (true, Some(status)) = (changed > 0, InstanceStatus::parse(&inst.status)) {
            let mut redis = o.redis.clone();
            events::instance_changed(
                &mut redis,
                &o.config.redis_prefix,
                inst.organization_id,
                inst.id,
                status,
                p,
            )
            .await;
        }
    }
    Ok(())
}

/// Ends provisioning that has lasted longer than the deadline (counted
/// from the instance's creation): `provisioning_failed` with the last
/// error the action log holds; whatever was created is then released.
/// `None` while there is time left.
pub async fn past_deadline(
    o: &Orchestrator,
    inst: &InstanceRow,
) -> Result<Option<Outcome>, StepError> {
    let age = (Utc::now() - inst.created_at).to_std().unwrap_or_default();
    let deadline = o.config.provisioning_deadline;
    if age <= deadline {
        return Ok(None);
    }
    // A failed step always has both (see `ActionLog::fail`).
    let last = sqlx::query!(
        r#"SELECT error_code AS "code!", error_message AS "message!" FROM action_logs
            WHERE instance_id = $1 AND status = 'failed' AND error_code IS NOT NULL AND error_code <> 'INTERRUPTED'
            ORDER BY started_at DESC, id DESC LIMIT 1"#,
        inst.id,
    )
    .fetch_optional(&o.db)
    .await?;
    let message = match last {
        Some(last) => format!(
            "provisioning did not finish within {} s; last error: {}: {}",
            deadline.as_secs(),
            last.code,
            last.message
        ),
        None => format!(
            "provisioning did not finish within {} s",
            deadline.as_secs()
        ),
    };
    tracing::warn!(alert = true, instance_id = %inst.id, %message, "provisioning deadline passed");
    move_to(
        o,
        inst,
        InstanceStatus::ProvisioningFailed,
        Some(("PROVISIONING_DEADLINE", &message)),
        "orchestrator",
    )
    .await?;
    Ok(Some(Outcome::Continue))
}

/// `provisioning`: create (or adopt) the server, power it on.
pub async fn provision(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    if inst.provider != "mock" && o.config.production && o.config.control_plane_address.is_none() {
        // Nothing is created: without the address, the firewall would open
        // the node's ports to everyone.
        move_to(
            o,
            inst,
            InstanceStatus::ProvisioningFailed,
            Some((
                "CONTROL_PLANE_ADDRESS_REQUIRED",
                "INVENTIV_CONTROL_PLANE_ADDRESS is not set: in production a cloud node's worker ports open to the control plane's address only; set it on the orchestrator, then deploy again",
            )),
            "orchestrator",
        )
        .await?;
        return Ok(Outcome::Continue);
    }
    // Without usable credentials nothing is created: the instance fails here.
    let provider = match o.provider(&inst.provider, inst.organization_id).await {
        Ok(p) => p,
        Err(CloudError::Db(e)) => return Err(e.into()),
        Err(e) => {
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some((e.code(), &e.to_string())),
                "orchestrator",
            )
            .await?;
            return Ok(Outcome::Continue);
        }
    };
    let server_id = match &inst.provider_server_id {
        Some(id) => id.clone(),
        None => {
            // A create whose answer was lost (crash, timeout) left a tagged
            // server: adopt it instead of creating a second one.
            let filter = ListFilter {
                zone: Some(inst.zone.clone()),
                tag: Some(tags::instance(inst.id)),
            };
            let log = log(o, inst);
            let step = log.start("PROVIDER_CREATE").await?;
            let existing = match provider.list_servers(filter).await {
                Ok(list) => list,
                Err(e) => {
                    log.fail(step, e.code(), &e.to_string(), json!({})).await?;
                    if e.retryable() {
                        return Ok(Outcome::RequeueAfter(Duration::from_secs(2)));
                    }
                    move_to(
                        o,
                        inst,
                        InstanceStatus::ProvisioningFailed,
                        Some((e.code(), &e.to_string())),
                        "orchestrator",
                    )
                    .await?;
                    return Ok(Outcome::Continue);
                }
            };
            let adopted = !existing.is_empty();
            let server = match existing.into_iter().next() {
                Some(s) => s,
                None => {
                    let req = CreateServer {
                        instance_id: inst.id,
                        organization_id: inst.organization_id,
                        zone: inst.zone.clone(),
                        instance_type: inst.instance_type.clone(),
                        name: format!("inventiv-{}", inst.id.simple()),
                        image: None,
                        tags: Vec::new(),
                        root_volume_gb: volumes::recommended_gb(o, inst)
                            .await?
                            .and_then(|gb| u64::try_from(gb).ok()),
                        ssh_public_key: Some(o.ssh_public_key.clone()),
                    };
                    match provider.create_server(req).await {
                        Ok(s) => s,
                        Err(e) if e.retryable() => {
                            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
                            return Ok(Outcome::RequeueAfter(Duration::from_secs(2)));
                        }
                        Err(e) => {
                            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
                            move_to(
                                o,
                                inst,
                                InstanceStatus::ProvisioningFailed,
                                Some((e.code(), &e.to_string())),
                                "orchestrator",
                            )
                            .await?;
                            return Ok(Outcome::Continue);
                        }
                    }
                }
            };
            sqlx::query!(
                "UPDATE instances SET provider_server_id = $2 WHERE id = $1",
                inst.id,
                server.provider_id,
            )
            .execute(&o.db)
            .await?;
            log.succeed(
                step,
                json!({ "server_id": server.provider_id, "zone": server.zone, "adopted": adopted }),
            )
            .await?;
            advance(o, inst, "PROVIDER_CREATE").await?;
            server.provider_id
        }
    };
    let reference = ServerRef {
        zone: inst.zone.clone(),
        provider_id: server_id.clone(),
    };
    if let Some(outcome) = volumes::prepare(o, inst, provider.as_ref(), reference.clone()).await? {
        return Ok(outcome);
    }
    let log = log(o, inst);
    let step = log.start("PROVIDER_START").await?;
    match provider.start_server(reference).await {
        Ok(()) => {
            log.succeed(step, json!({ "server_id": server_id })).await?;
            sqlx::query!(
                "UPDATE instances SET started_at = COALESCE(started_at, now()) WHERE id = $1",
                inst.id,
            )
            .execute(&o.db)
            .await?;
            advance(o, inst, "PROVIDER_START").await?;
            move_to(o, inst, InstanceStatus::Booting, None, "orchestrator").await?;
            Ok(Outcome::Continue)
        }
        Err(e) if e.retryable() => {
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            Ok(Outcome::RequeueAfter(Duration::from_secs(2)))
        }
        Err(e) => {
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            let code = match e {
                inventiv_providers::ProviderError::NotFound(_) => "SERVER_VANISHED",
                _ => e.code(),
            };
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some((code, &e.to_string())),
                "orchestrator",
            )
            .await?;
            Ok(Outcome::Continue)
        }
    }
}

/// `booting`: wait for the server to run and have an address.
pub async fn boot(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let provider = o
        .provider(&inst.provider, inst.organization_id)
        .await
        .map_err(|e| StepError::Other(e.to_string()))?;
    let Some(id) = inst.provider_server_id.clone() else {
        return Err(StepError::Other("booting without a server".into()));
    };
    let server = match provider
        .get_server(ServerRef {
            zone: inst.zone.clone(),
            provider_id: id,
        })
        .await
    {
        Ok(server) => server,
        Err(e) => {
            let log = log(o, inst);
            let step = log.start("PROVIDER_GET_IP").await?;
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            if e.retryable() {
                return Ok(Outcome::RequeueAfter(Duration::from_secs(2)));
            }
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some((e.code(), &e.to_string())),
                "orchestrator",
            )
            .await?;
            return Ok(Outcome::Continue);
        }
    };
    match server {
        None => {
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some(("SERVER_VANISHED", "the provider no longer has the server")),
                "orchestrator",
            )
            .await?;
            Ok(Outcome::Continue)
        }
        Some(s) if s.state == ServerState::Running && s.ip.is_some() => {
            let ip = s.ip.map(|ip| ip.to_string()).unwrap_or_default();
            sqlx::query!(
                "UPDATE instances SET ip_address = $2 WHERE id = $1",
                inst.id,
                ip,
            )
            .execute(&o.db)
            .await?;
            milestone(
                o,
                inst,
                "PROVIDER_GET_IP",
                json!({ "ip": ip, "ssh_port": s.ssh_port }),
            )
            .await?;
            if let Some(outcome) = firewall::secure(o, inst, provider.as_ref(), &s).await? {
                return Ok(outcome);
            }
            move_to(o, inst, InstanceStatus::Installing, None, "orchestrator").await?;
            Ok(Outcome::Continue)
        }
        Some(_) => {
            // A server that never comes up must not leave the instance
            // booting for ever: the start-up timeout covers the boot too.
            let age = (Utc::now() - inst.attempt_started_at)
                .to_std()
                .unwrap_or_default();
            let timeout = o
                .worker_settings(inst.organization_id, &inst.provider)
                .await?
                .startup_timeout_secs;
            if age > Duration::from_secs(timeout.into()) {
                let message = format!("the server did not come up in {timeout} s");
                tracing::warn!(alert = true, instance_id = %inst.id, "boot timeout");
                move_to(
                    o,
                    inst,
                    InstanceStatus::ProvisioningFailed,
                    Some(("BOOT_TIMEOUT", &message)),
                    "orchestrator",
                )
                .await?;
                return Ok(Outcome::Continue);
            }
            Ok(Outcome::RequeueAfter(Duration::from_millis(200)))
        }
    }
}
