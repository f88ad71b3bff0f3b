//! Deployments: an accepted one writes the instance and its command in one
//! transaction and the relay puts the command on the Redis stream; each
//! refused one answers a precise 4xx, stores nothing and sends nothing.

use std::time::Duration;

use crate::support::matrix::SMALL_MODEL;
use crate::support::{error_code, eventually, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const SCW_FR_PAR_1: &str = "8a1d0000-0000-4000-8000-000000000011";
const SCW_L4: &str = "8a1e0000-0000-4000-8000-000000000011";
const QWEN_7B: &str = "8a1f0000-0000-4000-8000-000000000002";

async fn stream_len(app: &TestApp) -> usize {
    let mut redis = app.state.redis.clone();
    let len: usize = redis::cmd("XLEN")
        .arg(inventiv_api::outbox::stream_key(&app.state))
        .query_async(&mut redis)
        .await
        .unwrap();
    len
}

async fn counts(app: &TestApp) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM instances), (SELECT count(*) FROM command_outbox)")
        .fetch_one(&app.state.db)
        .await
        .unwrap()
}

fn deploy(provider: &str, zone: &str, instance_type: &str, model: Option<&str>) -> Value {
    let mut body = json!({ "provider": provider, "zone": zone, "instance_type": instance_type });
    if let Some(m) = model {
        body["model_id"] = json!(m);
    }
    body
}

#[tokio::test]
async fn an_accepted_deployment_is_stored_and_sent_once() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    app.activate_mock(&a, SMALL_MODEL).await;
    let (status, _, instance) = app
        .call(
            Method::POST,
            "/deployments",
            Some(&a.admin.token),
            Some(&deploy(
                "mock",
                "mock-zone-1",
                "mock-1gpu-24g",
                Some("Qwen/Qwen2.5-0.5B-Instruct"),
            )),
        )
        .await;
    assert_eq!(status, 202, "{instance}");
    assert_eq!(
        (instance["status"].as_str(), instance["progress"].as_i64()),
        (Some("provisioning"), Some(0))
    );
    assert_eq!(instance["price_eur_per_hour"], "0.7500");
    assert_eq!(
        instance["cost_so_far_eur"], "0",
        "nothing is charged before the provider starts it"
    );
    let id = instance["id"].as_str().unwrap().to_owned();
    // The relay publishes the command exactly once.
    let entries: Vec<(String, Vec<(String, String)>)> = eventually(
        "the command on the stream",
        Duration::from_secs(10),
        || async {
            let mut redis = app.state.redis.clone();
            let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(inventiv_api::outbox::stream_key(&app.state))
                .arg("-")
                .arg("+")
                .query_async(&mut redis)
                .await
                .unwrap();
            (!entries.is_empty()).then_some(entries)
        },
    )
    .await;
    assert_eq!(entries.len(), 1);
    let fields: std::collections::HashMap<_, _> = entries[0].1.iter().cloned().collect();
    assert_eq!(
        (fields["instance_id"].as_str(), fields["command"].as_str()),
        (id.as_str(), "provision")
    );
    eventually(
        "the outbox row marked published",
        Duration::from_secs(10),
        || async {
            let published: bool = sqlx::query_scalar(
                "SELECT published_at IS NOT NULL FROM command_outbox WHERE instance_id = $1::uuid",
            )
            .bind(&id)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
            published.then_some(())
        },
    )
    .await;
    // Members read it; B's members do not see it.
    let (s, list) = app
        .get("/instances?status=provisioning", Some(&a.user.token))
        .await;
    assert_eq!((s.as_u16(), list.as_array().unwrap().len()), (200, 1));
    let b = app.org("b").await;
    assert_eq!(
        app.get(&format!("/instances/{id}"), Some(&b.owner.token))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get("/instances", Some(&b.owner.token)).await.1,
        json!([])
    );
    let history = app
        .get(&format!("/instances/{id}/history"), Some(&a.user.token))
        .await
        .1;
    assert_eq!(history[0]["to_status"], "provisioning");

    // Lifecycle: archive is only for terminated instances; terminate queues a command.
    let (s, _, body) = app
        .call(
            Method::PUT,
            &format!("/instances/{id}/archive"),
            Some(&a.owner.token),
            None,
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (409, "INVALID_TRANSITION"));
    let (s, body) = app
        .delete(&format!("/instances/{id}"), Some(&a.owner.token))
        .await;
    assert_eq!(
        (s.as_u16(), body["status"].as_str()),
        (202, Some("terminating"))
    );
    let (s, _) = app
        .delete(&format!("/instances/{id}"), Some(&a.owner.token))
        .await;
    assert_eq!(s, 202, "terminating again is harmless");
    // Who deployed and who terminated, once each, in the audit log.
    let audit: Vec<(String, Option<uuid::Uuid>, serde_json::Value)> = sqlx::query_as(
        "SELECT action, actor_user_id, details FROM audit_logs
          WHERE target_type = 'instance' AND target_id = $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    let actions: Vec<_> = audit.iter().map(|(a, u, _)| (a.as_str(), *u)).collect();
    assert_eq!(
        actions,
        [
            ("instance.deployed", Some(a.admin.user_id)),
            ("instance.terminated", Some(a.owner.user_id)),
        ]
    );
    assert_eq!(
        (audit[0].2["model"].as_str(), audit[0].2["zone"].as_str()),
        (Some("Qwen/Qwen2.5-0.5B-Instruct"), Some("mock-zone-1"))
    );
    eventually("the terminate command", Duration::from_secs(10), || async {
        (stream_len(&app).await == 3).then_some(())
    })
    .await;
    let (s, body) = app
        .get("/instances?status=bogus", Some(&a.user.token))
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (400, "INVALID_QUERY"));
}

