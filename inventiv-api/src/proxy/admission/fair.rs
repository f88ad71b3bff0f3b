//! The fair scheduler of one deployment on one replica, free of I/O and
//! clocks (the caller passes `now`), so its decisions are unit-tested.
//!
//! A deployment has `capacity` slots (its workers × the slots per worker).
//! An arriving request takes a free slot at once when nobody waits and its
//! organization may take one; otherwise it waits in its organization's
//! queue of its band. When a slot frees, waiting requests are admitted:
//! interactive before batch, and within a band by deficit round robin over
//! the organizations, each turn crediting an organization its weight (a
//! request costs [`COST`], so a weight of 100 is one request per round).
//!
//! An organization may take a slot while it holds fewer than its fair
//! share (capacity × its weight / the weights of the active
//! organizations); beyond it, only slots the other active organizations do
//! not need to reach their own share (their guarantee), so one bursting
//! organization cannot make another's next request wait, while alone it
//! gets the whole capacity. An organization is active while it has
//! requests in flight or waiting, or sent one within `idle_after`. Batch
//! requests leave `batch_reserve` slots free for interactive ones, and
//! more while interactive requests were lately more in flight than now:
//! the slots of their recent peak (within `idle_after`), since their
//! clients come back as soon as their answers end; a batch request taking
//! such a slot would make the next interactive one wait a whole answer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use inventiv_common::KeyPriority;
use uuid::Uuid;

/// What one request costs in deficit: a weight of 100 earns one request
/// per round.
pub const COST: u32 = 100;

/// The limits a deployment is scheduled under.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Slots of the deployment on this replica.
    pub capacity: u32,
    /// Slots one organization may hold; 0: only the capacity bounds it.
    pub org_max_in_flight: u32,
    /// Requests one organization may have waiting (per band).
    pub org_max_queued: usize,
    /// Slots a batch request never takes (kept for interactive ones).
    pub batch_reserve: u32,
    /// How long an organization stays active after its last request.
    pub idle_after: Duration,
}

fn band(b: KeyPriority) -> usize {
    match b {
        KeyPriority::Interactive => 0,
        KeyPriority::Batch => 1,
    }
}

/// One organization's requests on the deployment.
struct Flow<W> {
    weight: u32,
    in_flight: u32,
    queues: [VecDeque<(u64, W)>; 2],
    deficit: [u32; 2],
    seen: Instant,
}

impl<W> Flow<W> {
    fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn active(&self, now: Instant, idle_after: Duration) -> bool {
        self.in_flight > 0 || self.queued() > 0 || now.duration_since(self.seen) < idle_after
    }
}

/// Why a request was not queued.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

/// The scheduler of one deployment; `W` is what wakes a waiting request.
pub struct Deployment<W> {
    flows: HashMap<Uuid, Flow<W>>,
    /// Per band, the organizations with requests waiting, in round order.
    rounds: [VecDeque<Uuid>; 2],
    in_flight: u32,
    queued: usize,
    /// Interactive requests in flight.
    interactive: u32,
    /// The most interactive requests in flight lately, and when they last
    /// were that many (see [`Deployment::interactive_peak`]).
    peak: (u32, Option<Instant>),
}

impl<W> Default for Deployment<W> {
    fn default() -> Self {
        Deployment {
            flows: HashMap::new(),
            rounds: [VecDeque::new(), VecDeque::new()],
            in_flight: 0,
            queued: 0,
            interactive: 0,
            peak: (0, None),
        }
    }
}

impl<W> Deployment<W> {
    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Requests waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Forgets the organizations no longer active; true when none is left
    /// (the deployment can go).
    pub fn prune(&mut self, p: &Policy, now: Instant) -> bool {
        self.flows.retain(|_, f| f.active(now, p.idle_after));
        self.flows.is_empty()
    }

    /// A request of `org` (with `weight`) arrives: true when it takes a
    /// slot at once (nobody waits and its organization may take one).
    pub fn arrive(
        &mut self,
        p: &Policy,
        org: Uuid,
        weight: u32,
        b: KeyPriority,
        now: Instant,
    ) -> bool {
        self.prune(p, now);
        let flow = self.flows.entry(org).or_insert_with(|| Flow {
            weight,
            in_flight: 0,
            queues: [VecDeque::new(), VecDeque::new()],
            deficit: [0, 0],
            seen: now,
        });
        flow.weight = weight.max(1);
        flow.seen = now;
        if self.queued == 0 && self.eligible(p, org, b, now) {
            self.take(p, org, b, now);
            return true;
        }
        false
    }

    /// Queues a request that did not take a slot on arrival.
    pub fn enqueue(
        &mut self,
        p: &Policy,
        org: Uuid,
        b: KeyPriority,
        id: u64,
        waiter: W,
    ) -> Result<(), QueueFull> {
        let Some(flow) = self.flows.get_mut(&org) else {
            return Err(QueueFull);
        };
        let queue = &mut flow.queues[band(b)];
        if queue.len() >= p.org_max_queued {
            return Err(QueueFull);
        }
        if queue.is_empty() {
            self.rounds[band(b)].push_back(org);
        }
        queue.push_back((id, waiter));
        self.queued += 1;
        Ok(())
    }

