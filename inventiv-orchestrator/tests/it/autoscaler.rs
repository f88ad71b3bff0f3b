//! The autoscaler against a real Redis: the lease (two contenders, one
//! holder; a holder that stops renewing is replaced within the lease's
//! duration and knows it lost; a release hands over at once) and the
//! reading of the API replicas' load snapshots (live ones combined,
//! expired ones ignored).

use std::time::{Duration, Instant};

use inventiv_common::signals::{self, ModelLoad, Snapshot};
use inventiv_orchestrator::autoscaler::{lease, Lease, Reader};

async fn redis() -> redis::aio::ConnectionManager {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    redis::aio::ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap()
}

/// A Redis prefix no other test uses.
fn prefix() -> String {
    format!("inventiv-test:{}:", uuid::Uuid::new_v4().simple())
}

const LEASE: Duration = Duration::from_millis(800);

/// Tries `lease` every 20 ms until it holds; when it did. Fails the test
/// after `within`.
async fn until_held(
    lease: &mut Lease,
    conn: &mut redis::aio::ConnectionManager,
    within: Duration,
) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if lease.hold(conn).await.unwrap() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the lease was not taken within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_contender_holds_the_lease_and_a_silent_holder_is_replaced_within_it() {
    let mut conn = redis().await;
    let key = lease::autoscaler_key(&prefix());
    let (mut a, mut b) = (Lease::new(key.clone(), LEASE), Lease::new(key, LEASE));
    assert!(a.hold(&mut conn).await.unwrap());
    assert!(!b.hold(&mut conn).await.unwrap());
    assert!(a.held() && !b.held());

    // Both keep at it for three lease durations: A renews, B never gets it,
    // never are both holding.
    let until = Instant::now() + LEASE * 3;
    while Instant::now() < until {
        let held_a = a.hold(&mut conn).await.unwrap();
        let held_b = b.hold(&mut conn).await.unwrap();
        assert!(held_a && !held_b, "A renews, B waits");
        assert!(!(a.held() && b.held()), "never two holders");
        tokio::time::sleep(LEASE / 8).await;
    }

    // A stops renewing (a crash, a pause): B takes over within the lease.
    let last_renewal = Instant::now();
    assert!(a.hold(&mut conn).await.unwrap());
    let taken = until_held(&mut b, &mut conn, LEASE * 3).await;
    let after = taken - last_renewal;
    assert!(
        after >= LEASE.mul_f64(0.9) && after <= LEASE + Duration::from_millis(400),
        "taken over {after:?} after the last renewal, lease {LEASE:?}"
    );
    // A stopped believing before B could take it, and learns it lost.
    assert!(!a.held(), "A's belief ran out");
    assert!(!a.hold(&mut conn).await.unwrap(), "A's renewal is refused");
    assert!(!a.held() && b.held());

    // B releases: A takes it at once.
    b.release(&mut conn).await.unwrap();
    assert!(!b.held());
    assert!(a.hold(&mut conn).await.unwrap());
    assert!(!b.hold(&mut conn).await.unwrap());
    a.release(&mut conn).await.unwrap();
}

#[tokio::test]
async fn a_release_by_a_former_holder_leaves_the_new_one_alone() {
    let mut conn = redis().await;
    let key = lease::autoscaler_key(&prefix());
    let (mut a, mut b) = (Lease::new(key.clone(), LEASE), Lease::new(key, LEASE));
    assert!(a.hold(&mut conn).await.unwrap());
    until_held(&mut b, &mut conn, LEASE * 3).await;
    // A, late, releases what it no longer holds: B keeps it.
    a.release(&mut conn).await.unwrap();
    assert!(b.hold(&mut conn).await.unwrap());
    assert!(!a.hold(&mut conn).await.unwrap());
}

fn snapshot(replica: &str, outstanding: u64, completed: u64) -> Snapshot {
    Snapshot {
        replica: replica.into(),
        at_ms: chrono::Utc::now().timestamp_millis(),
        interval_ms: 1000,
        models: vec![ModelLoad {
            organization_id: uuid::Uuid::nil(),
            model: "mock/model".into(),
            outstanding,
            completed,
            ttft: vec![completed],
            ..ModelLoad::default()
        }],
    }
}

/// Writes a snapshot as an API replica does, listed until `expires_ms`.
async fn publish(
    conn: &mut redis::aio::ConnectionManager,
    prefix: &str,
    s: &Snapshot,
    expires_ms: i64,
) {
    redis::pipe()
        .cmd("SET")
        .arg(signals::replica_key(prefix, &s.replica))
        .arg(serde_json::to_string(s).unwrap())
        .arg("PX")
        .arg(3000)
        .cmd("ZADD")
        .arg(signals::index_key(prefix))
        .arg(expires_ms)
        .arg(&s.replica)
        .query_async::<()>(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn live_replicas_snapshots_are_read_and_combined() {
    let mut conn = redis().await;
    let prefix = prefix();
    let mut reader = Reader::default();
    let empty = reader.read(&mut conn, &prefix).await.unwrap();
    assert_eq!((empty.replicas, empty.loads.len()), (0, 0));

    let later = chrono::Utc::now().timestamp_millis() + 3000;
    publish(&mut conn, &prefix, &snapshot("api-1", 3, 2), later).await;
    publish(&mut conn, &prefix, &snapshot("api-2", 4, 1), later).await;
    // Listed as expired: a dead replica whose entry nobody pruned yet.
    let gone = chrono::Utc::now().timestamp_millis() - 1;
    publish(&mut conn, &prefix, &snapshot("api-dead", 100, 100), gone).await;

    let combined = reader.read(&mut conn, &prefix).await.unwrap();
    assert_eq!(combined.replicas, 2);
    let load = combined.load(uuid::Uuid::nil(), "mock/model");
    assert_eq!(
        (load.outstanding, load.completed, load.ttft),
        (7, 3, vec![3])
    );

    // Read again before anyone published: in flight still, counted once.
    let again = reader.read(&mut conn, &prefix).await.unwrap();
    let load = again.load(uuid::Uuid::nil(), "mock/model");
    assert_eq!((load.outstanding, load.completed), (7, 0));
}
