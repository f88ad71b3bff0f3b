//! The autoscaler's input: every live API replica's latest load snapshot
//! ([`inventiv_common::signals`]) read from Redis and combined per
//! (organization, model) by adding them, and a service's recent history of
//! those combined loads. A snapshot read twice (the reader faster than a
//! replica publishes) counts its in-flight requests again but not its
//! interval's counts; read at least as often as the replicas publish
//! (`INVENTIV_SIGNALS_INTERVAL_MS`) or some intervals' counts are missed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use inventiv_common::signals::{self, Snapshot};
use uuid::Uuid;

/// The load of one (organization, model), summed over the API replicas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    /// Requests in flight on its workers.
    pub outstanding: u64,
    /// Requests refused for lack of a ready worker.
    pub refused: u64,
    /// Requests held for a replica of a service at zero (a level, as
    /// `outstanding`).
    pub held: u64,
    /// Requests that ended on a worker.
    pub completed: u64,
    /// Completion tokens.
    pub tokens: u64,
    /// Completion tokens per second (each replica's over its interval, summed).
    pub tokens_per_s: f64,
    /// First tokens per TTFT bucket ([`signals::TTFT_BUCKETS`], `+Inf` last).
    pub ttft: Vec<u64>,
}

impl Load {
    /// Nothing in flight and nothing happened.
    pub fn is_idle(&self) -> bool {
        self.outstanding == 0
            && self.refused == 0
            && self.held == 0
            && self.completed == 0
            && self.tokens == 0
            && self.ttft.iter().all(|n| *n == 0)
    }
}

/// Every live replica's load at one time.
#[derive(Debug, Clone, Default)]
pub struct Combined {
    /// When it was read.
    pub at: DateTime<Utc>,
    /// The API replicas whose snapshots it holds.
    pub replicas: usize,
    pub loads: HashMap<(Uuid, String), Load>,
}

impl Combined {
    /// The load of (`org`, `model`); idle when no replica reported it.
    pub fn load(&self, org: Uuid, model: &str) -> Load {
        self.loads
            .get(&(org, model.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// The sample a service's [`History`] takes of (`org`, `model`).
    pub fn sample(&self, org: Uuid, model: &str) -> Sample {
        Sample {
            at: self.at,
            load: self.load(org, model),
        }
    }
}

/// Reads and combines the replicas' snapshots; remembers which it has
/// already counted.
#[derive(Debug, Default)]
pub struct Reader {
    /// Replica → the `at_ms` of its snapshot last counted.
    counted: HashMap<String, i64>,
}

impl Reader {
    /// The live replicas' snapshots, combined.
    pub async fn read(
        &mut self,
        redis: &mut redis::aio::ConnectionManager,
        prefix: &str,
    ) -> redis::RedisResult<Combined> {
        let now = Utc::now();
        let replicas: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(signals::index_key(prefix))
            .arg(now.timestamp_millis())
            .arg("+inf")
            .query_async(redis)
            .await?;
        if replicas.is_empty() {
            self.counted.clear();
            return Ok(Combined {
                at: now,
                ..Combined::default()
            });
        }
        let keys: Vec<String> = replicas
            .iter()
            .map(|r| signals::replica_key(prefix, r))
            .collect();
        let texts: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(redis).await?;
        let snapshots: Vec<Snapshot> = texts
            .into_iter()
            .flatten()
            .filter_map(|t| match serde_json::from_str(&t) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "an API replica's load snapshot does not decode; skipped");
                    None
                }
            })
            .collect();
        Ok(self.combine(now, &snapshots))
    }

    /// Adds the snapshots up; a snapshot counted before adds only its
    /// in-flight requests and its rate.
    pub fn combine(&mut self, at: DateTime<Utc>, snapshots: &[Snapshot]) -> Combined {
        let mut loads: HashMap<(Uuid, String), Load> = HashMap::new();
        let mut counted = HashMap::with_capacity(snapshots.len());
        for s in snapshots {
            let fresh = self.counted.get(&s.replica) != Some(&s.at_ms);
            counted.insert(s.replica.clone(), s.at_ms);
            let secs = Duration::from_millis(s.interval_ms.max(1)).as_secs_f64();
            for m in &s.models {
                let load = loads
                    .entry((m.organization_id, m.model.clone()))
                    .or_default();
                load.outstanding = load.outstanding.saturating_add(m.outstanding);
                load.held = load.held.saturating_add(m.held);
                load.tokens_per_s += m.tokens as f64 / secs;
                if fresh {
                    load.refused = load.refused.saturating_add(m.refused);
                    load.completed = load.completed.saturating_add(m.completed);
                    load.tokens = load.tokens.saturating_add(m.tokens);
                    signals::add_buckets(&mut load.ttft, &m.ttft);
                }
            }
        }
        self.counted = counted;
        Combined {
            at,
            replicas: snapshots.len(),
            loads,
        }
    }
}

