//! Scale to zero, end to end on the mock provider: a service at zero
//! replicas (min 0, max 3) holds a streamed and a whole request, the
//! autoscaler starts a replica for them (held requests are demand), both
//! are served once it is ready, and the service goes back to zero after
//! its idle window, each scaling with its reason in the timeline.

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{scalings, Stack, MODEL};

/// (desired replicas, replicas counted: provisioning … ready).
async fn replicas(h: &Stack, service: Uuid) -> (i32, i64) {
    sqlx::query_as(
        "SELECT s.desired_replicas,
                (SELECT count(*) FROM instances i WHERE i.service_id = s.id
                   AND i.status IN ('provisioning', 'booting', 'installing', 'starting', 'ready'))
           FROM services s WHERE s.id = $1",
    )
    .bind(service)
    .fetch_one(&h.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_requests_wake_a_service_at_zero_which_goes_back_to_zero_when_idle() {
    let h = Stack::start().await;
    h.in_process(Ipv4Addr::new(127, 0, 73, 1)).await;
    let token = h.team().await;
    let (status, created) = h
        .call(
            Method::POST,
            "/services",
            &token,
            Some(json!({
                "model_id": MODEL, "name": "cold",
                "placements": [{ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g" }],
                "min_replicas": 0, "max_replicas": 3,
                "scale_down_cooldown_s": 0, "idle_window_s": 3
            })),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {created}");
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    assert_eq!(replicas(&h, id).await, (0, 0), "at zero from the start");
    let (status, created) = h
        .call(
            Method::POST,
            "/api-keys",
            &token,
            Some(json!({ "name": "cold" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();

    // Listed, cold, once the routing table knows the service.
    h.until("the model listed as cold", Duration::from_secs(10), || {
        let req = h
            .http
            .get(format!("{}/v1/models", h.api))
            .bearer_auth(&key)
            .send();
        async move {
            let models: Value = req.await.ok()?.json().await.ok()?;
            models["data"]
                .as_array()?
                .iter()
                .any(|m| m["id"] == MODEL && m["inventiv"]["state"] == "cold")
                .then_some(())
        }
    })
    .await;

    // A stream and a whole answer, sent together while nothing serves.
    let send = |stream: bool| {
        let req = h
            .http
            .post(format!("{}/v1/chat/completions", h.api))
            .bearer_auth(&key)
            .json(&json!({ "model": MODEL, "stream": stream, "max_tokens": 8,
                           "messages": [{ "role": "user", "content": "wake up" }] }))
            .send();
        tokio::spawn(async move {
            let res = req.await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        })
    };
    let (streamed, whole) = (send(true), send(false));

    let (status, text) = streamed.await.unwrap();
    assert_eq!(status, 200, "{text}\n{}", h.logs());
    assert!(
        text.contains("data: ") && text.contains("[DONE]") && !text.contains("\"error\""),
        "{text}"
    );
    let (status, text) = whole.await.unwrap();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["choices"][0]["message"].is_object(), "{answer}");
    assert!(answer["usage"]["completion_tokens"].as_i64() > Some(0));
    // Both were held, then served once the replica was ready (not refused
    // and retried): the API counts them so.
    let metrics = h
        .http
        .get(format!("{}/metrics", h.api_metrics))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("inventiv_v1_held_total{") && l.contains("outcome=\"served\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(served, 2.0, "{metrics}");

    // Idle for 3 s: back to zero, the replica terminated.
    h.until("back to zero", Duration::from_secs(60), || async {
        (replicas(&h, id).await == (0, 0)).then_some(())
    })
    .await;

    let items = h.service_events(&token, id).await;
    let scaled = scalings(&items);
    let steps: Vec<(i64, i64)> = scaled.iter().map(|(f, t, _)| (*f, *t)).collect();
    assert_eq!(steps, [(0, 1), (1, 0)], "{scaled:?}");
    assert!(
        scaled[0].2.contains("requests held at zero replicas"),
        "{scaled:?}"
    );
    assert!(scaled[1].2.contains("idle for 3 s"), "{scaled:?}");
    let kinds: Vec<&str> = items.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"replica_created"), "{kinds:?}");
    assert!(kinds.contains(&"replica_terminated"), "{kinds:?}");
    // One replica for the two of them.
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM instances WHERE service_id = $1")
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap();
    assert_eq!(made, 1);

    // Both were metered as any request.
    let rows: i64 = h
        .until("both usage rows", Duration::from_secs(20), || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM usage_records WHERE status = 200 AND completion_tokens > 0",
            )
            .fetch_one(&h.db)
            .await
            .unwrap();
            (n >= 2).then_some(n)
        })
        .await;
    assert_eq!(rows, 2);
}
