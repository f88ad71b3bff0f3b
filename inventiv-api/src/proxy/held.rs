//! Requests held for a cold model: a `/v1` request for a model of an
//! active service with no usable replica (scaled to zero, or its replica
//! still starting) waits here instead of failing, in a bounded queue per
//! serving (organization, model), until a routing rebuild finds a worker
//! ([`Held::release`]), its timeout passes or its client goes away (the
//! handler's future is dropped, and its [`Ticket`] with it). Released
//! requests leave in arrival order: one at a time, each resuming before the
//! next is woken (a baton passed along), never all at once. The count
//! held is a level in the owner's series, published to the autoscaler
//! ([`super::signals`]) as demand.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use inventiv_common::metrics::Counter;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::metrics::ModelSeries;

/// What one (organization, model) counts of its held requests.
#[derive(Debug, Default)]
pub struct HeldSeries {
    /// Requests waiting now.
    waiting: AtomicU64,
    /// Released to a worker.
    pub served: Counter,
    /// Answered 503 after the hold timeout.
    pub timed_out: Counter,
    /// Answered 503 because the queue was full.
    pub full: Counter,
    /// Their client left while they waited.
    pub abandoned: Counter,
}

impl HeldSeries {
    /// Requests waiting now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }
}

type Key = (Uuid, Box<str>);

#[derive(Default)]
struct Queue {
    /// Waiting for a worker, by arrival.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
    /// Released, not yet woken: each is woken when the one before resumed.
    round: VecDeque<(u64, oneshot::Sender<()>)>,
    /// Woken and not yet resumed: it wakes the next one.
    baton: Option<u64>,
}

impl Queue {
    /// Wakes the next released request, if any.
    fn pass(&mut self) {
        self.baton = None;
        while let Some((seq, tx)) = self.round.pop_front() {
            if tx.send(()).is_ok() {
                self.baton = Some(seq);
                return;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.round.is_empty() && self.baton.is_none()
    }
}

/// Every queue of this replica.
#[derive(Default)]
pub struct Held {
    queues: Mutex<HashMap<Key, Queue>>,
    arrivals: AtomicU64,
}

/// Why a request stopped waiting without a worker.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Full,
    TimedOut,
}

/// A request's place in a queue; leaving it (dropped) takes it out, or
/// wakes the next one when it was the one woken.
pub struct Ticket {
    held: Arc<Held>,
    key: Key,
    seq: u64,
    series: Arc<ModelSeries>,
    /// Its outcome was counted (served, timed out).
    counted: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut queues = self
            .held
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(q) = queues.get_mut(&self.key) {
            if q.waiting.remove(&self.seq).is_none() {
                let before = q.round.len();
                q.round.retain(|(s, _)| *s != self.seq);
                if q.round.len() == before && q.baton == Some(self.seq) {
                    q.pass();
                }
            }
            if q.is_empty() {
                queues.remove(&self.key);
            }
        }
        drop(queues);
        let held = &self.series.serving.held;
        held.waiting.fetch_sub(1, Ordering::Relaxed);
        if !self.counted {
            held.abandoned.inc();
        }
    }
}

