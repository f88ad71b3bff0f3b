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

mod booting;
mod firewall;
mod installing;
mod provisioning;
mod starting;
mod terminating;
mod volumes;
mod worker_dead;

use std::time::Duration;

use chrono::{DateTime, Utc};
use inventiv_common::instance::milestone_progress;
use inventiv_common::{InstanceId, InstanceStatus};
use inventiv_providers::ProviderError;
use inventiv_store::action_log::ActionLog;
use inventiv_store::credentials::CredentialsError;
use inventiv_store::instances::{apply, Change};
use inventiv_store::relay::ClientError;
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
        if let Some(outcome) = provisioning::past_deadline(o, inst).await? {
            return Ok(outcome);
        }
    }
    match status {
        Some(InstanceStatus::Provisioning) => provisioning::provision(o, inst).await,
        Some(InstanceStatus::Booting) => booting::boot(o, inst).await,
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

/// The W3C `traceparent` stored with the instance: the span of the request
/// whose course it is on (see `inventiv_store::outbox::enqueue`).
pub async fn trace_context(o: &Orchestrator, id: Uuid) -> sqlx::Result<Option<String>> {
    let stored = sqlx::query_scalar!("SELECT trace_context FROM instances WHERE id = $1", id)
        .fetch_optional(&o.db)
        .await?;
    Ok(stored.flatten())
}

/// Why a step could not finish. The driver (`jobs::reconcile`) runs the
/// step again later when it is `retryable`, and otherwise ends the
/// instance's stage with its `code` (see `fail`).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Transition(#[from] inventiv_store::instances::TransitionError),
    /// No provider can be used with the organization's credentials.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("Hugging Face token: {0}")]
    HuggingFaceToken(#[source] CredentialsError),
    #[error("relay key: {0}")]
    RelayKey(#[source] CredentialsError),
    /// The client that reaches the engine through the relay cannot be built.
    #[error(transparent)]
    RelayClient(#[from] ClientError),
    /// The step (named) needs the server the provisioning records.
    #[error("{0} without a server")]
    NoServer(&'static str),
    /// The organization's key for its own hosts cannot be read or written.
    #[error("the organization's host key: {0}")]
    HostKey(String),
}

impl StepError {
    /// Whether running the step again later may succeed without anyone
    /// changing anything (credentials, keys, the instance).
    pub fn retryable(&self) -> bool {
        match self {
            // A status changed meanwhile: the next pass reads the new one.
            StepError::Db(_) | StepError::Transition(_) => true,
            StepError::Cloud(e) => matches!(e, CloudError::Db(_)),
            StepError::Provider(e) => e.retryable(),
            StepError::HuggingFaceToken(e) | StepError::RelayKey(e) => {
                matches!(e, CredentialsError::Db(_))
            }
            StepError::RelayClient(_) | StepError::NoServer(_) | StepError::HostKey(_) => false,
        }
    }

    /// The stable code recorded on the instance when the step fails for good.
    pub fn code(&self) -> &'static str {
        match self {
            StepError::Db(_)
            | StepError::HuggingFaceToken(CredentialsError::Db(_))
            | StepError::RelayKey(CredentialsError::Db(_)) => "DATABASE",
            StepError::Transition(_) => "TRANSITION_FAILED",
            StepError::Cloud(e) => e.code(),
            StepError::Provider(e) => e.code(),
            StepError::HuggingFaceToken(_) => "HUGGINGFACE_TOKEN_UNREADABLE",
            StepError::RelayKey(_) => "RELAY_KEY_UNAVAILABLE",
            StepError::RelayClient(_) => "RELAY_CLIENT_INVALID",
            StepError::HostKey(_) => "HOST_KEY_UNAVAILABLE",
            StepError::NoServer(_) => "SERVER_MISSING",
        }
    }
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
            instance_id: InstanceId(inst.id),
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

/// Ends the stage of an instance whose step failed for good (`error` is
/// not retryable): its failure status with the error's code and message,
/// as the steps record the failures they handle themselves. `false` when
/// its status has no failure status (`terminating`, `worker_dead`,
/// `provisioning_failed`): the step is run again later.
pub async fn fail(
    o: &Orchestrator,
    inst: &InstanceRow,
    error: &StepError,
) -> Result<bool, StepError> {
    let to = match InstanceStatus::parse(&inst.status) {
        Some(InstanceStatus::Provisioning | InstanceStatus::Booting) => {
            InstanceStatus::ProvisioningFailed
        }
        Some(InstanceStatus::Installing | InstanceStatus::Starting) => {
            InstanceStatus::StartupFailed
        }
        _ => return Ok(false),
    };
    let message = error.to_string();
    move_to(o, inst, to, Some((error.code(), &message)), "orchestrator").await?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    use inventiv_providers::ProviderError;
    use inventiv_store::credentials::CredentialsError;
    use inventiv_store::crypto::CryptoError;

    use super::StepError;
    use crate::clouds::CloudError;

    #[test]
    fn provider_errors_keep_their_verdict_and_code() {
        let transient = StepError::from(ProviderError::Transient("503".into()));
        assert!(transient.retryable());
        assert_eq!(transient.code(), "PROVIDER_UNAVAILABLE");
        let refused = StepError::from(ProviderError::Unauthorized("401".into()));
        assert!(!refused.retryable());
        assert_eq!(
            refused.code(),
            ProviderError::Unauthorized(String::new()).code()
        );
        assert_eq!(
            refused.to_string(),
            ProviderError::Unauthorized("401".into()).to_string()
        );
    }

    #[test]
    fn only_the_database_is_worth_retrying_among_setup_errors() {
        let no_credentials = StepError::from(CloudError::NotConfigured("scaleway".into()));
        assert!(!no_credentials.retryable());
        assert_eq!(no_credentials.code(), "PROVIDER_NOT_CONFIGURED");
        let db = StepError::from(CloudError::Db(sqlx::Error::PoolTimedOut));
        assert!(db.retryable());
        let key = StepError::RelayKey(CredentialsError::Crypto(CryptoError::Undecryptable));
        assert!(!key.retryable());
        assert_eq!(key.code(), "RELAY_KEY_UNAVAILABLE");
        assert!(key.to_string().starts_with("relay key: "), "{key}");
        let token = StepError::HuggingFaceToken(CredentialsError::Db(sqlx::Error::PoolTimedOut));
        assert!(token.retryable());
        assert_eq!(token.code(), "DATABASE");
    }

    #[test]
    fn a_step_without_its_server_says_which_and_is_not_retried() {
        let e = StepError::NoServer("booting");
        assert_eq!(e.to_string(), "booting without a server");
        assert_eq!(e.code(), "SERVER_MISSING");
        assert!(!e.retryable());
    }
}
