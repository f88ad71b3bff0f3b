//! The worker log viewer's route, `GET /instances/{id}/logs`: the agent's
//! log read through the node's relay (the stand-in relay: TLS, relay key)
//! from a test server answering as the agent does on `/agent/logs`. The
//! worker is the tenant's, so a hostile one is fair: a huge answer, a
//! redirect, JSON that is not the log, silence, a dead node are each a
//! clear 502 or 504, and nothing the worker sends is passed on unchecked.

use std::sync::{Arc, Mutex};

use crate::support::engines::{fake, serve_port, Trap};
use crate::support::{error_code, TestApp};
use std::collections::HashMap;

use axum::extract::Query;
use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};

fn logs_path(instance: uuid::Uuid, query: &str) -> String {
    format!("/instances/{instance}/logs{query}")
}

/// An agent's `/agent/logs` with five events, honouring `tail` and
/// `since` as the agent does; records the queries it was sent.
fn agent(seen: Arc<Mutex<Vec<String>>>) -> axum::Router {
    axum::Router::new().fallback(
        move |uri: Uri, Query(params): Query<HashMap<String, String>>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(uri.to_string());
                let since = params
                    .get("since")
                    .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap());
                let events: Vec<Value> = (0..5)
                    .map(|i| {
                        let name = if i == 3 { "register_failed" } else { "engine_ready" };
                        json!({ "ts": format!("2026-12-06T10:00:0{i}.250Z"), "event": name, "port": 8001 + i })
                    })
                    .filter(|e| {
                        let ts = chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap());
                        since.is_none_or(|s| ts.unwrap() > s)
                    })
                    .collect();
                let tail: usize = params["tail"].parse().unwrap();
                let events = events[events.len().saturating_sub(tail)..].to_vec();
                axum::Json(json!({ "events": events }))
            }
        },
    )
}

#[tokio::test]
async fn members_read_the_tail_and_follow_it_with_since() {
    let app = TestApp::spawn().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let worker = fake(agent(seen.clone())).await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;

    let (status, body) = app
        .get(&logs_path(a.instance_id, "?tail=3"), Some(&a.user.token))
        .await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{body}");
    assert_eq!(events[0]["ts"], "2026-12-06T10:00:02.250Z");
    assert_eq!(events[0]["event"], "engine_ready");
    assert_eq!(events[0]["level"], "info");
    assert_eq!(events[0]["detail"], r#"{"port":8003}"#);
    assert_eq!(events[1]["level"], "error", "a *_failed event: {body}");
    assert_eq!(body["dropped"], 0);

    // Follow mode: the next read asks for what came after the last event.
    let last = events[2]["ts"].as_str().unwrap();
    let (status, body) = app
        .get(
            &logs_path(a.instance_id, &format!("?since={last}")),
            Some(&a.user.token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], json!([]), "{body}");
    let (status, body) = app
        .get(
            &logs_path(a.instance_id, "?since=2026-12-06T10:00:03Z&tail=1000"),
            Some(&a.owner.token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"].as_array().unwrap().len(), 2, "{body}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], "/agent/logs?tail=3");
    assert_eq!(
        seen[1],
        "/agent/logs?tail=200&since=2026-12-06T10%3A00%3A04.250000Z"
    );
    assert_eq!(
        seen[2],
        "/agent/logs?tail=1000&since=2026-12-06T10%3A00%3A03.000000Z"
    );
}

#[tokio::test]
async fn an_instance_without_a_worker_is_a_409_and_another_orgs_a_404() {
    let app = TestApp::spawn().await;
    let mut a = app.org("a").await;
    let mut b = app.org("b").await;
    app.add_instance(&mut a).await;
    app.add_instance(&mut b).await;
    let (status, body) = app
        .get(&logs_path(a.instance_id, ""), Some(&a.owner.token))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "NO_WORKER");
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{body}"
    );

    let worker = fake(agent(Arc::default())).await;
    let _relay = serve_port(&app, &mut b, worker.port).await;
    let (status, body) = app
        .get(&logs_path(b.instance_id, ""), Some(&a.owner.token))
        .await;
    assert_eq!(status, 404, "b's instance, asked by a: {body}");
    assert_eq!(
        app.get(&logs_path(b.instance_id, ""), Some(&b.user.token))
            .await
            .0,
        200
    );

    sqlx::query("UPDATE instances SET status = 'terminated' WHERE id = $1")
        .bind(b.instance_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, body) = app
        .get(&logs_path(b.instance_id, ""), Some(&b.owner.token))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "NO_WORKER");
}

