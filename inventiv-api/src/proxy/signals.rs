//! The load this replica publishes for the orchestrator's autoscaler
//! ([`inventiv_common::signals`]): every `INVENTIV_SIGNALS_INTERVAL_MS`,
//! per (owner organization, model), the requests in flight, those refused
//! for lack of a ready worker, those completed, the completion tokens and
//! a TTFT histogram of the interval. The `/v1` path only adds to atomics
//! ([`Serving`], on the owner's series that routing hands it, and the
//! workers' outstanding counters routing keeps); this task reads them,
//! subtracts what it published last, and writes one Redis key. A publish
//! that fails leaves its counts to the next one. Requests held for a cold
//! model ([`super::held`]) are published as a level, as in-flight ones are.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inventiv_common::metrics::{Counter, Histogram};
use inventiv_common::signals::{self, ModelLoad, Snapshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::ModelSeries;
use crate::state::AppState;

/// What an organization's workers of one model served; cumulative, read by
/// the publisher.
#[derive(Debug)]
pub struct Serving {
    /// Requests refused because no worker was ready (`no_capacity`).
    pub refused: Counter,
    /// Requests that ended on a worker, whatever their status.
    pub completed: Counter,
    /// Completion tokens billed.
    pub tokens: Counter,
    /// Streams: from the request's arrival to its first content event.
    pub ttft: Histogram,
    /// Requests held for a replica of this model's service at zero.
    pub held: super::held::HeldSeries,
}

impl Default for Serving {
    fn default() -> Serving {
        Serving {
            refused: Counter::new(),
            completed: Counter::new(),
            tokens: Counter::new(),
            ttft: Histogram::new(signals::TTFT_BUCKETS),
            held: super::held::HeldSeries::default(),
        }
    }
}

/// The cumulative counts of one (organization, model) at a publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Counts {
    refused: u64,
    completed: u64,
    tokens: u64,
    ttft: Vec<u64>,
}

impl Counts {
    fn of(s: &Serving) -> Counts {
        Counts {
            refused: s.refused.get(),
            completed: s.completed.get(),
            tokens: s.tokens.get(),
            ttft: s.ttft.counts(),
        }
    }
}

type Key = (Uuid, Box<str>);

/// What was last published: the next snapshot counts from there.
#[derive(Debug, Default)]
struct Baseline(HashMap<Key, Counts>);

impl Baseline {
    /// The loads since this baseline, the idle ones left out, and the
    /// baseline they lead to.
    fn loads(
        &self,
        series: &[Arc<ModelSeries>],
        outstanding: &[(Arc<ModelSeries>, Uuid, u32)],
    ) -> (Vec<ModelLoad>, Baseline) {
        let mut in_flight: HashMap<(Uuid, &str), u64> = HashMap::new();
        for (s, _, n) in outstanding {
            *in_flight.entry((s.organization_id, &*s.model)).or_default() += u64::from(*n);
        }
        let mut next = HashMap::with_capacity(series.len());
        let mut loads = Vec::new();
        for s in series {
            let now = Counts::of(&s.serving);
            let key: Key = (s.organization_id, s.model.clone());
            let before = self.0.get(&key).cloned().unwrap_or_default();
            let load = ModelLoad {
                organization_id: s.organization_id,
                model: s.model.to_string(),
                outstanding: in_flight
                    .get(&(s.organization_id, &*s.model))
                    .copied()
                    .unwrap_or(0),
                refused: now.refused.saturating_sub(before.refused),
                held: s.serving.held.waiting(),
                completed: now.completed.saturating_sub(before.completed),
                tokens: now.tokens.saturating_sub(before.tokens),
                ttft: now
                    .ttft
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.saturating_sub(before.ttft.get(i).copied().unwrap_or(0)))
                    .collect(),
            };
            if !load.is_idle() {
                loads.push(load);
            }
            next.insert(key, now);
        }
        (loads, Baseline(next))
    }
}

