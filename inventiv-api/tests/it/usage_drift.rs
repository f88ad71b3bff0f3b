//! Usage drift: the proxy's metering reconciled with the engine's own token
//! counters, as the worker agent reports them in its heartbeats. Traffic
//! through the proxy to a real mock engine reconciles (no alert); traffic
//! that reaches the engine around the proxy puts the instance in alert:
//! the `/metrics` gauge and counter, an `instance.usage_drift` event, the
//! action log and the instance answer all show it. The job is driven by
//! calling it (its own loop is off), with the clock as a parameter.

use std::time::Duration;

use crate::support::engines::{serving, Engine};
use crate::support::fixture::Org;
use crate::support::{engine_metric, eventually, TestApp};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{json, Value};

const SETTINGS: [(&str, &str); 3] = [
    ("INVENTIV_USAGE_DRIFT_INTERVAL_SECS", "0"),
    ("INVENTIV_USAGE_DRIFT_SETTLE_SECS", "0"),
    ("INVENTIV_USAGE_DRIFT_MIN_TOKENS", "20"),
];

/// A heartbeat carrying the engine's counters, read from its `/metrics`
/// the way the agent reads them.
async fn heartbeat(app: &TestApp, org: &Org, engine: &Engine) {
    let body = json!({
        "schema_version": 2, "instance_id": org.instance_id, "boot_id": "boot-1",
        "agent": { "version": "0.1.0", "bundle_sha256": "ab".repeat(32) },
        "status": "ready", "model_id": "mock/model",
        "engine": { "ready": true, "requests_running": 0, "requests_waiting": 0, "restarts": 0,
                    "tokens": {
                        "prompt_total": engine_metric(engine.port, "vllm:prompt_tokens_total").await,
                        "generation_total": engine_metric(engine.port, "vllm:generation_tokens_total").await } },
        "sent_at": Utc::now().to_rfc3339(),
    });
    let (status, answer) = app
        .post("/internal/workers/heartbeat", Some(&org.worker_token), body)
        .await;
    assert_eq!(status, 200, "{answer}");
    app.state.heartbeats.flush(&app.state.db).await.unwrap();
}

fn chat(i: usize) -> Value {
    json!({ "model": "mock/model", "messages": [{ "role": "user", "content": format!("request number {i} about GPUs") }],
            "max_tokens": 8, "stream": i % 2 == 0, "stream_options": { "include_usage": true } })
}

