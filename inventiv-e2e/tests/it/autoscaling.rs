//! Services that scale, end to end on the mock provider: the real API
//! (its replica convergence, its proxy publishing the load) and an
//! in-process orchestrator (its autoscaler under the lease), real replicas
//! installed and made ready.
//!
//! The scaling test drives real load: concurrent clients of `/v1` on a
//! mock engine slow enough (`INVENTIV_MOCK_ENGINE_ARGS`) that their
//! requests stay outstanding, every answer checked. The handover test and
//! the budget cap test (`service_limits`) write the load instead, as one
//! more API replica's snapshot in Redis ([`load`]): they are about who
//! acts and what stops a scale-up, and an exact level makes their single
//! step exact without replicas serving anything.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use inventiv_common::signals::{self, ModelLoad, Snapshot};
use inventiv_orchestrator::context::Orchestrator;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{scalings, Stack, MODEL};

/// Writes `outstanding` requests of (org, MODEL) as a replica's snapshot
/// every 200 ms until cancelled, in the format the API replicas publish
/// (`inventiv_common::signals`; the publishing itself is tested in the
/// API's `signals` tests and by the scaling test here).
pub(crate) fn load(h: &Stack, org: Uuid, outstanding: u64) -> CancellationToken {
    let stop = CancellationToken::new();
    let mut redis = h.redis.clone();
    let prefix = h.prefix.clone();
    let until = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                () = until.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = chrono::Utc::now().timestamp_millis();
            let snapshot = Snapshot {
                replica: "load-test".into(),
                at_ms: now,
                interval_ms: 200,
                models: vec![ModelLoad {
                    organization_id: org,
                    model: MODEL.into(),
                    outstanding,
                    ..ModelLoad::default()
                }],
            };
            let key = signals::replica_key(&prefix, "load-test");
            let _: () = redis::pipe()
                .cmd("SET")
                .arg(&key)
                .arg(serde_json::to_string(&snapshot).unwrap())
                .arg("PX")
                .arg(600)
                .ignore()
                .cmd("ZADD")
                .arg(signals::index_key(&prefix))
                .arg(now + 600)
                .arg("load-test")
                .ignore()
                .query_async(&mut redis)
                .await
                .unwrap();
        }
    });
    stop
}

/// (desired replicas, replicas ready, replicas counted: provisioning … ready).
pub(crate) async fn replicas(h: &Stack, service: Uuid) -> (i32, i64, i64) {
    sqlx::query_as(
        "SELECT s.desired_replicas,
                (SELECT count(*) FROM instances i WHERE i.service_id = s.id AND i.status = 'ready'),
                (SELECT count(*) FROM instances i WHERE i.service_id = s.id
                   AND i.status IN ('provisioning', 'booting', 'installing', 'starting', 'ready'))
           FROM services s WHERE s.id = $1",
    )
    .bind(service)
    .fetch_one(&h.db)
    .await
    .unwrap()
}

