//! The `/v1` data plane against a real mock engine: models from live
//! capacity, chat and completions (streaming or not) and embeddings
//! forwarded, usage recorded exactly once with the engine's counts, keys
//! scoped to their organization and models, no capacity → 503, rate limits,
//! and a client that goes away mid-stream still metered.

use crate::support;

use std::time::Duration;

use crate::support::engines::{engine, serve, serving};
use crate::support::{engine_metric, eventually, rows_at_least, TestApp};
use futures_util::StreamExt;
use serde_json::{json, Value};

async fn post(
    app: &TestApp,
    path: &str,
    key: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let res = app.post_response(path, key, &body).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

async fn usage_rows(app: &TestApp, want: usize) -> Vec<(String, i32, i32, i32, bool)> {
    rows_at_least(
        app,
        want,
        "SELECT endpoint, prompt_tokens, completion_tokens, status, streamed FROM usage_records ORDER BY id",
        None,
    )
    .await
}

/// Waits until `on` refuses `key` (401) on `path`.
async fn until_refused(what: &str, on: &TestApp, path: &str, key: &str, body: &Value) {
    eventually(what, Duration::from_secs(5), || async {
        (post(on, path, key, body.clone()).await.0 == 401).then_some(())
    })
    .await;
}

fn chat(stream: bool) -> Value {
    json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "tell me about GPUs" }], "max_tokens": 8, "stream": stream })
}

#[tokio::test]
async fn requests_are_forwarded_and_metered_exactly() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let key = a.api_key.clone();

    let models: Value = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "mock/model");

    // Not streaming: the engine's answer, its usage recorded.
    let (s, _, answer) = post(&app, "/v1/chat/completions", &key, chat(false)).await;
    assert_eq!(s, 200, "{answer}");
    let (p, c) = (
        answer["usage"]["prompt_tokens"].as_i64().unwrap(),
        answer["usage"]["completion_tokens"].as_i64().unwrap(),
    );

    // Streaming without include_usage: no usage chunk reaches the client, usage still recorded.
    let res = app
        .post_response("/v1/chat/completions", &key, &chat(true))
        .await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("\"usage\":{"), "usage chunk hidden: {text}");
    let streamed_words: usize = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(|s| s.split_whitespace().count())
        })
        .sum();

    // Streaming with include_usage: the client gets it too.
    let mut body = chat(true);
    body["stream_options"] = json!({ "include_usage": true });
    let text = app
        .post_response("/v1/chat/completions", &key, &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"usage\":{"), "{text}");

    let (s, _, completion) = post(
        &app,
        "/v1/completions",
        &key,
        json!({ "model": "mock/model", "prompt": "hello there", "max_tokens": 5 }),
    )
    .await;
    assert_eq!(s, 200, "{completion}");
    let (s, _, emb) = post(
        &app,
        "/v1/embeddings",
        &key,
        json!({ "model": "mock/model", "input": ["one", "two words"] }),
    )
    .await;
    assert_eq!((s, emb["data"].as_array().unwrap().len()), (200, 2));

    let rows = usage_rows(&app, 5).await;
    assert_eq!(
        rows.len(),
        5,
        "exactly one row per answered request: {rows:?}"
    );
    assert_eq!(
        (rows[0].1 as i64, rows[0].2 as i64),
        (p, c),
        "the engine's own counts"
    );
    assert_eq!(
        rows[1].2 as usize, streamed_words,
        "streamed usage equals the content sent"
    );
    assert!(rows[1].4 && !rows[0].4);
    assert_eq!(rows[4].0, "/v1/embeddings");
    assert!(rows.iter().all(|r| r.3 == 200));

    // The meter reads back: by model (JSON and CSV) and per instance.
    let (s, by_model) = app.get("/usage", Some(&a.manager.token)).await;
    assert_eq!(
        (
            s.as_u16(),
            by_model[0]["group"].as_str(),
            by_model[0]["requests"].as_i64()
        ),
        (200, Some("mock/model"), Some(5))
    );
    let total: i64 = rows.iter().map(|r| i64::from(r.2)).sum();
    assert_eq!(by_model[0]["completion_tokens"].as_i64(), Some(total));
    let csv = app
        .get_text("/usage?group_by=day&format=csv", &a.user.token)
        .await;
    assert!(
        csv.starts_with(
            "group,requests,prompt_tokens,completion_tokens,cached_prompt_tokens,reasoning_tokens,errors\n"
        )
            && csv.contains(",\"5\","),
        "{csv}"
    );
    let (s, metrics) = app
        .get(
            &format!("/instances/{}/metrics", a.instance_id),
            Some(&a.user.token),
        )
        .await;
    assert_eq!(
        (s.as_u16(), metrics["requests"][0]["requests"].as_i64()),
        (200, Some(5))
    );
    let (s, body) = app.get("/usage?group_by=planet", Some(&a.user.token)).await;
    assert_eq!(
        (s.as_u16(), support::error_code(&body)),
        (400, "INVALID_QUERY")
    );
}