/// Sends `n` requests to `url` (the proxy with the key, or the engine itself).
async fn traffic(app: &TestApp, url: &str, key: Option<&str>, n: usize) {
    for i in 0..n {
        let mut req = app.http.post(url).json(&chat(i));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
}

/// Waits for `n` usage rows of the instance and for the engine to be idle.
async fn settled(app: &TestApp, engine: &Engine, n: i64) {
    eventually("usage rows", Duration::from_secs(10), || async {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
        (rows >= n).then_some(())
    })
    .await;
    eventually("the engine idle", Duration::from_secs(10), || async {
        (engine_metric(engine.port, "vllm:num_requests_running").await == 0).then_some(())
    })
    .await;
}

/// `org`'s instance as its user reads it.
async fn instance_of(app: &TestApp, org: &Org) -> Value {
    let (status, instance) = app
        .get(
            &format!("/instances/{}", org.instance_id),
            Some(&org.user.token),
        )
        .await;
    assert_eq!(status, 200, "{instance}");
    instance
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metered_traffic_reconciles_with_the_engine_counters() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let (engine, a) = serving(&app, "a", &[]).await;
    heartbeat(&app, &a, &engine).await;
    traffic(&app, &app.url("/v1/chat/completions"), Some(&a.api_key), 6).await;
    settled(&app, &engine, 6).await;
    heartbeat(&app, &a, &engine).await;

    let outcomes = inventiv_api::drift::run_once(&app.state, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    let r = &outcomes[0].reconciliation;
    assert!(r.engine_prompt >= 20, "enough tokens to conclude: {r:?}");
    assert_eq!(
        (r.engine_prompt, r.engine_generation),
        (r.proxy_prompt, r.proxy_completion),
        "{r:?}"
    );
    assert_eq!(r.status, inventiv_api::drift::DriftStatus::Ok);

    let instance = instance_of(&app, &a).await;
    let rec = &instance["usage_reconciliation"];
    assert_eq!(rec["status"], "ok", "{instance}");
    assert_eq!(rec["drift_ratio"], 0.0);
    assert_eq!(rec["engine_prompt"], rec["proxy_prompt"]);
    let text = app.metrics().await;
    let gauge = format!(
        "inventiv_usage_drift_alert{{instance_id=\"{}\"}}",
        a.instance_id
    );
    assert_eq!(metric(&text, &gauge), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "inventiv_usage_drift_alerts_total "),
        Some(0.0)
    );
    let (_, actions) = app
        .get(
            &format!("/instances/{}/actions", a.instance_id),
            Some(&a.user.token),
        )
        .await;
    assert!(
        !actions.to_string().contains("USAGE_DRIFT"),
        "no alert in the action log: {actions}"
    );
}

#[tokio::test]
async fn tokens_the_proxy_did_not_meter_raise_an_alert() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let (engine, a) = serving(&app, "a", &[]).await;
    let mut events = app
        .http
        .get(app.url("/events/stream"))
        .bearer_auth(&a.user.token)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    heartbeat(&app, &a, &engine).await;
    traffic(&app, &app.url("/v1/chat/completions"), Some(&a.api_key), 6).await;
    // Around the proxy, straight to the engine: never metered.
    let direct = format!("http://127.0.0.1:{}/v1/chat/completions", engine.port);
    traffic(&app, &direct, None, 2).await;
    settled(&app, &engine, 6).await;
    heartbeat(&app, &a, &engine).await;

    let outcomes = inventiv_api::drift::run_once(&app.state, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    let r = outcomes[0].reconciliation.clone();
    assert!(r.engine_prompt > r.proxy_prompt, "{r:?}");
    assert!(r.drift_ratio > 0.005, "{r:?}");
    assert_eq!(r.status, inventiv_api::drift::DriftStatus::Alert);
    assert_eq!(r.alerts, 1);

    // The event reaches the organization's live stream.
    let event = wait_for_event(&mut events, "instance.usage_drift").await;
    assert_eq!(event["instance_id"], json!(a.instance_id));
    assert_eq!(event["usage_reconciliation"]["status"], "alert");

    let instance = instance_of(&app, &a).await;
    let rec = &instance["usage_reconciliation"];
    assert_eq!(rec["status"], "alert", "{instance}");
    assert_eq!(rec["engine_prompt"], json!(r.engine_prompt));
    assert_eq!(rec["proxy_prompt"], json!(r.proxy_prompt));
    let text = app.metrics().await;
    let ratio = format!(
        "inventiv_usage_drift_ratio{{instance_id=\"{}\"}}",
        a.instance_id
    );
    assert!(metric(&text, &ratio).is_some_and(|v| v > 0.005), "{text}");
    let gauge = format!(
        "inventiv_usage_drift_alert{{instance_id=\"{}\"}}",
        a.instance_id
    );
    assert_eq!(metric(&text, &gauge), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "inventiv_usage_drift_alerts_total "),
        Some(1.0)
    );

    // A second pass over the same window keeps the alert without raising it again.
    let again = inventiv_api::drift::run_once(&app.state, Utc::now())
        .await
        .unwrap();
    assert_eq!(again[0].reconciliation.alerts, 1);
    let (_, actions) = app
        .get(
            &format!("/instances/{}/actions", a.instance_id),
            Some(&a.user.token),
        )
        .await;
    let alerts: Vec<&Value> = actions
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action_type"] == "USAGE_DRIFT_ALERT")
        .collect();
    assert_eq!(alerts.len(), 1, "{actions}");
    assert_eq!(alerts[0]["status"], "failed");
    assert_eq!(alerts[0]["error_code"], "USAGE_DRIFT");

    // Hours later, with no counters in the window, nothing can be concluded:
    // the alert is lifted (logged and announced), the count of alerts stays.
    let later = inventiv_api::drift::run_once(&app.state, Utc::now() + chrono::Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(
        later[0].reconciliation.status,
        inventiv_api::drift::DriftStatus::InsufficientData
    );
    let event = wait_for_event(&mut events, "instance.usage_drift").await;
    assert_eq!(event["usage_reconciliation"]["status"], "insufficient_data");
    let (_, actions) = app
        .get(
            &format!("/instances/{}/actions", a.instance_id),
            Some(&a.user.token),
        )
        .await;
    assert!(
        actions
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action_type"] == "USAGE_DRIFT_CLEARED" && a["status"] == "success"),
        "{actions}"
    );
    let text = app.metrics().await;
    assert_eq!(metric(&text, &gauge), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "inventiv_usage_drift_alerts_total "),
        Some(1.0)
    );

    // Another organization does not see the instance, its drift included.
    let b = app.org("b").await;
    let (status, _) = app
        .get(
            &format!("/instances/{}", a.instance_id),
            Some(&b.owner.token),
        )
        .await;
    assert_eq!(status, 404);
}

