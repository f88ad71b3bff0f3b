//! Replica convergence: makes each service's replicas follow its
//! `desired_replicas`, which the API's routes (create, pause, resume,
//! update) and the orchestrator's autoscaler set. Every interval, one API
//! replica at a time (a transaction-scoped advisory lock held for the
//! pass) looks at the live services:
//!
//! - an active service with fewer replicas serving or on their way
//!   (`provisioning` … `ready`) than desired gets new ones, made exactly as
//!   a deployment's (placement checks, quota, outbox command); a failed
//!   replica (`provisioning_failed`, `startup_failed`, `worker_dead`) no
//!   longer counts, so it is replaced;
//! - one with more loses the extra ones, those not ready first, then the
//!   newest: a ready one drains first (`drain.rs`: out of routing, ended
//!   once its engine has nothing in flight or at the drain timeout), the
//!   others go through the instance terminate path at once;
//! - after a rollout (its revision raised), the replicas made at an older
//!   revision are replaced one at a time, a new one ready before an old
//!   one drains (`rollout.rs` plans each step); a replica seated on an own
//!   host that drains counts as outdated the same way, so it moves to
//!   another host with no gap in service;
//! - a replica that ended `provisioning_failed` gets one `placement_failed`
//!   entry naming its placement and the provider's reason; its replacement
//!   goes to the service's first placement not avoided (one where a replica
//!   failed for capacity or quota lately is skipped for
//!   `INVENTIV_PLACEMENT_AVOID_SECS`, see `services::add_replicas`);
//! - a deleting service with no replica left becomes deleted.
//!
//! A refusal (quota, budget, placement no longer available) is written in
//! the service's timeline as `placement_failed` and the service is left
//! alone for a while (doubling from [`BACKOFF_MIN`] to [`BACKOFF_MAX`]),
//! so a service that cannot grow does not fill its timeline. Replicas that
//! failed in the last hour slow replacements down the same way (counted
//! from the database, so it holds across API replicas and restarts): a
//! placement whose VMs keep failing is not hammered.

use std::collections::HashMap;
use std::time::Duration;

use inventiv_common::{InstanceStatus, ServiceEventKind, ServiceState, UserId};
use inventiv_providers::error::CAPACITY_CODES;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::drain;
use crate::error::{ApiError, ApiResult};
use inventiv_common::instance::Transition;

use crate::rollout::{self, Replica};
use crate::routes::instances::{self, Instance};
use crate::services::{self, Note, Service};
use crate::state::AppState;

/// The advisory lock key of the convergence pass (any constant unique to it).
const LOCK_KEY: i64 = 0x5e41_1ce5_c0de_0001;
/// The first wait after a refusal, and the longest.
const BACKOFF_MIN: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Statuses of a replica that serves or is on its way to: what counts
/// towards `desired_replicas`.
const COUNTED: [InstanceStatus; 5] = [
    InstanceStatus::Provisioning,
    InstanceStatus::Booting,
    InstanceStatus::Installing,
    InstanceStatus::Starting,
    InstanceStatus::Ready,
];

/// Services refused lately, and when each may be tried again.
#[derive(Default)]
pub struct Backoff(HashMap<Uuid, (Duration, Instant)>);

impl Backoff {
    fn due(&self, id: Uuid) -> bool {
        self.0.get(&id).is_none_or(|(_, at)| Instant::now() >= *at)
    }

    fn refused(&mut self, id: Uuid) {
        let wait = self
            .0
            .get(&id)
            .map_or(BACKOFF_MIN, |(w, _)| (*w * 2).min(BACKOFF_MAX));
        self.0.insert(id, (wait, Instant::now() + wait));
    }

    fn done(&mut self, id: Uuid) {
        self.0.remove(&id);
    }
}

/// How long after its newest replica a service with `failed` replicas
/// failed in the last hour waits before making another.
fn failure_backoff(failed: i64) -> chrono::Duration {
    if failed <= 0 {
        return chrono::Duration::zero();
    }
    let secs = BACKOFF_MIN.as_secs() << (failed - 1).min(10);
    chrono::Duration::seconds(i64::try_from(secs.min(BACKOFF_MAX.as_secs())).unwrap_or(300))
}

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub created: usize,
    pub terminated: usize,
    pub drained: usize,
    pub failures_noted: usize,
    pub deleted: usize,
    pub refused: usize,
}

