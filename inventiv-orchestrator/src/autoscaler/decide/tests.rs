//! Every rule of [`super::decide`] and its edges: the bounds, demand at
//! zero, the windows, the cooldown, the budget cap, each target alone and
//! both, idle to zero, and no flapping anywhere near a boundary.

use chrono::{DateTime, TimeZone, Utc};
use inventiv_common::signals::TTFT_BUCKETS;

use super::*;
use crate::autoscaler::signals::Load;

/// The test's clock: `s` seconds after a fixed instant.
fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0)
        .single()
        .unwrap_or_default()
}

/// "Now" in every test: histories end here.
const NOW: i64 = 10_000;

/// One sample a second over the last `secs` seconds up to [`NOW`].
fn steady(secs: i64, load: Load) -> Vec<Sample> {
    (NOW - secs..=NOW)
        .map(|s| Sample {
            at: t(s),
            load: load.clone(),
        })
        .collect()
}

fn busy(outstanding: u64) -> Load {
    Load {
        outstanding,
        completed: 1,
        ..Load::default()
    }
}

/// `n` first tokens a second, all at about `ms` milliseconds.
fn ttft(ms: f64, n: u64) -> Load {
    let mut buckets = vec![0; TTFT_BUCKETS.len() + 1];
    let slot = TTFT_BUCKETS
        .iter()
        .position(|b| ms / 1000.0 <= *b)
        .unwrap_or(TTFT_BUCKETS.len());
    buckets[slot] = n;
    Load {
        completed: n,
        ttft: buckets,
        ..Load::default()
    }
}

fn ready(n: u32) -> Replicas {
    Replicas {
        ready: n,
        ..Replicas::default()
    }
}

fn load_policy(min: u32, max: u32, target: f64) -> Policy {
    Policy {
        target_outstanding: Some(target),
        ..Policy::new(min, max)
    }
}

fn ttft_policy(min: u32, max: u32, target_ms: f64) -> Policy {
    Policy {
        target_ttft_p95_ms: Some(target_ms),
        ..Policy::new(min, max)
    }
}

fn decide_now(policy: &Policy, replicas: Replicas, history: &[Sample]) -> Decision {
    decide(policy, replicas, history, None, t(NOW))
}

#[test]
fn the_bounds_come_first() {
    let p = load_policy(1, 3, 4.0);
    let idle = steady(1000, Load::default());
    let d = decide_now(&p, ready(5), &idle);
    assert_eq!(
        (d.to, d.reason.as_str()),
        (3, "above the maximum of 3: 5 → 3")
    );
    let d = decide_now(&load_policy(2, 3, 4.0), ready(0), &[]);
    assert_eq!(
        (d.to, d.reason.as_str()),
        (2, "below the minimum of 2: 0 → 2")
    );
    // A maximum below the minimum counts as the minimum.
    let d = decide_now(&load_policy(2, 1, 4.0), ready(2), &idle);
    assert!(!d.scales(), "{d:?}");
    // The cap stops even the climb to the minimum, and says so.
    let capped = Policy {
        budget_cap_reached: true,
        ..load_policy(2, 3, 4.0)
    };
    let d = decide_now(&capped, ready(1), &idle);
    assert_eq!(
        (d.to, d.capped, d.reason.as_str()),
        (
            1,
            true,
            "budget cap reached: stays at 1 (below the minimum of 2)"
        )
    );
    // Draining replicas are leaving: they do not count.
    let d = decide_now(
        &p,
        Replicas {
            ready: 3,
            starting: 0,
            draining: 2,
        },
        &idle,
    );
    assert_eq!(d.from, 3);
}

#[test]
fn demand_at_zero_starts_one_replica_at_once() {
    let p = load_policy(0, 3, 4.0);
    let mut history = steady(5, Load::default());
    assert_eq!(
        decide_now(&p, ready(0), &history).reason,
        "no demand at zero replicas: stays at 0"
    );
    history.push(Sample {
        at: t(NOW),
        load: Load {
            refused: 2,
            ..Load::default()
        },
    });
    // No window to wait for: the first refusals are enough.
    let d = decide_now(&p, ready(0), &history);
    assert_eq!(
        (d.to, d.reason.as_str()),
        (1, "2 requests found no replica: 0 → 1")
    );
    // Refusals before the last scaling (to zero) or older than the up
    // window are past demand.
    let d = decide(&p, ready(0), &history, Some(t(NOW)), t(NOW));
    assert!(!d.scales(), "{d:?}");
    let d = decide(&p, ready(0), &history, None, t(NOW + 31));
    assert!(!d.scales(), "{d:?}");
    // The cap and a maximum of 0 hold it at zero.
    let capped = Policy {
        budget_cap_reached: true,
        ..p.clone()
    };
    let d = decide_now(&capped, ready(0), &history);
    assert_eq!(
        (d.to, d.capped, d.reason.as_str()),
        (
            0,
            true,
            "budget cap reached: stays at 0 (2 requests found no replica)"
        )
    );
    assert!(!decide_now(&load_policy(0, 0, 4.0), ready(0), &history).scales());
}

