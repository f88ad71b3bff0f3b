//! Requests that fail after some output are metered with what was
//! produced; retries on another worker before any byte are not counted
//! twice; one usage row per answered request, always (issue 14).
//!
//! - a worker dying mid-stream: the row is a 502 with exactly the tokens
//!   the client received (the engine's own running count on the last chunk
//!   the proxy relayed), and a request the dead worker never answered has
//!   no row;
//! - a client leaving mid-stream: a 499 with what the engine produced;
//! - a worker refusing before any byte: the retry on another worker is the
//!   request's only row.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::engines::{engine, fake, serve, serve_port, serving};
use crate::support::{engine_metric, eventually, rows_at_least, TestApp};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// The JSON events of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// Non-empty content deltas: the tokens a client received.
fn tokens_received(events: &[Value]) -> i32 {
    let n = events
        .iter()
        .filter(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .count();
    i32::try_from(n).unwrap()
}

/// Every usage row: (status, prompt, completion, instance).
async fn rows(app: &TestApp, want: usize) -> Vec<(i32, i32, i32, uuid::Uuid)> {
    rows_at_least(
        app,
        want,
        "SELECT status, prompt_tokens, completion_tokens, instance_id FROM usage_records ORDER BY id",
        None,
    )
    .await
}

fn chat(stream: bool) -> Value {
    json!({ "model": "mock/model", "stream": stream,
            "messages": [{ "role": "user", "content": "tell me a long story" }] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_a_dying_worker_is_metered_with_what_the_client_got() {
    let app = TestApp::spawn().await;
    // Ten tokens a second, a hundred to say: the stream is under way when
    // the second request makes the engine exit at once.
    let dying = engine(&[
        "--tokens-per-second",
        "10",
        "--output-len",
        "100",
        "--exit-after",
        "2",
        "--exit-mode",
        "crash",
    ])
    .await;
    let mut a = app.org("a").await;
    serve(&app, &mut a, &dying).await;
    let res = app
        .post_response("/v1/chat/completions", &a.api_key, &chat(true))
        .await;
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    while tokens_received(&events(&seen)) < 3 {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    // The engine dies on this one, unanswered: no worker answered it.
    let (status, unanswered) = app
        .post(
            "/v1/chat/completions",
            Some(&a.api_key),
            chat(false).clone(),
        )
        .await;
    assert_eq!(status, 502, "{unanswered}");
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Err(e) => panic!("the proxy ends the stream cleanly: {e}"),
        }
    }
    let received = events(&seen);
    assert_eq!(
        received.last().unwrap()["error"]["code"],
        "upstream_error",
        "{seen}"
    );
    let got = tokens_received(&received);
    assert!((3..100).contains(&got), "{got}");
    let rows = rows(&app, 1).await;
    assert_eq!(rows.len(), 1, "one row, for the answered request: {rows:?}");
    // The prompt's five words, and exactly the tokens the client received.
    assert_eq!((rows[0].0, rows[0].1, rows[0].2), (502, 5, got), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_is_metered_with_what_the_engine_produced() {
    let app = TestApp::spawn().await;
    let (slow, a) = serving(
        &app,
        "a",
        &["--tokens-per-second", "5", "--output-len", "100"],
    )
    .await;
    let res = app
        .post_response("/v1/chat/completions", &a.api_key, &chat(true))
        .await;
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    while tokens_received(&events(&seen)) < 2 {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    drop(body);
    eventually("the engine idle", Duration::from_secs(10), || async {
        (engine_metric(slow.port, "vllm:num_requests_running").await == 0).then_some(())
    })
    .await;
    let rows = rows(&app, 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0, i64::from(rows[0].1), i64::from(rows[0].2)),
        (
            499,
            engine_metric(slow.port, "vllm:prompt_tokens_total").await,
            engine_metric(slow.port, "vllm:generation_tokens_total").await
        ),
        "what the engine produced, no more, no less"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_before_any_byte_is_the_requests_only_row() {
    let app = TestApp::spawn().await;
    let good = engine(&[]).await;
    // A worker that refuses everything with a 503, counting what it saw.
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    let refusing = fake(axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }))
    .await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, refusing.port).await;
    serve(&app, &mut a, &good).await;
    let good_instance = a.instance_id;
    // Sessions pin an order of the workers (rendezvous hashing): go through
    // sessions until the refusing worker was tried first at least once.
    let mut sent = 0;
    while refused.load(Ordering::SeqCst) == 0 {
        assert!(sent < 64, "the refusing worker was never tried");
        let res = app
            .http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&a.api_key)
            .header("x-inventiv-session", format!("session-{sent}"))
            .json(&chat(sent % 2 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap();
        sent += 1;
    }
    let rows = rows(&app, sent).await;
    assert_eq!(rows.len(), sent, "one row per request: {rows:?}");
    assert!(rows.iter().all(|r| r.0 == 200 && r.3 == good_instance));
    let (prompt, completion) = rows.iter().fold((0i64, 0i64), |(p, c), r| {
        (p + i64::from(r.1), c + i64::from(r.2))
    });
    assert_eq!(
        (prompt, completion),
        (
            engine_metric(good.port, "vllm:prompt_tokens_total").await,
            engine_metric(good.port, "vllm:generation_tokens_total").await
        )
    );
}
