//! What the replica convergence (`replicas.rs`) does to a service's
//! replicas, as a plan: which to take away, how many to create.
//!
//! Replicas follow `desired_replicas`. A rollout (`POST
//! /services/{id}/rollout`) raises the service's revision; the replicas
//! made at an older one are outdated and replaced one at a time, the way
//! a rolling update with a surge of one and none unavailable goes:
//!
//! - while an outdated replica is left (and the service wants any), there
//!   may be one replica more than desired: the new one, made at the
//!   current revision;
//! - an outdated replica that serves (`ready`) is taken away (drained,
//!   then terminated) only while more replicas are ready than desired, so
//!   a new replica is ready before an old one drains and the ready count
//!   never falls below desired; an outdated one not ready serves nothing
//!   and goes at once;
//! - beyond desired (plus that surge), the extra replicas go: those not
//!   ready first, outdated before current, then the newest.
//!
//! Pure, so every case is a unit test below.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A replica counted towards `desired_replicas` (`provisioning` … `ready`).
#[derive(Debug, Clone)]
pub struct Replica {
    pub id: Uuid,
    /// It serves (`ready`).
    pub ready: bool,
    /// Made at the service's current revision.
    pub current: bool,
    pub created_at: DateTime<Utc>,
}

/// What to do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Replicas to take away, in this order.
    pub take_away: Vec<Uuid>,
    /// Replicas to create at the current revision.
    pub create: usize,
    /// Outdated replicas before the plan (a rollout is under way when > 0).
    pub outdated: usize,
    /// Outdated replicas left after it (the rollout is done when 0).
    pub outdated_left: usize,
}

