//! What stops or steers a service's replicas, end to end on the mock
//! provider: a zone without capacity (placement fallback, each attempt in
//! the timeline), a budget cap (no scale-up, with its reason) and a
//! replica taken away (drained out of routing before it is terminated).

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::autoscaling::{load, replicas};
use crate::support::{MockFaults, Stack, MODEL};

fn placement(zone: &str) -> Value {
    json!({ "provider": "mock", "zone": zone, "instance_type": "mock-1gpu-24g" })
}

/// Creates a service from `body` (its model and name added); returns its id and organization.
async fn service(h: &Stack, token: &str, mut body: Value) -> (Uuid, Uuid) {
    body["model_id"] = json!(MODEL);
    body["name"] = json!("limits");
    let (status, created) = h.call(Method::POST, "/services", token, Some(body)).await;
    assert!(status == 201 || status == 202, "{status} {created}");
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM services WHERE id = $1")
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap();
    (id, org)
}

/// The service's timeline, oldest first: (kind, reason).
async fn timeline(h: &Stack, token: &str, id: Uuid) -> Vec<(String, String)> {
    let (status, events) = h
        .call(Method::GET, &format!("/services/{id}/events"), token, None)
        .await;
    assert_eq!(status, 200, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zone_out_of_stock_sends_the_replica_to_the_next_placement_and_says_so() {
    let h = Stack::start().await;
    let faults = MockFaults {
        out_of_stock_zones: vec!["mock-zone-1".into()],
        ..MockFaults::default()
    };
    h.in_process_with(Ipv4Addr::new(127, 0, 82, 1), faults)
        .await;
    let token = h.team().await;
    let (id, _) = service(
        &h,
        &token,
        json!({ "placements": [placement("mock-zone-1"), placement("mock-zone-2")],
                "min_replicas": 1, "max_replicas": 1 }),
    )
    .await;

    let zone: String = h
        .until("a replica ready", Duration::from_secs(120), || async {
            sqlx::query_scalar(
                "SELECT zone FROM instances WHERE service_id = $1 AND status = 'ready'",
            )
            .bind(id)
            .fetch_optional(&h.db)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(zone, "mock-zone-2");
    let failed: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, zone, error_code FROM instances WHERE service_id = $1 AND status = 'provisioning_failed'",
    )
    .bind(id)
    .fetch_all(&h.db)
    .await
    .unwrap();
    // Zone 1 was tried once, then avoided.
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1, "mock-zone-1");
    assert_eq!(failed[0].2.as_deref(), Some("PROVIDER_OUT_OF_STOCK"));
    let attempt = h
        .until(
            "the attempt in the timeline",
            Duration::from_secs(30),
            || async {
                timeline(&h, &token, id)
                    .await
                    .into_iter()
                    .find(|(kind, _)| kind == "placement_failed")
                    .map(|(_, reason)| reason)
            },
        )
        .await;
    for part in [
        &failed[0].0.to_string(),
        "mock/mock-zone-1/mock-1gpu-24g",
        "PROVIDER_OUT_OF_STOCK",
        "avoid this placement for 600 s",
    ] {
        assert!(attempt.contains(part), "{part:?} not in {attempt:?}");
    }
    assert_eq!(replicas(&h, id).await, (1, 1, 1));
    // Once per replica, however many passes saw it.
    let noted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM service_events WHERE service_id = $1 AND kind = 'placement_failed'",
    )
    .bind(id)
    .fetch_one(&h.db)
    .await
    .unwrap();
    assert_eq!(noted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_cap_used_up_stops_the_scale_up_with_its_reason() {
    let h = Stack::start().await;
    let orchestrator = h.in_process(Ipv4Addr::new(127, 0, 83, 1)).await;
    let token = h.team().await;
    let (id, org) = service(
        &h,
        &token,
        json!({ "placements": [placement("mock-zone-1")],
                "min_replicas": 1, "max_replicas": 3, "target_outstanding": 4,
                "scale_down_cooldown_s": 0, "idle_window_s": 3600, "gpu_hours_cap": "0" }),
    )
    .await;
    h.until(
        "the first replica ready",
        Duration::from_secs(90),
        || async { (replicas(&h, id).await == (1, 1, 1)).then_some(()) },
    )
    .await;

    // 10 outstanding for 4 per replica would call for 3.
    let stop = load(&h, org, 10);
    let capped = h
        .until(
            "the cap in the timeline",
            Duration::from_secs(30),
            || async {
                timeline(&h, &token, id)
                    .await
                    .into_iter()
                    .find(|(kind, _)| kind == "budget_capped")
                    .map(|(_, reason)| reason)
            },
        )
        .await;
    assert!(
        capped.contains("budget cap reached: stays at 1")
            && capped.contains("outstanding 10 per replica > 4")
            && capped.contains("GPU-hour cap used this month"),
        "{capped}"
    );
    // Ten more passes of the autoscaler under the same load change
    // nothing, and the cap is written once per episode.
    let passes = orchestrator.metrics.autoscaler_passes.get();
    h.until(
        "ten more autoscaler passes",
        Duration::from_secs(30),
        || async { (orchestrator.metrics.autoscaler_passes.get() >= passes + 10).then_some(()) },
    )
    .await;
    stop.cancel();
    assert_eq!(replicas(&h, id).await, (1, 1, 1));
    let kinds: Vec<String> = timeline(&h, &token, id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(!kinds.iter().any(|k| k == "scaled"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "budget_capped").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_taken_away_drains_out_of_routing_before_it_is_terminated() {
    let h = Stack::start().await;
    h.in_process(Ipv4Addr::new(127, 0, 84, 1)).await;
    let token = h.team().await;
    let (id, _) = service(
        &h,
        &token,
        json!({ "placements": [placement("mock-zone-1")],
                "min_replicas": 2, "max_replicas": 2, "idle_window_s": 3600 }),
    )
    .await;
    h.until("two replicas ready", Duration::from_secs(120), || async {
        (replicas(&h, id).await == (2, 2, 2)).then_some(())
    })
    .await;
    let (status, created) = h
        .call(
            Method::POST,
            "/api-keys",
            &token,
            Some(json!({ "name": "drain" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();

    let (status, body) = h
        .call(
            Method::PATCH,
            &format!("/services/{id}"),
            &token,
            Some(json!({ "min_replicas": 1, "max_replicas": 1 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let draining: Uuid = h
        .until("a replica draining", Duration::from_secs(30), || async {
            sqlx::query_scalar(
                "SELECT id FROM instances WHERE service_id = $1 AND status = 'draining'",
            )
            .bind(id)
            .fetch_optional(&h.db)
            .await
            .unwrap()
        })
        .await;
    let kept: Uuid =
        sqlx::query_scalar("SELECT id FROM instances WHERE service_id = $1 AND status = 'ready'")
            .bind(id)
            .fetch_one(&h.db)
            .await
            .unwrap();

    // Once every routing table has dropped it (at once on the instance
    // event, within the 1 s refresh otherwise), no request reaches it:
    // requests for 1.5 s, those from 1 s after the drain began all served
    // by the replica kept.
    let sent = 15;
    for _ in 0..sent {
        let res = h
            .http
            .post(format!("{}/v1/chat/completions", h.api))
            .bearer_auth(&key)
            .json(&json!({ "model": MODEL, "max_tokens": 8,
                           "messages": [{ "role": "user", "content": "hello" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served: Vec<(Option<Uuid>, bool)> = h
        .until("the usage rows", Duration::from_secs(30), || async {
            let rows: Vec<(Option<Uuid>, bool)> = sqlx::query_as(
                "SELECT u.instance_id,
                        u.at > (SELECT h.at FROM instance_state_history h
                                 WHERE h.instance_id = $2 AND h.to_status = 'draining') + interval '1 second'
                   FROM usage_records u WHERE u.model = $1",
            )
            .bind(MODEL)
            .bind(draining)
            .fetch_all(&h.db)
            .await
            .unwrap();
            (rows.len() >= sent).then_some(rows)
        })
        .await;
    let late: Vec<Option<Uuid>> = served.iter().filter(|(_, l)| *l).map(|(i, _)| *i).collect();
    assert!(late.len() >= 3, "{served:?}");
    assert!(late.iter().all(|i| *i == Some(kept)), "{served:?}");

    // Then, nothing in flight on its engine: terminated, saying why.
    h.until(
        "the drained replica terminated",
        Duration::from_secs(60),
        || async {
            let status: String = sqlx::query_scalar("SELECT status FROM instances WHERE id = $1")
                .bind(draining)
                .fetch_one(&h.db)
                .await
                .unwrap();
            (status == "terminated").then_some(())
        },
    )
    .await;
    let path: Vec<String> = sqlx::query_scalar(
        "SELECT to_status FROM instance_state_history WHERE instance_id = $1 ORDER BY id",
    )
    .bind(draining)
    .fetch_all(&h.db)
    .await
    .unwrap();
    let tail: Vec<&str> = path
        .iter()
        .map(String::as_str)
        .skip_while(|s| *s != "ready")
        .collect();
    assert_eq!(
        tail,
        ["ready", "draining", "terminating", "terminated"],
        "{path:?}"
    );
    let reasons: Vec<String> = timeline(&h, &token, id)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "replica_terminated")
        .map(|(_, r)| r)
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("1 draining, 0 terminated")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains(&format!(
            "replica {draining} drained (no request in flight)"
        ))),
        "{reasons:?}"
    );
    assert_eq!(replicas(&h, id).await, (1, 1, 1));
}
