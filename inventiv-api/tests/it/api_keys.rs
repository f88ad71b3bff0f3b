//! API keys: shown once, stored hashed, listed by metadata only; members
//! manage their own, owners and admins all; double activation by role.

use crate::support::{error_code, TestApp};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn keys_are_shown_once_stored_hashed_and_activated_by_role() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    // A user's key needs both activations; an owner's has them.
    let (s, created) = app
        .post(
            "/api-keys",
            Some(&a.user.token),
            json!({ "name": "laptop", "rpm_limit": 60 }),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("inv_") && key.len() >= 60, "{key}");
    assert_eq!(created["api_key"]["status"], "inactive");
    assert_eq!(
        created["api_key"]["activation"]["missing"],
        json!(["technical", "economic"])
    );
    assert_eq!(created["api_key"]["last_four"], &key[key.len() - 4..]);
    let id = created["api_key"]["id"].as_str().unwrap().to_owned();
    let (s, owners) = app
        .post("/api-keys", Some(&a.owner.token), json!({ "name": "ci" }))
        .await;
    assert_eq!(
        (s.as_u16(), owners["api_key"]["status"].as_str()),
        (201, Some("active"))
    );

    // The whole key is never stored nor listed.
    let stored: Vec<String> = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert!(
        stored.iter().all(|r| !r.contains(&key)),
        "key in clear in the database"
    );
    let listed = app.get("/api-keys", Some(&a.user.token)).await.1;
    assert!(!listed.to_string().contains(&key));
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "a user lists only their keys"
    );
    assert_eq!(
        app.get("/api-keys", Some(&a.admin.token))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        3,
        "admins list all: the user's, the owner's and the fixture's"
    );

    // Activation: each side by its role.
    let path = format!("/api-keys/{id}");
    let (s, body) = app
        .patch(&path, Some(&a.user.token), json!({ "technical": true }))
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (403, "FORBIDDEN"));
    let (s, body) = app
        .patch(&path, Some(&a.admin.token), json!({ "technical": true }))
        .await;
    assert_eq!(
        (s.as_u16(), body["activation"]["missing"].clone()),
        (200, json!(["economic"]))
    );
    let (s, body) = app
        .patch(&path, Some(&a.manager.token), json!({ "economic": true }))
        .await;
    assert_eq!(
        (s.as_u16(), body["status"].as_str()),
        (200, Some("active")),
        "a manager approves another member's key: {body}"
    );
    let (s, body) = app
        .patch(&path, Some(&a.owner.token), json!({ "economic": true }))
        .await;
    assert_eq!((s.as_u16(), body["status"].as_str()), (200, Some("active")));

    // Bad input and revocation.
    for bad in [
        json!({ "name": "" }),
        json!({ "name": "k", "rpm_limit": 0 }),
        json!({ "name": "k", "expires_at": "2001-01-01T00:00:00Z" }),
    ] {
        assert_eq!(
            app.post("/api-keys", Some(&a.user.token), bad.clone())
                .await
                .0,
            400,
            "{bad}"
        );
    }
    let (s, _, _) = app
        .call(Method::DELETE, &path, Some(&a.user.token), None)
        .await;
    assert_eq!(s, 204);
    let listed = app.get("/api-keys", Some(&a.user.token)).await.1;
    assert_eq!(listed[0]["status"], "revoked");
    let (s, body) = app
        .patch(&path, Some(&a.owner.token), json!({ "name": "again" }))
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (409, "API_KEY_REVOKED"));
}

#[tokio::test]
async fn patch_clears_a_limit_with_null_and_keeps_it_when_absent() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let (s, created) = app
        .post(
            "/api-keys",
            Some(&a.owner.token),
            json!({ "name": "limited", "rpm_limit": 60, "tpm_limit": 5000 }),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let path = format!("/api-keys/{}", created["api_key"]["id"].as_str().unwrap());
    let patch = |body: serde_json::Value| {
        let (app, path, token) = (&app, &path, &a.owner.token);
        async move {
            let (s, _, body) = app
                .call(Method::PATCH, path, Some(token), Some(&body))
                .await;
            (s.as_u16(), body)
        }
    };
    let limits = |b: &serde_json::Value| (b["rpm_limit"].clone(), b["tpm_limit"].clone());

    // Absent: unchanged.
    let (s, body) = patch(json!({ "name": "renamed" })).await;
    assert_eq!(
        (s, limits(&body)),
        (200, (json!(60), json!(5000))),
        "{body}"
    );
    // Null: cleared, the other limit kept.
    let (s, body) = patch(json!({ "rpm_limit": null })).await;
    assert_eq!(
        (s, limits(&body)),
        (200, (json!(null), json!(5000))),
        "{body}"
    );
    // Set one, clear the other, in one call.
    let (s, body) = patch(json!({ "rpm_limit": 30, "tpm_limit": null })).await;
    assert_eq!(
        (s, limits(&body)),
        (200, (json!(30), json!(null))),
        "{body}"
    );
    // An invalid value changes nothing.
    let (s, body) = patch(json!({ "rpm_limit": 0, "tpm_limit": 10 })).await;
    assert_eq!((s, error_code(&body)), (400, "VALIDATION_ERROR"), "{body}");
    let listed = app.get("/api-keys", Some(&a.owner.token)).await.1;
    assert_eq!(limits(&listed[0]), (json!(30), json!(null)), "{listed}");
    // The proxy enforces what is stored: no limit left means no 429 on the
    // key's own rate; the stored row says so.
    let stored: (Option<i32>, Option<i32>) =
        sqlx::query_as("SELECT rpm_limit, tpm_limit FROM api_keys WHERE name = 'renamed'")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(stored, (Some(30), None));
}