/// The plan for a service that wants `desired` replicas and has `live`.
pub fn plan(desired: usize, live: &[Replica]) -> Plan {
    let outdated = live.iter().filter(|r| !r.current).count();
    let surge = |old: usize| usize::from(desired > 0 && old > 0);
    let mut plan = Plan {
        outdated,
        ..Plan::default()
    };
    if live.len() > desired + surge(outdated) {
        let mut order: Vec<&Replica> = live.iter().collect();
        order.sort_by_key(|r| (r.ready, r.current, std::cmp::Reverse(r.created_at), r.id));
        let (mut left, mut old_left) = (live.len(), outdated);
        for r in order {
            if left <= desired + surge(old_left) {
                break;
            }
            plan.take_away.push(r.id);
            left -= 1;
            old_left -= usize::from(!r.current);
        }
    } else {
        // Outdated ones not serving go at once; serving ones while more
        // than desired are ready, the oldest first.
        plan.take_away = live
            .iter()
            .filter(|r| !r.current && !r.ready)
            .map(|r| r.id)
            .collect();
        let ready = live.iter().filter(|r| r.ready).count();
        let mut old_ready: Vec<&Replica> = live.iter().filter(|r| !r.current && r.ready).collect();
        old_ready.sort_by_key(|r| (r.created_at, r.id));
        plan.take_away.extend(
            old_ready
                .iter()
                .take(ready.saturating_sub(desired))
                .map(|r| r.id),
        );
    }
    let gone = |r: &&Replica| plan.take_away.contains(&r.id);
    plan.outdated_left = live.iter().filter(|r| !r.current && !gone(r)).count();
    let remaining = live.len() - plan.take_away.len();
    plan.create = (desired + surge(plan.outdated_left)).saturating_sub(remaining);
    plan
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// Replicas named by their position, oldest first: `R` ready and
    /// current, `S` starting and current, `r` ready and outdated, `s`
    /// starting and outdated.
    fn replicas(spec: &str) -> Vec<Replica> {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        spec.chars()
            .zip(0u8..)
            .map(|(c, n)| Replica {
                id: Uuid::from_u128(n.into()),
                ready: matches!(c, 'R' | 'r'),
                current: c.is_ascii_uppercase(),
                created_at: t0 + chrono::Duration::seconds(n.into()),
            })
            .collect()
    }

    fn ids(ns: &[u128]) -> Vec<Uuid> {
        ns.iter().map(|n| Uuid::from_u128(*n)).collect()
    }

    #[test]
    fn without_a_rollout_replicas_follow_desired_not_ready_and_newest_first() {
        assert_eq!(plan(2, &replicas("RR")), Plan::default());
        let p = plan(3, &replicas("R"));
        assert_eq!((p.create, p.take_away.len()), (2, 0));
        // Down to one: the starting one, then the newest ready.
        let p = plan(1, &replicas("RRS"));
        assert_eq!((p.take_away, p.create), (ids(&[2, 1]), 0));
        assert_eq!(plan(0, &replicas("RS")).take_away, ids(&[1, 0]));
    }

    /// A service of two replicas rolled out step by step, each step the
    /// state the previous plan leads to: never more than three replicas,
    /// never fewer than two ready.
    #[test]
    fn a_rollout_replaces_one_replica_at_a_time_a_new_one_ready_first() {
        // Both outdated: one new replica (the surge), nothing taken away.
        let p = plan(2, &replicas("rr"));
        assert_eq!((p.create, p.take_away.clone(), p.outdated), (1, vec![], 2));
        // The new one starting: wait.
        let p = plan(2, &replicas("rrS"));
        assert_eq!((p.create, p.take_away.len(), p.outdated_left), (0, 0, 2));
        // It is ready: the oldest outdated drains and the next new one starts.
        let p = plan(2, &replicas("rrR"));
        assert_eq!((p.take_away, p.create, p.outdated_left), (ids(&[0]), 1, 1));
        // (the drained one is no longer counted)
        let p = plan(2, &replicas("rRS"));
        assert_eq!((p.create, p.take_away.len()), (0, 0));
        // The second new one ready: the last outdated drains, nothing more.
        let p = plan(2, &replicas("rRR"));
        assert_eq!((p.take_away, p.create, p.outdated_left), (ids(&[0]), 0, 0));
        assert_eq!(plan(2, &replicas("RR")), Plan::default());
    }

    #[test]
    fn an_outdated_replica_not_serving_goes_at_once_and_is_replaced() {
        let p = plan(2, &replicas("rs"));
        assert_eq!((p.take_away, p.create), (ids(&[1]), 2));
        // All outdated and none ready: nothing to keep serving, all replaced.
        let p = plan(1, &replicas("s"));
        assert_eq!((p.take_away, p.create, p.outdated_left), (ids(&[0]), 1, 0));
    }

    #[test]
    fn a_rollout_of_one_replica_surges_to_two_then_back() {
        let p = plan(1, &replicas("r"));
        assert_eq!((p.create, p.take_away.len()), (1, 0));
        assert_eq!(plan(1, &replicas("rS")).create, 0);
        let p = plan(1, &replicas("rR"));
        assert_eq!((p.take_away, p.create, p.outdated_left), (ids(&[0]), 0, 0));
    }

    #[test]
    fn desired_lowered_during_a_rollout_takes_the_not_ready_ones_first() {
        // 3 → 2 with a new one starting: the starting one goes, the ready stay.
        let p = plan(2, &replicas("rrrS"));
        assert_eq!((p.take_away, p.create), (ids(&[3]), 0));
        // To zero: everything goes, the rollout ends with the replicas.
        let p = plan(0, &replicas("rR"));
        assert_eq!((p.take_away.len(), p.create, p.outdated_left), (2, 0, 0));
    }

    #[test]
    fn desired_raised_during_a_rollout_creates_at_the_current_revision() {
        let p = plan(3, &replicas("rr"));
        assert_eq!((p.create, p.take_away.len()), (2, 0));
        // 4 ready of 3 wanted lets one outdated go; the other one left
        // still allows the surge: its replacement starts.
        let p = plan(3, &replicas("rrRR"));
        assert_eq!((p.take_away, p.create, p.outdated_left), (ids(&[0]), 1, 1));
    }

    /// Whatever the mix, a plan never leaves fewer ready than desired when
    /// there were at least that many, never goes past desired + 1 (nor
    /// past desired once no outdated replica is left), and never takes a
    /// current replica away in a pass that creates one.
    #[test]
    fn no_plan_loses_serving_capacity_or_overshoots() {
        let kinds = ['R', 'S', 'r', 's'];
        for len in 0..=5usize {
            let mut spec = vec![0usize; len];
            loop {
                let s: String = spec.iter().map(|k| kinds[*k]).collect();
                let live = replicas(&s);
                for desired in 0..=5usize {
                    let p = plan(desired, &live);
                    let ready_before = live.iter().filter(|r| r.ready).count();
                    let ready_after = live
                        .iter()
                        .filter(|r| r.ready && !p.take_away.contains(&r.id))
                        .count();
                    let total = live.len() - p.take_away.len() + p.create;
                    assert!(
                        ready_after >= ready_before.min(desired),
                        "{s} desired {desired}: {p:?}"
                    );
                    assert!(total <= desired + 1, "{s} desired {desired}: {p:?}");
                    if p.outdated_left == 0 {
                        assert_eq!(total, desired, "{s} desired {desired}: {p:?}");
                    }
                    let current_taken = live
                        .iter()
                        .any(|r| r.current && p.take_away.contains(&r.id));
                    assert!(p.create == 0 || !current_taken, "{s}: {p:?}");
                }
                // The next spec, as a number in base 4.
                let Some(i) = spec.iter().position(|k| *k < 3) else {
                    break;
                };
                spec[i] += 1;
                spec[..i].iter_mut().for_each(|k| *k = 0);
            }
        }
    }
}
