//! The orchestrator's Prometheus metrics: lifecycle steps run and failed
//! and their latency per instance status (the series' `job` label, kept
//! for what already scrapes them: the status whose step ran, not one of
//! `crate::jobs`), instances by status, commands waiting in the outbox and
//! in the stream. Counters are atomics on the hot path; gauges are read
//! from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0];

#[derive(Default, Clone)]
struct Job {
    runs: u64,
    failures: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
}

/// Per-job counters and latency histograms.
#[derive(Default)]
pub struct Metrics {
    jobs: Mutex<BTreeMap<&'static str, Job>>,
}

impl Metrics {
    /// Records one step of `job` that took `elapsed`.
    pub fn step(&self, job: &'static str, elapsed: Duration, failed: bool) {
        let Ok(mut jobs) = self.jobs.lock() else {
            return;
        };
        let j = jobs.entry(job).or_default();
        j.runs += 1;
        if failed {
            j.failures += 1;
        }
        let secs = elapsed.as_secs_f64();
        j.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                j.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text, with the database gauges.
    pub fn render(
        &self,
        by_status: &[(String, i64)],
        outbox_pending: i64,
        stream_pending: Option<i64>,
    ) -> String {
        let mut out = String::with_capacity(2048);
        let jobs = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
        let _ = writeln!(out, "# HELP inventiv_orchestrator_job_runs_total Reconcile steps run, per job.\n# TYPE inventiv_orchestrator_job_runs_total counter");
        for (name, j) in &jobs {
            let _ = writeln!(
                out,
                "inventiv_orchestrator_job_runs_total{{job=\"{name}\"}} {}",
                j.runs
            );
        }
        let _ = writeln!(out, "# HELP inventiv_orchestrator_job_failures_total Reconcile steps that failed, per job.\n# TYPE inventiv_orchestrator_job_failures_total counter");
        for (name, j) in &jobs {
            let _ = writeln!(
                out,
                "inventiv_orchestrator_job_failures_total{{job=\"{name}\"}} {}",
                j.failures
            );
        }
        let _ = writeln!(out, "# HELP inventiv_orchestrator_job_seconds Reconcile step latency, per job.\n# TYPE inventiv_orchestrator_job_seconds histogram");
        for (name, j) in &jobs {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "inventiv_orchestrator_job_seconds_bucket{{job=\"{name}\",le=\"{b}\"}} {}",
                    j.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "inventiv_orchestrator_job_seconds_bucket{{job=\"{name}\",le=\"+Inf\"}} {}",
                j.runs
            );
            let _ = writeln!(
                out,
                "inventiv_orchestrator_job_seconds_sum{{job=\"{name}\"}} {}",
                j.sum
            );
            let _ = writeln!(
                out,
                "inventiv_orchestrator_job_seconds_count{{job=\"{name}\"}} {}",
                j.runs
            );
        }
        let _ = writeln!(out, "# HELP inventiv_instances Instances by lifecycle status.\n# TYPE inventiv_instances gauge");
        for (status, n) in by_status {
            let _ = writeln!(out, "inventiv_instances{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP inventiv_commands_pending Commands not yet relayed (outbox) or not yet acknowledged (stream).");
        let _ = writeln!(out, "# TYPE inventiv_commands_pending gauge\ninventiv_commands_pending{{queue=\"outbox\"}} {outbox_pending}");
        if let Some(n) = stream_pending {
            let _ = writeln!(out, "inventiv_commands_pending{{queue=\"stream\"}} {n}");
        }
        out
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
        let text = m.render(&[("ready".into(), 2)], 1, Some(0));
        assert!(
            text.contains("inventiv_orchestrator_job_runs_total{job=\"installing\"} 2"),
            "{text}"
        );
        assert!(text.contains("inventiv_orchestrator_job_failures_total{job=\"installing\"} 1"));
        assert!(text.contains(
            "inventiv_orchestrator_job_seconds_bucket{job=\"installing\",le=\"0.05\"} 1"
        ));
        assert!(text
            .contains("inventiv_orchestrator_job_seconds_bucket{job=\"installing\",le=\"5\"} 2"));
        assert!(text.contains("inventiv_instances{status=\"ready\"} 2"));
        assert!(text.contains("inventiv_commands_pending{queue=\"outbox\"} 1"));
    }
}
