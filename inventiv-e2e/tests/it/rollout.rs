//! Rolling replacement end to end on the mock provider: a service of two
//! ready replicas under steady load (closed-loop clients of a slow engine,
//! so the replicas drained have requests in flight) is rolled out to
//! another zone; its replicas are replaced one at a time by real new ones
//! (provisioned, bootstrapped, ready), the old ones drained and
//! terminated, and not one request fails meanwhile.

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{Stack, MODEL};

/// The service's replicas by (revision, zone, status), ended ones included.
async fn replicas(h: &Stack, service: Uuid) -> Vec<(i32, String, String)> {
    sqlx::query_as(
        "SELECT service_revision, zone, status FROM instances WHERE service_id = $1 ORDER BY created_at, id",
    )
    .bind(service)
    .fetch_all(&h.db)
    .await
    .unwrap()
}

/// The engine: 100 ms to the first token, then 50 tokens a second, so a
/// request of 8 tokens lasts about 250 ms.
const SLOW_ENGINE: &str = "--ttft-ms 100 --tokens-per-second 50";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_under_steady_load_replaces_both_replicas_without_a_failed_request() {
    let mut h = Stack::start().await;
    h.mock_engine_args = SLOW_ENGINE;
    h.in_process(Ipv4Addr::new(127, 0, 201, 1)).await;
    let token = h.team().await;
    let (status, created) = h
        .call(
            Method::POST,
            "/services",
            &token,
            Some(json!({
                "model_id": MODEL, "name": "rolled",
                "placements": [{ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g" }],
                "min_replicas": 2, "max_replicas": 2
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    h.until("two replicas ready", Duration::from_secs(90), || async {
        let all = replicas(&h, id).await;
        (all.iter().filter(|r| r.2 == "ready").count() == 2).then_some(())
    })
    .await;
    let key = h.routed_key(&token, "steady").await;

    let clients = h.clients(&key, 4);
    // Load flowing before the rollout starts.
    h.until_metered(20, None).await;

    let (status, rolled) = h
        .call(
            Method::POST,
            &format!("/services/{id}/rollout"),
            &token,
            Some(json!({ "reason": "new engine",
                         "placements": [{ "provider": "mock", "zone": "mock-zone-2", "instance_type": "mock-1gpu-24g" }] })),
        )
        .await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["outdated_replicas"], 2);

    // Done when both old replicas are terminated and two new ones serve.
    let done = |all: &[(i32, String, String)]| {
        let old_gone = all
            .iter()
            .filter(|r| r.0 == 1)
            .all(|r| r.2 == "terminating" || r.2 == "terminated");
        let new_ready = all
            .iter()
            .filter(|r| r.0 == 2 && r.1 == "mock-zone-2" && r.2 == "ready")
            .count();
        old_gone && new_ready == 2
    };
    h.until("the rollout done", Duration::from_secs(180), || async {
        done(&replicas(&h, id).await).then_some(())
    })
    .await;
    // Some load on the new replicas before it stops.
    h.until(
        "requests served by the new replicas",
        Duration::from_secs(20),
        || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM usage_records u JOIN instances i ON i.id = u.instance_id
              WHERE i.service_id = $1 AND i.service_revision = 2",
            )
            .bind(id)
            .fetch_one(&h.db)
            .await
            .unwrap();
            (n >= 20).then_some(())
        },
    )
    .await;
    let answered = h.all_answered(clients).await;
    assert!(answered >= 40, "{answered} requests only");

    // Never more than one replica beyond the two wanted, none of the old
    // ones ended before it drained, the course in the timeline.
    let all = replicas(&h, id).await;
    assert_eq!(all.len(), 4, "{all:?}");
    let drained: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT h.instance_id) FROM instance_state_history h JOIN instances i ON i.id = h.instance_id
          WHERE i.service_id = $1 AND i.service_revision = 1 AND h.to_status = 'draining'",
    )
    .bind(id)
    .fetch_one(&h.db)
    .await
    .unwrap();
    assert_eq!(drained, 2);
    let items = h.service_events(&token, id).await;
    let kinds: Vec<&str> = items
        .iter()
        .rev()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    let started = kinds.iter().position(|k| *k == "rollout_started").unwrap();
    let finished = kinds.iter().position(|k| *k == "rollout_finished").unwrap();
    assert!(started < finished, "{kinds:?}");
    let reasons: Vec<&Value> = items.iter().map(|e| &e["reason"]).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("new engine"))),
        "{reasons:?}"
    );
}
