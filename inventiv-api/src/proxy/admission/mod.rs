//! Fair admission on a deployment (a serving organization's model, shared
//! or not): a request takes one of the deployment's slots before it goes
//! to a worker, and gives it back when its answer ends ([`Permit`]).
//! Slots are the ready workers × `INVENTIV_ADMISSION_SLOTS_PER_WORKER`
//! (the engine's own concurrency, e.g. vLLM's `--max-num-seqs`, divided by
//! the API replicas: the count is per replica). When they are all taken,
//! requests wait and are admitted by [`fair`]: interactive before batch,
//! organizations by deficit round robin with their weights (a share's
//! `weight`; the provider's own traffic weighs [`OWN_WEIGHT`]). A wait is
//! bounded (per band); a full queue or a wait over is a 429
//! `deployment_saturated` with `Retry-After`.
//!
//! Per replica: each replica schedules what it receives. Behind a load
//! balancer that spreads requests, each sees about its part of every
//! organization's traffic, so the shares hold overall without a round
//! trip to Redis per request (the data plane makes none).

pub mod fair;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use futures_util::{FutureExt, StreamExt};
use inventiv_common::KeyPriority;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::error::OpenAiError;
use super::journal::writer::Answering;
use crate::metrics::ModelSeries;
use crate::state::AppState;

/// The weight of the provider's own traffic on its deployment; a share's
/// weight (1 to 1000, default 100) is relative to it.
pub const OWN_WEIGHT: u32 = 100;

/// The admission settings (`INVENTIV_ADMISSION_*`, docs/configuration.md).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Slots per ready worker on this replica; 0 turns admission off.
    pub slots_per_worker: u32,
    /// Slots one organization may hold on a deployment; 0: no limit of its own.
    pub org_max_in_flight: u32,
    /// Requests one organization may have waiting per deployment and band.
    pub org_max_queued: usize,
    /// Longest wait of an interactive request.
    pub interactive_wait: Duration,
    /// Longest wait of a batch request.
    pub batch_wait: Duration,
    /// Percent of a deployment's slots batch requests leave free.
    pub batch_reserve_percent: u32,
    /// How long an organization keeps its share after its last request.
    pub idle_after: Duration,
}

type Key = (Uuid, Box<str>);

/// A deployment's scheduler, the policy of its last arrival (its capacity
/// follows the ready workers), and whether a later look is planned.
struct Scheduled {
    policy: fair::Policy,
    d: fair::Deployment<oneshot::Sender<()>>,
    /// A slot is free but kept for an active organization's share while
    /// others wait: looked at again once that organization may be idle.
    recheck: bool,
}

/// This replica's schedulers, one per deployment in use.
pub struct Admission {
    limits: AdmissionLimits,
    deployments: Mutex<HashMap<Key, Scheduled>>,
    ids: AtomicU64,
}

/// A request's slot; dropping it (the answer ended, or the client left)
/// frees it for the next one.
pub struct Permit {
    admission: Arc<Admission>,
    key: Key,
    org: Uuid,
    band: KeyPriority,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release(&self.key, self.org, self.band);
    }
}

/// A waiting request's place; leaving it (dropped while still waiting)
/// takes it out, or frees the slot it was given meanwhile.
struct Ticket {
    admission: Arc<Admission>,
    key: Key,
    org: Uuid,
    band: KeyPriority,
    id: u64,
    /// Became a [`Permit`] (or was refused): nothing to undo.
    settled: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled && !self.admission.cancel(self) {
            self.admission.release(&self.key, self.org, self.band);
        }
    }
}