fn held(n: u64) -> Load {
    Load {
        held: n,
        ..Load::default()
    }
}

#[test]
fn held_requests_at_zero_start_one_replica_at_once() {
    let p = Policy::new(0, 3);
    let mut history = steady(5, Load::default());
    history.push(Sample {
        at: t(NOW),
        load: held(3),
    });
    let d = decide_now(&p, ready(0), &history);
    assert_eq!(
        (d.to, d.reason.as_str()),
        (1, "3 requests held at zero replicas: 0 → 1")
    );
    // Held is a level: the latest count, never a sum over the window.
    let d = decide_now(&p, ready(0), &steady(5, held(2)));
    assert_eq!(d.reason, "2 requests held at zero replicas: 0 → 1");
    // With refusals too, both are said.
    let mut both = steady(5, held(2));
    both[3].load.refused = 1;
    assert_eq!(
        decide_now(&p, ready(0), &both).reason,
        "2 requests held at zero replicas, 1 requests found no replica: 0 → 1"
    );
    // The latest sample held nothing: the demand was served or gave up.
    history.push(Sample {
        at: t(NOW),
        load: Load::default(),
    });
    assert!(!decide_now(&p, ready(0), &history).scales());
    // Held before the last scaling (to zero) is past demand; the cap and a
    // maximum of 0 keep it at zero.
    let held_now = steady(5, held(3));
    assert!(!decide(&p, ready(0), &held_now, Some(t(NOW)), t(NOW)).scales());
    let capped = Policy {
        budget_cap_reached: true,
        ..p.clone()
    };
    let d = decide_now(&capped, ready(0), &held_now);
    assert_eq!(
        (d.to, d.capped, d.reason.as_str()),
        (
            0,
            true,
            "budget cap reached: stays at 0 (3 requests held at zero replicas)"
        )
    );
    assert!(!decide_now(&Policy::new(0, 0), ready(0), &held_now).scales());
}

#[test]
fn held_requests_are_demand_above_zero_too() {
    // A replica starting with requests held: no second one without a
    // target, and never down to zero while they wait.
    let p = Policy {
        scale_down_cooldown: Duration::ZERO,
        idle_window: Duration::from_secs(3),
        ..Policy::new(0, 3)
    };
    let waiting = steady(1000, held(5));
    let starting = Replicas {
        starting: 1,
        ..Replicas::default()
    };
    assert!(!decide_now(&p, starting, &waiting).scales());
    assert!(!decide_now(&p, ready(1), &waiting).scales());
    // They count as outstanding for a load target: 10 held for 4 per replica.
    let d = decide_now(&load_policy(0, 5, 4.0), ready(1), &steady(30, held(10)));
    assert_eq!(d.reason, "outstanding 10 per replica > 4 for 30 s: 1 → 3");
}

#[test]
fn load_over_target_for_the_whole_window_scales_up_by_what_is_needed() {
    let p = load_policy(1, 10, 4.0);
    // 19 outstanding on 2 replicas: 9.5 each; 5 replicas bring it under 4.
    let d = decide_now(&p, ready(2), &steady(30, busy(19)));
    assert_eq!(d.reason, "outstanding 9.5 per replica > 4 for 30 s: 2 → 5");
    // Exceeded for 20 s only: nothing yet.
    let mut history = steady(60, busy(2));
    for s in history.iter_mut().filter(|s| s.at > t(NOW - 20)) {
        s.load = busy(19);
    }
    assert!(!decide_now(&p, ready(2), &history).scales());
    // One dip in the window: the sustained level is the dip.
    let mut history = steady(30, busy(19));
    history[10].load = busy(8);
    assert!(!decide_now(&p, ready(2), &history).scales());
    // Exactly at the target is not over it.
    assert!(!decide_now(&p, ready(2), &steady(30, busy(8))).scales());
}

