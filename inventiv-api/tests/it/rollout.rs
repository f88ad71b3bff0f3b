//! Rolling replacement: a rollout raises a service's revision and the
//! replica convergence (driven here one pass at a time, its background
//! loop slowed out of the way) replaces the outdated replicas one at a
//! time, each new one ready before an old one drains; refusals store
//! nothing. The replicas' progress (ready, heartbeats) is the
//! orchestrator's and the worker's, written here as they would; the same
//! course with real replicas under load: `inventiv-e2e` `rollout`.

use inventiv_api::replicas::{run_once, Backoff};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::matrix::SMALL_MODEL;
use crate::support::{error_code, TestApp};

const MOCK_ZONE_2: &str = "8a1d0000-0000-4000-8000-000000000002";

/// The service's replicas not ended: (revision, zone, status), oldest first.
async fn replicas(app: &TestApp, service: Uuid) -> Vec<(i32, String, String)> {
    sqlx::query_as(
        "SELECT service_revision, zone, status FROM instances
          WHERE service_id = $1 AND status NOT IN ('terminating', 'terminated')
          ORDER BY created_at, id",
    )
    .bind(service)
    .fetch_all(&app.state.db)
    .await
    .unwrap()
}

/// What the orchestrator does once a replica's worker serves.
async fn ready(app: &TestApp, service: Uuid) {
    sqlx::query(
        "UPDATE instances SET status = 'ready', status_changed_at = now()
          WHERE service_id = $1 AND status = 'provisioning'",
    )
    .bind(service)
    .execute(&app.state.db)
    .await
    .unwrap();
}

fn row(revision: i32, zone: &str, status: &str) -> (i32, String, String) {
    (revision, zone.to_owned(), status.to_owned())
}

