//! The autoscaler's decision for one service: a pure function of its
//! policy, its replicas, its recent combined load ([`Sample`]s), the time
//! of its last scaling and the clock, answering "keep" or "scale to N"
//! with the reason a person reads in the service's timeline.
//!
//! The rules, in order:
//! 1. Never above the maximum nor below the minimum (a budget cap that is
//!    reached stops even the climb to the minimum).
//! 2. At zero replicas, requests held for a replica or that found none
//!    start one at once.
//! 3. Up when a target is exceeded over the whole up window: by as many
//!    replicas as bring the outstanding requests per replica down to the
//!    target, by one for a TTFT p95 over its target (not while a replica
//!    is starting, nor before a window has passed since the last scaling:
//!    the latency of the replicas added is not measured yet); held
//!    requests count as outstanding ones. Replicas that
//!    are starting count as replicas: they take load as soon as they are
//!    ready, and counting them keeps one step from being taken twice.
//! 4. Down one replica at a time, after the cooldown since the last
//!    scaling, while none is starting, when over the whole down window the
//!    replicas left would stay below [`DOWN_RATIO`] of each target (the
//!    hysteresis: a load that just stopped calling for one more replica
//!    does not call for one less); to zero (from any count) when
//!    `min_replicas` is 0 and nothing happened for the idle window.
//!
//! A window is trusted only when the history reaches back to its start
//! with no hole longer than [`MAX_GAP`] (an orchestrator that took over or
//! lost Redis does not act on what it did not see).

use std::time::Duration;

use chrono::{DateTime, Utc};
use inventiv_common::signals;

use super::signals::Sample;

/// The replicas left after a scale-down must stay below this share of each
/// target.
pub const DOWN_RATIO: f64 = 0.7;

/// Fewer first tokens than this in a window say nothing of its TTFT p95.
pub const MIN_TTFT_OBSERVATIONS: u64 = 10;

/// A hole longer than this between samples (or since the last one) makes
/// a window untrusted.
pub const MAX_GAP: Duration = Duration::from_secs(15);

/// The default time a target must be exceeded before scaling up.
pub const DEFAULT_UP_WINDOW: Duration = Duration::from_secs(30);

/// The default time the load must stay low before scaling down.
pub const DEFAULT_DOWN_WINDOW: Duration = Duration::from_secs(120);

/// A service's scaling policy as the decision sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min_replicas: u32,
    /// Below `min_replicas` it counts as `min_replicas`.
    pub max_replicas: u32,
    /// Outstanding requests per replica to stay under (ignored unless > 0).
    pub target_outstanding: Option<f64>,
    /// TTFT p95 in milliseconds to stay under (ignored unless > 0).
    pub target_ttft_p95_ms: Option<f64>,
    pub up_window: Duration,
    pub down_window: Duration,
    /// With `min_replicas` 0: nothing for this long scales to zero.
    pub idle_window: Duration,
    /// No scale-down sooner than this after any scaling.
    pub scale_down_cooldown: Duration,
    /// The service's GPU-hour or EUR cap is reached: no scale-up.
    pub budget_cap_reached: bool,
}

impl Policy {
    /// Bounds only: no target, the default windows, a 15 minute idle
    /// window and a 5 minute cooldown.
    pub fn new(min_replicas: u32, max_replicas: u32) -> Policy {
        Policy {
            min_replicas,
            max_replicas,
            target_outstanding: None,
            target_ttft_p95_ms: None,
            up_window: DEFAULT_UP_WINDOW,
            down_window: DEFAULT_DOWN_WINDOW,
            idle_window: Duration::from_secs(900),
            scale_down_cooldown: Duration::from_secs(300),
            budget_cap_reached: false,
        }
    }

    fn outstanding_target(&self) -> Option<f64> {
        self.target_outstanding
            .filter(|t| t.is_finite() && *t > 0.0)
    }

    fn ttft_target(&self) -> Option<f64> {
        self.target_ttft_p95_ms
            .filter(|t| t.is_finite() && *t > 0.0)
    }
}

/// A service's replicas by phase; draining ones are on their way out and
/// do not count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replicas {
    pub ready: u32,
    pub starting: u32,
    pub draining: u32,
}

/// What to do: `to == from` keeps the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub from: u32,
    pub to: u32,
    /// E.g. "outstanding 9.2 per replica > 4 for 30 s: 2 → 5".
    pub reason: String,
    /// A scale-up was called for and the budget cap stopped it.
    pub capped: bool,
}