/// What a hostile worker answers on `/agent/logs`, and the error the API
/// must give for it.
#[tokio::test]
async fn a_hostile_workers_answers_are_bounded_errors() {
    let app = TestApp::spawn().await;
    let trap = Trap::start().await;
    let target = trap.url("/agent/logs");
    let huge = "x".repeat(inventiv_api::routes::instance_logs::MAX_ANSWER_BYTES + 1);
    let cases: Vec<(&str, axum::Router, u16, &str)> = vec![
        (
            "a redirect to an internal service",
            axum::Router::new().fallback(move || {
                let target = target.clone();
                async move {
                    (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, target)],
                        "",
                    )
                        .into_response()
                }
            }),
            502,
            "WORKER_BAD_ANSWER",
        ),
        (
            "an answer larger than the bound, declared",
            axum::Router::new().fallback(move || {
                let huge = huge.clone();
                async move { huge }
            }),
            502,
            "WORKER_BAD_ANSWER",
        ),
        (
            "an answer larger than the bound, streamed without a length",
            axum::Router::new().fallback(|| async {
                let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
                let chunks = futures_util::stream::iter(
                    (0..1000).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                axum::body::Body::from_stream(chunks)
            }),
            502,
            "WORKER_BAD_ANSWER",
        ),
        (
            "JSON that is not the log",
            axum::Router::new().fallback(|| async { axum::Json(json!({ "events": "all good" })) }),
            502,
            "WORKER_BAD_ANSWER",
        ),
        (
            "not JSON",
            axum::Router::new().fallback(|| async { "<html>hello</html>" }),
            502,
            "WORKER_BAD_ANSWER",
        ),
        (
            "an error status",
            axum::Router::new().fallback(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            502,
            "WORKER_BAD_ANSWER",
        ),
        (
            "silence",
            axum::Router::new().fallback(std::future::pending::<&'static str>),
            504,
            "WORKER_TIMEOUT",
        ),
    ];
    for (what, router, expected, code) in cases {
        let worker = fake(router).await;
        let mut a = app.org("a").await;
        let _relay = serve_port(&app, &mut a, worker.port).await;
        let (status, body) = app
            .get(&logs_path(a.instance_id, ""), Some(&a.owner.token))
            .await;
        assert_eq!(status, expected, "{what}: {body}");
        assert_eq!(error_code(&body), code, "{what}: {body}");
        assert!(
            !body.to_string().contains("xxxx"),
            "{what}: the worker's bytes were passed on"
        );
    }
    assert_eq!(trap.hits(), 0, "the API followed a worker's redirect");
}

#[tokio::test]
async fn a_worker_out_of_reach_is_a_502_and_its_fields_are_cut() {
    let app = TestApp::spawn().await;
    let mut a = app.org("a").await;
    let long = "é".repeat(5000);
    let answer = json!({ "events": [
        { "ts": "2026-12-06T10:00:00Z", "event": "e".repeat(500), "error": long, "level": "warning" },
        { "ts": "not a time", "event": "x" },
        { "event": "no time" },
        42,
    ]});
    let worker = fake(axum::Router::new().fallback(move || {
        let answer = answer.clone();
        async move { axum::Json(answer) }
    }))
    .await;
    let relay = serve_port(&app, &mut a, worker.port).await;
    let (status, body) = app
        .get(&logs_path(a.instance_id, ""), Some(&a.owner.token))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dropped"], 3, "{body}");
    let event = &body["events"][0];
    assert_eq!(event["event"].as_str().unwrap().chars().count(), 128);
    assert_eq!(event["level"], "warning");
    assert_eq!(event["truncated"], true);
    assert_eq!(event["detail"].as_str().unwrap().chars().count(), 2000);

    // The node is gone (its relay no longer listens).
    drop(relay);
    let (status, body) = app
        .get(&logs_path(a.instance_id, ""), Some(&a.owner.token))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_code(&body), "WORKER_UNREACHABLE");

    // Another node answers at the address: its certificate is not the pinned one.
    let other = inventiv_testkit::relay::start(
        worker.port,
        inventiv_testkit::relay::Certificate::generate(),
    )
    .await;
    sqlx::query("UPDATE instances SET worker_engine_port = $2 WHERE id = $1")
        .bind(a.instance_id)
        .bind(i32::from(other.port))
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, body) = app
        .get(&logs_path(a.instance_id, ""), Some(&a.owner.token))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_code(&body), "WORKER_UNREACHABLE");
}
