//! The least time between two accepted heartbeats of one worker on this
//! replica (`INVENTIV_HEARTBEAT_MIN_INTERVAL_MS`): a tenant's agent that
//! sends far more than one per interval would otherwise fill the replica's
//! queue and the sample tables. Refused heartbeats are not queued and do
//! not move the clock: the interval runs from the last accepted one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Entries the map may hold before its first sweep.
const SWEEP_FLOOR: usize = 4096;

/// When this replica last accepted a heartbeat of each instance. Entries
/// older than the interval decide nothing: a sweep drops them whenever the
/// map has doubled since the last one, so it holds at most twice the
/// instances accepted within one interval, or [`SWEEP_FLOOR`].
struct LastAccepted {
    at: HashMap<Uuid, Instant>,
    sweep_at: usize,
}

/// Per-instance minimum interval between accepted heartbeats.
pub struct HeartbeatLimit {
    /// Zero: no limit.
    min_interval: Duration,
    last: Mutex<LastAccepted>,
}

impl HeartbeatLimit {
    /// Accepts a heartbeat of an instance at most once per `min_interval`.
    pub fn new(min_interval: Duration) -> HeartbeatLimit {
        HeartbeatLimit {
            min_interval,
            last: Mutex::new(LastAccepted {
                at: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    /// Whether a heartbeat of `instance` arriving `now` may be accepted
    /// (it then counts as the instance's last), or how long until one may.
    pub fn admit(&self, instance: Uuid, now: Instant) -> Result<(), Duration> {
        if self.min_interval.is_zero() {
            return Ok(());
        }
        // A map of instants: a panic elsewhere cannot leave it inconsistent.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = last.at.get(&instance) {
            let since = now.saturating_duration_since(*previous);
            if since < self.min_interval {
                return Err(self.min_interval - since);
            }
        }
        last.at.insert(instance, now);
        if last.at.len() >= last.sweep_at {
            let min = self.min_interval;
            last.at
                .retain(|_, at| now.saturating_duration_since(*at) < min);
            last.sweep_at = (2 * last.at.len()).max(SWEEP_FLOOR);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn refuses_until_the_interval_has_passed_since_the_last_accepted() {
        let limit = HeartbeatLimit::new(Duration::from_secs(1));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(limit.admit(a, t0), Ok(()));
        assert_eq!(limit.admit(b, t0), Ok(()), "another instance");
        assert_eq!(limit.admit(a, t0 + ms(400)), Err(ms(600)));
        // The refused one did not move the clock.
        assert_eq!(limit.admit(a, t0 + ms(999)), Err(ms(1)));
        assert_eq!(limit.admit(a, t0 + ms(1000)), Ok(()));
        assert_eq!(limit.admit(a, t0 + ms(1500)), Err(ms(500)));
    }

    #[test]
    fn zero_is_no_limit() {
        let limit = HeartbeatLimit::new(Duration::ZERO);
        let (a, t0) = (Uuid::new_v4(), Instant::now());
        assert!((0..5).all(|_| limit.admit(a, t0).is_ok()));
        assert!(limit.last.lock().unwrap().at.is_empty());
    }

    #[test]
    fn holds_at_most_twice_the_instances_of_one_interval() {
        let limit = HeartbeatLimit::new(Duration::from_secs(1));
        let wave = 10_000;
        let t0 = Instant::now();
        for round in 0..6u64 {
            let now = t0 + Duration::from_secs(2 * round);
            for _ in 0..wave {
                assert_eq!(limit.admit(Uuid::new_v4(), now), Ok(()));
                let held = limit.last.lock().unwrap().at.len();
                assert!(held < 2 * wave, "{held} entries in round {round}");
            }
        }
        // An instance accepted just before sweeps is still limited after them.
        let a = Uuid::new_v4();
        let now = t0 + Duration::from_secs(20);
        limit.admit(a, now).unwrap();
        for _ in 0..3 * wave {
            limit.admit(Uuid::new_v4(), now).unwrap();
        }
        assert!(limit.admit(a, now).is_err());
    }
}
