//! Live events over SSE: a snapshot first, then only the caller's
//! organization's events (published through Redis, as the orchestrator
//! does), heartbeat events throttled, and the SSE client gauge on /metrics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::TestApp;

/// Reads SSE frames as (event, data) until `stop` accepts one or the deadline passes.
struct Sse {
    stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>,
    >,
    buffer: String,
}

impl Sse {
    async fn connect(app: &TestApp, token: &str) -> Sse {
        let res = app
            .http
            .get(app.url("/events/stream"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            stream: Box::pin(res.bytes_stream()),
            buffer: String::new(),
        }
    }

    async fn next(&mut self, deadline: Duration) -> Option<(String, Value)> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let event = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or("message")
                    .to_owned();
                let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                return Some((
                    event,
                    serde_json::from_str(data).unwrap_or(Value::String(data.to_owned())),
                ));
            }
            let chunk = tokio::time::timeout_at(until, self.stream.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn members_get_their_organizations_events_only() {
    let app = TestApp::spawn().await;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    let b = app.org("b").await;
    let mut sse_a = Sse::connect(&app, &a.user.token).await;
    let (kind, snapshot) = sse_a.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(kind, "snapshot");
    assert_eq!(snapshot["instances"][0]["id"], a.instance_id.to_string());
    let mut sse_b = Sse::connect(&app, &b.user.token).await;
    assert_eq!(
        sse_b.next(Duration::from_secs(5)).await.unwrap().1["instances"],
        json!([])
    );

    // Give the subscriptions time to be live: wait on the gauge.
    support::eventually("two SSE clients", Duration::from_secs(5), || async {
        (app.state.events.clients() == 2).then_some(())
    })
    .await;
    // B's event first, then A's: A's client must see only its own.
    inventiv_api::events::publish(&app.state, &json!({ "type": "instance.updated", "organization_id": b.id, "instance_id": "b-secret", "status": "ready" })).await;
    inventiv_api::events::publish(&app.state, &json!({ "type": "instance.updated", "organization_id": a.id, "instance_id": a.instance_id, "status": "booting", "progress": 35 })).await;
    let (kind, event) = sse_a.next(Duration::from_secs(5)).await.expect("A's event");
    assert_eq!(
        (kind.as_str(), event["status"].as_str()),
        ("instance.updated", Some("booting"))
    );
    assert_eq!(event["organization_id"], a.id.to_string());
    let (_, event_b) = sse_b.next(Duration::from_secs(5)).await.expect("B's event");
    assert_eq!(event_b["instance_id"], "b-secret");
    assert!(
        sse_b.next(Duration::from_millis(300)).await.is_none(),
        "B gets nothing of A"
    );

    // A user action publishes too: terminating A's instance.
    let (s, _, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/instances/{}", a.instance_id),
            Some(&a.owner.token),
            None,
        )
        .await;
    assert_eq!(s, 202);
    let (_, event) = sse_a
        .next(Duration::from_secs(5))
        .await
        .expect("terminating event");
    assert_eq!(event["status"], "terminating");

    // The gauge follows the clients.
    let metrics = app
        .http
        .get(format!("http://{}/metrics", app.metrics_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("inventiv_sse_clients 2"), "{metrics}");
    drop(sse_a);
    drop(sse_b);
    support::eventually("the gauge back to 0", Duration::from_secs(5), || async {
        (app.state.events.clients() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn heartbeats_are_announced_at_most_every_few_seconds() {
    let app = TestApp::spawn().await;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    let mut sse = Sse::connect(&app, &a.owner.token).await;
    sse.next(Duration::from_secs(5)).await.unwrap();
    support::eventually("the client", Duration::from_secs(5), || async {
        (app.state.events.clients() == 1).then_some(())
    })
    .await;
    let beat = json!({
        "schema_version": 2, "instance_id": a.instance_id, "boot_id": "b",
        "agent": { "version": "0.1.0", "bundle_sha256": "0".repeat(64) },
        "status": "ready", "model_id": "mock/model",
        "engine": { "ready": true, "requests_running": 2, "requests_waiting": 0, "restarts": 0 },
        "sent_at": "2026-11-23T00:00:00Z"
    });
    for _ in 0..3 {
        assert_eq!(
            app.post(
                "/internal/workers/heartbeat",
                Some(&a.worker_token),
                beat.clone()
            )
            .await
            .0,
            200
        );
    }
    let (kind, event) = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (kind.as_str(), event["requests_running"].as_i64()),
        ("worker.heartbeat", Some(2))
    );
    assert!(
        sse.next(Duration::from_millis(500)).await.is_none(),
        "throttled: one event for three heartbeats"
    );
}

impl Sse {
    /// Whether the server ends the stream before the deadline (events in
    /// between are skipped, keep-alives included).
    async fn ends_within(&mut self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// A live stream kept delivering an organization's events after its member
/// was removed, logged out or changed password elsewhere: each ends it.
#[tokio::test]
async fn a_stream_ends_when_its_caller_loses_access() {
    let app = TestApp::spawn().await;
    let org = app.org("revoke").await;
    let open = |token: String| {
        let app = &app;
        async move {
            let mut sse = Sse::connect(app, &token).await;
            assert_eq!(
                sse.next(Duration::from_secs(5)).await.unwrap().0,
                "snapshot"
            );
            sse
        }
    };
    // Removed from the organization by its owner.
    let mut removed = open(org.user.token.clone()).await;
    let (s, _, _) = app
        .call(
            reqwest::Method::DELETE,
            &format!("/organizations/current/members/{}", org.user.user_id),
            Some(&org.owner.token),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert!(
        removed.ends_within(Duration::from_secs(5)).await,
        "the removed member's stream stayed open"
    );
    // Logged out.
    let mut logged_out = open(org.admin.token.clone()).await;
    assert_eq!(
        app.post("/auth/logout", Some(&org.admin.token), json!({}))
            .await
            .0,
        204
    );
    assert!(logged_out.ends_within(Duration::from_secs(5)).await);
    // Password changed from another session (the one streaming is revoked).
    let mut other_session = open(org.manager.token.clone()).await;
    let fresh = app
        .login(&org.manager.email, support::fixture::PASSWORD)
        .await;
    let (s, _, _) = app
        .call(
            reqwest::Method::PUT,
            "/auth/me/password",
            Some(&fresh),
            Some(&json!({ "current_password": support::fixture::PASSWORD, "new_password": "a-brand-new-password" })),
        )
        .await;
    assert_eq!(s, 204);
    assert!(other_session.ends_within(Duration::from_secs(5)).await);
    // An organization event reaches the owner's stream but not theirs.
    let mut owner = open(org.owner.token.clone()).await;
    inventiv_api::events::publish(
        &app.state,
        &json!({ "type": "instance.updated", "organization_id": org.id, "status": "ready" }),
    )
    .await;
    assert_eq!(
        owner.next(Duration::from_secs(5)).await.unwrap().0,
        "instance.updated"
    );
}

/// Without any event (a session revoked straight in the database), the
/// periodic re-check ends the stream.
#[tokio::test]
async fn the_periodic_recheck_ends_a_dead_session_s_stream() {
    let app = TestApp::spawn_with(&[("INVENTIV_EVENTS_RECHECK_SECS", "1")]).await;
    let org = app.org("tick").await;
    let mut sse = Sse::connect(&app, &org.user.token).await;
    sse.next(Duration::from_secs(5)).await.unwrap();
    sqlx::query("UPDATE user_sessions SET revoked_at = now() WHERE id = $1")
        .bind(org.user.session_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    assert!(sse.ends_within(Duration::from_secs(5)).await);
}

/// One user cannot hold unboundedly many streams.
#[tokio::test]
async fn streams_per_user_are_capped() {
    let app = TestApp::spawn_with(&[("INVENTIV_EVENTS_MAX_STREAMS_PER_USER", "2")]).await;
    let org = app.org("cap").await;
    let first = Sse::connect(&app, &org.user.token).await;
    let _second = Sse::connect(&app, &org.user.token).await;
    let (status, body) = app.get("/events/stream", Some(&org.user.token)).await;
    assert_eq!(status, 429);
    assert_eq!(support::error_code(&body), "RATE_LIMITED");
    // Another user is not affected; a closed stream frees its place.
    let _other = Sse::connect(&app, &org.owner.token).await;
    drop(first);
    support::eventually(
        "the closed stream to be counted out",
        Duration::from_secs(5),
        || async { (app.state.events.clients() == 2).then_some(()) },
    )
    .await;
    let _third = Sse::connect(&app, &org.user.token).await;
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = TestApp::spawn_with(&[("INVENTIV_METRICS_TOKEN", "metrics-secret-token")]).await;
    let url = format!("http://{}/metrics", app.metrics_addr);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    let res = app
        .http
        .get(&url)
        .bearer_auth("metrics-secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE inventiv_instances gauge")
            && text.contains("inventiv_commands_pending 0"),
        "{text}"
    );
}
