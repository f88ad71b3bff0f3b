//! The orchestrator's Prometheus metrics: lifecycle steps run and failed
//! and their latency per instance status (the series' `job` label, kept
//! for what already scrapes them: the status whose step ran, not one of
//! `crate::jobs`), provider API calls by operation and outcome with their
//! latency, what cloud reconciliation found and did, leases held, and
//! commands dead-lettered. Counters are atomics; the gauges read at
//! scrape time (instances, outbox, stream) are passed to [`Metrics::render`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventiv_common::metrics::{Counter, Histogram, Kind, Text, LATENCY_BUCKETS};
use inventiv_providers::reconcile::Kind as Resource;

#[derive(Debug)]
struct Job {
    runs: Counter,
    failures: Counter,
    duration: Histogram,
}

/// The provider API calls of one (provider, operation).
#[derive(Debug)]
pub struct Calls {
    /// By outcome: `ok` or the error's kind.
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
    duration: Histogram,
}

impl Calls {
    /// Records one call that took `elapsed` and ended with `outcome`.
    pub fn record(&self, outcome: &'static str, elapsed: Duration) {
        if let Ok(mut o) = self.outcomes.lock() {
            *o.entry(outcome).or_default() += 1;
        }
        self.duration.observe(elapsed);
    }
}

/// The resources cloud reconciliation tells apart.
const RESOURCES: [(Resource, &str); 3] = [
    (Resource::Server, "server"),
    (Resource::Volume, "volume"),
    (Resource::SecurityGroup, "security_group"),
];

fn resource_index(r: Resource) -> usize {
    RESOURCES.iter().position(|(k, _)| *k == r).unwrap_or(0)
}

/// Per resource kind.
#[derive(Debug, Default)]
pub struct PerResource([Counter; 3]);

impl PerResource {
    pub fn count(&self, r: Resource) {
        if let Some(c) = self.0.get(resource_index(r)) {
            c.inc();
        }
    }
}

/// A step counter family: its name, its help and where a job keeps it.
type JobFamily = (&'static str, &'static str, fn(&Job) -> &Counter);

/// What this replica counts.
#[derive(Debug, Default)]
pub struct Metrics {
    jobs: Mutex<BTreeMap<&'static str, Arc<Job>>>,
    calls: Mutex<BTreeMap<(&'static str, &'static str), Arc<Calls>>>,
    /// Orphans seen by reconciliation passes (each pass counts what it sees).
    pub orphans_found: PerResource,
    pub orphans_deleted: PerResource,
    pub orphan_deletion_failures: PerResource,
    /// Live instances whose server the provider no longer lists.
    pub vanished_servers: Counter,
    /// Recorded volumes the provider no longer lists.
    pub vanished_volumes: Counter,
    pub dead_letters: Counter,
    leases: Arc<AtomicI64>,
    /// Whether this replica's autoscaler holds its lease (1) or not (0).
    pub autoscaler_leader: AtomicI64,
    /// Changes of a service's desired replicas this replica's autoscaler
    /// wrote, and scale-ups a budget cap stopped.
    pub autoscaler_scalings: Counter,
    pub autoscaler_capped: Counter,
}

/// A lease counted as held until dropped.
pub struct LeaseHeld(Arc<AtomicI64>);

impl Drop for LeaseHeld {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Gauges read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub by_status: Vec<(String, i64)>,
    pub outbox_pending: i64,
    /// Delivered, not acknowledged (XPENDING).
    pub stream_pending: Option<i64>,
    /// Not delivered to the consumer group yet (XINFO GROUPS `lag`).
    pub stream_lag: Option<i64>,
}

impl Metrics {
    /// Records one step of `job` that took `elapsed`.
    pub fn step(&self, job: &'static str, elapsed: Duration, failed: bool) {
        let Some(j) = self.jobs.lock().ok().map(|mut jobs| {
            jobs.entry(job)
                .or_insert_with(|| {
                    Arc::new(Job {
                        runs: Counter::new(),
                        failures: Counter::new(),
                        duration: Histogram::new(LATENCY_BUCKETS),
                    })
                })
                .clone()
        }) else {
            return;
        };
        j.runs.inc();
        if failed {
            j.failures.inc();
        }
        j.duration.observe(elapsed);
    }