#[tokio::test]
async fn keys_see_only_their_organizations_models() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let b = app.org("b").await;

    let (s, _, err) = post(&app, "/v1/chat/completions", "inv_notakey", chat(false)).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (s, _, err) = post(&app, "/v1/chat/completions", &b.api_key, chat(false)).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (404, Some("model_not_found")),
        "B cannot reach A's model"
    );
    let models: Value = app
        .http
        .get(app.url("/v1/models"))
        .bearer_auth(&b.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"], json!([]));

    // A key restricted to another model sees this one as absent.
    sqlx::query("UPDATE api_keys SET models = ARRAY['other/model'] WHERE id = $1")
        .bind(a.api_key_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    app.state
        .keys
        .forget(inventiv_api::auth::api_key::public_id(&a.api_key).unwrap());
    let (s, _, _) = post(&app, "/v1/chat/completions", &a.api_key, chat(false)).await;
    assert_eq!(s, 404);

    // A revoked key stops at once on this replica.
    let (id, fresh) = app
        .api_key(&a.owner.token, json!({ "name": "short-lived" }))
        .await;
    let path = "/v1/chat/completions";
    assert_eq!(post(&app, path, &fresh, chat(false)).await.0, 200);
    let (s, _) = app
        .delete(&format!("/api-keys/{id}"), Some(&a.owner.token))
        .await;
    assert_eq!(s, 204);
    until_refused("the revoked key refused", &app, path, &fresh, &chat(false)).await;

    // No fresh worker: 503 with Retry-After.
    sqlx::query(
        "UPDATE instances SET last_heartbeat_at = now() - interval '10 minutes' WHERE id = $1",
    )
    .bind(a.instance_id)
    .execute(&app.state.db)
    .await
    .unwrap();
    // A refresh the revocation set off may land after ours with the rows it
    // read before the update: refresh until the table is without the worker.
    let res = eventually(
        "the stale worker out of the table",
        Duration::from_secs(5),
        || async {
            app.state.routing.refresh(&app.state).await.unwrap();
            let res = app
                .post_response("/v1/chat/completions", &a.owner.token, &chat(false))
                .await;
            (res.status() != 200).then_some(res)
        },
    )
    .await;
    assert_eq!(
        res.status(),
        503,
        "the session works too, and finds no capacity"
    );
    assert!(res.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn rate_limits_and_disconnects() {
    let app = TestApp::spawn().await;
    let (_slow, a) = serving(
        &app,
        "a",
        &["--tokens-per-sec", "20", "--output-len", "200"],
    )
    .await;
    let (_, key) = app
        .api_key(&a.owner.token, json!({ "name": "limited", "rpm_limit": 2 }))
        .await;
    clear_of_a_minute_boundary().await;
    let short = json!({ "model": "mock/model", "prompt": "x", "max_tokens": 1 });
    let (s, headers, _) = post(&app, "/v1/completions", &key, short.clone()).await;
    assert_eq!(
        (s, headers["x-ratelimit-limit-requests"].to_str().unwrap()),
        (200, "2")
    );
    assert_eq!(
        post(&app, "/v1/completions", &key, short.clone()).await.0,
        200
    );
    let (s, headers, err) = post(&app, "/v1/completions", &key, short).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
    assert!(headers.contains_key("retry-after"));

    // A client that reads one chunk and leaves: metered as 499 with what it got.
    let res = app
        .post_response(
            "/v1/completions",
            &a.api_key,
            &json!({ "model": "mock/model", "prompt": "long story", "stream": true }),
        )
        .await;
    let mut stream = res.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    drop(stream);
    let rows = eventually(
        "the disconnect's usage row",
        Duration::from_secs(10),
        || async {
            let rows: Vec<(i32, i32)> = sqlx::query_as(
                "SELECT status, completion_tokens FROM usage_records WHERE streamed",
            )
            .fetch_all(&app.state.db)
            .await
            .unwrap();
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, 499);
    assert!(
        rows[0].1 >= 1 && rows[0].1 < 200,
        "only what was streamed: {}",
        rows[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traffic_spreads_and_survives_a_dead_worker() {
    let app = TestApp::spawn().await;
    let one = engine(&["--tokens-per-sec", "200", "--output-len", "20"]).await;
    let mut two = engine(&["--tokens-per-sec", "200", "--output-len", "20"]).await;
    let mut a = app.org("a").await;
    serve(&app, &mut a, &one).await;
    let first_instance = a.instance_id;
    serve(&app, &mut a, &two).await;
    let key = a.api_key.clone();
    let counts = |port: u16| async move {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("vllm:request_success_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    // Concurrent requests spread over both workers.
    let mut batch = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url, key) = (app.http.clone(), app.url("/v1/completions"), key.clone());
        batch.spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({ "model": "mock/model", "prompt": "x" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    while let Some(s) = batch.join_next().await {
        assert_eq!(s.unwrap(), 200);
    }
    let (c1, c2) = (
        counts(one.port).await.unwrap_or(0.0),
        counts(two.port).await.unwrap_or(0.0),
    );
    assert!(c1 >= 1.0 && c2 >= 1.0, "both workers served: {c1} / {c2}");

    // Kill one under load: requests that had not started still succeed
    // (retried on the other before any byte went out).
    let _ = two.child.kill();
    let _ = two.child.wait();
    for _ in 0..10 {
        let (s, _, body) = post(
            &app,
            "/v1/completions",
            &key,
            json!({ "model": "mock/model", "prompt": "x" }),
        )
        .await;
        assert_eq!(s, 200, "{body}");
    }
    // The survivor took the traffic.
    let served: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT instance_id, count(*) FROM usage_records WHERE status = 200 GROUP BY instance_id",
    )
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    assert!(served.iter().any(|(i, _)| *i == first_instance));
    assert_eq!(
        usage_rows(&app, 26).await.len(),
        26,
        "one usage row per answered request"
    );
}

#[tokio::test]
async fn rate_limits_hold_across_two_replicas() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    replica.state.routing.refresh(&replica.state).await.unwrap();
    let (_, key) = app
        .api_key(&a.owner.token, json!({ "name": "shared", "rpm_limit": 3 }))
        .await;
    clear_of_a_minute_boundary().await;
    let body = json!({ "model": "mock/model", "prompt": "x", "max_tokens": 1 });
    let mut statuses = Vec::new();
    for i in 0..4 {
        let target = if i % 2 == 0 { &app } else { &replica };
        statuses.push(post(target, "/v1/completions", &key, body.clone()).await.0);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "three per minute, whichever replica answers"
    );
    // A revocation on one replica reaches the other through Redis.
    let (id, second) = app
        .api_key(&a.owner.token, json!({ "name": "second" }))
        .await;
    let path = "/v1/completions";
    assert_eq!(post(&replica, path, &second, body.clone()).await.0, 200);
    let (s, _) = app
        .delete(&format!("/api-keys/{id}"), Some(&a.owner.token))
        .await;
    assert_eq!(s, 204);
    until_refused(
        "the revocation on the other replica",
        &replica,
        path,
        &second,
        &body,
    )
    .await;
}

/// Limits count per clock minute: start a burst well inside one, so that the
/// window cannot reset in the middle of it.
async fn clear_of_a_minute_boundary() {
    let second = chrono::Utc::now().timestamp() % 60;
    if second >= 55 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap_or(1))).await;
    }
}

/// Reads a stream to its end (or its deadline): everything it sent.
async fn read_to_end(
    first: axum::body::Bytes,
    mut rest: impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin,
) -> String {
    let mut text = String::from_utf8_lossy(&first).into_owned();
    let read = async {
        while let Some(Ok(chunk)) = rest.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream ended, not hung");
    text
}

/// The JSON payloads of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// Acceptance 2: two ready workers, one crashing while it streams two
/// answers and other requests are in flight. Its streams end with an
/// OpenAI-shaped error event; no request that had not started fails; it is
/// ejected within EJECT_AFTER attempts; every answered request, broken
/// streams included, has its one usage row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_dying_under_load_breaks_only_its_own_streams() {
    const EJECT_AFTER: usize = 3;
    let app = TestApp::spawn().await;
    // 10 tokens/s and 100-token answers: a stream lasts ten seconds, so the
    // crash lands in the middle of it however loaded the machine is.
    let slow = ["--tokens-per-second", "10", "--output-len", "100"];
    let one = engine(&slow).await;
    // The third request reaching `two` ends its process at once, unanswered.
    let mut two =
        engine(&[&slow[..], &["--exit-after", "3", "--exit-mode", "crash"]].concat()).await;
    let mut a = app.org("a").await;
    serve(&app, &mut a, &one).await;
    let survivor = a.instance_id;
    serve(&app, &mut a, &two).await;
    let doomed = a.instance_id;
    let key = a.api_key.clone();

    // Four long streams, each under way before the next: least outstanding
    // puts two on each worker.
    let long = json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "a long story" }], "stream": true });
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let res = app.post_response("/v1/chat/completions", &key, &long).await;
        assert_eq!(res.status(), 200);
        let mut body = res.bytes_stream();
        let first = body.next().await.unwrap().unwrap();
        readers.spawn(read_to_end(first, body));
    }

    // Short requests in flight on both: `two` crashes on the first it gets;
    // that one is retried on `one`, as nothing went out yet.
    let short = json!({ "model": "mock/model", "prompt": "x", "max_tokens": 3 });
    let mut batch = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, key, body) = (
            app.http.clone(),
            app.url("/v1/completions"),
            key.clone(),
            short.clone(),
        );
        batch.spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        });
    }
    while let Some(r) = batch.join_next().await {
        let (status, body) = r.unwrap();
        assert_eq!(status, 200, "a request that had not started failed: {body}");
    }
    let exit = eventually("the crashed engine", Duration::from_secs(10), || {
        let exited = two.child.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert_eq!(exit.code(), Some(1), "it crashed rather than stopped");

    // The dead worker's two streams end first, each with a clean error.
    for _ in 0..2 {
        let text = readers.join_next().await.unwrap().unwrap();
        let last = events(&text).pop().unwrap();
        assert!(!text.contains("[DONE]"), "{text}");
        assert_eq!(
            (
                last["error"]["type"].as_str(),
                last["error"]["code"].as_str()
            ),
            (Some("server_error"), Some("upstream_error")),
            "an OpenAI-shaped error event closes it: {text}"
        );
        assert!(last["error"]["message"].is_string());
        assert!(
            events(&text)
                .iter()
                .any(|e| e["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())),
            "it broke mid-stream: {text}"
        );
    }

    // In place of the dead engine, a listener that counts the connections
    // routed to it and drops them (a failure, as a dead worker's would be).
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", two.port))
        .await
        .unwrap();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = attempts.clone();
    let trap = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    // `one` still streams two answers and `two` none: without ejection,
    // every request below would try `two` first.
    for _ in 0..13 {
        let (s, _, body) = post(
            &app,
            "/v1/completions",
            &key,
            json!({ "model": "mock/model", "prompt": "x", "max_tokens": 1 }),
        )
        .await;
        assert_eq!(s, 200, "{body}");
    }
    trap.abort();
    let tried = attempts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        tried <= EJECT_AFTER,
        "the dead worker was tried {tried} times: not ejected"
    );
    match app.state.routing.lookup(a.id, "mock/model", None, None) {
        inventiv_api::proxy::routing::Lookup::Workers(w, series) => {
            assert_eq!(
                w.iter().map(|w| w.instance_id).collect::<Vec<_>>(),
                [survivor],
                "ejected for its cool-down"
            );
            assert!(series.ejections.get() >= 1, "the ejection is counted");
            assert!(series.retries.get() >= 1, "the retries are counted");
        }
        _ => panic!("the survivor still serves"),
    }

    // The survivor's streams finish normally.
    while let Some(text) = readers.join_next().await {
        let text = text.unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    }

    // One usage row per answered request: 4 streams, 8 + 13 short ones.
    let answered = 4 + 8 + 13;
    usage_rows(&app, answered).await;
    let rows: Vec<(String, uuid::Uuid, i32, i32, i32)> = sqlx::query_as(
        "SELECT request_id, instance_id, status, prompt_tokens, completion_tokens FROM usage_records",
    )
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!((rows.len(), ids.len()), (answered, answered));
    let broken: Vec<_> = rows.iter().filter(|r| r.2 == 502).collect();
    assert_eq!(broken.len(), 2, "{rows:?}");
    assert!(
        broken
            .iter()
            .all(|r| r.1 == doomed && r.3 > 0 && r.4 >= 1 && r.4 < 100),
        "the broken streams are metered with what they used: {broken:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.2 != 502)
            .all(|r| r.1 == survivor && r.2 == 200),
        "{rows:?}"
    );
}

/// Starts a stream, reads it until its first token and leaves.
async fn leave_after_first_token(app: &TestApp, key: &str, path: &str, body: Value) {
    let res = app.post_response(path, key, &body).await;
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut seen = String::new();
    while !events(&seen).iter().any(|e| {
        let choice = &e["choices"][0];
        choice["delta"]["content"]
            .as_str()
            .or(choice["text"].as_str())
            .is_some_and(|t| !t.is_empty())
    }) {
        seen.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
}

/// Acceptance 1 and 4: a mixed batch (chat and completions, streamed or
/// not, with and without usage asked, embeddings, clients leaving
/// mid-stream) gives exactly one usage row per answered request, and the
/// rows' token sums equal the engine's own counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_rows_add_up_to_the_engines_counters() {
    let app = TestApp::spawn().await;
    // Two tokens a second: a client leaving after its first token is gone
    // long before the engine makes the next one.
    let (engine, a) = serving(
        &app,
        "a",
        &["--tokens-per-second", "2", "--output-len", "40"],
    )
    .await;
    let key = a.api_key.clone();
    let messages = json!([{ "role": "user", "content": "count the tokens of this prompt" }]);
    let chat = |extra: Value| {
        let mut body = json!({ "model": "mock/model", "messages": messages, "max_tokens": 2 });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let requests = [
        ("/v1/chat/completions", chat(json!({}))),
        ("/v1/chat/completions", chat(json!({ "stream": true }))),
        (
            "/v1/chat/completions",
            chat(json!({ "stream": true, "stream_options": { "include_usage": true } })),
        ),
        (
            "/v1/chat/completions",
            chat(
                json!({ "stream": true, "stream_options": { "include_usage": true, "continuous_usage_stats": true } }),
            ),
        ),
        (
            "/v1/completions",
            json!({ "model": "mock/model", "prompt": "once upon a time", "max_tokens": 2 }),
        ),
        (
            "/v1/completions",
            json!({ "model": "mock/model", "prompt": ["two", "prompts here"], "max_tokens": 1, "stream": true }),
        ),
        (
            "/v1/embeddings",
            json!({ "model": "mock/model", "input": ["one", "two words", "and three words"] }),
        ),
    ];
    let mut batch = tokio::task::JoinSet::new();
    for (path, body) in requests.clone() {
        let (http, url, key) = (app.http.clone(), app.url(path), key.clone());
        batch.spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            (body, res.text().await.unwrap())
        });
    }
    let leaving = [
        (
            "/v1/chat/completions",
            chat(json!({ "stream": true, "max_tokens": 40 })),
        ),
        (
            "/v1/completions",
            json!({ "model": "mock/model", "prompt": "a long tale", "stream": true }),
        ),
    ];
    for (path, body) in leaving.clone() {
        leave_after_first_token(&app, &key, path, body).await;
    }
    while let Some(r) = batch.join_next().await {
        let (body, text) = r.unwrap();
        if body["stream"] != true {
            continue;
        }
        // Usage reaches the client exactly as it asked for it.
        let options = &body["stream_options"];
        let chunks = events(&text);
        let with_usage = chunks.iter().filter(|c| c["usage"].is_object()).count();
        let expected = match (
            options["include_usage"] == true,
            options["continuous_usage_stats"] == true,
        ) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => chunks.len(),
        };
        assert_eq!(with_usage, expected, "{body}\n{text}");
    }

    // The engine is done with every request, the cut ones included.
    eventually("the engine idle", Duration::from_secs(10), || async {
        (engine_metric(engine.port, "vllm:num_requests_running").await == 0).then_some(())
    })
    .await;
    let answered = (requests.len() + leaving.len()) as i64;
    usage_rows(&app, answered as usize).await;
    let (rows, ids, prompt, completion, cut): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT request_id), sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint,
                count(*) FILTER (WHERE status = 499 AND prompt_tokens > 0 AND completion_tokens > 0)
           FROM usage_records",
    )
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!(
        (rows, ids),
        (answered, answered),
        "one row per answered request"
    );
    assert_eq!(
        cut, 2,
        "the clients that left are metered with what they used"
    );
    assert_eq!(
        (prompt, completion),
        (
            engine_metric(engine.port, "vllm:prompt_tokens_total").await,
            engine_metric(engine.port, "vllm:generation_tokens_total").await
        ),
        "the usage rows' sums equal the engine's counters"
    );
}

