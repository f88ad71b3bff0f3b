//! The arithmetic of the usage drift check, free of I/O: counter samples
//! cut into spans over which one series only grew, and the verdict on the
//! engines' and the proxy's counts over those spans.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One counter sample as the heartbeat stored it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub sampled_at: DateTime<Utc>,
    pub series: String,
    pub prompt_total: i64,
    pub generation_total: i64,
}

/// A span over which one series' counters only grew, and by how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub prompt: i64,
    pub generation: i64,
}

/// Cuts samples (oldest first) into spans: two consecutive samples of the
/// same series whose counters did not go down extend the current span;
/// anything else (new series, a counter reset) ends it.
pub fn spans(samples: &[Sample]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for pair in samples.windows(2) {
        let [a, b] = pair else { continue };
        let grew = a.series == b.series
            && b.prompt_total >= a.prompt_total
            && b.generation_total >= a.generation_total;
        if !grew {
            continue;
        }
        let prompt = b.prompt_total - a.prompt_total;
        let generation = b.generation_total - a.generation_total;
        match out.last_mut() {
            Some(last) if last.to == a.sampled_at => {
                last.to = b.sampled_at;
                last.prompt += prompt;
                last.generation += generation;
            }
            _ => out.push(Span {
                from: a.sampled_at,
                to: b.sampled_at,
                prompt,
                generation,
            }),
        }
    }
    out
}

/// Where an instance's metering stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// The proxy's count and the engines' agree within the threshold.
    Ok,
    /// They differ by more than the threshold.
    Alert,
    /// Too few tokens (or no counters) in the window to conclude.
    InsufficientData,
}

impl DriftStatus {
    /// Every value (the CHECK of `instance_usage_reconciliations.status` lists them).
    pub const ALL: [DriftStatus; 3] = [
        DriftStatus::Ok,
        DriftStatus::Alert,
        DriftStatus::InsufficientData,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::Ok => "ok",
            DriftStatus::Alert => "alert",
            DriftStatus::InsufficientData => "insufficient_data",
        }
    }
}

/// Tokens on both sides over the same spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub engine_prompt: i64,
    pub engine_generation: i64,
    pub proxy_prompt: i64,
    pub proxy_completion: i64,
}

/// The drift and its verdict. Each of prompt and generation is compared on
/// its own (`|engine - proxy| / max(engine, 1)`) when either side counted
/// at least `min_tokens` of it, so a handful of requests cut by the window
/// edges never alarms; the drift is the larger of the compared two.
pub fn judge(c: Counts, threshold: f64, min_tokens: i64) -> (f64, DriftStatus) {
    let pairs = [
        (c.engine_prompt, c.proxy_prompt),
        (c.engine_generation, c.proxy_completion),
    ];
    let compared: Vec<f64> = pairs
        .iter()
        .filter(|(engine, proxy)| *engine >= min_tokens || *proxy >= min_tokens)
        .map(|(engine, proxy)| (engine - proxy).unsigned_abs() as f64 / (*engine).max(1) as f64)
        .collect();
    let Some(drift) = compared.iter().copied().reduce(f64::max) else {
        return (0.0, DriftStatus::InsufficientData);
    };
    let status = if drift > threshold {
        DriftStatus::Alert
    } else {
        DriftStatus::Ok
    };
    (drift, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    fn sample(secs: i64, series: &str, prompt: i64, generation: i64) -> Sample {
        Sample {
            sampled_at: at(secs),
            series: series.into(),
            prompt_total: prompt,
            generation_total: generation,
        }
    }

    fn span(from: i64, to: i64, prompt: i64, generation: i64) -> Span {
        Span {
            from: at(from),
            to: at(to),
            prompt,
            generation,
        }
    }

    #[test]
    fn spans_follow_one_series_while_it_grows() {
        let cases: Vec<(&str, Vec<Sample>, Vec<Span>)> = vec![
            ("nothing", vec![], vec![]),
            ("one sample", vec![sample(0, "a:0", 5, 5)], vec![]),
            (
                "steady growth is one span",
                vec![
                    sample(0, "a:0", 10, 1),
                    sample(10, "a:0", 20, 3),
                    sample(20, "a:0", 50, 9),
                ],
                vec![span(0, 20, 40, 8)],
            ),
            (
                "an engine restart starts a new span; the gap is left out",
                vec![
                    sample(0, "a:0", 10, 1),
                    sample(10, "a:0", 20, 3),
                    sample(20, "a:1", 4, 1),
                    sample(30, "a:1", 10, 2),
                ],
                vec![span(0, 10, 10, 2), span(20, 30, 6, 1)],
            ),
            (
                "a counter going down in one series is a reset too",
                vec![
                    sample(0, "a:0", 100, 10),
                    sample(10, "a:0", 3, 1),
                    sample(20, "a:0", 8, 2),
                ],
                vec![span(10, 20, 5, 1)],
            ),
            (
                "a new agent boot is a new series",
                vec![
                    sample(0, "a:0", 10, 1),
                    sample(10, "b:0", 12, 1),
                    sample(20, "b:0", 15, 2),
                ],
                vec![span(10, 20, 3, 1)],
            ),
        ];
        for (name, samples, want) in cases {
            assert_eq!(spans(&samples), want, "{name}");
        }
    }

    #[test]
    fn judge_table() {
        let c = |ep, eg, pp, pc| Counts {
            engine_prompt: ep,
            engine_generation: eg,
            proxy_prompt: pp,
            proxy_completion: pc,
        };
        // (case, counts, min tokens, status)
        let cases = [
            (
                "equal",
                c(100_000, 50_000, 100_000, 50_000),
                1000,
                DriftStatus::Ok,
            ),
            (
                "0.4 % under",
                c(100_000, 50_000, 99_600, 50_000),
                1000,
                DriftStatus::Ok,
            ),
            (
                "0.6 % under",
                c(100_000, 50_000, 99_400, 50_000),
                1000,
                DriftStatus::Alert,
            ),
            (
                "generation drifts",
                c(100_000, 50_000, 100_000, 49_000),
                1000,
                DriftStatus::Alert,
            ),
            (
                "proxy ahead of the engine",
                c(0, 0, 5000, 0),
                1000,
                DriftStatus::Alert,
            ),
            (
                "too few tokens",
                c(500, 20, 0, 0),
                1000,
                DriftStatus::InsufficientData,
            ),
            (
                "nothing at all",
                c(0, 0, 0, 0),
                1,
                DriftStatus::InsufficientData,
            ),
            (
                "small generation side ignored",
                c(100_000, 30, 100_000, 25),
                1000,
                DriftStatus::Ok,
            ),
        ];
        for (name, counts, min, want) in cases {
            assert_eq!(judge(counts, 0.005, min).1, want, "{name}");
        }
        let (drift, _) = judge(c(1000, 0, 990, 0), 0.005, 1);
        assert!((drift - 0.01).abs() < 1e-12);
    }
}