/// What a request brings to admission.
pub struct Request<'a> {
    pub organization_id: Uuid,
    pub band: KeyPriority,
    /// Its organization's weight on the deployment.
    pub weight: u32,
    /// The serving organization's series: the deployment.
    pub owner: &'a ModelSeries,
    /// Ready workers of the deployment.
    pub workers: usize,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            limits,
            deployments: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(0),
        }
    }

    fn policy(&self, workers: usize) -> fair::Policy {
        let l = &self.limits;
        let capacity = u32::try_from(workers)
            .unwrap_or(u32::MAX)
            .saturating_mul(l.slots_per_worker);
        fair::Policy {
            capacity,
            org_max_in_flight: l.org_max_in_flight,
            org_max_queued: l.org_max_queued,
            batch_reserve: capacity
                .saturating_mul(l.batch_reserve_percent.min(100))
                .div_ceil(100),
            idle_after: l.idle_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Scheduled>> {
        self.deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Requests waiting on this replica (`inventiv_admission_waiting`).
    pub fn waiting(&self) -> usize {
        self.lock().values().map(|s| s.d.queued()).sum()
    }

    /// Requests holding a slot on this replica.
    pub fn in_flight(&self) -> u32 {
        self.lock().values().map(|s| s.d.in_flight()).sum()
    }

    /// Waits for a slot of `r`'s deployment; None when admission is off.
    pub async fn admit(self: &Arc<Self>, r: Request<'_>) -> Result<Option<Permit>, Refused> {
        if self.limits.slots_per_worker == 0 {
            return Ok(None);
        }
        let key: Key = (r.owner.organization_id, r.owner.model.clone());
        let policy = self.policy(r.workers);
        let permit = |admission: &Arc<Admission>, key: Key| Permit {
            admission: admission.clone(),
            key,
            org: r.organization_id,
            band: r.band,
        };
        let (tx, rx) = oneshot::channel();
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        {
            let now = Instant::now();
            let mut deployments = self.lock();
            let s = deployments.entry(key.clone()).or_insert_with(|| Scheduled {
                policy,
                d: fair::Deployment::default(),
                recheck: false,
            });
            s.policy = policy;
            let d = &mut s.d;
            if d.arrive(&policy, r.organization_id, r.weight, r.band, now) {
                drop(deployments);
                return Ok(Some(permit(self, key)));
            }
            if d.enqueue(&policy, r.organization_id, r.band, id, tx)
                .is_err()
            {
                return Err(Refused::Full);
            }
        }
        let mut ticket = Ticket {
            admission: self.clone(),
            key: key.clone(),
            org: r.organization_id,
            band: r.band,
            id,
            settled: false,
        };
        // Admits it if it may go after all, else plans the look that frees
        // a slot kept for others once they may be idle.
        self.schedule(&key, None);
        let wait = match r.band {
            KeyPriority::Interactive => self.limits.interactive_wait,
            KeyPriority::Batch => self.limits.batch_wait,
        };
        let woken = matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(())));
        ticket.settled = true;
        // Not woken: still waiting (then out of the queue), or admitted
        // just now.
        if !woken && self.cancel(&ticket) {
            return Err(Refused::TimedOut(wait));
        }
        Ok(Some(permit(self, key)))
    }

    /// Takes a ticket's request out of its queue; false when it was admitted.
    fn cancel(&self, t: &Ticket) -> bool {
        let mut deployments = self.lock();
        deployments
            .get_mut(&t.key)
            .is_some_and(|s| s.d.cancel(t.org, t.band, t.id))
    }

    /// Frees a slot of `org` in band `b` and admits what may go next.
    fn release(self: &Arc<Self>, key: &Key, org: Uuid, b: KeyPriority) {
        self.schedule(key, Some((org, b)));
    }

    /// Admits what may go on `key`'s deployment (after freeing a slot of
    /// `freed`). When requests wait while a slot stays free (for an active
    /// organization's share, or interactive requests' recent peak), it
    /// looks again once those may be idle: the slot is not kept for
    /// traffic that stopped.
    fn schedule(self: &Arc<Self>, key: &Key, freed: Option<(Uuid, KeyPriority)>) {
        let mut recheck = false;
        let admitted = {
            let mut deployments = self.lock();
            let Some(s) = deployments.get_mut(key) else {
                return;
            };
            if let Some((org, b)) = freed {
                s.d.release(org, b);
            }
            let now = Instant::now();
            let admitted = s.d.dispatch(&s.policy, now);
            if s.d.queued() > 0 && s.d.in_flight() < s.policy.capacity && !s.recheck {
                s.recheck = true;
                recheck = true;
            }
            // Organizations stay remembered while active (their share kept).
            if s.d.prune(&s.policy, now) {
                deployments.remove(key);
            }
            admitted
        };
        wake(admitted);
        // A permit dropped as the runtime ends has nobody left to admit.
        let runtime = tokio::runtime::Handle::try_current();
        if let (true, Ok(runtime)) = (recheck, runtime) {
            let (admission, key) = (self.clone(), key.clone());
            let after = self.limits.idle_after;
            runtime.spawn(async move {
                tokio::time::sleep(after).await;
                if let Some(s) = admission.lock().get_mut(&key) {
                    s.recheck = false;
                }
                admission.schedule(&key, None);
            });
        }
    }
}

/// Wakes admitted requests (outside the lock); one whose client left
/// frees its slot through its ticket.
fn wake(admitted: Vec<(Uuid, oneshot::Sender<()>)>) {
    for (_, tx) in admitted {
        let _ = tx.send(());
    }
}

/// Why a request was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its organization's queue on the deployment is full.
    Full,
    /// It waited this long.
    TimedOut(Duration),
}

impl Refused {
    fn error(self, model: &str) -> OpenAiError {
        let (message, retry) = match self {
            Refused::Full => (
                format!("`{model}` is saturated and your organization has too many requests waiting for it; retry later"),
                1,
            ),
            Refused::TimedOut(wait) => (
                format!("`{model}` is saturated; the request waited {} s without a slot", wait.as_secs_f32()),
                wait.as_secs().max(1),
            ),
        };
        let mut e = OpenAiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "deployment_saturated",
            message,
        );
        e.retry_after = Some(retry);
        e
    }
}

/// Admits a `/v1` request on its deployment: its band from its key
/// (interactive for a dashboard session), its weight from its share. While
/// it waits it is not answering (the journal's writer waits for nobody
/// queued here).
#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, each from another stage"
)]
pub async fn admit(
    state: &AppState,
    organization_id: Uuid,
    band: Option<KeyPriority>,
    model: &str,
    owner: &ModelSeries,
    shared: bool,
    workers: usize,
    answering: &mut Option<Answering>,
) -> Result<Option<Permit>, OpenAiError> {
    let weight = if shared {
        state
            .routing
            .share_for(organization_id, model)
            .map_or(OWN_WEIGHT, |s| s.weight)
    } else {
        OWN_WEIGHT
    };
    let request = Request {
        organization_id,
        band: band.unwrap_or(KeyPriority::Interactive),
        weight,
        owner,
        workers,
    };
    let mut waiting = std::pin::pin!(state.admission.admit(request));
    // Most requests are admitted at once, without giving up their place
    // among those answering.
    if let Some(result) = waiting.as_mut().now_or_never() {
        return result.map_err(|r| r.error(model));
    }
    drop(answering.take());
    let permit = waiting.await.map_err(|r| r.error(model))?;
    state.usage.admit()?;
    *answering = state.usage.answering();
    Ok(permit)
}

/// Keeps a streamed answer's slot until its stream ends (or its client
/// leaves); a whole answer was already read, its slot goes now.
pub fn hold(response: Response, permit: Option<Permit>) -> Response {
    let streamed = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let Some(permit) = permit.filter(|_| streamed) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _slot = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}
