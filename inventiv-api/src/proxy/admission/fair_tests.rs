#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::VecDeque;

use super::*;

const I: KeyPriority = KeyPriority::Interactive;
const B: KeyPriority = KeyPriority::Batch;

fn policy(capacity: u32) -> Policy {
    Policy {
        capacity,
        org_max_in_flight: 0,
        org_max_queued: 1000,
        batch_reserve: 0,
        idle_after: Duration::from_secs(2),
    }
}

/// A deployment whose waiters are labels (with their band), the order
/// they were admitted in, and what is in flight (oldest first: requests
/// end in that order).
struct Sim {
    d: Deployment<(String, KeyPriority)>,
    p: Policy,
    now: Instant,
    next: u64,
    admitted: Vec<String>,
    flying: VecDeque<(Uuid, KeyPriority)>,
}

impl Sim {
    fn new(p: Policy) -> Sim {
        Sim {
            d: Deployment::default(),
            p,
            now: Instant::now(),
            next: 0,
            admitted: Vec::new(),
            flying: VecDeque::new(),
        }
    }

    /// A request arrives: true when it is admitted at once.
    fn send(&mut self, org: Uuid, weight: u32, b: KeyPriority, label: &str) -> bool {
        if self.d.arrive(&self.p, org, weight, b, self.now) {
            self.admit(org, (label.to_owned(), b));
            return true;
        }
        self.next += 1;
        self.d
            .enqueue(&self.p, org, b, self.next, (label.to_owned(), b))
            .unwrap();
        self.pump();
        self.admitted.iter().any(|l| l == label)
    }

    fn admit(&mut self, org: Uuid, (label, b): (String, KeyPriority)) {
        self.admitted.push(label);
        self.flying.push_back((org, b));
    }

    fn pump(&mut self) {
        for (org, label) in self.d.dispatch(&self.p, self.now) {
            self.admit(org, label);
        }
    }

    /// The oldest request in flight ends.
    fn done(&mut self) {
        let (org, b) = self.flying.pop_front().unwrap();
        self.d.release(org, b);
        self.pump();
    }

