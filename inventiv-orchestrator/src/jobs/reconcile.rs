//! The driver: level-triggered reconciliation of every live instance (on a
//! timer and when a command wakes it), one instance at a time per replica
//! and across replicas (a lease row in the database, renewed while a step
//! runs however long it takes), each step chosen by the instance's status
//! (`lifecycle::step`); every tick also sweeps the heartbeat watchdog.
//! With traces on, a drive is a span of the trace the instance's course
//! began in (the waking command's, else the one stored with the instance)
//! and each step a span under it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventiv_common::telemetry;
use inventiv_common::InstanceStatus;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::context::Orchestrator;
use crate::jobs::watchdog;
use crate::lifecycle::{self, Outcome, StepResult};

/// Short requeues are waited out while holding the lease.
const INLINE_WAIT: Duration = Duration::from_secs(2);

/// A step that fails for good in a status without a failure status waits
/// this long between tries: only a change from outside (credentials, keys)
/// helps it.
const STUCK_RETRY: Duration = Duration::from_secs(30);

/// Takes (or renews) this replica's lease on an instance.
async fn lease(o: &Orchestrator, id: Uuid) -> sqlx::Result<bool> {
    let taken = sqlx::query!(
        "UPDATE instances SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
          WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < now())",
        id,
        o.config.consumer,
        o.config.lease.as_secs_f64(),
    )
    .execute(&o.db)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

async fn release(o: &Orchestrator, id: Uuid, next: Option<Duration>) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE instances SET lease_owner = NULL, lease_until = NULL,
                next_attempt_at = CASE WHEN $3::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $3) END
          WHERE id = $1 AND lease_owner = $2",
        id,
        o.config.consumer,
        next.map(|d| d.as_secs_f64()),
    )
    .execute(&o.db)
    .await?;
    Ok(())
}

/// Drives one instance as far as it can go now. Returns whether a step ran
/// without error (so a command that woke it can be acknowledged).
/// `request_id` is the request of the command that woke it; without one
/// (a timer pass), that of the instance's latest status change. It is a
/// field of the drive's span, so of every log line of its steps, and is
/// written into the action log entries and status changes they make.
/// `trace` is the `traceparent` of the waking command's span; without one,
/// the instance's stored trace context is the drive's parent.
pub async fn drive(
    o: &Orchestrator,
    id: Uuid,
    request_id: Option<String>,
    trace: Option<String>,
) -> bool {
    let span = tracing::info_span!(
        "drive",
        instance_id = %id,
        request_id = tracing::field::Empty
    );
    if telemetry::enabled() {
        let trace = match trace {
            Some(t) => Some(t),
            None => lifecycle::trace_context(o, id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the trace context failed");
                None
            }),
        };
        telemetry::set_parent(&span, trace.as_deref());
    }
    drive_steps(o, id, request_id, span.clone())
        .instrument(span)
        .await
}

/// Closes the steps a crashed or killed orchestrator left open: with the
/// lease held no step of this instance runs anywhere, so an open one is dead
/// (it would otherwise show `in_progress` for ever).
async fn close_interrupted(o: &Orchestrator, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE action_logs SET status = 'failed', finished_at = now(), error_code = 'INTERRUPTED',
                error_message = 'the orchestrator stopped before this step finished; it was run again'
          WHERE instance_id = $1 AND status = 'in_progress'",
        id,
    )
    .execute(&o.db)
    .await?;
    Ok(())
}