#[test]
fn scale_up_is_bounded_by_the_maximum_and_the_cap() {
    let p = load_policy(1, 3, 4.0);
    let history = steady(30, busy(19));
    let d = decide_now(&p, ready(2), &history);
    assert_eq!(d.to, 3, "{d:?}");
    let d = decide_now(&p, ready(3), &history);
    assert_eq!(
        d.reason,
        "outstanding 6.3 per replica > 4 for 30 s, at the maximum of 3: stays at 3"
    );
    let capped = Policy {
        budget_cap_reached: true,
        ..p
    };
    let d = decide_now(&capped, ready(2), &history);
    assert_eq!(
        (d.to, d.capped, d.reason.as_str()),
        (
            2,
            true,
            "budget cap reached: stays at 2 (outstanding 9.5 per replica > 4 for 30 s)"
        )
    );
}

#[test]
fn starting_replicas_count_so_a_step_is_not_taken_twice() {
    let p = load_policy(1, 10, 4.0);
    let history = steady(30, busy(19));
    // Scaled 2 → 5 a moment ago: three are starting.
    let starting = Replicas {
        ready: 2,
        starting: 3,
        draining: 0,
    };
    let d = decide(&p, starting, &history, Some(t(NOW - 5)), t(NOW));
    assert_eq!((d.to, d.reason.as_str()), (5, "3 starting: stays at 5"));
}

#[test]
fn a_short_or_broken_history_is_not_acted_on() {
    let p = load_policy(1, 10, 4.0);
    let d = decide_now(&p, ready(2), &steady(10, busy(40)));
    assert_eq!(d.reason, "not enough history: stays at 2");
    // A 20 s hole (the orchestrator was not reading) inside the window.
    let history: Vec<Sample> = steady(60, busy(40))
        .into_iter()
        .filter(|s| s.at < t(NOW - 25) || s.at > t(NOW - 5))
        .collect();
    assert!(!decide_now(&p, ready(2), &history).scales());
    // Samples that stopped coming a minute ago are stale.
    let d = decide(&p, ready(2), &steady(60, busy(40)), None, t(NOW + 60));
    assert!(!d.scales(), "{d:?}");
}

#[test]
fn ttft_over_target_adds_one_replica_once_the_last_one_is_measured() {
    let p = ttft_policy(1, 10, 1000.0);
    let slow = steady(30, ttft(1800.0, 5));
    let d = decide_now(&p, ready(2), &slow);
    assert!(d.scales(), "{d:?}");
    assert_eq!(d.to, 3);
    assert!(
        d.reason.starts_with("TTFT p95 ") && d.reason.ends_with(" ms > 1000 ms for 30 s: 2 → 3"),
        "{}",
        d.reason
    );
    // Not while one is starting, nor within a window of the last scaling.
    let starting = Replicas {
        ready: 2,
        starting: 1,
        draining: 0,
    };
    assert!(!decide_now(&p, starting, &slow).scales());
    assert!(!decide(&p, ready(3), &slow, Some(t(NOW - 20)), t(NOW)).scales());
    assert!(decide(&p, ready(3), &slow, Some(t(NOW - 30)), t(NOW)).scales());
    // Too few first tokens say nothing.
    let few: Vec<Sample> = steady(30, Load::default())
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            if i % 10 == 0 {
                s.load = ttft(5000.0, 1);
            }
            s
        })
        .collect();
    assert!(!decide_now(&p, ready(2), &few).scales());
    // Fast enough: nothing.
    assert!(!decide_now(&p, ready(2), &steady(30, ttft(400.0, 5))).scales());
}

#[test]
fn with_both_targets_either_scales_up_and_both_must_allow_down() {
    let p = Policy {
        target_ttft_p95_ms: Some(1000.0),
        ..load_policy(1, 10, 4.0)
    };
    // Load fine, TTFT slow: one more.
    let slow = steady(200, ttft(1800.0, 5));
    assert_eq!(decide_now(&p, ready(2), &slow).to, 3);
    // Both over: the larger answer.
    let both = steady(
        200,
        Load {
            outstanding: 19,
            ..ttft(1800.0, 5)
        },
    );
    let d = decide_now(&p, ready(2), &both);
    assert_eq!(d.to, 5);
    assert!(d.reason.contains("outstanding 9.5") && d.reason.contains("TTFT p95"));
    // Load low but TTFT at 800 ms (over 0.7 × 1000): no scale-down.
    let d = decide_now(&p, ready(3), &steady(200, ttft(800.0, 5)));
    assert!(!d.scales(), "{d:?}");
    assert!(d.reason.starts_with("TTFT p95"), "{}", d.reason);
    // Both low: one less.
    let d = decide_now(&p, ready(3), &steady(200, ttft(300.0, 5)));
    assert_eq!(d.to, 2, "{d:?}");
}

