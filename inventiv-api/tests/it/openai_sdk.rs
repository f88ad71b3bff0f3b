//! The official `openai` Python SDK (PyPI) against `/v1` with a created
//! key: models, chat without and with streaming (the first chunk arrives
//! well before the end), completions, embeddings; usage rows equal the
//! engine's own counts, per request and summed against its counters; a
//! stream whose engine dies mid-way ends in the SDK as an `APIError`.

use crate::support;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use crate::support::engines::serving;
use crate::support::{engine_metric, eventually, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_works_and_usage_matches_the_engine() {
    let python = tokio::task::spawn_blocking(support::sdk_python)
        .await
        .unwrap();
    let app = TestApp::spawn().await;
    let (mut engine, a) = serving(&app, "a", &["--tokens-per-sec", "40"]).await;
    let port = engine.port;
    let (_, key) = app.api_key(&a.owner.token, json!({ "name": "sdk" })).await;

    let sdk = |mode: &str| support::sdk_command(&python, "client.py", &app, &key, mode);
    let report = support::sdk_report(sdk("main")).await;

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
        eventually("4 usage rows", Duration::from_secs(10), || async {
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

    // Summed, the rows equal the engine's own counters.
    eventually("the engine idle", Duration::from_secs(10), || async {
        (engine_metric(port, "vllm:num_requests_running").await == 0).then_some(())
    })
    .await;
    let sum = |f: fn(&(String, i32, i32)) -> i32| rows.iter().map(|r| i64::from(f(r))).sum::<i64>();
    assert_eq!(
        (sum(|r| r.1), sum(|r| r.2)),
        (
            engine_metric(port, "vllm:prompt_tokens_total").await,
            engine_metric(port, "vllm:generation_tokens_total").await
        )
    );

    // The engine dies while the SDK streams from it: the SDK raises an
    // APIError with the proxy's message instead of hanging.
    let mut broken = sdk("broken_stream")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(broken.stdout.take().unwrap());
    let (stdout, first) = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            (stdout, line)
        }),
    )
    .await
    .expect("the stream started")
    .unwrap();
    if first.trim() != "streaming" {
        let mut stderr = String::new();
        broken
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        panic!("the stream did not start: {first}\n{stderr}");
    }
    // The engine alone: its relay stays, as on a node whose engine crashed.
    engine.child.kill().unwrap();
    let (outcome, status) = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || {
            let mut rest = String::new();
            let mut stdout = stdout;
            stdout.read_to_string(&mut rest).unwrap();
            (rest, broken.wait().unwrap())
        }),
    )
    .await
    .expect("the SDK saw the end of the stream")
    .unwrap();
    assert!(status.success(), "{outcome}");
    let outcome: Value = serde_json::from_str(outcome.trim()).unwrap();
    assert_eq!(outcome["error"], "APIError", "{outcome}");
    assert!(
        outcome["message"]
            .as_str()
            .is_some_and(|m| m.contains("stream broke")),
        "{outcome}"
    );
    let last: (i32, bool) = eventually(
        "the broken stream's usage row",
        Duration::from_secs(10),
        || async {
            let rows: Vec<(i32, bool)> =
                sqlx::query_as("SELECT status, streamed FROM usage_records ORDER BY id")
                    .fetch_all(&app.state.db)
                    .await
                    .unwrap();
            (rows.len() == 5).then(|| rows[4])
        },
    )
    .await;
    assert_eq!(last, (502, true));
}