/// One pass over the services whose replicas differ from their wish;
/// does nothing while another replica runs one.
pub async fn run_once(state: &AppState, backoff: &mut Backoff) -> sqlx::Result<Pass> {
    let mut lock = state.db.begin().await?;
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
        LOCK_KEY
    )
    .fetch_one(&mut *lock)
    .await?;
    let mut pass = Pass::default();
    if !locked {
        return Ok(pass);
    }
    match drain::finish(state).await {
        Ok(drained) => {
            pass.drained = drained.len();
            for d in drained {
                instances::publish_instance(state, d.org, &d.instance).await;
                publish_note(state, d.org, d.service_id, &d.note).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "draining replicas not finished; will retry"),
    }
    match note_failed_replicas(state).await {
        Ok(n) => pass.failures_noted = n,
        Err(e) => tracing::warn!(error = %e, "failed replicas not noted; will retry"),
    }
    let counted: Vec<String> = COUNTED.iter().map(|s| s.as_str().to_owned()).collect();
    let candidates = sqlx::query!(
        r#"SELECT s.id, s.organization_id, s.state AS "state: ServiceState", s.desired_replicas,
                  (SELECT count(*) FROM instances i WHERE i.service_id = s.id AND i.status = ANY($1)) AS "counted!",
                  (SELECT count(*) FROM instances i WHERE i.service_id = s.id AND i.status = ANY($1)
                     AND (i.service_revision < s.revision OR EXISTS (
                          SELECT 1 FROM host_allocations a JOIN hosts h ON h.id = a.host_id
                           WHERE a.instance_id = i.id AND h.status = 'draining'))) AS "outdated!",
                  (SELECT count(*) FROM instances i WHERE i.service_id = s.id
                     AND i.status NOT IN ('terminated', 'archived')) AS "left!",
                  (SELECT count(*) FROM instances i WHERE i.service_id = s.id
                     AND i.status IN ('provisioning_failed', 'startup_failed', 'worker_dead')
                     AND i.created_at > now() - interval '1 hour') AS "failed!",
                  (SELECT max(i.created_at) FROM instances i WHERE i.service_id = s.id) AS newest
             FROM services s WHERE s.state IN ('active', 'deleting')"#,
        &counted,
    )
    .fetch_all(&mut *lock)
    .await?;
    let now = chrono::Utc::now();
    for c in candidates {
        // A rollout under way may have one replica more than desired.
        let surge = i64::from(c.outdated > 0 && c.desired_replicas > 0);
        let differs = match c.state {
            ServiceState::Active => c.counted != i64::from(c.desired_replicas) || c.outdated > 0,
            _ => c.left == 0,
        };
        let growing =
            c.state == ServiceState::Active && c.counted < i64::from(c.desired_replicas) + surge;
        let held_back = growing
            && c.newest
                .is_some_and(|newest| now < newest + failure_backoff(c.failed));
        if !differs || held_back || !backoff.due(c.id) {
            continue;
        }
        match converge(state, c.organization_id, c.id, &counted).await {
            Ok(Some(done)) => {
                backoff.done(c.id);
                pass.created += done.created;
                pass.terminated += done.ended.len();
                pass.deleted += usize::from(done.deleted);
                for note in &done.notes {
                    services::publish(state, c.organization_id, &done.service, note).await;
                }
                for instance in &done.ended {
                    instances::publish_instance(state, c.organization_id, instance).await;
                }
            }
            Ok(None) => {}
            Err(refusal @ (ApiError::Conflict { .. } | ApiError::Validation { .. })) => {
                backoff.refused(c.id);
                pass.refused += 1;
                if let Err(e) = note_refusal(state, c.organization_id, c.id, &refusal).await {
                    tracing::warn!(service_id = %c.id, error = %e, "refusal not recorded");
                }
            }
            Err(e) => {
                backoff.refused(c.id);
                tracing::warn!(service_id = %c.id, error = %e, "service not converged; will retry");
            }
        }
    }
    lock.commit().await?;
    Ok(pass)
}

