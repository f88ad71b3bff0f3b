//! System prompts, read where it matters: what the engine received. A
//! worker that records each chat completion's body serves `mock/model`; the
//! model's, the organization's and the key's prompts are set in turn and
//! the most specific wins (key over organization over model), in both
//! modes; removing one falls back to the next; each change is audited with
//! its version; a shared offering's prompt, set by its provider, reaches
//! its consumers' calls (after their own ones), not the provider's; bad
//! input is refused and stores nothing.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::support::engines::{fake, serve_port};
use crate::support::{error_code, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

/// The bodies the worker received, in order.
type Received = Arc<Mutex<Vec<Value>>>;

/// A worker answering every request (chat completions only, here) with a
/// short answer, after recording its body.
fn recording_worker(received: Received) -> axum::Router {
    axum::Router::new().fallback(move |axum::Json(body): axum::Json<Value>| {
        let received = received.clone();
        async move {
            received.lock().unwrap().push(body);
            axum::Json(json!({
                "id": "c", "object": "chat.completion", "created": 0, "model": "mock/model",
                "choices": [{ "index": 0, "finish_reason": "stop",
                              "message": { "role": "assistant", "content": "ok" } }],
                "usage": { "prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4 }
            }))
        }
    })
}

#[tokio::test]
async fn the_most_specific_prompt_reaches_the_engine_in_its_mode() {
    let app = TestApp::spawn().await;
    let received = Received::default();
    let worker = fake(recording_worker(received.clone())).await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;
    let admin = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, model) = app
        .post(
            "/models",
            Some(&admin),
            json!({ "hf_id": "mock/model", "display_name": "Mock", "required_vram_gb": 4,
                    "context_length": 4096, "recommended_data_volume_gb": 20 }),
        )
        .await;
    let model_id = model["id"].as_str().unwrap().to_owned();

    // Sends a chat completion with the key; returns the messages the engine got.
    let call = |messages: Value| {
        let (app, key, received) = (&app, a.api_key.clone(), received.clone());
        async move {
            let (status, answer) = app
                .post(
                    "/v1/chat/completions",
                    Some(&key),
                    json!({ "model": "mock/model", "messages": messages }),
                )
                .await;
            assert_eq!(status, 200, "{answer}");
            received.lock().unwrap().last().unwrap()["messages"].clone()
        }
    };
    let user = json!({ "role": "user", "content": "hi" });
    let own = json!({ "role": "system", "content": "mine" });
    let system = |text: &str| json!({ "role": "system", "content": text });

    // None set: the body goes as it came.
    assert_eq!(call(json!([user])).await, json!([user]));

    // The model's, if absent (the default mode).
    let path = format!("/models/{model_id}/system-prompt");
    let (s, set) = app
        .put(
            &path,
            Some(&admin),
            json!({ "content": "  From the model.  " }),
        )
        .await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(
        (
            &set["scope"],
            &set["content"],
            &set["mode"],
            &set["version"]
        ),
        (
            &json!("model"),
            &json!("From the model."),
            &json!("if_absent"),
            &json!(1)
        )
    );
    assert_eq!(
        call(json!([user])).await,
        json!([system("From the model."), user])
    );
    assert_eq!(call(json!([own, user])).await, json!([own, user]));

    // The organization's wins over the model's; `always` goes first.
    let (s, _) = app
        .put(
            "/organizations/current/system-prompt",
            Some(&a.owner.token),
            json!({ "content": "From the organization.", "mode": "always" }),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(json!([own, user])).await,
        json!([system("From the organization."), own, user])
    );

    // The key's wins over both.
    let key_path = format!("/api-keys/{}/system-prompt", a.api_key_id);
    let (s, set) = app
        .put(
            &key_path,
            Some(&a.admin.token),
            json!({ "content": "From the key." }),
        )
        .await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(
        call(json!([user])).await,
        json!([system("From the key."), user])
    );
    let (s, set) = app
        .put(
            &key_path,
            Some(&a.admin.token),
            json!({ "content": "From the key, v2.", "mode": "always" }),
        )
        .await;
    assert_eq!((s.as_u16(), &set["version"]), (200, &json!(2)));
    assert_eq!(
        call(json!([own, user])).await,
        json!([system("From the key, v2."), own, user])
    );

    // Members read them; removing the key's falls back to the organization's.
    let (s, listed) = app
        .get("/organizations/current/system-prompts", Some(&a.user.token))
        .await;
    let scopes: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["scope"].as_str().unwrap())
        .collect();
    assert_eq!(
        (s.as_u16(), scopes),
        (200, vec!["api_key", "organization", "model"])
    );
    assert_eq!(app.delete(&key_path, Some(&a.admin.token)).await.0, 204);
    assert_eq!(
        call(json!([user])).await,
        json!([system("From the organization."), user])
    );
    assert_eq!(
        app.delete("/organizations/current/system-prompt", Some(&a.owner.token))
            .await
            .0,
        204
    );
    assert_eq!(
        call(json!([user])).await,
        json!([system("From the model."), user])
    );

    // Every change is in the audit log, with its version and text.
    let audited: Vec<(String, Value)> = sqlx::query_as(
        "SELECT action, details FROM audit_logs WHERE target_type = 'system_prompt' ORDER BY id",
    )
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    let actions: Vec<&str> = audited.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "system_prompt.set",
            "system_prompt.set",
            "system_prompt.set",
            "system_prompt.set",
            "system_prompt.removed",
            "system_prompt.removed"
        ]
    );
    assert_eq!(
        (&audited[3].1["version"], &audited[3].1["content"]),
        (&json!(2), &json!("From the key, v2."))
    );
}