impl Decision {
    /// Whether the replica count changes.
    pub fn scales(&self) -> bool {
        self.from != self.to
    }

    fn keep(at: u32, why: impl std::fmt::Display) -> Decision {
        Decision {
            from: at,
            to: at,
            reason: format!("{why}: stays at {at}"),
            capped: false,
        }
    }

    fn capped(at: u32, why: impl std::fmt::Display) -> Decision {
        Decision {
            from: at,
            to: at,
            reason: format!("budget cap reached: stays at {at} ({why})"),
            capped: true,
        }
    }

    fn scale(from: u32, to: u32, why: impl std::fmt::Display) -> Decision {
        Decision {
            from,
            to,
            reason: format!("{why}: {from} → {to}"),
            capped: false,
        }
    }
}

/// A number as a reason shows it: one decimal at most.
fn num(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// The samples covering the `len` before `now`, from the latest one at or
/// before its start; None when the history does not reach back that far,
/// or has a hole longer than [`MAX_GAP`].
fn window(history: &[Sample], now: DateTime<Utc>, len: Duration) -> Option<&[Sample]> {
    let start = now - chrono::Duration::from_std(len).ok()?;
    let seen = history.get(..history.partition_point(|s| s.at <= now))?;
    let first = seen.iter().rposition(|s| s.at <= start)?;
    let w = seen.get(first..)?;
    let gap = chrono::Duration::from_std(MAX_GAP).ok()?;
    let hole = w.windows(2).any(|p| match p {
        [a, b] => b.at - a.at > gap,
        _ => false,
    });
    let stale = now - w.last()?.at > gap;
    (!hole && !stale).then_some(w)
}

/// The TTFT p95 of a window in milliseconds, when it saw enough first tokens.
fn ttft_p95_ms(w: &[Sample]) -> Option<f64> {
    let mut sum = Vec::new();
    for s in w {
        signals::add_buckets(&mut sum, &s.load.ttft);
    }
    if sum.iter().sum::<u64>() < MIN_TTFT_OBSERVATIONS {
        return None;
    }
    signals::quantile(&sum, 0.95).map(|s| s * 1000.0)
}

/// Whether `len` has passed since the last scaling.
fn passed(last_scaled: Option<DateTime<Utc>>, now: DateTime<Utc>, len: Duration) -> bool {
    last_scaled.is_none_or(|t| (now - t).to_std().is_ok_and(|since| since >= len))
}

/// Decides for one service; see the module's rules.
pub fn decide(
    policy: &Policy,
    replicas: Replicas,
    history: &[Sample],
    last_scaled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Decision {
    let current = replicas.ready.saturating_add(replicas.starting);
    let (lo, hi) = (
        policy.min_replicas,
        policy.max_replicas.max(policy.min_replicas),
    );
    if current > hi {
        return Decision::scale(current, hi, format!("above the maximum of {hi}"));
    }
    if current < lo {
        let why = format!("below the minimum of {lo}");
        if policy.budget_cap_reached {
            return Decision::capped(current, why);
        }
        return Decision::scale(current, lo, why);
    }
    if current == 0 {
        return at_zero(policy, history, last_scaled, now);
    }
    if let Some(up) = scale_up(policy, replicas, current, history, last_scaled, now) {
        return up;
    }
    scale_down(policy, replicas, current, history, last_scaled, now)
}

/// Rule 2: demand at zero replicas starts one.
fn at_zero(
    policy: &Policy,
    history: &[Sample],
    last_scaled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Decision {
    if policy.max_replicas == 0 {
        return Decision::keep(0, "the maximum is 0");
    }
    let since = chrono::Duration::from_std(policy.up_window)
        .ok()
        .map(|w| now - w);
    let recent = || {
        history
            .iter()
            .filter(|s| s.at <= now && since.is_none_or(|t| s.at >= t))
            .filter(|s| last_scaled.is_none_or(|t| s.at > t))
    };
    let refused: u64 = recent().map(|s| s.load.refused).sum();
    // A level, as outstanding: the latest count, not a sum.
    let held = recent().next_back().map_or(0, |s| s.load.held);
    let mut why = Vec::new();
    if held > 0 {
        why.push(format!("{held} requests held at zero replicas"));
    }
    if refused > 0 {
        why.push(format!("{refused} requests found no replica"));
    }
    if why.is_empty() {
        return Decision::keep(0, "no demand at zero replicas");
    }
    let why = why.join(", ");
    if policy.budget_cap_reached {
        return Decision::capped(0, why);
    }
    Decision::scale(0, 1, why)
}

/// Rule 3: a target exceeded over the whole up window.
fn scale_up(
    policy: &Policy,
    replicas: Replicas,
    current: u32,
    history: &[Sample],
    last_scaled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Decision> {
    let w = window(history, now, policy.up_window)?;
    let secs = policy.up_window.as_secs();
    let mut want = current;
    let mut why = Vec::new();
    if let Some(target) = policy.outstanding_target() {
        let level = w
            .iter()
            .map(|s| s.load.outstanding.saturating_add(s.load.held))
            .min()
            .unwrap_or(0) as f64;
        let per = level / f64::from(current);
        if per > target {
            let needed = (level / target).ceil().min(f64::from(u32::MAX)) as u32;
            want = want.max(needed);
            why.push(format!(
                "outstanding {} per replica > {} for {secs} s",
                num(per),
                num(target)
            ));
        }
    }
    let settled = replicas.starting == 0 && passed(last_scaled, now, policy.up_window);
    if let (Some(target), true) = (policy.ttft_target(), settled) {
        if let Some(p95) = ttft_p95_ms(w).filter(|p| *p > target) {
            want = want.max(current.saturating_add(1));
            why.push(format!(
                "TTFT p95 {p95:.0} ms > {} ms for {secs} s",
                num(target)
            ));
        }
    }
    if want <= current {
        return None;
    }
    let why = why.join(", ");
    let hi = policy.max_replicas.max(policy.min_replicas);
    if current >= hi {
        return Some(Decision::keep(
            current,
            format!("{why}, at the maximum of {hi}"),
        ));
    }
    if policy.budget_cap_reached {
        return Some(Decision::capped(current, why));
    }
    Some(Decision::scale(current, want.min(hi), why))
}

/// Rule 4: one replica less (or zero when idle) once the load allows it.
fn scale_down(
    policy: &Policy,
    replicas: Replicas,
    current: u32,
    history: &[Sample],
    last_scaled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Decision {
    if replicas.starting > 0 {
        return Decision::keep(current, format!("{} starting", replicas.starting));
    }
    if !passed(last_scaled, now, policy.scale_down_cooldown) {
        let since = last_scaled.map_or(0, |t| (now - t).num_seconds().max(0));
        return Decision::keep(
            current,
            format!(
                "cooldown, {since} s of {} s since the last scaling",
                policy.scale_down_cooldown.as_secs()
            ),
        );
    }
    if policy.min_replicas == 0 {
        let idle = window(history, now, policy.idle_window)
            .is_some_and(|w| w.iter().all(|s| s.load.is_idle()));
        if idle {
            let secs = policy.idle_window.as_secs();
            return Decision::scale(current, 0, format!("idle for {secs} s"));
        }
    }
    let (outstanding, ttft) = (policy.outstanding_target(), policy.ttft_target());
    if outstanding.is_none() && ttft.is_none() {
        return Decision::keep(current, "no load target");
    }
    if current <= policy.min_replicas.max(1) {
        return Decision::keep(current, "at the floor");
    }
    let Some(w) = window(history, now, policy.down_window) else {
        return Decision::keep(current, "not enough history");
    };
    let left = current - 1;
    let secs = policy.down_window.as_secs();
    let mut why = Vec::new();
    if let Some(target) = outstanding {
        let peak = w.iter().map(|s| s.load.outstanding).max().unwrap_or(0) as f64;
        let per = peak / f64::from(left);
        let bar = DOWN_RATIO * target;
        if per >= bar {
            return Decision::keep(
                current,
                format!(
                    "outstanding up to {} per replica on {left} ≥ {}",
                    num(per),
                    num(bar)
                ),
            );
        }
        why.push(format!(
            "outstanding up to {} per replica on {left} < {} for {secs} s",
            num(per),
            num(bar)
        ));
    }
    if let Some(target) = ttft {
        let bar = DOWN_RATIO * target;
        match ttft_p95_ms(w) {
            Some(p95) if p95 >= bar => {
                return Decision::keep(current, format!("TTFT p95 {p95:.0} ms ≥ {} ms", num(bar)));
            }
            Some(p95) => why.push(format!(
                "TTFT p95 {p95:.0} ms < {} ms for {secs} s",
                num(bar)
            )),
            None => why.push(format!("too few first tokens for a TTFT p95 in {secs} s")),
        }
    }
    Decision::scale(current, left, why.join(", "))
}

#[cfg(test)]
mod tests;
