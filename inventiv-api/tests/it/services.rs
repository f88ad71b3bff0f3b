//! Services: created with their first replicas (instances and provision
//! commands in one transaction), read with their replicas, listed, updated,
//! paused, resumed and deleted, each change in the timeline and on the
//! event channel; refusals store nothing; a deployment is a service of one
//! replica (the migration that gives every live instance its service:
//! `service_migration`).

use std::time::Duration;

use inventiv_common::messages::Event;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::matrix::SMALL_MODEL;
use crate::support::{error_code, TestApp};

const MOCK_ZONE_2: &str = "8a1d0000-0000-4000-8000-000000000002";

fn zone(n: u8) -> Value {
    json!({ "provider": "mock", "zone": format!("mock-zone-{n}"), "instance_type": "mock-1gpu-24g" })
}

fn service(min: i32, max: i32) -> Value {
    json!({ "model_id": SMALL_MODEL, "name": "chat", "placements": [zone(1)],
            "min_replicas": min, "max_replicas": max, "target_outstanding": 4 })
}

/// (services, placements, timeline entries, instances, commands).
async fn counts(app: &TestApp) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM services), (SELECT count(*) FROM service_placements),
                (SELECT count(*) FROM service_events), (SELECT count(*) FROM instances),
                (SELECT count(*) FROM command_outbox)",
    )
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

/// The commands queued for a service's replicas, by kind.
async fn commands(app: &TestApp, service: &str, kind: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM command_outbox c JOIN instances i ON i.id = c.instance_id
          WHERE i.service_id = $1::uuid AND c.command = $2",
    )
    .bind(service)
    .bind(kind)
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

/// The replica's hub, once its Redis subscription is live (a probe event
/// published came back).
async fn live_hub(app: &TestApp) -> tokio::sync::broadcast::Receiver<inventiv_api::events::Event> {
    let mut hub = app.state.events.subscribe_uncounted();
    let probe = Event::BudgetAlert {
        organization_id: Uuid::nil(),
        alert_id: 0,
    };
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        inventiv_api::events::publish(&app.state, &probe).await;
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), hub.recv()).await {
            return hub;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the event subscription is not live"
        );
    }
}

/// Waits (5 s at most) for the `service.updated` event of `kind` on the replica's hub.
async fn announced(
    hub: &mut tokio::sync::broadcast::Receiver<inventiv_api::events::Event>,
    service: &str,
    kind: &str,
) -> Value {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(until, hub.recv())
            .await
            .unwrap_or_else(|_| panic!("no service.updated {kind} within 5 s"))
            .unwrap();
        if let Event::ServiceUpdated { service_id, .. } = &*event.message {
            let json: Value = serde_json::from_str(&event.json).unwrap();
            if service_id.to_string() == service && json["kind"] == kind {
                return json;
            }
        }
    }
}