/// Creates a service of `MODEL` on mock zone 1 (min 1, up to `max`, 4
/// outstanding per replica, no cooldown) and waits for its first replica
/// ready; returns (service, its organization).
async fn ready_service(h: &Stack, token: &str, name: &str, max: i32) -> (Uuid, Uuid) {
    let (status, created) = h
        .call(
            reqwest::Method::POST,
            "/services",
            token,
            Some(json!({
                "model_id": MODEL, "name": name,
                "placements": [{ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g" }],
                "min_replicas": 1, "max_replicas": max, "target_outstanding": 4,
                "scale_down_cooldown_s": 0, "idle_window_s": 3600
            })),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {created}");
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM services WHERE id = $1")
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap();
    h.until(
        "the first replica ready",
        Duration::from_secs(90),
        || async { (replicas(h, id).await == (1, 1, 1)).then_some(()) },
    )
    .await;
    (id, org)
}

/// The mock engine of the scaling test: 300 ms to the first token, then
/// 20 tokens a second, so a request of 8 tokens lasts about 650 ms.
const SLOW_ENGINE: &str = "--ttft-ms 300 --tokens-per-second 20";

/// Clients of the heavy load; with 4 outstanding per replica and at most 3
/// replicas, any level from 9 on asks for all 3 (it dips below 12 when a
/// client is between two requests).
const HEAVY: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_load_scales_a_service_up_and_back_down_one_step_at_a_time_without_a_failed_request() {
    let mut h = Stack::start_with_env(&[("INVENTIV_SIGNALS_INTERVAL_MS", "250")]).await;
    h.mock_engine_args = SLOW_ENGINE;
    h.in_process(Ipv4Addr::new(127, 0, 72, 1)).await;
    let token = h.team().await;
    // At most one replica while the load starts: a snapshot taken while
    // the clients' first requests were on their way would otherwise make
    // the first step 1 → 2.
    let (id, org) = ready_service(&h, &token, "scaling", 1).await;
    let key = h.routed_key(&token, "scaling").await;

    let heavy = h.clients(&key, HEAVY - 2);
    let light = h.clients(&key, 2);
    // The full load published for longer than the autoscaler's window
    // (1 s) plus a publishing interval and two of its passes: from then
    // on its window holds nothing else.
    let since = std::cell::Cell::new(None::<i64>);
    h.until(
        "the full load published for 2.5 s",
        Duration::from_secs(60),
        || async {
            let (at, outstanding) = h.published_outstanding(org).await?;
            if outstanding < 9 {
                since.set(None);
                return None;
            }
            let first = since.get().unwrap_or(at);
            since.set(Some(first));
            (at - first >= 2500).then_some(())
        },
    )
    .await;
    assert_eq!(
        replicas(&h, id).await,
        (1, 1, 1),
        "kept at the maximum of 1"
    );
    let (status, body) = h
        .call(
            reqwest::Method::PATCH,
            &format!("/services/{id}"),
            &token,
            Some(json!({ "max_replicas": 3 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // ⌈9 to 12 outstanding / 4⌉ = 3 replicas, all made ready, each one
    // serving its share of the load before it drops.
    h.until("three replicas ready", Duration::from_secs(120), || async {
        (replicas(&h, id).await == (3, 3, 3)).then_some(())
    })
    .await;
    h.until("each of the three serving", Duration::from_secs(30), || async {
        let serving: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT u.instance_id) FROM usage_records u JOIN instances i ON i.id = u.instance_id
              WHERE i.service_id = $1 AND u.status = 200",
        )
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap();
        (serving == 3).then_some(())
    })
    .await;
    // The load drops to 2 clients: down one replica at a time, to the
    // floor, those taken away drained while requests keep coming.
    let mut tally = heavy.stop().await;
    h.until("back to one replica", Duration::from_secs(90), || async {
        (replicas(&h, id).await == (1, 1, 1)).then_some(())
    })
    .await;
    h.until("the two replicas taken away ended", Duration::from_secs(60), || async {
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM instances WHERE service_id = $1 AND status IN ('terminating', 'terminated')",
        )
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap();
        (ended == 2).then_some(())
    })
    .await;
    let rest = light.stop().await;
    tally.ok += rest.ok;
    tally.failed.extend(rest.failed);

    // Not one failed request, in all that time.
    assert!(
        tally.failed.is_empty(),
        "{} failed of {}: {:?}",
        tally.failed.len(),
        tally.failed.len() as u64 + tally.ok,
        tally.failed
    );
    assert!(tally.ok > 50, "{} answers", tally.ok);

    let items = h.service_events(&token, id).await;
    let scaled = scalings(&items);
    let steps: Vec<(i64, i64)> = scaled.iter().map(|(f, t, _)| (*f, *t)).collect();
    assert_eq!(steps, [(1, 3), (3, 2), (2, 1)], "{scaled:?}");
    let up = &scaled[0].2;
    assert!(
        up.starts_with("outstanding ") && up.ends_with(" per replica > 4 for 1 s: 1 → 3"),
        "{scaled:?}"
    );
    for (_, _, down) in &scaled[1..] {
        assert!(down.starts_with("outstanding up to "), "{scaled:?}");
    }
    // The replicas made and let go are in the timeline too.
    let kinds: Vec<&str> = items.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"replica_created"), "{kinds:?}");
    assert!(kinds.contains(&"replica_terminated"), "{kinds:?}");
    // Those taken away drained first (out of routing), then ended.
    let drained: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT h.instance_id) FROM instance_state_history h JOIN instances i ON i.id = h.instance_id
          WHERE i.service_id = $1 AND h.to_status = 'draining'",
    )
    .bind(id)
    .fetch_one(&h.db)
    .await
    .unwrap();
    assert_eq!(drained, 2);
    // Every answer was metered, by the three replicas.
    let (rows, served_by): (i64, i64) = h
        .until("every answer metered", Duration::from_secs(30), || async {
            let (rows, by): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(DISTINCT instance_id) FROM usage_records WHERE status = 200",
            )
            .fetch_one(&h.db)
            .await
            .unwrap();
            (u64::try_from(rows).unwrap() >= tally.ok).then_some((rows, by))
        })
        .await;
    assert_eq!(u64::try_from(rows).unwrap(), tally.ok);
    assert_eq!(served_by, 3);
}

