//! Prometheus metrics under vLLM's names, with its `model_name` label, so
//! that whatever scrapes a real vLLM (the orchestrator, dashboards) reads the
//! mock unchanged. Updates are relaxed atomics; only `/metrics` formats text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::generate::FinishReason;

/// vLLM's buckets for `vllm:time_to_first_token_seconds`.
const TTFT_BUCKETS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// How a request ended, as `vllm:request_success_total{finished_reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished(FinishReason),
    /// The client went away before the end.
    Abort,
}

/// A histogram with fixed buckets; per-bucket counts are summed when
/// rendered.
#[derive(Debug)]
struct Histogram {
    buckets: [AtomicU64; TTFT_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        let index = TTFT_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(TTFT_BUCKETS.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, label: &str) {
        let mut cumulative = 0u64;
        for (le, bucket) in TTFT_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le:?}\",{label}}} {:?}",
                cumulative as f64
            );
        }
        if let Some(last) = self.buckets.last() {
            cumulative += last.load(Ordering::Relaxed);
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\",{label}}} {:?}",
            cumulative as f64
        );
        let _ = writeln!(out, "{name}_count{{{label}}} {:?}", cumulative as f64);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum:?}");
    }
}

/// The engine's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    /// `model_name="..."`, escaped once.
    label: String,
    running: AtomicU64,
    /// KV-cache blocks held by running requests, of `kv_capacity`.
    kv_blocks: AtomicU64,
    kv_capacity: u64,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    prefix_cache_queries: AtomicU64,
    prefix_cache_hits: AtomicU64,
    success_stop: AtomicU64,
    success_length: AtomicU64,
    success_abort: AtomicU64,
    ttft: Histogram,
}