#[tokio::test]
async fn a_shared_offerings_prompt_reaches_its_consumers_after_their_own() {
    let app = TestApp::spawn().await;
    let received = Received::default();
    let worker = fake(recording_worker(received.clone())).await;
    let mut a = app.org("a").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;
    let b = app.org("b").await;
    let offering = crate::sharing::publish(&app, &a, "0.002", "0.006").await;
    let shares = format!("/organizations/current/offerings/{offering}/shares");
    let (s, share) = app
        .post(
            &shares,
            Some(&a.manager.token),
            json!({ "consumer_org_slug": b.slug }),
        )
        .await;
    assert_eq!(s, 201, "{share}");
    let accept = format!("/organizations/current/available-offerings/{offering}/accept");
    let (s, accepted) = app.post(&accept, Some(&b.manager.token), json!({})).await;
    assert_eq!(s, 200, "{accepted}");
    let address = format!("{}/mock/model", a.slug);
    crate::sharing::routed(&app, b.id, &address, Some(false)).await;
    // Both sides see that a ready instance serves it.
    let (_, listed) = app
        .get(
            "/organizations/current/available-offerings",
            Some(&b.user.token),
        )
        .await;
    assert_eq!(listed[0]["serving"], true, "{listed}");
    let (_, own) = app
        .get("/organizations/current/offerings", Some(&a.manager.token))
        .await;
    assert_eq!(own[0]["serving"], true, "{own}");

    // The provider sets it (a manager may not; another organization gets a 404).
    let path = format!("/organizations/current/offerings/{offering}/system-prompt");
    let body = json!({ "content": "From the provider." });
    assert_eq!(
        app.put(&path, Some(&a.manager.token), body.clone()).await.0,
        403
    );
    assert_eq!(
        app.put(&path, Some(&b.owner.token), body.clone()).await.0,
        404
    );
    let (s, set) = app.put(&path, Some(&a.admin.token), body).await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(
        (&set["scope"], &set["version"]),
        (&json!("offering"), &json!(1))
    );

    let call = |key: String, model: String| {
        let (app, received) = (&app, received.clone());
        async move {
            let (status, answer) = app
                .post(
                    "/v1/chat/completions",
                    Some(&key),
                    json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] }),
                )
                .await;
            assert_eq!(status, 200, "{answer}");
            received.lock().unwrap().last().unwrap()["messages"][0].clone()
        }
    };
    let system = |text: &str| json!({ "role": "system", "content": text });
    // The consumer's call gets it; the provider's own call does not.
    assert_eq!(
        call(b.api_key.clone(), address.clone()).await,
        system("From the provider.")
    );
    assert_eq!(
        call(a.api_key.clone(), "mock/model".into()).await["role"],
        "user"
    );
    // The consumer's own organization prompt comes first.
    let (s, _) = app
        .put(
            "/organizations/current/system-prompt",
            Some(&b.owner.token),
            json!({ "content": "From the consumer." }),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(b.api_key.clone(), address.clone()).await,
        system("From the consumer.")
    );
    let (listed_status, listed) = app
        .get("/organizations/current/system-prompts", Some(&a.user.token))
        .await;
    assert_eq!(listed_status, 200);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["scope"] == "offering" && p["target_id"] == offering.to_string()),
        "{listed}"
    );
    assert_eq!(app.delete(&path, Some(&a.owner.token)).await.0, 204);
}

#[tokio::test]
async fn bad_prompts_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let path = "/organizations/current/system-prompt";
    // Out of bounds: VALIDATION_ERROR; not the schema (an unknown mode or
    // field): the extractor's malformed-body refusal.
    for (body, code) in [
        (json!({ "content": "   " }), Some("VALIDATION_ERROR")),
        (
            json!({ "content": "x".repeat(4001) }),
            Some("VALIDATION_ERROR"),
        ),
        (json!({ "content": "a\u{0}b" }), Some("VALIDATION_ERROR")),
        (json!({ "content": "ok", "mode": "sometimes" }), None),
        (json!({ "content": "ok", "extra": 1 }), None),
    ] {
        let (s, answer) = app.put(path, Some(&a.owner.token), body.clone()).await;
        assert_eq!(s.as_u16(), 400, "{body}: {answer}");
        if let Some(code) = code {
            assert_eq!(error_code(&answer), code, "{body}");
        }
    }
    // Another organization's key is not found; a member's prompt change is refused.
    let foreign = format!("/api-keys/{}/system-prompt", b.api_key_id);
    assert_eq!(
        app.put(&foreign, Some(&a.owner.token), json!({ "content": "x" }))
            .await
            .0,
        404
    );
    assert_eq!(
        app.put(path, Some(&a.user.token), json!({ "content": "x" }))
            .await
            .0,
        403
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM system_prompts")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}