/// Which of `orchestrators` hold the autoscaler's lease now.
fn leaders(orchestrators: &[&Orchestrator]) -> Vec<usize> {
    orchestrators
        .iter()
        .enumerate()
        .filter(|(_, o)| o.metrics.autoscaler_leader.load(Ordering::Relaxed) == 1)
        .map(|(n, _)| n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_orchestrators_one_autoscaler_acts_and_the_other_takes_over_when_it_stops() {
    let h = Stack::start().await;
    let stops = [h.child_token(), h.child_token()];
    let a = h
        .in_process_until(Ipv4Addr::new(127, 0, 73, 1), stops[0].clone())
        .await;
    let b = h
        .in_process_until(Ipv4Addr::new(127, 0, 74, 1), stops[1].clone())
        .await;
    let both = [a.as_ref(), b.as_ref()];
    let first = h
        .until(
            "one autoscaler holding the lease",
            Duration::from_secs(10),
            || async {
                match leaders(&both)[..] {
                    [one] => Some(one),
                    _ => None,
                }
            },
        )
        .await;
    let token = h.team().await;
    let (id, org) = ready_service(&h, &token, "handover", 2).await;
    // Still one leader all along, the same one.
    assert_eq!(leaders(&both), [first]);

    // The leader stops: it gives its lease up on the way out. (A crashed
    // one cannot: its lease runs out within its duration, 2 s here; the
    // lease's expiry and takeover are tested on Redis in the
    // orchestrator's `autoscaler` tests.)
    stops[first].cancel();
    let other = 1 - first;
    h.until(
        "the other autoscaler holding the lease",
        Duration::from_secs(10),
        || async { (leaders(&both) == [other]).then_some(()) },
    )
    .await;

    // It acts: load scales the service up, once.
    let stop = load(&h, org, 6);
    h.until("two replicas wanted", Duration::from_secs(30), || async {
        (replicas(&h, id).await.0 == 2).then_some(())
    })
    .await;
    stop.cancel();
    assert_eq!(both[other].metrics.autoscaler_scalings.get(), 1);
    assert_eq!(both[first].metrics.autoscaler_scalings.get(), 0);
    let scaled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM service_events WHERE service_id = $1 AND kind = 'scaled'",
    )
    .bind(id)
    .fetch_one(&h.db)
    .await
    .unwrap();
    assert_eq!(scaled, 1);
}
