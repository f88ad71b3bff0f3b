//! The load signals the API replicas publish for the orchestrator's
//! autoscaler, through Redis: each replica writes one [`Snapshot`] per
//! interval under its own key with a TTL of [`TTL_INTERVALS`] intervals
//! (a dead replica's numbers vanish on their own) and lists itself in an
//! index scored by that expiry, so a reader finds the live replicas
//! without scanning the keyspace. The counts of a snapshot cover its
//! interval only, so replicas combine by adding them; the TTFT histogram
//! has fixed buckets ([`TTFT_BUCKETS`]) for the same reason, and its p95
//! is computed on the sum ([`quantile`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The upper bounds (seconds) of the TTFT buckets, then an implicit `+Inf`:
/// from what a healthy small model does to a cold, overloaded one.
pub const TTFT_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0,
];

/// A snapshot lives this many publishing intervals.
pub const TTL_INTERVALS: u32 = 3;

/// The index of live replicas (a sorted set: replica id → expiry in ms).
pub fn index_key(prefix: &str) -> String {
    format!("{prefix}signals:replicas")
}

/// The key of one replica's latest snapshot.
pub fn replica_key(prefix: &str, replica: &str) -> String {
    format!("{prefix}signals:replica:{replica}")
}

/// What one API replica saw during one interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The replica's id (`INVENTIV_REPLICA_ID`).
    pub replica: String,
    /// When it was taken (milliseconds since the epoch).
    pub at_ms: i64,
    /// The time its counts cover.
    pub interval_ms: u64,
    /// The (organization, model) pairs with any activity; absent means idle.
    pub models: Vec<ModelLoad>,
}

/// The load of one (organization, model) on one replica. The organization
/// is the one that owns the serving instances (a shared model's load counts
/// for its provider), since the autoscaler scales the owner's service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelLoad {
    pub organization_id: Uuid,
    pub model: String,
    /// Requests in flight on the model's workers when the snapshot was taken.
    pub outstanding: u64,
    /// Requests refused during the interval because no worker was ready.
    pub refused: u64,
    /// Requests held when the snapshot was taken, waiting for a replica of
    /// a service at zero (absent from older replicas' snapshots: 0).
    #[serde(default)]
    pub held: u64,
    /// Requests that ended on a worker during the interval (any status).
    pub completed: u64,
    /// Completion tokens billed during the interval.
    pub tokens: u64,
    /// First tokens of streams during the interval, one count per bucket of
    /// [`TTFT_BUCKETS`] then the `+Inf` one (not cumulative).
    pub ttft: Vec<u64>,
}

impl ModelLoad {
    /// Whether nothing happened and nothing is in flight.
    pub fn is_idle(&self) -> bool {
        self.outstanding == 0
            && self.refused == 0
            && self.held == 0
            && self.completed == 0
            && self.tokens == 0
            && self.ttft.iter().all(|n| *n == 0)
    }
}

/// Adds the bucket counts of `other` to `into` (made as long as needed).
pub fn add_buckets(into: &mut Vec<u64>, other: &[u64]) {
    if into.len() < other.len() {
        into.resize(other.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(other) {
        *a = a.saturating_add(*b);
    }
}

/// The `q` quantile (0..=1) in seconds of a histogram over [`TTFT_BUCKETS`]
/// (per-bucket counts, `+Inf` last), interpolated linearly inside its
/// bucket as Prometheus' `histogram_quantile` does; the highest finite
/// bound when it falls in `+Inf`. None without observations.
pub fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, n) in counts.iter().enumerate() {
        let upto = below + n;
        if *n > 0 && upto as f64 >= rank {
            let Some(upper) = TTFT_BUCKETS.get(i) else {
                return TTFT_BUCKETS.last().copied();
            };
            let lower = i
                .checked_sub(1)
                .and_then(|j| TTFT_BUCKETS.get(j))
                .copied()
                .unwrap_or(0.0);
            let within = (rank - below as f64) / *n as f64;
            return Some(lower + (upper - lower) * within);
        }
        below = upto;
    }
    TTFT_BUCKETS.last().copied()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn at(bucket: usize, n: u64) -> Vec<u64> {
        let mut counts = vec![0; TTFT_BUCKETS.len() + 1];
        counts[bucket] = n;
        counts
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        assert_eq!(quantile(&[], 0.95), None);
        assert_eq!(quantile(&at(3, 0), 0.95), None);
        // All in (0.2, 0.3]: p50 halfway, p95 near the top.
        let p50 = quantile(&at(3, 100), 0.5).unwrap();
        assert!((p50 - 0.25).abs() < 1e-9, "{p50}");
        let p95 = quantile(&at(3, 100), 0.95).unwrap();
        assert!((p95 - 0.295).abs() < 1e-9, "{p95}");
        // First bucket starts at zero.
        let p = quantile(&at(0, 10), 0.5).unwrap();
        assert!((p - 0.025).abs() < 1e-9, "{p}");
        // +Inf answers the highest finite bound.
        assert_eq!(quantile(&at(TTFT_BUCKETS.len(), 5), 0.95), Some(60.0));
    }

    #[test]
    fn replicas_combine_by_adding_buckets() {
        // One replica fast (95 in the first bucket), one slow (5 at 5-7.5 s):
        // the p95 of the sum stays in the fast bucket; 6 slow ones push it out.
        let mut sum = at(0, 95);
        add_buckets(&mut sum, &at(11, 5));
        assert!(quantile(&sum, 0.95).unwrap() <= 0.05);
        add_buckets(&mut sum, &at(11, 1));
        assert!(quantile(&sum, 0.95).unwrap() > 5.0);
        // A shorter list adds into a longer one and the other way round.
        let mut short = vec![1];
        add_buckets(&mut short, &[1, 2]);
        assert_eq!(short, vec![2, 2]);
    }

    #[test]
    fn snapshots_travel_as_json() {
        let s = Snapshot {
            replica: "api-1".into(),
            at_ms: 1,
            interval_ms: 1000,
            models: vec![ModelLoad {
                organization_id: Uuid::nil(),
                model: "m".into(),
                outstanding: 3,
                ttft: at(2, 1),
                ..ModelLoad::default()
            }],
        };
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(!back.models[0].is_idle());
        assert!(ModelLoad::default().is_idle());
        let held = ModelLoad {
            held: 1,
            ..ModelLoad::default()
        };
        assert!(!held.is_idle(), "a held request is demand");
        // Older replicas' snapshots have no `held`.
        let old: ModelLoad = serde_json::from_str(
            r#"{"organization_id":"00000000-0000-0000-0000-000000000000","model":"m","outstanding":0,"refused":0,"completed":0,"tokens":0,"ttft":[]}"#,
        )
        .unwrap();
        assert_eq!(old.held, 0);
    }
}