/// What converging one service did.
struct Done {
    service: Service,
    notes: Vec<Note>,
    created: usize,
    ended: Vec<Instance>,
    deleted: bool,
}

/// Converges one service in a transaction of its own (its row locked, so
/// a route's change waits for it or goes first).
async fn converge(
    state: &AppState,
    org: Uuid,
    id: Uuid,
    counted: &[String],
) -> ApiResult<Option<Done>> {
    let mut tx = state.db.begin().await?;
    let loaded = services::load(&mut tx, org, id, true).await?;
    let service = &loaded.service;
    if service.state == ServiceState::Deleting {
        if services::any_replica_left(&mut tx, id).await? {
            return Ok(None);
        }
        let note = Note {
            kind: ServiceEventKind::Deleted,
            from_replicas: Some(0),
            to_replicas: Some(0),
            reason: "its last replica ended: the service is deleted".into(),
        };
        let after = services::set_state(&mut tx, org, id, ServiceState::Deleted, 0, &note).await?;
        tx.commit().await?;
        return Ok(Some(Done {
            service: after,
            notes: vec![note],
            created: 0,
            ended: Vec::new(),
            deleted: true,
        }));
    }
    if service.state != ServiceState::Active {
        return Ok(None);
    }
    let live = sqlx::query!(
        r#"SELECT i.id, i.status = 'ready' AS "ready!", i.created_at,
                  i.service_revision >= s.revision AND NOT EXISTS (
                    SELECT 1 FROM host_allocations a JOIN hosts h ON h.id = a.host_id
                     WHERE a.instance_id = i.id AND h.status = 'draining') AS "current!"
             FROM instances i JOIN services s ON s.id = i.service_id
            WHERE i.service_id = $1 AND i.status = ANY($2)"#,
        id,
        counted,
    )
    .fetch_all(&mut *tx)
    .await?;
    let live: Vec<Replica> = live
        .into_iter()
        .map(|r| Replica {
            id: r.id,
            ready: r.ready,
            current: r.current,
            created_at: r.created_at,
        })
        .collect();
    let want = service.desired_replicas;
    let plan = rollout::plan(usize::try_from(want).unwrap_or(0), &live);
    let have = i32::try_from(live.len()).unwrap_or(i32::MAX);
    let revision = service.revision;
    let mut ended = Vec::new();
    for replica in &plan.take_away {
        let (instance, outcome) = drain::take_away(&mut tx, org, *replica, None).await?;
        if outcome == Transition::Changed {
            ended.push(instance);
        }
    }
    let mut created = 0;
    if plan.create > 0 {
        let by = match service.created_by {
            Some(user) => user,
            None => {
                sqlx::query_scalar!("SELECT created_by FROM organizations WHERE id = $1", org)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let count = i32::try_from(plan.create).unwrap_or(0);
        created = services::add_replicas(state, &mut tx, org, UserId(by), &loaded, count, None)
            .await?
            .len();
    }
    let rolling = plan.outdated > 0;
    let mut notes = Vec::new();
    if !ended.is_empty() {
        let draining = ended
            .iter()
            .filter(|i| i.status == InstanceStatus::Draining)
            .count();
        let what = format!(
            "{} replica(s) taken away ({draining} draining, {} terminated)",
            ended.len(),
            ended.len() - draining,
        );
        let reason = if rolling {
            let ready_new = live.iter().filter(|r| r.current && r.ready).count();
            format!("rollout to revision {revision}: {what}, outdated, with {ready_new} ready at revision {revision}")
        } else {
            format!("{what} to come down to {want}")
        };
        notes.push(Note {
            kind: ServiceEventKind::ReplicaTerminated,
            from_replicas: Some(have),
            to_replicas: Some(want),
            reason,
        });
    }
    if created > 0 {
        let reason = if rolling {
            format!(
                "rollout to revision {revision}: {created} replica(s) created at revision {revision}, {} outdated left",
                plan.outdated_left
            )
        } else {
            format!("{created} replica(s) created to reach {want}")
        };
        notes.push(Note {
            kind: ServiceEventKind::ReplicaCreated,
            from_replicas: Some(have),
            to_replicas: Some(want),
            reason,
        });
    }
    if rolling && plan.outdated_left == 0 {
        notes.push(Note {
            kind: ServiceEventKind::RolloutFinished,
            from_replicas: None,
            to_replicas: None,
            reason: format!("rollout to revision {revision} done: no outdated replica left"),
        });
    }
    for note in &notes {
        services::record(&mut tx, org, id, note).await?;
    }
    let service = services::load(&mut tx, org, id, false).await?.service;
    tx.commit().await?;
    state.outbox.notify_one();
    Ok(Some(Done {
        service,
        notes,
        created,
        ended,
        deleted: false,
    }))
}

/// Writes a refusal in the service's timeline.
async fn note_refusal(state: &AppState, org: Uuid, id: Uuid, refusal: &ApiError) -> ApiResult<()> {
    let note = Note {
        kind: ServiceEventKind::PlacementFailed,
        from_replicas: None,
        to_replicas: None,
        reason: format!("no replica could be created: {refusal}"),
    };
    let mut tx = state.db.begin().await?;
    services::record(&mut tx, org, id, &note).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes a `placement_failed` entry, once per replica, for each replica
/// that ended `provisioning_failed`, naming its placement and the
/// provider's reason; a refusal for capacity or quota also says the
/// placement is now avoided (see `services::add_replicas`).
async fn note_failed_replicas(state: &AppState) -> ApiResult<usize> {
    let failed = sqlx::query!(
        r#"SELECT i.id, i.organization_id, i.service_id AS "service_id!", i.provider, i.zone,
                  i.instance_type, i.error_code, i.error_message
             FROM instances i
            WHERE i.status = 'provisioning_failed' AND i.service_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM service_events e
                               WHERE e.instance_id = i.id AND e.kind = 'placement_failed')"#
    )
    .fetch_all(&state.db)
    .await?;
    let avoid = state.config.placement_avoid.as_secs();
    let mut noted = 0;
    for f in failed {
        let code = f.error_code.as_deref().unwrap_or("UNKNOWN");
        let then = if CAPACITY_CODES.contains(&code) {
            format!("; the next replicas avoid this placement for {avoid} s")
        } else {
            String::new()
        };
        let note = Note {
            kind: ServiceEventKind::PlacementFailed,
            from_replicas: None,
            to_replicas: None,
            reason: format!(
                "replica {} failed on {}/{}/{}: {code}: {}{then}",
                f.id,
                f.provider,
                f.zone,
                f.instance_type,
                f.error_message.as_deref().unwrap_or("no message"),
            ),
        };
        let written = sqlx::query!(
            "INSERT INTO service_events (service_id, organization_id, kind, reason, instance_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            f.service_id,
            f.organization_id,
            note.kind.as_str(),
            note.reason.chars().take(1000).collect::<String>(),
            f.id,
        )
        .execute(&state.db)
        .await?
        .rows_affected();
        if written == 1 {
            noted += 1;
            publish_note(state, f.organization_id, f.service_id, &note).await;
        }
    }
    Ok(noted)
}

/// Announces a timeline entry written outside a service's own change.
async fn publish_note(state: &AppState, org: Uuid, id: Uuid, note: &Note) {
    let loaded = match state.db.acquire().await {
        Ok(mut conn) => services::load(&mut conn, org, id, false).await,
        Err(e) => Err(e.into()),
    };
    match loaded {
        Ok(loaded) => services::publish(state, org, &loaded.service, note).await,
        Err(e) => tracing::warn!(service_id = %id, error = %e, "service event not announced"),
    }
}

/// Runs a pass every interval until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.replicas_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match run_once(&state, &mut backoff).await {
            Ok(pass) if pass == Pass::default() => {}
            Ok(pass) => tracing::info!(?pass, "service replicas converged"),
            Err(e) => tracing::warn!(error = %e, "replica convergence failed; will retry"),
        }
    }
}
