//! Fair admission on a shared deployment, end to end: A serves its model
//! and shares it with B; the worker (a test server behind the relay) holds
//! every answer until the test lets one go, so the order in which requests
//! reach it is the admission order, and nothing depends on timing. B
//! bursting to ten times its share leaves A its share (A's requests go
//! ahead of B's backlog, all answered); with A idle, B has the whole
//! capacity. Interactive requests are admitted before batch ones; a batch
//! request over its queue limit, or waiting past its bound, gets 429
//! `deployment_saturated` with `Retry-After`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::support::engines::{fake, serve_port, Fake};
use crate::support::{eventually, TestApp};

/// A worker that records each request's first message and answers only
/// when the test opens its gate, one answer per permit, oldest first.
struct Gated {
    server: Fake,
    seen: Arc<Mutex<Vec<String>>>,
    gate: Arc<Semaphore>,
}

async fn gated() -> Gated {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Semaphore::new(0));
    let (s, g) = (seen.clone(), gate.clone());
    let router = axum::Router::new().fallback(move |body: Bytes| {
        let (seen, gate) = (s.clone(), g.clone());
        async move {
            let request: Value = serde_json::from_slice(&body).unwrap_or_default();
            let label = request["messages"][0]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            seen.lock().unwrap().push(label);
            gate.acquire().await.unwrap().forget();
            axum::Json(json!({
                "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" } }],
                "usage": { "prompt_tokens": 2, "completion_tokens": 1 } }))
        }
    });
    Gated {
        server: fake(router).await,
        seen,
        gate,
    }
}

impl Gated {
    /// The first letter of each request seen, in order.
    fn letters(&self) -> String {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.chars().next())
            .collect()
    }

    /// Waits until `n` requests reached the worker.
    async fn reached(&self, n: usize) {
        eventually(
            &format!("{n} requests at the worker"),
            Duration::from_secs(20),
            || async { (self.seen.lock().unwrap().len() >= n).then_some(()) },
        )
        .await;
    }
}

/// Sends a chat completion with `content` as `key`, in the background;
/// yields the status, the Retry-After header and the body.
fn send(
    app: &TestApp,
    key: &str,
    model: &str,
    content: &str,
) -> JoinHandle<(u16, Option<String>, Value)> {
    let request = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({ "model": model, "messages": [{ "role": "user", "content": content }] }));
    tokio::spawn(async move {
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, retry, r.json().await.unwrap_or_default())
    })
}

async fn waiting(app: &TestApp, n: usize) {
    eventually(
        &format!("{n} requests waiting"),
        Duration::from_secs(20),
        || async { (app.state.admission.waiting() == n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bursting_consumer_leaves_the_others_their_share() {
    let app = TestApp::spawn_with(&[
        ("INVENTIV_ADMISSION_SLOTS_PER_WORKER", "2"),
        ("INVENTIV_ADMISSION_IDLE_MS", "300"),
    ])
    .await;
    let worker = gated().await;
    let mut a = app.org("a").await;
    let b = app.org("b").await;
    let _relay = serve_port(&app, &mut a, worker.server.port).await;
    let (_, share) = app.offer(&a, &b).await;
    app.accept_share(share, &b).await;
    let address = format!("{}/mock/model", a.slug);

    // B alone, at ten times its share (one of two slots): both slots go to
    // B, the rest waits.
    let bursts: Vec<_> = (0..20)
        .map(|n| send(&app, &b.api_key, &address, &format!("b{n}")))
        .collect();
    worker.reached(2).await;
    waiting(&app, 18).await;
    assert_eq!(
        worker.letters(),
        "bb",
        "with A idle, B has the whole capacity"
    );

    // A keeps sending: its requests go ahead of B's eighteen, alternating
    // with B's while both wait.
    let own: Vec<_> = (0..3)
        .map(|n| send(&app, &a.api_key, "mock/model", &format!("a{n}")))
        .collect();
    waiting(&app, 21).await;
    for n in 3..=8 {
        worker.gate.add_permits(1);
        worker.reached(n).await;
    }
    assert_eq!(worker.letters(), "bbababab");
    // A's last answer: A is done, every request of A answered.
    worker.gate.add_permits(1);
    for r in own {
        let (status, _, body) = r.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // A idle: B takes both slots again.
    worker.reached(9).await;
    eventually("B in both slots", Duration::from_secs(20), || async {
        (app.state.admission.in_flight() == 2).then_some(())
    })
    .await;
    assert_eq!(worker.letters(), "bbabababb");
    worker.gate.add_permits(100);
    for r in bursts {
        let (status, _, body) = r.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_requests_go_first_and_batch_ones_get_429_with_retry_after() {
    let app = TestApp::spawn_with(&[
        ("INVENTIV_ADMISSION_SLOTS_PER_WORKER", "2"),
        ("INVENTIV_ADMISSION_ORG_MAX_QUEUED", "4"),
    ])
    .await;
    let worker = gated().await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.server.port).await;
    let (_, batch) = app
        .api_key(
            &a.owner.token,
            json!({ "name": "nightly", "priority": "batch" }),
        )
        .await;
    let model = "mock/model";

    // A batch request takes one slot (the other is kept for interactive
    // ones), an interactive one the other.
    let mut sent = vec![send(&app, &batch, model, "x0")];
    worker.reached(1).await;
    sent.push(send(&app, &a.api_key, model, "i0"));
    worker.reached(2).await;
    // Saturated: three batch requests wait, then two interactive ones.
    for n in 1..4 {
        sent.push(send(&app, &batch, model, &format!("x{n}")));
    }
    waiting(&app, 3).await;
    for n in 1..3 {
        sent.push(send(&app, &a.api_key, model, &format!("i{n}")));
    }
    waiting(&app, 5).await;
    // Each answer frees a slot: the interactive ones go first.
    for n in 3..=4 {
        worker.gate.add_permits(1);
        worker.reached(n).await;
    }
    assert_eq!(worker.letters(), "xiii");

    // Over its queue limit (four), a batch request is refused at once.
    sent.push(send(&app, &batch, model, "x4"));
    waiting(&app, 4).await;
    let (status, retry, body) = send(&app, &batch, model, "x5").await.unwrap();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "deployment_saturated");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(body["error"]["request_id"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));

    // Everything else is served once answers flow.
    worker.gate.add_permits(100);
    for r in sent {
        let (status, _, body) = r.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(worker.seen.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn a_batch_request_waits_a_bounded_time_then_gets_429() {
    let app = TestApp::spawn_with(&[
        ("INVENTIV_ADMISSION_SLOTS_PER_WORKER", "1"),
        ("INVENTIV_ADMISSION_BATCH_WAIT_MS", "200"),
    ])
    .await;
    let worker = gated().await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.server.port).await;
    let (_, batch) = app
        .api_key(
            &a.owner.token,
            json!({ "name": "bulk", "priority": "batch" }),
        )
        .await;
    let first = send(&app, &a.api_key, "mock/model", "i0");
    worker.reached(1).await;
    let (status, retry, body) = send(&app, &batch, "mock/model", "x0").await.unwrap();
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "deployment_saturated");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(app.state.admission.waiting(), 0, "it left the queue");
    worker.gate.add_permits(1);
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(
        worker.letters(),
        "i",
        "the refused request never reached the worker"
    );
}