impl Metrics {
    /// The metrics of `model` on a KV cache of `kv_capacity` blocks.
    pub fn new(model: &str, kv_capacity: usize) -> Self {
        let mut escaped = String::with_capacity(model.len());
        for c in model.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '"' => escaped.push_str("\\\""),
                '\n' => escaped.push_str("\\n"),
                c => escaped.push(c),
            }
        }
        Self {
            label: format!("model_name=\"{escaped}\""),
            running: AtomicU64::new(0),
            kv_blocks: AtomicU64::new(0),
            kv_capacity: u64::try_from(kv_capacity).unwrap_or(u64::MAX).max(1),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            prefix_cache_queries: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            success_stop: AtomicU64::new(0),
            success_length: AtomicU64::new(0),
            success_abort: AtomicU64::new(0),
            ttft: Histogram::new(),
        }
    }

    pub fn request_started(&self, prompt_tokens: u32) {
        self.running.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens
            .fetch_add(u64::from(prompt_tokens), Ordering::Relaxed);
    }

    /// A request now holds `blocks` KV-cache blocks (its prompt's).
    pub fn kv_blocks_held(&self, blocks: u64) {
        self.kv_blocks.fetch_add(blocks, Ordering::Relaxed);
    }

    /// A request ended and freed its blocks.
    pub fn kv_blocks_freed(&self, blocks: u64) {
        self.kv_blocks.fetch_sub(blocks, Ordering::Relaxed);
    }

    /// Prompt tokens looked up in the prefix cache, and those found.
    pub fn prefix_cache(&self, queried: u32, hits: u32) {
        self.prefix_cache_queries
            .fetch_add(u64::from(queried), Ordering::Relaxed);
        self.prefix_cache_hits
            .fetch_add(u64::from(hits), Ordering::Relaxed);
    }

    pub fn first_token(&self, after: Duration) {
        self.ttft.observe(after);
    }

    pub fn request_ended(&self, generated: u32, outcome: Outcome) {
        self.generation_tokens
            .fetch_add(u64::from(generated), Ordering::Relaxed);
        let counter = match outcome {
            Outcome::Finished(FinishReason::Stop) => &self.success_stop,
            Outcome::Finished(FinishReason::Length) => &self.success_length,
            Outcome::Abort => &self.success_abort,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4), with `waiting`
    /// requests queued for their prefill (counted among the running by
    /// [`Metrics::request_started`], shown apart as vLLM does).
    pub fn render(&self, waiting: usize) -> String {
        let label = &self.label;
        let mut out = String::with_capacity(4096);
        let in_flight = self.running.load(Ordering::Relaxed);
        let waiting = u64::try_from(waiting).unwrap_or(u64::MAX).min(in_flight);
        let running = (in_flight - waiting) as f64;
        // vLLM's usage: the blocks running requests hold (cached blocks no
        // request holds are free, evictable).
        let kv_usage =
            (self.kv_blocks.load(Ordering::Relaxed) as f64 / self.kv_capacity as f64).min(1.0);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let gauges = [
            (
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                running,
            ),
            (
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                waiting as f64,
            ),
            (
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                kv_usage,
            ),
            // The name before vLLM 0.10, still exposed by it (deprecated).
            (
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage. DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
                kv_usage,
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name}{{{label}}} {value:?}");
        }
        let counters = [
            (
                "vllm:prompt_tokens_total",
                "Number of prefill tokens processed.",
                &self.prompt_tokens,
            ),
            (
                "vllm:generation_tokens_total",
                "Number of generation tokens processed.",
                &self.generation_tokens,
            ),
            (
                "vllm:prefix_cache_queries_total",
                "Prefix cache queries, in terms of number of queried tokens.",
                &self.prefix_cache_queries,
            ),
            (
                "vllm:prefix_cache_hits_total",
                "Prefix cache hits, in terms of number of cached tokens.",
                &self.prefix_cache_hits,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut out, name, "counter", help);
            let _ = writeln!(
                out,
                "{name}{{{label}}} {:?}",
                value.load(Ordering::Relaxed) as f64
            );
        }
        let name = "vllm:request_success_total";
        family(
            &mut out,
            name,
            "counter",
            "Count of successfully processed requests.",
        );
        for (reason, value) in [
            ("stop", &self.success_stop),
            ("length", &self.success_length),
            ("abort", &self.success_abort),
        ] {
            let value = value.load(Ordering::Relaxed) as f64;
            let _ = writeln!(
                out,
                "{name}{{finished_reason=\"{reason}\",{label}}} {value:?}"
            );
        }
        let name = "vllm:time_to_first_token_seconds";
        family(
            &mut out,
            name,
            "histogram",
            "Histogram of time to first token in seconds.",
        );
        self.ttft.render(&mut out, name, label);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_requests_are_not_running() {
        let m = Metrics::new("m", 4);
        for _ in 0..3 {
            m.request_started(1);
        }
        m.kv_blocks_held(9);
        let text = m.render(2);
        for line in [
            r#"vllm:num_requests_running{model_name="m"} 1.0"#,
            r#"vllm:num_requests_waiting{model_name="m"} 2.0"#,
            r#"vllm:kv_cache_usage_perc{model_name="m"} 1.0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn histogram_is_cumulative_and_sums() {
        let m = Metrics::new("a\"b", 10);
        m.request_started(3);
        m.kv_blocks_held(4);
        m.first_token(Duration::from_millis(3));
        m.first_token(Duration::from_secs(5000));
        m.request_ended(7, Outcome::Finished(FinishReason::Length));
        m.prefix_cache(40, 32);
        let text = m.render(0);
        let label = r#"model_name="a\"b""#;
        for line in [
            format!(r#"vllm:time_to_first_token_seconds_bucket{{le="0.001",{label}}} 0.0"#),
            format!(r#"vllm:time_to_first_token_seconds_bucket{{le="0.005",{label}}} 1.0"#),
            format!(r#"vllm:time_to_first_token_seconds_bucket{{le="2560.0",{label}}} 1.0"#),
            format!(r#"vllm:time_to_first_token_seconds_bucket{{le="+Inf",{label}}} 2.0"#),
            format!("vllm:time_to_first_token_seconds_count{{{label}}} 2.0"),
            format!("vllm:time_to_first_token_seconds_sum{{{label}}} 5000.003"),
            format!("vllm:prompt_tokens_total{{{label}}} 3.0"),
            format!("vllm:generation_tokens_total{{{label}}} 7.0"),
            format!("vllm:prefix_cache_queries_total{{{label}}} 40.0"),
            format!("vllm:prefix_cache_hits_total{{{label}}} 32.0"),
            format!(r#"vllm:request_success_total{{finished_reason="length",{label}}} 1.0"#),
            format!("vllm:num_requests_running{{{label}}} 0.0"),
            format!("vllm:kv_cache_usage_perc{{{label}}} 0.4"),
            format!("vllm:gpu_cache_usage_perc{{{label}}} 0.4"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