    fn count(&self, prefix: &str) -> usize {
        self.admitted
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

#[test]
fn alone_an_organization_gets_the_whole_capacity() {
    let mut s = Sim::new(policy(4));
    let b = Uuid::new_v4();
    let at_once = (0..10)
        .filter(|n| s.send(b, 100, I, &format!("b{n}")))
        .count();
    assert_eq!((at_once, s.d.in_flight(), s.d.queued()), (4, 4, 6));
    s.done();
    assert_eq!(
        (s.d.in_flight(), s.d.queued()),
        (4, 5),
        "a freed slot goes on at once"
    );
}

#[test]
fn a_newcomer_is_admitted_ahead_of_a_bursting_backlog() {
    let mut s = Sim::new(policy(2));
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for n in 0..20 {
        s.send(b, 100, I, &format!("b{n}"));
    }
    assert_eq!(s.admitted, ["b0", "b1"], "alone, B takes both slots");
    for n in 0..3 {
        assert!(!s.send(a, 100, I, &format!("a{n}")), "no slot free");
    }
    // Each end frees one slot: A's and B's requests alternate, though B's
    // eighteen waited first. Once A has nothing left, B is held to its
    // share while A stays active (A's share waits for A's next request).
    for _ in 0..9 {
        s.done();
    }
    assert_eq!(
        &s.admitted[2..],
        ["a0", "b2", "a1", "b3", "a2", "b4", "b5", "b6"]
    );
    assert_eq!(s.d.in_flight(), 1);
}

#[test]
fn an_active_organization_keeps_its_share_free() {
    let mut s = Sim::new(policy(4));
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    // A sent one request, answered: it is active for `idle_after`.
    assert!(s.send(a, 100, I, "a0"));
    s.done();
    let at_once = (0..10)
        .filter(|n| s.send(b, 100, I, &format!("b{n}")))
        .count();
    assert_eq!(at_once, 2, "B gets its share; A's share stays free");
    assert!(s.send(a, 100, I, "a1"), "A's next request goes at once");
    // A goes idle: B may use everything again.
    s.now += Duration::from_secs(3);
    s.flying.rotate_left(2);
    s.done();
    assert_eq!(s.d.in_flight(), 4);
    assert_eq!(s.count("b"), 4);
}

#[test]
fn weights_share_the_admissions() {
    let mut s = Sim::new(policy(1));
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    assert!(s.send(c, 100, I, "c0"));
    for n in 0..100 {
        s.send(a, 300, I, &format!("a{n}"));
        s.send(b, 100, I, &format!("b{n}"));
    }
    for _ in 0..40 {
        s.done();
    }
    assert_eq!((s.count("a"), s.count("b")), (30, 10), "3 to 1");
    // A weight of 1 against 100: one request in a hundred, without walking
    // a hundred rounds per decision.
    let mut s = Sim::new(policy(1));
    assert!(s.send(c, 100, I, "c0"));
    for n in 0..300 {
        s.send(a, 1, I, &format!("a{n}"));
        s.send(b, 100, I, &format!("b{n}"));
    }
    for _ in 0..202 {
        s.done();
    }
    let (na, nb) = (s.count("a"), s.count("b"));
    assert_eq!(na + nb, 202);
    assert!((1..=3).contains(&na), "{na} of A's admitted");
    // Alone with a weight of 1, it is admitted at once all the same.
    let mut s = Sim::new(policy(1));
    assert!(s.send(c, 100, I, "c0"));
    s.send(a, 1, I, "a0");
    s.done();
    assert_eq!(s.admitted, ["c0", "a0"]);
}

#[test]
fn interactive_requests_go_before_batch_ones_which_leave_a_reserve() {
    let mut p = policy(4);
    p.batch_reserve = 1;
    let mut s = Sim::new(p);
    let a = Uuid::new_v4();
    let at_once = (0..6)
        .filter(|n| s.send(a, 100, B, &format!("batch{n}")))
        .count();
    assert_eq!(at_once, 3, "batch requests leave the reserved slot free");
    assert!(
        s.send(a, 100, I, "int0"),
        "an interactive request takes it at once"
    );
    for n in 1..4 {
        assert!(!s.send(a, 100, I, &format!("int{n}")));
    }
    for _ in 0..3 {
        s.done();
    }
    assert_eq!(
        &s.admitted[3..],
        ["int0", "int1", "int2", "int3"],
        "interactive ones waited less though batch ones came first"
    );
    for _ in 0..4 {
        s.done();
    }
    assert_eq!(
        s.count("batch"),
        3,
        "the slots of interactive's recent peak stay theirs"
    );
    s.now += s.p.idle_after;
    s.pump();
    assert_eq!(
        s.count("batch"),
        6,
        "once that peak is old, batch takes them"
    );
    assert_eq!(s.d.in_flight(), 3, "batch alone: the reserve stays free");
}

#[test]
fn batch_leaves_interactive_clients_their_slots_between_two_requests() {
    let mut p = policy(16);
    p.batch_reserve = 2;
    let mut s = Sim::new(p);
    let a = Uuid::new_v4();
    for n in 0..10 {
        assert!(s.send(a, 100, I, &format!("int{n}")));
    }
    for n in 0..10 {
        s.send(a, 100, B, &format!("batch{n}"));
    }
    assert_eq!(
        s.count("batch"),
        4,
        "batch takes what interactive leaves, but the reserve"
    );
    // The interactive answers end (the oldest in flight); the batch requests
    // queued are admitted before those clients send again, and must not
    // take their slots (each would then wait a whole answer).
    for _ in 0..10 {
        s.done();
    }
    assert_eq!(s.count("batch"), 6);
    for n in 10..20 {
        assert!(
            s.send(a, 100, I, &format!("int{n}")),
            "int{n} is admitted at once"
        );
    }
}

#[test]
fn per_organization_limits_hold() {
    let mut p = policy(10);
    p.org_max_in_flight = 2;
    p.org_max_queued = 3;
    let mut s = Sim::new(p);
    let b = Uuid::new_v4();
    assert!(s.send(b, 100, I, "b0"));
    assert!(s.send(b, 100, I, "b1"));
    assert!(!s.d.arrive(&p, b, 100, I, s.now), "its concurrency limit");
    for n in 0..3 {
        s.d.enqueue(&p, b, I, n, (format!("q{n}"), I)).unwrap();
    }
    assert_eq!(
        s.d.enqueue(&p, b, I, 9, ("q9".to_owned(), I)),
        Err(QueueFull),
        "its queue limit: refused (429) at once"
    );
    s.pump();
    assert_eq!(s.d.in_flight(), 2);
    s.done();
    assert_eq!((s.d.in_flight(), s.d.queued()), (2, 2));
}

#[test]
fn a_cancelled_request_is_never_admitted() {
    let mut s = Sim::new(policy(1));
    let b = Uuid::new_v4();
    assert!(s.send(b, 100, I, "b0"));
    s.send(b, 100, I, "b1");
    s.send(b, 100, I, "b2");
    assert!(s.d.cancel(b, I, 1), "b1 leaves the queue");
    s.done();
    assert_eq!(s.admitted, ["b0", "b2"]);
    assert!(!s.d.cancel(b, I, 2), "admitted: no longer queued");
    s.done();
    s.now += Duration::from_secs(3);
    assert!(s.send(Uuid::new_v4(), 100, I, "c0"));
    assert_eq!(s.d.flows.len(), 1, "idle organizations are forgotten");
}