    /// The series of `operation` calls to `provider`.
    pub fn calls(&self, provider: &'static str, operation: &'static str) -> Arc<Calls> {
        let fresh = || {
            Arc::new(Calls {
                outcomes: Mutex::new(BTreeMap::new()),
                duration: Histogram::new(LATENCY_BUCKETS),
            })
        };
        match self.calls.lock() {
            Ok(mut calls) => calls
                .entry((provider, operation))
                .or_insert_with(fresh)
                .clone(),
            Err(_) => fresh(),
        }
    }

    /// Counts a lease held until the guard drops.
    pub fn lease_held(&self) -> LeaseHeld {
        self.leases.fetch_add(1, Ordering::Relaxed);
        LeaseHeld(self.leases.clone())
    }

    /// The Prometheus text, with the gauges read at scrape time.
    pub fn render(&self, g: &Gauges) -> String {
        let mut t = Text::new();
        self.render_jobs(&mut t);
        self.render_calls(&mut t);
        let per_resource: [(&str, &str, &PerResource); 3] = [
            ("inventiv_orchestrator_orphans_found_total", "Orphan cloud resources seen by reconciliation passes (one per resource and pass), by resource.", &self.orphans_found),
            ("inventiv_orchestrator_orphans_deleted_total", "Orphan cloud resources deleted, by resource.", &self.orphans_deleted),
            ("inventiv_orchestrator_orphan_deletion_failures_total", "Orphan deletions that failed (retried with backoff), by resource.", &self.orphan_deletion_failures),
        ];
        for (name, help, counts) in per_resource {
            t.family(name, Kind::Counter, help);
            for ((_, label), c) in RESOURCES.iter().zip(&counts.0) {
                t.sample(name, &[("resource", label)], c.get());
            }
        }
        let vanished = "inventiv_orchestrator_vanished_total";
        t.family(
            vanished,
            Kind::Counter,
            "Resources the provider no longer lists though they are recorded: live instances' servers, volumes (one per resource and pass).",
        );
        t.sample(
            vanished,
            &[("resource", "server")],
            self.vanished_servers.get(),
        );
        t.sample(
            vanished,
            &[("resource", "volume")],
            self.vanished_volumes.get(),
        );
        t.single(
            "inventiv_orchestrator_leases_held",
            Kind::Gauge,
            "Instance leases this replica holds (steps running).",
            self.leases.load(Ordering::Relaxed),
        );
        t.single(
            "inventiv_autoscaler_leader",
            Kind::Gauge,
            "1 while this replica's autoscaler holds the lease (one replica acts at a time), else 0.",
            self.autoscaler_leader.load(Ordering::Relaxed),
        );
        t.single(
            "inventiv_autoscaler_scalings_total",
            Kind::Counter,
            "Changes of a service's desired replicas written by this replica's autoscaler.",
            self.autoscaler_scalings.get(),
        );
        t.single(
            "inventiv_autoscaler_budget_capped_total",
            Kind::Counter,
            "Scale-ups a service's budget cap stopped (one per episode).",
            self.autoscaler_capped.get(),
        );
        t.single(
            "inventiv_orchestrator_commands_dead_lettered_total",
            Kind::Counter,
            "Commands delivered too often without success, dead-lettered into the action log.",
            self.dead_letters.get(),
        );
        t.family(
            "inventiv_instances",
            Kind::Gauge,
            "Instances by lifecycle status.",
        );
        for (status, n) in &g.by_status {
            t.sample("inventiv_instances", &[("status", status)], n);
        }
        let pending = "inventiv_commands_pending";
        t.family(
            pending,
            Kind::Gauge,
            "Commands not yet relayed (outbox) or not yet acknowledged (stream).",
        );
        t.sample(pending, &[("queue", "outbox")], g.outbox_pending);
        if let Some(n) = g.stream_pending {
            t.sample(pending, &[("queue", "stream")], n);
        }
        if let Some(n) = g.stream_lag {
            t.single(
                "inventiv_orchestrator_command_stream_lag",
                Kind::Gauge,
                "Commands in the stream not yet delivered to the orchestrators' consumer group.",
                n,
            );
        }
        t.finish()
    }

