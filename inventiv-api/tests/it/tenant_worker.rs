//! Attacks by a tenant who is root on its own worker: the worker is a test
//! server on the node's address whose answers the test writes. Redirects
//! are upstream errors and never followed; a worker cannot move its engine
//! to another port by registering again; a `"stream_options": null` cannot
//! make a stream go unmetered; huge answers, huge stream events and a
//! worker that stops sending are bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::engines::{engine, fake, serve, serve_port, Trap};
use crate::support::{error_code, eventually, TestApp};
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn chat(stream: bool) -> Value {
    json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 4, "stream": stream })
}

async fn call(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_worker_redirect_is_an_upstream_error_and_is_never_followed() {
    let app = TestApp::spawn().await;
    let trap = Trap::start().await;
    for status in [
        StatusCode::SEE_OTHER,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let target = trap.url("/metrics");
        let worker = fake(axum::Router::new().fallback(move || {
            let target = target.clone();
            async move { (status, [(header::LOCATION, target)], "").into_response() }
        }))
        .await;
        let mut a = app.org("a").await;
        let _relay = serve_port(&app, &mut a, worker.port).await;
        for stream in [false, true] {
            let (code, body) = call(&app, &a.api_key, &chat(stream)).await;
            assert_eq!(code, 502, "{status}, stream {stream}: {body}");
            assert_eq!(error_code(&body), "upstream_redirect", "{body}");
        }
    }
    assert_eq!(
        trap.hits(),
        0,
        "the proxy followed a worker's redirect to an internal service"
    );
}

#[tokio::test]
async fn a_worker_cannot_move_its_engine_to_another_port() {
    let app = TestApp::spawn().await;
    let engine = engine(&[]).await;
    let trap = Trap::start().await;
    let mut a = app.org("a").await;
    serve(&app, &mut a, &engine).await;

    // The tenant's agent registers again, claiming the internal service as
    // its engine, then heartbeats as ready.
    let register = json!({
        "schema_version": 2, "instance_id": a.instance_id, "boot_id": "boot-2",
        "agent": { "version": "0.1.0", "bundle_sha256": "ab".repeat(32) },
        "model_id": "mock/model", "mode": "mono", "gpu_count": 1,
        "agent_port": 8090, "engine_port": trap.server.port
    });
    let (status, body) = app
        .post(
            "/internal/workers/register",
            Some(&a.worker_token),
            register,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "WORKER_PORT_MISMATCH");
    let heartbeat = json!({
        "schema_version": 2, "instance_id": a.instance_id, "boot_id": "boot-2",
        "agent": { "version": "0.1.0", "bundle_sha256": "ab".repeat(32) },
        "status": "ready", "model_id": "mock/model",
        "engine": { "ready": true, "requests_running": 0, "requests_waiting": 0, "restarts": 0 },
        "sent_at": "2026-11-23T10:00:00Z"
    });
    let (status, body) = app
        .post(
            "/internal/workers/heartbeat",
            Some(&a.worker_token),
            heartbeat,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.state.heartbeats.flush(&app.state.db).await.unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();

    let port: i32 = sqlx::query_scalar("SELECT worker_engine_port FROM instances WHERE id = $1")
        .bind(a.instance_id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        port,
        i32::from(engine.relay.port),
        "the installed port stays"
    );
    let (code, body) = call(&app, &a.api_key, &chat(false)).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    assert_eq!(
        trap.hits(),
        0,
        "the proxy went to the port the worker claimed"
    );
}

/// An SSE answer made of `events` (each one `data: ...` line).
fn sse(events: Vec<String>) -> axum::response::Response {
    let body = events
        .into_iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect::<String>();
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

#[tokio::test]
async fn a_null_stream_options_cannot_make_a_stream_go_unmetered() {
    let app = TestApp::spawn().await;
    let seen: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let kept = seen.clone();
    // Like vLLM: the last `stream_options` key wins, and usage is streamed
    // only when it asks for it.
    let worker = fake(axum::Router::new().fallback(move |body: Bytes| {
        kept.lock().unwrap().push(body.clone());
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut events =
            vec![json!({ "choices": [{ "index": 0, "delta": { "content": "ok" } }] }).to_string()];
        if request["stream_options"]["include_usage"] == true {
            events.push(
                json!({ "choices": [], "usage": { "prompt_tokens": 7, "completion_tokens": 1 } })
                    .to_string(),
            );
        }
        events.push("[DONE]".into());
        async move { sse(events) }
    }))
    .await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;

    let mut body = chat(true);
    body["stream_options"] = Value::Null;
    let res = app
        .post_response("/v1/chat/completions", &a.api_key, &body)
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("\"ok\""), "{text}");
    assert!(!text.contains("\"usage\":{"), "usage not asked for: {text}");

    let sent = String::from_utf8(seen.lock().unwrap()[0].to_vec()).unwrap();
    assert_eq!(
        sent.matches("\"stream_options\"").count(),
        1,
        "the worker got {sent}"
    );
    let prompt: i32 = eventually("the usage row", Duration::from_secs(10), || async {
        sqlx::query_scalar("SELECT prompt_tokens FROM usage_records WHERE organization_id = $1")
            .bind(a.id)
            .fetch_optional(&app.state.db)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(prompt, 7, "the prompt went unmetered");
}

#[tokio::test]
async fn a_huge_answer_is_refused_not_buffered() {
    let app = TestApp::spawn().await;
    // 20 MiB, above the 16 MiB default: once with its length declared,
    // once chunked.
    const SIZE: usize = 20 * 1024 * 1024;
    let worker = fake(
        axum::Router::new().fallback(|uri: axum::http::Uri| async move {
            if uri.path() == "/v1/chat/completions" {
                let mut answer = br#"{"choices":[{"message":{"content":""#.to_vec();
                answer.resize(SIZE, b'x');
                answer.extend_from_slice(
                    br#""}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
                );
                ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
            } else {
                let chunks = futures_util::stream::iter(0..SIZE / 65536)
                    .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 65536])));
                Body::from_stream(chunks).into_response()
            }
        }),
    )
    .await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let res = app
            .post_response(
                path,
                &a.api_key,
                &json!({ "model": "mock/model", "prompt": "hi", "messages": [] }),
            )
            .await;
        assert_eq!(res.status(), 502, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            error_code(&body),
            "upstream_answer_too_large",
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn a_huge_stream_event_ends_the_stream() {
    let app = TestApp::spawn().await;
    // One event of 2 MiB, above the 1 MiB default, then a normal one.
    let worker = fake(axum::Router::new().fallback(|| async {
        let huge = json!({ "choices": [{ "index": 0, "delta": { "content": "x".repeat(2 * 1024 * 1024) } }] });
        sse(vec![huge.to_string(), "[DONE]".into()])
    }))
    .await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;
    let res = app
        .post_response("/v1/chat/completions", &a.api_key, &chat(true))
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.len() < 64 * 1024,
        "the huge event was relayed ({} bytes)",
        text.len()
    );
    assert!(text.contains("upstream_event_too_large"), "{text}");
}

#[tokio::test]
async fn a_worker_that_stops_sending_times_out() {
    let app = TestApp::spawn_with(&[("INVENTIV_PROXY_READ_TIMEOUT_SECS", "1")]).await;
    // Headers, then silence (the connection stays open).
    let worker = fake(axum::Router::new().fallback(|| async {
        let silent = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(silent),
        )
    }))
    .await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        call(&app, &a.api_key, &chat(false)),
    )
    .await
    .expect("the proxy waited for ever on a silent worker");
    assert_eq!(answer.0, 504, "{}", answer.1);
    assert_eq!(error_code(&answer.1), "upstream_timeout");
}