#[tokio::test]
async fn a_service_lives_from_creation_to_deletion() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    app.activate_mock(&a, SMALL_MODEL).await;
    app.activate(&a, "zone", MOCK_ZONE_2).await;
    let mut hub = live_hub(&app).await;

    let (status, created) = app
        .post("/services", Some(&a.admin.token), service(2, 4))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &created["state"],
            &created["desired_replicas"],
            &created["active_replicas"]
        ),
        (&json!("active"), &json!(2), &json!(2))
    );
    assert_eq!(created["idle_window_s"], 900, "the default idle window");
    assert_eq!(created["scale_down_cooldown_s"], 300);
    assert_eq!(created["placements"], json!([zone(1)]));
    assert_eq!(created["replica_counts"], json!({ "provisioning": 2 }));
    let replicas = created["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2);
    assert!(replicas.iter().all(|r| r["service_id"] == id.as_str()));
    assert_eq!(commands(&app, &id, "provision").await, 2);
    let event = announced(&mut hub, &id, "created").await;
    assert_eq!(
        (&event["state"], &event["desired_replicas"]),
        (&json!("active"), &json!(2))
    );

    // Every member reads it; B's members do not.
    let (s, list) = app.get("/services", Some(&a.user.token)).await;
    assert_eq!(
        (s.as_u16(), list[0]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let (s, one) = app
        .get(&format!("/services/{id}"), Some(&a.user.token))
        .await;
    assert_eq!(
        (s.as_u16(), one["replicas"].as_array().unwrap().len()),
        (200, 2)
    );
    assert_eq!(
        app.get("/services", Some(&b.owner.token)).await.1,
        json!([])
    );
    for path in [format!("/services/{id}"), format!("/services/{id}/events")] {
        assert_eq!(app.get(&path, Some(&b.owner.token)).await.0, 404, "{path}");
    }
    let (s, _) = app
        .patch(
            &format!("/services/{id}"),
            Some(&b.owner.token),
            json!({ "name": "mine" }),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .patch(
            &format!("/services/{id}"),
            Some(&a.user.token),
            json!({ "name": "mine" }),
        )
        .await;
    assert_eq!(s, 403, "a user reads but does not act");

    // A higher floor creates the missing replica at once; a lower ceiling
    // lowers the desired count and leaves the removal to the autoscaler.
    let (s, up) = app
        .patch(
            &format!("/services/{id}"),
            Some(&a.owner.token),
            json!({ "min_replicas": 3 }),
        )
        .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(
        (&up["desired_replicas"], &up["active_replicas"]),
        (&json!(3), &json!(3))
    );
    let event = announced(&mut hub, &id, "updated").await;
    assert!(
        event["reason"].as_str().unwrap().contains("desired 2 → 3"),
        "{event}"
    );
    let (s, down) = app
        .patch(
            &format!("/services/{id}"),
            Some(&a.owner.token),
            json!({ "min_replicas": 1, "max_replicas": 2, "target_outstanding": null,
                    "target_ttft_p95_ms": 1500, "eur_cap": "12.5", "placements": [zone(2), zone(1)] }),
        )
        .await;
    assert_eq!(s, 200, "{down}");
    assert_eq!(
        (&down["desired_replicas"], &down["active_replicas"]),
        (&json!(2), &json!(3))
    );
    assert_eq!(
        (
            &down["target_outstanding"],
            &down["target_ttft_p95_ms"],
            &down["eur_cap"]
        ),
        (&Value::Null, &json!(1500), &json!("12.5000"))
    );
    assert_eq!(down["placements"], json!([zone(2), zone(1)]));

    // Pause: desired 0, every replica terminating with its command; again: nothing.
    let (s, paused) = app
        .post(
            &format!("/services/{id}/pause"),
            Some(&a.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{paused}");
    assert_eq!(
        (&paused["state"], &paused["desired_replicas"]),
        (&json!("paused"), &json!(0))
    );
    assert_eq!(paused["replica_counts"], json!({ "terminating": 3 }));
    assert_eq!(commands(&app, &id, "terminate").await, 3);
    announced(&mut hub, &id, "paused").await;
    let before = counts(&app).await;
    let (s, _) = app
        .post(
            &format!("/services/{id}/pause"),
            Some(&a.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), counts(&app).await),
        (200, before),
        "pausing twice is harmless"
    );

    // Resume: desired min, created on the first placement (now zone 2).
    let (s, resumed) = app
        .post(
            &format!("/services/{id}/resume"),
            Some(&a.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{resumed}");
    assert_eq!(
        (
            &resumed["state"],
            &resumed["desired_replicas"],
            &resumed["active_replicas"]
        ),
        (&json!("active"), &json!(1), &json!(1))
    );
    assert_eq!(resumed["replicas"][0]["zone"], "mock-zone-2");
    announced(&mut hub, &id, "resumed").await;

    // The timeline, newest first, paged.
    let (s, events) = app
        .get(&format!("/services/{id}/events"), Some(&a.user.token))
        .await;
    assert_eq!(s, 200);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["resumed", "paused", "updated", "updated", "created"]
    );
    assert_eq!(
        (&events[1]["from_replicas"], &events[1]["to_replicas"]),
        (&json!(2), &json!(0))
    );
    let page = app
        .get(
            &format!("/services/{id}/events?limit=2&offset=1"),
            Some(&a.user.token),
        )
        .await
        .1;
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["kind"], "paused");
    let (s, body) = app
        .get(
            &format!("/services/{id}/events?limit=99999999"),
            Some(&a.user.token),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (400, "INVALID_QUERY"));

    // Delete: replicas terminating, the service deleting until none is left.
    let (s, deleted) = app
        .delete(&format!("/services/{id}"), Some(&a.owner.token))
        .await;
    assert_eq!(s, 202, "{deleted}");
    assert_eq!(
        (&deleted["state"], &deleted["desired_replicas"]),
        (&json!("deleting"), &json!(0))
    );
    assert_eq!(commands(&app, &id, "terminate").await, 4);
    announced(&mut hub, &id, "deleting").await;
    let before = counts(&app).await;
    assert_eq!(
        app.delete(&format!("/services/{id}"), Some(&a.owner.token))
            .await
            .0,
        202
    );
    for (path, body) in [
        (format!("/services/{id}/resume"), None),
        (format!("/services/{id}/pause"), None),
        (format!("/services/{id}"), Some(json!({ "name": "back" }))),
    ] {
        let (s, answer) = match body {
            Some(b) => app.patch(&path, Some(&a.owner.token), b).await,
            None => app.post(&path, Some(&a.owner.token), json!({})).await,
        };
        assert_eq!(
            (s.as_u16(), error_code(&answer)),
            (409, "SERVICE_DELETED"),
            "{path}"
        );
    }
    assert_eq!(
        counts(&app).await,
        before,
        "nothing changes a deleting service"
    );
    let (_, listed) = app
        .get("/services?state=deleting", Some(&a.user.token))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn refused_services_store_and_send_nothing() {
    let app = TestApp::spawn_with(&[("INVENTIV_DEFAULT_MAX_INSTANCES", "3")]).await;
    let a = app.org("a").await;
    app.activate_mock(&a, SMALL_MODEL).await;
    let with = |change: Value| {
        let mut body = service(1, 2);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let nine: Vec<Value> = (0..9).map(|_| zone(1)).collect();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "min > max",
            with(json!({ "min_replicas": 3, "max_replicas": 2 })),
            400,
            "INVALID_BOUNDS",
        ),
        (
            "max 17",
            with(json!({ "max_replicas": 17 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "max 0",
            with(json!({ "min_replicas": 0, "max_replicas": 0 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "min -1",
            with(json!({ "min_replicas": -1 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "target 0",
            with(json!({ "target_outstanding": 0 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "target 1000.5",
            with(json!({ "target_outstanding": 1000.5 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "ttft 0",
            with(json!({ "target_ttft_p95_ms": 0 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "ttft 600001",
            with(json!({ "target_ttft_p95_ms": 600_001 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "idle 0",
            with(json!({ "idle_window_s": 0 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "idle 604801",
            with(json!({ "idle_window_s": 604_801 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "cooldown -1",
            with(json!({ "scale_down_cooldown_s": -1 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "cooldown 86401",
            with(json!({ "scale_down_cooldown_s": 86_401 })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "negative cap",
            with(json!({ "gpu_hours_cap": "-1" })),
            400,
            "INVALID_AMOUNT",
        ),
        (
            "cap not a number",
            with(json!({ "eur_cap": "ten" })),
            400,
            "INVALID_AMOUNT",
        ),
        (
            "no placement",
            with(json!({ "placements": [] })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "nine placements",
            with(json!({ "placements": nine })),
            400,
            "VALIDATION_ERROR",
        ),
        (
            "twice the same placement",
            with(json!({ "placements": [zone(1), zone(1)] })),
            400,
            "DUPLICATE_PLACEMENT",
        ),
        (
            "an unknown field",
            with(json!({ "replicas": 3 })),
            400,
            "MALFORMED_BODY",
        ),
        (
            "an unknown placement field",
            with(
                json!({ "placements": [{ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g", "gpu": 1 }] }),
            ),
            400,
            "MALFORMED_BODY",
        ),
        (
            "an unknown model",
            with(json!({ "model_id": "acme/unknown" })),
            400,
            "MISSING_MODEL",
        ),
        (
            "a second placement not activated",
            with(json!({ "placements": [zone(1), zone(2)] })),
            409,
            "NOT_ACTIVATED",
        ),
        (
            "an unknown type",
            with(
                json!({ "placements": [{ "provider": "mock", "zone": "mock-zone-1", "instance_type": "huge" }] }),
            ),
            400,
            "UNKNOWN_ZONE_OR_TYPE",
        ),
        (
            "past the quota",
            with(json!({ "min_replicas": 4, "max_replicas": 4 })),
            409,
            "QUOTA_EXCEEDED",
        ),
    ];
    let before = counts(&app).await;
    for (what, body, status, code) in cases {
        let (s, answer) = app.post("/services", Some(&a.owner.token), body).await;
        assert_eq!(
            (s.as_u16(), error_code(&answer)),
            (status, code),
            "{what}: {answer}"
        );
        if what.starts_with("a second") {
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.starts_with("placements[1]: "), "{message}");
        }
    }
    for token in [&a.user.token, &a.manager.token] {
        assert_eq!(
            app.post("/services", Some(token), service(1, 2)).await.0,
            403
        );
    }
    assert_eq!(counts(&app).await, before, "nothing stored");

    // Changes out of bounds leave the service as it was.
    let (s, created) = app
        .post("/services", Some(&a.owner.token), service(1, 2))
        .await;
    assert_eq!(s, 201, "{created}");
    let path = format!("/services/{}", created["id"].as_str().unwrap());
    let before = counts(&app).await;
    let stored = app.get(&path, Some(&a.owner.token)).await.1;
    for (body, code) in [
        (json!({ "min_replicas": 3 }), "INVALID_BOUNDS"),
        (json!({ "max_replicas": 17 }), "VALIDATION_ERROR"),
        (json!({ "target_outstanding": -2 }), "VALIDATION_ERROR"),
        (json!({ "name": "" }), "VALIDATION_ERROR"),
        (json!({}), "VALIDATION_ERROR"),
        (json!({ "placements": [] }), "VALIDATION_ERROR"),
        (json!({ "model_id": SMALL_MODEL }), "MALFORMED_BODY"),
        (
            json!({ "min_replicas": 2, "max_replicas": 4, "placements": [zone(2)] }),
            "NOT_ACTIVATED",
        ),
        (
            json!({ "min_replicas": 4, "max_replicas": 4 }),
            "QUOTA_EXCEEDED",
        ),
    ] {
        let (s, answer) = app.patch(&path, Some(&a.owner.token), body.clone()).await;
        assert!(s.is_client_error(), "{body}: {s} {answer}");
        assert_eq!(error_code(&answer), code, "{body}: {answer}");
    }
    assert_eq!(counts(&app).await, before, "nothing stored");
    assert_eq!(app.get(&path, Some(&a.owner.token)).await.1, stored);
}

#[tokio::test]
async fn a_deployment_is_a_service_of_one_replica() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    app.activate_mock(&a, SMALL_MODEL).await;
    let (s, instance) = app
        .post(
            "/deployments",
            Some(&a.owner.token),
            json!({ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g",
                    "model_id": SMALL_MODEL, "name": "my chat" }),
        )
        .await;
    assert_eq!(s, 202, "{instance}");
    assert_eq!(
        (&instance["name"], &instance["status"]),
        (&json!("my chat"), &json!("provisioning"))
    );
    let id = instance["id"].as_str().unwrap();
    let service_id = instance["service_id"].as_str().unwrap();
    let read = app
        .get(&format!("/instances/{id}"), Some(&a.user.token))
        .await
        .1;
    assert_eq!(read["service_id"], service_id);
    let (s, one) = app
        .get(&format!("/services/{service_id}"), Some(&a.user.token))
        .await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(
        (
            &one["name"],
            &one["min_replicas"],
            &one["max_replicas"],
            &one["desired_replicas"]
        ),
        (&json!("my chat"), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(one["placements"], json!([zone(1)]));
    assert_eq!(one["replicas"][0]["id"], id);
    let zone_id: Option<Uuid> =
        sqlx::query_scalar("SELECT zone_id FROM service_placements WHERE service_id = $1::uuid")
            .bind(service_id)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(
        zone_id.map(|z| z.to_string()).as_deref(),
        Some(crate::support::matrix::MOCK_ZONE)
    );
    assert_eq!(commands(&app, service_id, "provision").await, 1);

    // Terminating its one replica by hand ends it, as terminating a deployment did.
    assert_eq!(
        app.delete(&format!("/instances/{id}"), Some(&a.owner.token))
            .await
            .0,
        202
    );
    let ended = app
        .get(&format!("/services/{service_id}"), Some(&a.user.token))
        .await
        .1;
    assert_eq!(
        (&ended["state"], &ended["desired_replicas"]),
        (&json!("deleting"), &json!(0))
    );
    let events = app
        .get(
            &format!("/services/{service_id}/events"),
            Some(&a.user.token),
        )
        .await
        .1;
    assert_eq!(events[0]["kind"], "deleting");
    assert!(
        events[0]["reason"]
            .as_str()
            .unwrap()
            .contains("by an owner"),
        "{events}"
    );

    // In a service of several, a replica terminated by hand is one fewer
    // wanted, never below the floor; the last one ends the service.
    let (_, created) = app
        .post("/services", Some(&a.owner.token), service(3, 3))
        .await;
    let sid = created["id"].as_str().unwrap().to_owned();
    let path = format!("/services/{sid}");
    let (s, _) = app
        .patch(&path, Some(&a.owner.token), json!({ "min_replicas": 1 }))
        .await;
    assert_eq!(s, 200);
    for (replica, (state, desired)) in created["replicas"].as_array().unwrap().iter().zip([
        ("active", 2),
        ("active", 1),
        ("deleting", 0),
    ]) {
        let rid = replica["id"].as_str().unwrap();
        assert_eq!(
            app.delete(&format!("/instances/{rid}"), Some(&a.admin.token))
                .await
                .0,
            202
        );
        let now = app.get(&path, Some(&a.user.token)).await.1;
        assert_eq!(
            (&now["state"], &now["desired_replicas"]),
            (&json!(state), &json!(desired)),
            "{now}"
        );
    }
}