    /// Takes a waiting request out of its queue (its client left or its
    /// wait is over): false when it is not there (it was admitted).
    pub fn cancel(&mut self, org: Uuid, b: KeyPriority, id: u64) -> bool {
        let Some(flow) = self.flows.get_mut(&org) else {
            return false;
        };
        let queue = &mut flow.queues[band(b)];
        let Some(at) = queue.iter().position(|(i, _)| *i == id) else {
            return false;
        };
        queue.remove(at);
        if queue.is_empty() {
            flow.deficit[band(b)] = 0;
            self.rounds[band(b)].retain(|o| *o != org);
        }
        self.queued -= 1;
        true
    }

    /// A request of `org` in band `b` is done: its slot is free.
    pub fn release(&mut self, org: Uuid, b: KeyPriority) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if b == KeyPriority::Interactive {
            self.interactive = self.interactive.saturating_sub(1);
        }
        if let Some(flow) = self.flows.get_mut(&org) {
            flow.in_flight = flow.in_flight.saturating_sub(1);
        }
    }

    /// Admits what waits while slots allow: interactive first, then batch,
    /// each by deficit round robin. Returns the admitted requests' waiters
    /// (their slots are taken).
    pub fn dispatch(&mut self, p: &Policy, now: Instant) -> Vec<(Uuid, W)> {
        let mut admitted = Vec::new();
        for b in [KeyPriority::Interactive, KeyPriority::Batch] {
            while let Some(next) = self.pick(p, b, now) {
                admitted.push(next);
            }
        }
        admitted
    }

    fn take(&mut self, p: &Policy, org: Uuid, b: KeyPriority, now: Instant) {
        self.in_flight += 1;
        if let Some(flow) = self.flows.get_mut(&org) {
            flow.in_flight += 1;
        }
        if b == KeyPriority::Interactive {
            self.interactive += 1;
            if self.interactive >= self.interactive_peak(p, now) {
                self.peak = (self.interactive, Some(now));
            }
        }
    }

    /// The most interactive requests in flight within `idle_after` (at
    /// least those in flight now).
    fn interactive_peak(&self, p: &Policy, now: Instant) -> u32 {
        match self.peak {
            (peak, Some(at)) if now.duration_since(at) < p.idle_after => peak.max(self.interactive),
            _ => self.interactive,
        }
    }

    /// Whether a request of `org` in band `b` may take a slot now.
    fn eligible(&self, p: &Policy, org: Uuid, b: KeyPriority, now: Instant) -> bool {
        let free = p.capacity.saturating_sub(self.in_flight);
        let reserve = match b {
            KeyPriority::Interactive => 0,
            KeyPriority::Batch => p
                .batch_reserve
                .max(self.interactive_peak(p, now) - self.interactive),
        };
        let Some(flow) = self.flows.get(&org) else {
            return false;
        };
        if free <= reserve || (p.org_max_in_flight > 0 && flow.in_flight >= p.org_max_in_flight) {
            return false;
        }
        // No allocation: this runs for every request admitted at once.
        let active = || {
            self.flows
                .iter()
                .filter(move |(o, f)| **o == org || f.active(now, p.idle_after))
        };
        let weights: u64 = active().map(|(_, f)| u64::from(f.weight)).sum();
        let share = |f: &Flow<W>| {
            let s = u64::from(p.capacity) * u64::from(f.weight) / weights.max(1);
            u32::try_from(s).unwrap_or(u32::MAX).max(1)
        };
        if flow.in_flight < share(flow) {
            return true;
        }
        // Beyond its share: only what the others' guarantees leave.
        let guaranteed: u32 = active()
            .filter(|(o, _)| **o != org)
            .map(|(_, f)| share(f).saturating_sub(f.in_flight))
            .sum();
        free > guaranteed
    }

    /// The next request of band `b` to admit, if one may go.
    fn pick(&mut self, p: &Policy, b: KeyPriority, now: Instant) -> Option<(Uuid, W)> {
        let i = band(b);
        let eligible: HashSet<Uuid> = self.rounds[i]
            .iter()
            .copied()
            .filter(|o| self.eligible(p, *o, b, now))
            .collect();
        if eligible.is_empty() {
            return None;
        }
        // Rounds in which nobody eligible would reach the cost are credited
        // at once rather than walked through (a weight of 1 needs 100).
        let rounds = eligible
            .iter()
            .filter_map(|o| self.flows.get(o))
            .map(|f| COST.saturating_sub(f.deficit[i]).div_ceil(f.weight.max(1)))
            .min()
            .unwrap_or(0)
            .saturating_sub(1);
        for o in &eligible {
            if let Some(f) = self.flows.get_mut(o) {
                f.deficit[i] = f.deficit[i].saturating_add(rounds.saturating_mul(f.weight));
            }
        }
        for _ in 0..=2 * self.rounds[i].len() {
            let org = *self.rounds[i].front()?;
            let Some(flow) = self.flows.get_mut(&org).filter(|_| eligible.contains(&org)) else {
                self.rounds[i].rotate_left(1);
                continue;
            };
            if flow.deficit[i] >= COST {
                flow.deficit[i] -= COST;
                let (_, waiter) = flow.queues[i].pop_front()?;
                if flow.queues[i].is_empty() {
                    flow.deficit[i] = 0;
                    self.rounds[i].pop_front();
                }
                self.queued -= 1;
                self.take(p, org, b, now);
                return Some((org, waiter));
            }
            flow.deficit[i] = flow.deficit[i].saturating_add(flow.weight);
            self.rounds[i].rotate_left(1);
        }
        None
    }
}

#[cfg(test)]
#[path = "fair_tests.rs"]
mod tests;