/// Heartbeat counters out of bounds are refused and store nothing; an
/// engine restart (a new series) is never read as negative usage.
#[tokio::test]
async fn counters_are_bounded_and_restarts_start_a_new_series() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    let beat = |restarts: u32, tokens: Value| {
        json!({
            "schema_version": 2, "instance_id": a.instance_id, "boot_id": "boot-1",
            "agent": { "version": "0.1.0", "bundle_sha256": "ab".repeat(32) },
            "status": "ready", "model_id": "mock/model",
            "engine": { "ready": true, "requests_running": 0, "requests_waiting": 0, "restarts": restarts, "tokens": tokens },
            "sent_at": Utc::now().to_rfc3339(),
        })
    };
    for bad in [
        json!({ "prompt_total": -1, "generation_total": 0 }),
        json!({ "prompt_total": 1u64 << 54, "generation_total": 0 }),
        json!({ "prompt_total": 1, "generation_total": 0, "cached_total": 0 }),
        json!({ "prompt_total": "1", "generation_total": 0 }),
    ] {
        let (status, _) = app
            .post(
                "/internal/workers/heartbeat",
                Some(&a.worker_token),
                beat(0, bad.clone()),
            )
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM instance_token_counters")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // 1000 prompt tokens before the restart, 30 after it: never -970.
    for (restarts, prompt) in [(0, 0), (0, 1000), (1, 10), (1, 40)] {
        let (status, answer) = app
            .post(
                "/internal/workers/heartbeat",
                Some(&a.worker_token),
                beat(
                    restarts,
                    json!({ "prompt_total": prompt, "generation_total": 0 }),
                ),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    app.state.heartbeats.flush(&app.state.db).await.unwrap();
    // While another replica runs a pass, this one does nothing.
    let mut other = app.state.db.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(inventiv_api::drift::LOCK_KEY)
        .execute(&mut *other)
        .await
        .unwrap();
    let skipped = inventiv_api::drift::run_once(&app.state, Utc::now())
        .await
        .unwrap();
    assert!(skipped.is_empty());
    other.rollback().await.unwrap();
    let outcomes = inventiv_api::drift::run_once(&app.state, Utc::now())
        .await
        .unwrap();
    let r = &outcomes[0].reconciliation;
    assert_eq!(r.engine_prompt, 1030, "{r:?}");
    assert_eq!(r.status, inventiv_api::drift::DriftStatus::Alert);
}

async fn wait_for_event(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    kind: &str,
) -> Value {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buffer = String::new();
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if frame.lines().any(|l| l == format!("event: {kind}")) {
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or("null");
                return serde_json::from_str(data).unwrap();
            }
        }
        let chunk = tokio::time::timeout_at(until, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event before the deadline"))
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}