/// The timeline's kinds, oldest first.
async fn kinds(app: &TestApp, service: Uuid) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kind, reason FROM service_events WHERE service_id = $1 ORDER BY id")
        .bind(service)
        .fetch_all(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rollout_replaces_the_replicas_one_at_a_time_each_new_one_ready_first() {
    // The background convergence ticks once at start, then not for an hour.
    let app = TestApp::spawn_with(&[("INVENTIV_REPLICAS_INTERVAL_MS", "3600000")]).await;
    let a = app.org("a").await;
    app.activate_mock(&a, SMALL_MODEL).await;
    app.activate(&a, "zone", MOCK_ZONE_2).await;
    let (s, created) = app
        .post(
            "/services",
            Some(&a.admin.token),
            json!({ "model_id": SMALL_MODEL, "name": "chat", "min_replicas": 2, "max_replicas": 2,
                    "placements": [{ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g" }] }),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        (&created["revision"], &created["outdated_replicas"]),
        (&json!(1), &json!(0))
    );
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    ready(&app, id).await;
    let mut backoff = Backoff::default();
    assert_eq!(run_once(&app.state, &mut backoff).await.unwrap().created, 0);

    // The rollout moves the service to zone 2; its replicas are outdated.
    let (s, rolled) = app
        .post(
            &format!("/services/{id}/rollout"),
            Some(&a.owner.token),
            json!({ "reason": "vLLM 0.7", "placements": [{ "provider": "mock", "zone": "mock-zone-2", "instance_type": "mock-1gpu-24g" }] }),
        )
        .await;
    assert_eq!(s, 200, "{rolled}");
    assert_eq!(
        (
            &rolled["revision"],
            &rolled["outdated_replicas"],
            &rolled["desired_replicas"]
        ),
        (&json!(2), &json!(2), &json!(2))
    );
    assert_eq!(rolled["placements"][0]["zone"], "mock-zone-2");
    let timeline = kinds(&app, id).await;
    let (kind, reason) = timeline.last().unwrap();
    assert_eq!(kind, "rollout_started");
    assert!(
        reason.contains("rollout to revision 2 started by an owner (vLLM 0.7)")
            && reason.contains("2 replica(s) to replace"),
        "{reason}"
    );

    // Step 1: one replica more, at revision 2 in zone 2; nothing taken away.
    assert_eq!(run_once(&app.state, &mut backoff).await.unwrap().created, 1);
    let z1 = "mock-zone-1";
    let z2 = "mock-zone-2";
    assert_eq!(
        replicas(&app, id).await,
        [
            row(1, z1, "ready"),
            row(1, z1, "ready"),
            row(2, z2, "provisioning")
        ]
    );
    // While it is not ready, nothing happens, however many passes.
    for _ in 0..3 {
        let pass = run_once(&app.state, &mut backoff).await.unwrap();
        assert_eq!((pass.created, pass.terminated), (0, 0), "{pass:?}");
    }

    // Step 2: it is ready; the oldest outdated drains, the next new one starts.
    ready(&app, id).await;
    let pass = run_once(&app.state, &mut backoff).await.unwrap();
    assert_eq!((pass.created, pass.terminated), (1, 1), "{pass:?}");
    assert_eq!(
        replicas(&app, id).await,
        [
            row(1, z1, "draining"),
            row(1, z1, "ready"),
            row(2, z2, "ready"),
            row(2, z2, "provisioning")
        ]
    );

    // Step 3: the last outdated drains once the second new one is ready.
    ready(&app, id).await;
    let pass = run_once(&app.state, &mut backoff).await.unwrap();
    assert_eq!((pass.created, pass.terminated), (0, 1), "{pass:?}");
    assert_eq!(
        replicas(&app, id).await,
        [
            row(1, z1, "draining"),
            row(1, z1, "draining"),
            row(2, z2, "ready"),
            row(2, z2, "ready")
        ]
    );
    let (_, after) = app
        .get(&format!("/services/{id}"), Some(&a.user.token))
        .await;
    assert_eq!(
        (&after["revision"], &after["outdated_replicas"]),
        (&json!(2), &json!(0))
    );
    let revisions: Vec<&Value> = after["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["service_revision"])
        .collect();
    assert_eq!(revisions, [&json!(2), &json!(2), &json!(1), &json!(1)]);
    let timeline = kinds(&app, id).await;
    let steps: Vec<&str> = timeline.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        steps[steps.len() - 5..],
        [
            "replica_created",
            "replica_terminated",
            "replica_created",
            "replica_terminated",
            "rollout_finished"
        ]
    );
    assert!(
        timeline[timeline.len() - 2]
            .1
            .contains("rollout to revision 2: 1 replica(s) taken away (1 draining, 0 terminated), outdated, with 2 ready at revision 2"),
        "{timeline:?}"
    );

    // The drained ones end (their workers report nothing in flight).
    sqlx::query(
        "UPDATE instances SET last_heartbeat_at = now() + interval '1 minute',
                worker_requests_running = 0, worker_requests_waiting = 0
          WHERE service_id = $1 AND status = 'draining'",
    )
    .bind(id)
    .execute(&app.state.db)
    .await
    .unwrap();
    let pass = run_once(&app.state, &mut backoff).await.unwrap();
    assert_eq!((pass.drained, pass.created), (2, 0), "{pass:?}");
    assert_eq!(
        replicas(&app, id).await,
        [row(2, z2, "ready"), row(2, z2, "ready")]
    );
    assert_eq!(
        run_once(&app.state, &mut backoff).await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn refused_rollouts_store_nothing() {
    let app = TestApp::spawn_with(&[("INVENTIV_REPLICAS_INTERVAL_MS", "3600000")]).await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    app.activate_mock(&a, SMALL_MODEL).await;
    let (_, created) = app
        .post(
            "/services",
            Some(&a.admin.token),
            json!({ "model_id": SMALL_MODEL, "min_replicas": 1, "max_replicas": 1,
                    "placements": [{ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g" }] }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/services/{id}/rollout");
    let revision = || async {
        sqlx::query_scalar::<_, i32>("SELECT revision FROM services WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.state.db)
            .await
            .unwrap()
    };
    for (body, status, code) in [
        (json!({ "reason": "" }), 400, "VALIDATION_ERROR"),
        (
            json!({ "reason": "x".repeat(201) }),
            400,
            "VALIDATION_ERROR",
        ),
        (json!({ "reason": "a\u{7}bell" }), 400, "VALIDATION_ERROR"),
        (json!({ "placements": [] }), 400, "VALIDATION_ERROR"),
        // Zone 2 is not activated for this organization.
        (
            json!({ "placements": [{ "provider": "mock", "zone": "mock-zone-2", "instance_type": "mock-1gpu-24g" }] }),
            409,
            "NOT_ACTIVATED",
        ),
    ] {
        let (s, answer) = app.post(&path, Some(&a.owner.token), body.clone()).await;
        assert_eq!((s.as_u16(), error_code(&answer)), (status, code), "{body}");
    }
    assert_eq!(revision().await, 1);
    assert_eq!(
        app.post(&path, Some(&b.owner.token), json!({})).await.0,
        404
    );
    assert_eq!(app.post(&path, Some(&a.user.token), json!({})).await.0, 403);
    assert_eq!(revision().await, 1);

    // A deleted service takes no rollout.
    assert_eq!(
        app.delete(&format!("/services/{id}"), Some(&a.owner.token))
            .await
            .0,
        202
    );
    let (s, answer) = app.post(&path, Some(&a.owner.token), json!({})).await;
    assert_eq!((s.as_u16(), error_code(&answer)), (409, "SERVICE_DELETED"));
    assert_eq!(revision().await, 1);
}