#[tokio::test]
async fn each_refused_deployment_stores_and_sends_nothing() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    app.activate_mock(&a, SMALL_MODEL).await;
    for (kind, item) in [
        ("provider", "scaleway"),
        ("zone", SCW_FR_PAR_1),
        ("instance_type", SCW_L4),
    ] {
        app.activate(&a, kind, item).await;
    }
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "no model",
            deploy("mock", "mock-zone-1", "mock-1gpu-24g", None),
            400,
            "MISSING_MODEL",
        ),
        (
            "unknown model",
            deploy("mock", "mock-zone-1", "mock-1gpu-24g", Some("acme/unknown")),
            400,
            "MISSING_MODEL",
        ),
        (
            "unknown provider",
            deploy("aws", "mock-zone-1", "mock-1gpu-24g", Some(SMALL_MODEL)),
            400,
            "UNKNOWN_PROVIDER",
        ),
        (
            "unknown zone",
            deploy("mock", "mars-1", "mock-1gpu-24g", Some(SMALL_MODEL)),
            400,
            "UNKNOWN_ZONE_OR_TYPE",
        ),
        (
            "70B on 24 GB",
            deploy(
                "mock",
                "mock-zone-1",
                "mock-1gpu-24g",
                Some("meta-llama/Llama-3.1-70B-Instruct"),
            ),
            400,
            "INCOMPATIBLE_MODEL_INSTANCE",
        ),
        (
            "H100 not in Amsterdam",
            deploy("scaleway", "nl-ams-1", "H100-1-80G", Some(SMALL_MODEL)),
            409,
            "ZONE_NOT_AVAILABLE",
        ),
        (
            "model not activated",
            deploy("mock", "mock-zone-1", "mock-1gpu-24g", Some(QWEN_7B)),
            409,
            "NOT_ACTIVATED",
        ),
        (
            "no Scaleway credentials",
            deploy("scaleway", "fr-par-1", "L4-1-24G", Some(SMALL_MODEL)),
            409,
            "PROVIDER_NOT_CONFIGURED",
        ),
    ];
    let before = counts(&app).await;
    for (what, body, status, code) in cases {
        let (s, answer) = app
            .post("/deployments", Some(&a.owner.token), body.clone())
            .await;
        assert_eq!(
            (s.as_u16(), error_code(&answer)),
            (status, code),
            "{what}: {answer}"
        );
    }
    // A user or manager may not deploy at all.
    for t in [&a.user.token, &a.manager.token] {
        let (s, _, _) = app
            .call(
                Method::POST,
                "/deployments",
                Some(t),
                Some(&deploy(
                    "mock",
                    "mock-zone-1",
                    "mock-1gpu-24g",
                    Some(SMALL_MODEL),
                )),
            )
            .await;
        assert_eq!(s, 403);
    }
    assert_eq!(counts(&app).await, before, "nothing stored");
    // Give the relay its sweep: still nothing sent.
    inventiv_api::outbox::relay_once(&app.state).await.unwrap();
    assert_eq!(stream_len(&app).await, 0, "nothing sent");
    // And the message of NOT_ACTIVATED says which switch is missing.
    let (_, _, answer) = app
        .call(
            Method::POST,
            "/deployments",
            Some(&a.owner.token),
            Some(&deploy(
                "mock",
                "mock-zone-1",
                "mock-1gpu-24g",
                Some(QWEN_7B),
            )),
        )
        .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("technical and economic"),
        "{answer}"
    );
}