/// Publishes this replica's snapshot every interval until shutdown, then
/// takes it back so its in-flight requests stop counting at once.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let every = state.config.signals_interval;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut baseline = Baseline::default();
    let mut since = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (models, next) = baseline.loads(&state.routing.series(), &state.routing.outstanding());
        let snapshot = Snapshot {
            replica: state.config.replica_id.clone(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            interval_ms: u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
            models,
        };
        match tokio::time::timeout(
            every.max(Duration::from_secs(1)),
            publish(&state, &snapshot),
        )
        .await
        {
            Ok(Ok(())) => {
                state.metrics.signals_published.inc();
                baseline = next;
                since = Instant::now();
            }
            Ok(Err(e)) => {
                state.metrics.signals_failures.inc();
                tracing::warn!(error = %e, "publishing the load signals failed");
            }
            Err(_) => {
                state.metrics.signals_failures.inc();
                tracing::warn!("publishing the load signals timed out");
            }
        }
    }
    if let Err(e) = withdraw(&state).await {
        tracing::warn!(error = %e, "withdrawing the load signals failed; they expire on their own");
    }
}

/// Writes the snapshot with its TTL and lists the replica in the index
/// until then; drops the index's expired entries.
async fn publish(state: &AppState, snapshot: &Snapshot) -> anyhow::Result<()> {
    let prefix = &state.config.redis_prefix;
    let ttl_ms = u64::try_from(state.config.signals_interval.as_millis())
        .unwrap_or(u64::MAX / 4)
        .saturating_mul(u64::from(signals::TTL_INTERVALS));
    let expires = snapshot
        .at_ms
        .saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX / 4));
    let json = serde_json::to_string(snapshot)?;
    let mut redis = state.redis.clone();
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(signals::replica_key(prefix, &snapshot.replica))
        .arg(json)
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .cmd("ZADD")
        .arg(signals::index_key(prefix))
        .arg(expires)
        .arg(&snapshot.replica)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(signals::index_key(prefix))
        .arg("-inf")
        .arg(snapshot.at_ms)
        .ignore()
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}

/// Removes the replica's snapshot and its index entry.
async fn withdraw(state: &AppState) -> redis::RedisResult<()> {
    let prefix = &state.config.redis_prefix;
    let replica = &state.config.replica_id;
    let mut redis = state.redis.clone();
    redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(signals::replica_key(prefix, replica))
        .ignore()
        .cmd("ZREM")
        .arg(signals::index_key(prefix))
        .arg(replica)
        .ignore()
        .query_async::<()>(&mut redis)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(org: Uuid, model: &str) -> Arc<ModelSeries> {
        Arc::new(ModelSeries::new(org, model))
    }

    #[test]
    fn each_snapshot_counts_its_interval_and_leaves_idle_models_out() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (sa, sb) = (series(a, "m"), series(b, "m"));
        let all = [sa.clone(), sb.clone()];
        sa.serving.completed.inc();
        sa.serving.tokens.add(7);
        sa.serving.ttft.observe(Duration::from_millis(250));
        let outstanding = [
            (sa.clone(), Uuid::new_v4(), 2),
            (sa.clone(), Uuid::new_v4(), 1),
        ];
        let (loads, next) = Baseline::default().loads(&all, &outstanding);
        assert_eq!(loads.len(), 1, "{loads:?}");
        let load = &loads[0];
        assert_eq!(
            (
                load.organization_id,
                load.outstanding,
                load.completed,
                load.tokens
            ),
            (a, 3, 1, 7)
        );
        assert_eq!(load.ttft.iter().sum::<u64>(), 1);
        assert_eq!(load.ttft.len(), signals::TTFT_BUCKETS.len() + 1);
        assert_eq!(
            signals::quantile(&load.ttft, 0.5).map(|s| s > 0.2 && s <= 0.3),
            Some(true)
        );

        // The next interval: only what happened since.
        sa.serving.completed.inc();
        sb.serving.refused.inc();
        let (loads, _) = next.loads(&all, &[]);
        let by_org: HashMap<Uuid, &ModelLoad> =
            loads.iter().map(|l| (l.organization_id, l)).collect();
        assert_eq!(
            (
                by_org[&a].completed,
                by_org[&a].tokens,
                by_org[&a].outstanding
            ),
            (1, 0, 0)
        );
        assert_eq!(by_org[&a].ttft.iter().sum::<u64>(), 0);
        assert_eq!((by_org[&b].refused, by_org[&b].completed), (1, 0));

        // A failed publish keeps the old baseline: the next one carries both.
        let (loads, _) = Baseline::default().loads(&all, &[]);
        let a_load = loads.iter().find(|l| l.organization_id == a);
        assert_eq!(a_load.map(|l| l.completed), Some(2));
    }
}