#[test]
fn scale_down_waits_for_the_window_the_cooldown_and_starting_replicas() {
    let p = load_policy(1, 10, 4.0);
    let low = steady(200, busy(3));
    let d = decide_now(&p, ready(3), &low);
    assert_eq!(
        d.reason,
        "outstanding up to 1.5 per replica on 2 < 2.8 for 120 s: 3 → 2"
    );
    let d = decide(&p, ready(3), &low, Some(t(NOW - 100)), t(NOW));
    assert_eq!(
        d.reason,
        "cooldown, 100 s of 300 s since the last scaling: stays at 3"
    );
    assert!(decide(&p, ready(3), &low, Some(t(NOW - 300)), t(NOW)).scales());
    let starting = Replicas {
        ready: 2,
        starting: 1,
        draining: 0,
    };
    assert!(!decide_now(&p, starting, &low).scales());
    // Low for only part of the down window.
    let mut recent = steady(200, busy(12));
    for s in recent.iter_mut().filter(|s| s.at > t(NOW - 100)) {
        s.load = busy(3);
    }
    assert!(!decide_now(&p, ready(3), &recent).scales());
}

#[test]
fn scale_down_is_one_step_at_a_time_and_stops_at_the_floor() {
    let p = load_policy(2, 10, 4.0);
    let quiet = steady(2000, busy(0));
    assert_eq!(decide_now(&p, ready(6), &quiet).to, 5);
    assert_eq!(
        decide_now(&p, ready(2), &quiet).reason,
        "at the floor: stays at 2"
    );
    // With min 0 and some traffic, the load rule stops at one replica.
    let p = load_policy(0, 10, 4.0);
    assert_eq!(
        decide_now(&p, ready(1), &steady(2000, busy(1))).reason,
        "at the floor: stays at 1"
    );
}

#[test]
fn idle_goes_to_zero_only_when_the_minimum_is_zero() {
    let idle = steady(1000, Load::default());
    let p = load_policy(0, 3, 4.0);
    let d = decide_now(&p, ready(1), &idle);
    assert_eq!(d.reason, "idle for 900 s: 1 → 0");
    // From several replicas at once: nothing to drain.
    assert_eq!(decide_now(&p, ready(3), &idle).to, 0);
    // Without a load target too.
    assert_eq!(decide_now(&Policy::new(0, 3), ready(1), &idle).to, 0);
    // Min 1: never zero.
    let d = decide_now(&load_policy(1, 3, 4.0), ready(1), &idle);
    assert!(!d.scales(), "{d:?}");
    // One request, or one refusal, in the idle window: not idle.
    for load in [
        busy(0),
        Load {
            refused: 1,
            ..Load::default()
        },
    ] {
        let mut history = idle.clone();
        history[500].load = load;
        assert_ne!(decide_now(&p, ready(1), &history).to, 0);
    }
    // Idle for less than the window; the cooldown applies too.
    assert!(!decide_now(&p, ready(1), &steady(800, Load::default())).scales());
    assert!(!decide(&p, ready(1), &idle, Some(t(NOW - 60)), t(NOW)).scales());
}

#[test]
fn no_target_keeps_the_count_between_the_bounds() {
    let p = Policy::new(1, 5);
    let d = decide_now(&p, ready(2), &steady(1000, busy(100)));
    assert_eq!(d.reason, "no load target: stays at 2");
}

/// A steady load never makes the count go back and forth: from any start,
/// following the decisions (cooldowns passed, replicas ready) settles on
/// one count without visiting any twice.
#[test]
fn no_flapping_at_any_steady_load() {
    for target in [1.0, 2.0, 3.0, 4.0, 8.0] {
        for level in 0..=60 {
            let history = steady(2000, busy(level));
            for min in [0, 1, 2] {
                let p = load_policy(min, 12, target);
                for start in min.max(1)..=12 {
                    let mut n = start;
                    let mut seen = vec![n];
                    loop {
                        let d = decide_now(&p, ready(n), &history);
                        if !d.scales() {
                            break;
                        }
                        n = d.to;
                        assert!(
                            !seen.contains(&n),
                            "flapping at target {target}, level {level}, min {min}: {seen:?} then {n} ({})",
                            d.reason
                        );
                        seen.push(n);
                    }
                    // Settled within the bounds, and under the target unless at max.
                    assert!((min..=12).contains(&n));
                    if n > 0 && n < 12 {
                        assert!(level as f64 / f64::from(n) <= target, "{level} on {n}");
                    }
                }
            }
        }
    }
}