impl Held {
    /// The arrival number of a request about to be held: it keeps its
    /// place if it has to wait again.
    pub fn arrival(&self) -> u64 {
        self.arrivals.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits in the queue of `series`' (organization, model) until a worker
    /// is ready ([`Held::release`]); refused when `max` are already held
    /// there, or at `until`.
    pub async fn wait(
        self: &Arc<Self>,
        series: &Arc<ModelSeries>,
        arrival: u64,
        max: usize,
        until: Instant,
    ) -> Result<(), Refused> {
        let key: Key = (series.organization_id, series.model.clone());
        let (tx, rx) = oneshot::channel();
        {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let q = queues.entry(key.clone()).or_default();
            let held = q.waiting.len() + q.round.len() + usize::from(q.baton.is_some());
            if held >= max {
                if q.is_empty() {
                    queues.remove(&key);
                }
                series.serving.held.full.inc();
                return Err(Refused::Full);
            }
            q.waiting.insert(arrival, tx);
        }
        series.serving.held.waiting.fetch_add(1, Ordering::Relaxed);
        let mut ticket = Ticket {
            held: self.clone(),
            key,
            seq: arrival,
            series: series.clone(),
            counted: false,
        };
        match tokio::time::timeout_at(until.into(), rx).await {
            Ok(Ok(())) => {
                series.serving.held.served.inc();
                ticket.counted = true;
                Ok(())
            }
            // The sender is only dropped with its queue entry, which the
            // ticket removes: not reached, but a timeout all the same.
            Ok(Err(_)) | Err(_) => {
                series.serving.held.timed_out.inc();
                ticket.counted = true;
                Err(Refused::TimedOut)
            }
        }
    }

    /// Releases, in arrival order, the queues `ready` says can go on (a
    /// worker is ready, or the model is no longer a cold service's).
    pub fn release(&self, ready: impl Fn(Uuid, &str) -> bool) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        for ((org, model), q) in queues.iter_mut() {
            if q.waiting.is_empty() || !ready(*org, model) {
                continue;
            }
            let waiting = std::mem::take(&mut q.waiting);
            q.round.extend(waiting);
            if q.baton.is_none() {
                q.pass();
            }
        }
    }

    /// Requests held on this replica.
    pub fn waiting(&self) -> usize {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues
            .values()
            .map(|q| q.waiting.len() + q.round.len() + usize::from(q.baton.is_some()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn released_in_arrival_order_one_after_the_other() {
        let held = Arc::new(Held::default());
        let series = Arc::new(ModelSeries::new(Uuid::new_v4(), "m"));
        let order = Arc::new(Mutex::new(Vec::new()));
        let until = Instant::now() + Duration::from_secs(10);
        let mut tasks = Vec::new();
        for i in 0..5u64 {
            let (h, s, order) = (held.clone(), series.clone(), order.clone());
            let arrival = held.arrival();
            tasks.push(tokio::spawn(async move {
                h.wait(&s, arrival, 10, until).await.unwrap();
                order.lock().unwrap().push(i);
            }));
            // Each in the queue before the next arrives.
            while series.serving.held.waiting() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        // A sixth is refused: the queue is bounded.
        let sixth = held.wait(&series, held.arrival(), 5, until).await;
        assert_eq!(sixth, Err(Refused::Full));
        assert_eq!(held.waiting(), 5);
        held.release(|_, _| false);
        assert_eq!(held.waiting(), 5, "not ready: nobody leaves");
        held.release(|_, m| m == "m");
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        let s = &series.serving.held;
        assert_eq!(
            (s.waiting(), s.served.get(), s.full.get(), held.waiting()),
            (0, 5, 1, 0)
        );
    }

    #[tokio::test]
    async fn a_timeout_or_a_client_gone_leaves_the_queue() {
        let held = Arc::new(Held::default());
        let series = Arc::new(ModelSeries::new(Uuid::new_v4(), "m"));
        let soon = Instant::now() + Duration::from_millis(50);
        let out = held.wait(&series, held.arrival(), 5, soon).await;
        assert_eq!(out, Err(Refused::TimedOut));
        let later = Instant::now() + Duration::from_secs(10);
        let (h, s) = (held.clone(), series.clone());
        let gone = tokio::spawn(async move { h.wait(&s, h.arrival(), 5, later).await });
        while series.serving.held.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        let s = &series.serving.held;
        assert_eq!(
            (
                s.waiting(),
                s.timed_out.get(),
                s.abandoned.get(),
                held.waiting()
            ),
            (0, 1, 1, 0)
        );
        // A released request whose client left passes the baton on.
        let (h, s2) = (held.clone(), series.clone());
        let first = tokio::spawn(async move { h.wait(&s2, 0, 5, later).await });
        while series.serving.held.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let (h, s3) = (held.clone(), series.clone());
        let second = tokio::spawn(async move { h.wait(&s3, 1, 5, later).await });
        while series.serving.held.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        first.abort();
        held.release(|_, _| true);
        assert_eq!(second.await.unwrap(), Ok(()));
    }
}