    fn render_jobs(&self, t: &mut Text) {
        let jobs: Vec<(&str, Arc<Job>)> = self
            .jobs
            .lock()
            .map(|j| j.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        let counters: [JobFamily; 2] = [
            (
                "inventiv_orchestrator_job_runs_total",
                "Reconcile steps run, per job.",
                |j| &j.runs,
            ),
            (
                "inventiv_orchestrator_job_failures_total",
                "Reconcile steps that failed, per job.",
                |j| &j.failures,
            ),
        ];
        for (name, help, counter) in counters {
            t.family(name, Kind::Counter, help);
            for (job, j) in &jobs {
                t.sample(name, &[("job", job)], counter(j).get());
            }
        }
        let name = "inventiv_orchestrator_job_seconds";
        t.family(name, Kind::Histogram, "Reconcile step latency, per job.");
        for (job, j) in &jobs {
            t.histogram(name, &[("job", job)], &j.duration);
        }
    }

    fn render_calls(&self, t: &mut Text) {
        let calls: Vec<((&str, &str), Arc<Calls>)> = self
            .calls
            .lock()
            .map(|c| c.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default();
        let name = "inventiv_orchestrator_provider_calls_total";
        t.family(
            name,
            Kind::Counter,
            "Cloud provider API calls, by provider, operation and outcome (ok or the error's kind).",
        );
        for ((provider, operation), c) in &calls {
            let outcomes = c.outcomes.lock().map(|o| o.clone()).unwrap_or_default();
            for (outcome, n) in outcomes {
                let labels = [
                    ("provider", *provider),
                    ("operation", *operation),
                    ("outcome", outcome),
                ];
                t.sample(name, &labels, n);
            }
        }
        let name = "inventiv_orchestrator_provider_call_seconds";
        t.family(
            name,
            Kind::Histogram,
            "Cloud provider API call latency, by provider and operation.",
        );
        for ((provider, operation), c) in &calls {
            let labels = [("provider", *provider), ("operation", *operation)];
            t.histogram(name, &labels, &c.duration);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::default();
        m.step("installing", Duration::from_millis(30), false);
        m.step("installing", Duration::from_secs(3), true);
        m.calls("mock", "create_server")
            .record("ok", Duration::from_millis(20));
        m.orphans_found.count(Resource::Volume);
        let held = m.lease_held();
        let gauges = Gauges {
            by_status: vec![("ready".into(), 2)],
            outbox_pending: 1,
            stream_pending: Some(0),
            stream_lag: Some(4),
        };
        let text = m.render(&gauges);
        for line in [
            "inventiv_orchestrator_job_runs_total{job=\"installing\"} 2",
            "inventiv_orchestrator_job_failures_total{job=\"installing\"} 1",
            "inventiv_orchestrator_job_seconds_bucket{job=\"installing\",le=\"0.05\"} 1",
            "inventiv_orchestrator_job_seconds_bucket{job=\"installing\",le=\"5\"} 2",
            "inventiv_orchestrator_provider_calls_total{provider=\"mock\",operation=\"create_server\",outcome=\"ok\"} 1",
            "inventiv_orchestrator_orphans_found_total{resource=\"volume\"} 1",
            "inventiv_orchestrator_leases_held 1",
            "inventiv_orchestrator_command_stream_lag 4",
            "inventiv_instances{status=\"ready\"} 2",
            "inventiv_commands_pending{queue=\"outbox\"} 1",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in\n{text}");
        }
        drop(held);
        assert!(m
            .render(&gauges)
            .contains("inventiv_orchestrator_leases_held 0\n"));
    }
}
