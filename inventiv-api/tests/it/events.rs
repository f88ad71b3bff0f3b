//! Live events over SSE: a snapshot first, then only the caller's
//! organization's events (published through Redis, as the orchestrator
//! does), heartbeat events throttled, and the SSE client gauge on /metrics.

use crate::support;

use std::time::Duration;

use crate::support::TestApp;
use futures_util::StreamExt;
use inventiv_common::messages::{AccessSubject, Event, WorkerHeartbeat};
use inventiv_common::InstanceStatus;
use serde_json::{json, Value};

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

fn updated(org: uuid::Uuid, instance: uuid::Uuid, status: InstanceStatus, progress: i16) -> Event {
    Event::InstanceUpdated {
        organization_id: org,
        instance_id: instance,
        status,
        progress,
    }
}

/// Every event type goes out through the API's publisher, over Redis, and
/// comes back through the replica's subscriber decoded as it was sent (the
/// hub is what the SSE streams, the key cache and the routing table read).
#[tokio::test]
async fn every_event_type_round_trips_through_redis() {
    let app = TestApp::spawn().await;
    let (org, inst) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let heartbeat: WorkerHeartbeat = serde_json::from_value(json!({
        "organization_id": org, "instance_id": inst, "worker_status": "ready", "engine_ready": true,
        "requests_running": 3, "requests_waiting": 1,
        "gpus": [{ "index": 0, "name": "L4", "utilization_pct": 50.0, "memory_used_mib": 1024.0, "memory_total_mib": 24576.0 }],
        "system": { "cpu_pct": 12.5, "load1": 0.5, "memory_used_mib": 2048.0, "memory_total_mib": 16384.0 },
    }))
    .unwrap();
    let sent = [
        updated(org, inst, InstanceStatus::Installing, 60),
        Event::WorkerHeartbeat(Box::new(heartbeat)),
        Event::ServiceUpdated {
            organization_id: org,
            service_id: inst,
            state: inventiv_common::ServiceState::Paused,
            desired_replicas: 0,
            kind: inventiv_common::ServiceEventKind::Paused,
            reason: "paused by an owner".into(),
        },
        Event::UsageDrift {
            organization_id: org,
            instance_id: inst,
            usage_reconciliation: json!({ "status": "alert", "drift_ratio": 0.25 }),
        },
        Event::BudgetAlert {
            organization_id: org,
            alert_id: 42,
        },
        Event::OfferingChanged {
            organization_id: org,
            subject: inst,
        },
        Event::ApiKeyChanged {
            organization_id: org,
            subject: "k3y".into(),
        },
        Event::AccessChanged {
            organization_id: org,
            subject: AccessSubject::Everyone,
        },
        Event::AccessChanged {
            organization_id: uuid::Uuid::nil(),
            subject: AccessSubject::User(inst),
        },
    ];
    let mut hub = app.state.events.subscribe_uncounted();
    // The subscription is live once a probe event comes back (Redis keeps
    // order: no probe arrives after the one seen).
    let probe = updated(org, inst, InstanceStatus::Booting, 0);
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        inventiv_api::events::publish(&app.state, &probe).await;
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), hub.recv()).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the event subscription never came up"
        );
    }
    let mut hub = app.state.events.subscribe_uncounted();
    for event in &sent {
        inventiv_api::events::publish(&app.state, event).await;
    }
    for event in &sent {
        let got = tokio::time::timeout(Duration::from_secs(5), hub.recv())
            .await
            .expect("an event")
            .unwrap();
        assert_eq!(got.message.kind(), event.kind());
        assert_eq!(
            serde_json::to_value(&*got.message).unwrap(),
            serde_json::to_value(event).unwrap()
        );
        // What SSE clients get is the payload as published.
        assert_eq!(
            serde_json::from_str::<Value>(&got.json).unwrap(),
            serde_json::to_value(event).unwrap()
        );
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
    let b_secret = uuid::Uuid::new_v4();
    inventiv_api::events::publish(
        &app.state,
        &updated(b.id, b_secret, InstanceStatus::Ready, 0),
    )
    .await;
    inventiv_api::events::publish(
        &app.state,
        &updated(a.id, a.instance_id, InstanceStatus::Booting, 35),
    )
    .await;
    let (kind, event) = sse_a.next(Duration::from_secs(5)).await.expect("A's event");
    assert_eq!(
        (kind.as_str(), event["status"].as_str()),
        ("instance.updated", Some("booting"))
    );
    assert_eq!(event["organization_id"], a.id.to_string());
    let (_, event_b) = sse_b.next(Duration::from_secs(5)).await.expect("B's event");
    assert_eq!(event_b["instance_id"], b_secret.to_string());
    assert!(
        sse_b.next(Duration::from_millis(300)).await.is_none(),
        "B gets nothing of A"
    );

    // A user action publishes too: terminating A's instance.
    let (s, _) = app
        .delete(
            &format!("/instances/{}", a.instance_id),
            Some(&a.owner.token),
        )
        .await;
    assert_eq!(s, 202);
    let (_, event) = sse_a
        .next(Duration::from_secs(5))
        .await
        .expect("terminating event");
    assert_eq!(event["status"], "terminating");

    // The gauge follows the clients.
    let metrics = app.metrics().await;
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
    let (s, _) = app
        .delete(
            &format!("/organizations/current/members/{}", org.user.user_id),
            Some(&org.owner.token),
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
    let (s, _) = app.put("/auth/me/password", Some(&fresh), json!({ "current_password": support::fixture::PASSWORD, "new_password": "a-brand-new-password" })).await;
    assert_eq!(s, 204);
    assert!(other_session.ends_within(Duration::from_secs(5)).await);
    // An organization event reaches the owner's stream but not theirs.
    let mut owner = open(org.owner.token.clone()).await;
    inventiv_api::events::publish(
        &app.state,
        &updated(org.id, uuid::Uuid::new_v4(), InstanceStatus::Ready, 100),
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
