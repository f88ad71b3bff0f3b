//! Requests held for a cold model (a service at zero replicas): listed as
//! cold, held until a worker is ready then served and metered as any
//! other, streamed or not; a full queue and a wait past the timeout answer
//! 503 with Retry-After; a client that leaves leaves the queue.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::engines::{engine, serve};
use crate::support::fixture::Org;
use crate::support::{error_code, eventually, rows_at_least, TestApp};

fn chat(stream: bool) -> Value {
    json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5, "stream": stream })
}

/// An organization with an active service of mock/model at zero replicas.
async fn cold(app: &TestApp, label: &str) -> Org {
    let org = app.org(label).await;
    sqlx::query(
        "INSERT INTO services (id, organization_id, name, model_id, min_replicas, max_replicas, desired_replicas)
         VALUES ($1, $2, 'cold', 'mock/model', 0, 3, 0)",
    )
    .bind(Uuid::new_v4())
    .bind(org.id)
    .execute(&app.state.db)
    .await
    .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
    org
}

async fn held_now(app: &TestApp, n: usize) {
    eventually(
        &format!("{n} requests held"),
        Duration::from_secs(10),
        || async { (app.state.routing.held.waiting() == n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_are_served_in_order_once_a_worker_is_ready() {
    let app = TestApp::spawn_with(&[("INVENTIV_HELD_MAX_PER_MODEL", "2")]).await;
    let mut org = cold(&app, "z").await;
    let models: Value = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(&org.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "mock/model", "{models}");
    assert_eq!(models["data"][0]["inventiv"]["state"], "cold", "{models}");

    let stream = {
        let (app_http, url, key) = (
            app.http.clone(),
            app.url("/v1/chat/completions"),
            org.api_key.clone(),
        );
        tokio::spawn(async move {
            let r = app_http
                .post(url)
                .bearer_auth(key)
                .json(&chat(true))
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        })
    };
    held_now(&app, 1).await;
    let whole = {
        let (app_http, url, key) = (
            app.http.clone(),
            app.url("/v1/chat/completions"),
            org.api_key.clone(),
        );
        tokio::spawn(async move {
            let r = app_http
                .post(url)
                .bearer_auth(key)
                .json(&chat(false))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        })
    };
    held_now(&app, 2).await;
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("inventiv_v1_held_requests{")
                && l.contains(&org.id.to_string())
                && l.ends_with(" 2")),
        "{metrics}"
    );

    // A third finds the queue full.
    let full = app
        .post_response("/v1/chat/completions", &org.api_key, &chat(false))
        .await;
    assert_eq!(full.status(), 503);
    assert_eq!(
        full.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("10")
    );
    let body: Value = full.json().await.unwrap();
    assert_eq!(error_code(&body), "cold_start_queue_full", "{body}");

    // A worker becomes ready: both are served, the stream as a stream.
    let engine = engine(&[]).await;
    serve(&app, &mut org, &engine).await;
    let (status, text) = stream.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("data: ") && text.contains("[DONE]"), "{text}");
    let (status, answer) = whole.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer["choices"][0]["message"].is_object(), "{answer}");
    assert_eq!(app.state.routing.held.waiting(), 0);

    // Metered as any request: one usage row each, with its tokens.
    let rows: Vec<(bool, i32, i32)> = rows_at_least(
        &app,
        2,
        "SELECT streamed, status, completion_tokens FROM usage_records WHERE organization_id = $1 ORDER BY id",
        Some(org.id),
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|(_, status, c)| *status == 200 && *c > 0),
        "{rows:?}"
    );
    let metrics = app.metrics().await;
    let outcome = |o: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("inventiv_v1_held_total{")
                    && l.contains(&org.id.to_string())
                    && l.contains(&format!("outcome=\"{o}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(
        (outcome("served"), outcome("full"), outcome("timed_out")),
        (Some(2), Some(1), Some(0)),
        "{metrics}"
    );
    // Now ready, and listed so.
    let models: Value = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(&org.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["inventiv"]["state"], "ready", "{models}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_times_out_and_a_client_gone_leaves_the_queue() {
    let app = TestApp::spawn_with(&[("INVENTIV_HELD_TIMEOUT_SECS", "1")]).await;
    let org = cold(&app, "t").await;

    let started = Instant::now();
    let r = app
        .post_response("/v1/chat/completions", &org.api_key, &chat(true))
        .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("10")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "cold_start_timeout", "{body}");
    assert_eq!(app.state.routing.held.waiting(), 0);

    // The timeout is long enough here for a client to leave first.
    let app = TestApp::spawn_with(&[("INVENTIV_HELD_TIMEOUT_SECS", "60")]).await;
    let org = cold(&app, "g").await;
    let (http, url, key) = (
        app.http.clone(),
        app.url("/v1/chat/completions"),
        org.api_key.clone(),
    );
    let gone = tokio::spawn(async move {
        let _ = http
            .post(url)
            .bearer_auth(key)
            .json(&chat(false))
            .send()
            .await;
    });
    held_now(&app, 1).await;
    gone.abort();
    held_now(&app, 0).await;
    // Nothing was served, nothing metered.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