/// One combined load of a service at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub load: Load,
}

/// A service's recent samples, oldest first, kept as long as its longest
/// window needs.
#[derive(Debug, Clone)]
pub struct History {
    samples: Vec<Sample>,
    keep: Duration,
}

impl History {
    /// A history that keeps `keep` of samples (the policy's longest window
    /// and a little more).
    pub fn new(keep: Duration) -> History {
        History {
            samples: Vec::new(),
            keep,
        }
    }

    /// Adds a sample (an older one than the last is dropped) and forgets
    /// those no window reaches any more, keeping the one at the edge.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.last().is_some_and(|l| l.at > sample.at) {
            return;
        }
        let edge = chrono::Duration::from_std(self.keep)
            .ok()
            .map(|k| sample.at - k);
        self.samples.push(sample);
        if let Some(edge) = edge {
            let before = self.samples.partition_point(|s| s.at <= edge);
            self.samples.drain(..before.saturating_sub(1));
        }
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inventiv_common::signals::ModelLoad;

    fn snapshot(replica: &str, at_ms: i64, models: Vec<ModelLoad>) -> Snapshot {
        Snapshot {
            replica: replica.into(),
            at_ms,
            interval_ms: 1000,
            models,
        }
    }

    fn load(org: Uuid, outstanding: u64, completed: u64, ttft: Vec<u64>) -> ModelLoad {
        ModelLoad {
            organization_id: org,
            model: "m".into(),
            outstanding,
            completed,
            tokens: completed * 10,
            ttft,
            ..ModelLoad::default()
        }
    }

    #[test]
    fn replicas_add_up_and_a_snapshot_counts_once() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut reader = Reader::default();
        let first = [
            snapshot("r1", 1, vec![load(a, 3, 2, vec![1, 0, 1])]),
            snapshot(
                "r2",
                1,
                vec![load(a, 4, 1, vec![0, 2]), load(b, 1, 0, vec![])],
            ),
        ];
        let c = reader.combine(Utc::now(), &first);
        assert_eq!(c.replicas, 2);
        let la = c.load(a, "m");
        assert_eq!((la.outstanding, la.completed, la.tokens), (7, 3, 30));
        assert_eq!(la.ttft, vec![1, 2, 1]);
        assert!((la.tokens_per_s - 30.0).abs() < 1e-9);
        assert_eq!(c.load(b, "m").outstanding, 1);
        assert!(c.load(Uuid::new_v4(), "m").is_idle());

        // r1 has not published again: its in-flight requests still count,
        // its interval's counts do not.
        let second = [
            snapshot("r1", 1, vec![load(a, 3, 2, vec![1])]),
            snapshot("r2", 2, vec![load(a, 1, 1, vec![])]),
        ];
        let la = reader.combine(Utc::now(), &second).load(a, "m");
        assert_eq!((la.outstanding, la.completed), (4, 1));
        assert_eq!(la.ttft.iter().sum::<u64>(), 0);
    }

    #[test]
    fn history_keeps_what_the_longest_window_reaches() {
        let t0 = Utc::now();
        let mut h = History::new(Duration::from_secs(10));
        for s in 0..30 {
            h.push(Sample {
                at: t0 + chrono::Duration::seconds(s),
                load: Load::default(),
            });
        }
        let s = h.samples();
        // The one at the window's edge (t0+19 ≤ 29-10) stays.
        assert_eq!(
            s.first().map(|x| x.at),
            Some(t0 + chrono::Duration::seconds(19))
        );
        assert_eq!(s.len(), 11);
        // An out-of-order sample is dropped.
        h.push(Sample {
            at: t0,
            load: Load::default(),
        });
        assert_eq!(h.samples().len(), 11);
    }
}