/// Acceptance 3, the TTL: a key's expiry and a revocation whose event was
/// lost (written straight to the database) reach a second replica that has
/// the key cached within the documented cache TTL. (A revocation through
/// the API reaches it at once through Redis: see
/// `rate_limits_hold_across_two_replicas`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_missed_revocations_reach_another_replica_within_the_ttl() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    replica.state.routing.refresh(&replica.state).await.unwrap();
    let body = json!({ "model": "mock/model", "prompt": "x", "max_tokens": 1 });
    let ttl = inventiv_api::proxy::keys::TTL;
    let margin = Duration::from_secs(3);
    let refused_on_replica = |key: String| {
        let (replica, body) = (&replica, body.clone());
        move || {
            let (key, body) = (key.clone(), body.clone());
            async move {
                (post(replica, "/v1/completions", &key, body).await.0 == 401).then(chrono::Utc::now)
            }
        }
    };

    // Expiry, cached on the replica while valid.
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (_, expiring) = app
        .api_key(
            &a.owner.token,
            json!({ "name": "expiring", "expires_at": expires_at }),
        )
        .await;
    assert_eq!(
        post(&replica, "/v1/completions", &expiring, body.clone())
            .await
            .0,
        200
    );
    let refused_at = eventually(
        "the expired key refused on the other replica",
        Duration::from_secs(3) + ttl + margin,
        refused_on_replica(expiring),
    )
    .await;
    assert!(refused_at >= expires_at, "refused before it expired");

    // A revocation the replica never heard of.
    let (revoked_id, revoked_key) = app
        .api_key(&a.owner.token, json!({ "name": "revoked" }))
        .await;
    assert_eq!(
        post(&replica, "/v1/completions", &revoked_key, body.clone())
            .await
            .0,
        200
    );
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&revoked_id).unwrap())
        .execute(&app.state.db)
        .await
        .unwrap();
    eventually(
        "the revocation on the other replica, by the cache TTL",
        ttl + margin,
        refused_on_replica(revoked_key),
    )
    .await;
}

#[tokio::test]
async fn usage_refused_by_the_database_is_written_once_it_accepts_again() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let key = a.api_key.clone();
    let rollbacks = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&app.state.db)
        .await
        .unwrap()
    };

    // The database refuses every new usage row for a while.
    sqlx::query("ALTER TABLE usage_records ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        .execute(&app.state.db)
        .await
        .unwrap();
    let before = rollbacks().await;
    for _ in 0..5 {
        let (s, _, body) = post(&app, "/v1/chat/completions", &key, chat(false)).await;
        assert_eq!(s, 200, "answers do not wait for metering: {body}");
    }
    // The writer tried (a refused INSERT is a rolled-back transaction).
    eventually("a refused usage write", Duration::from_secs(10), || async {
        (rollbacks().await > before).then_some(())
    })
    .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    // Accepted again: the kept records are written, each once.
    sqlx::query("ALTER TABLE usage_records DROP CONSTRAINT refuse_all")
        .execute(&app.state.db)
        .await
        .unwrap();
    let rows = usage_rows(&app, 5).await;
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.3 == 200 && r.2 > 0), "{rows:?}");
}
