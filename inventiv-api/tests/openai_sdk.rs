//! The official `openai` Python SDK (PyPI) against `/v1` with a created
//! key: models, chat without and with streaming (the first chunk arrives
//! well before the end), completions, embeddings; usage rows equal the
//! engine's own counts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::{wait_for, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_works_and_usage_matches_the_engine() {
    let python = tokio::task::spawn_blocking(support::sdk_python)
        .await
        .unwrap();
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut engine = Command::new(inventiv_testkit::engine::mock_engine())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--model",
            "mock/model",
            "--tokens-per-sec",
            "40",
        ])
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    wait_for("the engine", Duration::from_secs(10), || async {
        http.get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    sqlx::query(
        "UPDATE instances SET status = 'ready', ip_address = '127.0.0.1', worker_engine_port = $2, worker_status = 'ready',
                worker_engine_ready = true, last_heartbeat_at = now(), model_id = 'mock/model' WHERE id = $1",
    )
    .bind(a.instance_id)
    .bind(i32::from(port))
    .execute(&app.state.db)
    .await
    .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
    let (_, created) = app
        .post("/api-keys", Some(&a.owner.token), json!({ "name": "sdk" }))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/client.py");
    let base = app.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("BASE_URL", base)
            .env("API_KEY", key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = engine.kill();
    let _ = engine.wait();
    assert!(
        out.status.success(),
        "SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(report["models"], json!(["mock/model"]));
    assert!(report["chat"]["content"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    let stream = &report["stream"];
    let first = stream["first_chunk_s"].as_f64().unwrap();
    let total = stream["total_s"].as_f64().unwrap();
    assert!(
        first < total / 2.0,
        "the first chunk came at {first:.3}s of {total:.3}s: not streamed through"
    );
    assert_eq!(
        stream["usage"]["completion_tokens"].as_i64().unwrap(),
        stream["words"].as_i64().unwrap(),
        "usage agrees with the content"
    );
    assert_eq!(report["embeddings"]["count"], 2);
    assert_eq!(report["bad_key"], "AuthenticationError");

    // One usage row per answered request, with the engine's own numbers.
    let rows: Vec<(String, i32, i32)> =
        wait_for("4 usage rows", Duration::from_secs(10), || async {
            let rows: Vec<(String, i32, i32)> = sqlx::query_as(
                "SELECT endpoint, prompt_tokens, completion_tokens FROM usage_records ORDER BY id",
            )
            .fetch_all(&app.state.db)
            .await
            .unwrap();
            (rows.len() >= 4).then_some(rows)
        })
        .await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    let expect = |v: &Value| {
        (
            v["prompt_tokens"].as_i64().unwrap() as i32,
            v["completion_tokens"].as_i64().unwrap_or(0) as i32,
        )
    };
    assert_eq!((rows[0].1, rows[0].2), expect(&report["chat"]));
    assert_eq!((rows[1].1, rows[1].2), expect(&stream["usage"]));
    assert_eq!((rows[2].1, rows[2].2), expect(&report["completion"]));
    assert_eq!(
        (rows[3].0.as_str(), rows[3].1),
        (
            "/v1/embeddings",
            report["embeddings"]["prompt_tokens"].as_i64().unwrap() as i32
        )
    );
}