async fn drive_steps(
    o: &Orchestrator,
    id: Uuid,
    mut request_id: Option<String>,
    span: tracing::Span,
) -> bool {
    let mut healthy = true;
    let mut held = None;
    for pass in 0..200 {
        match lease(o, id).await {
            Ok(true) => {
                held.get_or_insert_with(|| o.metrics.lease_held());
            }
            Ok(false) => return true, // another replica has it
            Err(e) => {
                tracing::warn!(error = %e, "lease failed");
                return false;
            }
        }
        if pass == 0 {
            if let Err(e) = close_interrupted(o, id).await {
                tracing::warn!(error = %e, "closing interrupted steps failed");
            }
            if request_id.is_none() {
                request_id = lifecycle::last_request_id(o, id).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading the request id failed");
                    None
                });
            }
            if let Some(r) = &request_id {
                span.record("request_id", tracing::field::display(r));
            }
        }
        let inst = match lifecycle::load(o, id).await {
            Ok(Some(mut inst)) => {
                inst.request_id.clone_from(&request_id);
                inst
            }
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "load failed");
                return false;
            }
        };
        let started = std::time::Instant::now();
        let step = tracing::info_span!("step", status = %inst.status);
        let Some(outcome) = step_holding_lease(o, &inst).instrument(step).await else {
            // Another replica holds the instance now: leave it to it.
            return true;
        };
        if let Some(status) = InstanceStatus::parse(&inst.status) {
            o.metrics
                .step(status.as_str(), started.elapsed(), outcome.is_err());
        }
        let next = match outcome {
            Ok(Outcome::Continue) => continue,
            Ok(Outcome::RequeueAfter(d)) if d <= INLINE_WAIT => {
                tokio::time::sleep(d).await;
                continue;
            }
            Ok(Outcome::RequeueAfter(d)) => Some(d),
            Ok(Outcome::Idle) => None,
            Err(e) if e.retryable() => {
                tracing::warn!(error = %e, code = e.code(), status = %inst.status, "step failed; will retry");
                healthy = false;
                Some(Duration::from_secs(2))
            }
            Err(e) => match lifecycle::fail(o, &inst, &e).await {
                Ok(true) => {
                    tracing::warn!(alert = true, error = %e, code = e.code(), status = %inst.status, "step failed for good");
                    continue;
                }
                Ok(false) => {
                    tracing::warn!(alert = true, error = %e, code = e.code(), status = %inst.status, "step failed; nothing to do but retry");
                    healthy = false;
                    Some(STUCK_RETRY)
                }
                Err(failing) => {
                    tracing::warn!(error = %e, code = e.code(), failing = %failing, status = %inst.status, "step failed; recording it failed too");
                    healthy = false;
                    Some(Duration::from_secs(2))
                }
            },
        };
        if let Err(e) = release(o, id, next).await {
            tracing::warn!(error = %e, "release failed");
        }
        return healthy;
    }
    let _ = release(o, id, Some(Duration::from_millis(100))).await;
    healthy
}

/// Runs the instance's step while renewing its lease every third of the
/// lease, so that no other replica starts a step of this instance however
/// long this one lasts. `None` when the lease was lost anyway (renewals
/// failed until it expired and another replica took it): the step is then
/// dropped mid-way, as a crash would stop it, which every step survives.
async fn step_holding_lease(o: &Orchestrator, inst: &lifecycle::InstanceRow) -> Option<StepResult> {
    let work = lifecycle::step(o, inst);
    tokio::pin!(work);
    let mut renew = tokio::time::interval(o.config.lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await;
    loop {
        tokio::select! {
            outcome = &mut work => return Some(outcome),
            _ = renew.tick() => match lease(o, inst.id).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(alert = true, status = %inst.status, "instance lease lost during a step; step abandoned");
                    return None;
                }
                Err(e) => tracing::warn!(error = %e, "lease renewal failed; will try again"),
            },
        }
    }
}

/// Instances currently driven by this replica.
#[derive(Clone, Default)]
pub struct Active(Arc<Mutex<HashSet<Uuid>>>);

impl Active {
    fn claim(&self, id: Uuid) -> bool {
        self.0.lock().map(|mut s| s.insert(id)).unwrap_or(false)
    }

    fn free(&self, id: Uuid) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&id);
        }
    }
}

/// Starts driving `id` unless this replica already is; `done` hears whether
/// the first pass was healthy; `request_id` and `trace` are the waking
/// command's (see [`drive`]).
pub fn spawn_drive(
    o: &Arc<Orchestrator>,
    tasks: &TaskTracker,
    active: &Active,
    id: Uuid,
    request_id: Option<String>,
    trace: Option<String>,
    done: Option<tokio::sync::oneshot::Sender<bool>>,
) {
    if !active.claim(id) {
        if let Some(done) = done {
            let _ = done.send(true);
        }
        return;
    }
    let (o, active) = (o.clone(), active.clone());
    tasks.spawn(async move {
        let healthy = drive(&o, id, request_id, trace).await;
        active.free(id);
        if let Some(done) = done {
            let _ = done.send(healthy);
        }
    });
}

/// The level-triggered loop: every interval, every instance that may need
/// something (and whose retry time has come) is driven; the watchdog sweeps.
pub async fn run(
    o: Arc<Orchestrator>,
    active: Active,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(o.config.reconcile_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        // Our own leases too: after a crash, a replica restarted under the
        // same name resumes its instances at once instead of waiting for
        // them to expire (`Active` keeps one drive per instance here).
        let due = sqlx::query_scalar!(
            "SELECT id FROM instances
              WHERE (status IN ('provisioning', 'booting', 'installing', 'starting', 'terminating', 'worker_dead')
                     OR (status = 'provisioning_failed' AND resources_released_at IS NULL))
                AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
              ORDER BY status_changed_at LIMIT 500",
            o.config.consumer,
        )
        .fetch_all(&o.db)
        .await;
        match due {
            Ok(ids) => ids
                .into_iter()
                .for_each(|id| spawn_drive(&o, &tasks, &active, id, None, None, None)),
            Err(e) => tracing::warn!(error = %e, "reconcile query failed"),
        }
        if let Err(e) = watchdog::sweep(&o).await {
            tracing::warn!(error = %e, "watchdog failed");
        }
    }
}
