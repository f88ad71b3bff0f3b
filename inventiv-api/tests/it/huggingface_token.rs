//! The organization's Hugging Face token: set by owners and admins, stored
//! encrypted, shown only as a masked hint, audited without its value,
//! deleted, re-encrypted when the key rotates; and gated models, which
//! cannot be deployed without it (refused before anything is stored or
//! sent).

use crate::support;

use crate::support::fixture::Org;
use crate::support::rotation::{app_on_key_1, rotated_to_key_2, single_keys};
use crate::support::{error_code, TestApp};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const PATH: &str = "/organizations/current/huggingface-token";

async fn call(app: &TestApp, method: Method, token: &str, body: Option<Value>) -> (u16, Value) {
    let (s, _, b) = app.call(method, PATH, Some(token), body.as_ref()).await;
    (s.as_u16(), b)
}

async fn stored_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM huggingface_tokens")
        .fetch_one(&app.state.db)
        .await
        .unwrap()
}

async fn audit_actions(app: &TestApp, org: &Org) -> Vec<(String, Value)> {
    sqlx::query_as(
        "SELECT action, details FROM audit_logs WHERE organization_id = $1 AND action LIKE 'huggingface_token.%' ORDER BY id",
    )
    .bind(org.id)
    .fetch_all(&app.state.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_token_is_set_masked_replaced_and_deleted_by_owners_and_admins() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let (s, unset) = call(&app, Method::GET, &a.owner.token, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        unset,
        json!({ "configured": false, "hint": null, "created_at": null, "updated_at": null })
    );

    // Bad input: a clear 400 that does not echo the value, nothing stored.
    for bad in [
        "",
        "hf_short",
        "ghp_0123456789abcdefghijklmnopqrstuv",
        "hf_0123456789 abcdefghijklmnopqrstuv",
        "hf_0123456789-abcdefghijklmnopqrstuv",
        &format!("hf_{}", "x".repeat(5000)),
    ] {
        let (s, body) = call(
            &app,
            Method::PUT,
            &a.admin.token,
            Some(json!({ "token": bad })),
        )
        .await;
        assert_eq!((s, error_code(&body)), (400, "VALIDATION_ERROR"), "{bad}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("hf_ followed by"), "{message}");
        assert!(bad.len() < 9 || !message.contains(bad), "{message}");
    }
    let (s, body) = call(&app, Method::PUT, &a.admin.token, Some(json!({}))).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(stored_rows(&app).await, 0);

    // Managers and users may neither read nor change it.
    let first = "hf_FirstTokenOfOrgA0123456789abcdWXYZ";
    for who in [&a.manager, &a.user] {
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(json!({ "token": first }))),
            (Method::DELETE, None),
        ] {
            let (s, answer) = call(&app, method.clone(), &who.token, body).await;
            assert_eq!((s, error_code(&answer)), (403, "FORBIDDEN"), "{method}");
        }
    }
    assert_eq!(stored_rows(&app).await, 0);

    // An admin sets it (surrounding blanks of a paste are dropped).
    let (s, set) = call(
        &app,
        Method::PUT,
        &a.admin.token,
        Some(json!({ "token": format!(" {first}\n") })),
    )
    .await;
    assert_eq!(s, 200, "{set}");
    assert_eq!(
        (set["configured"].as_bool(), set["hint"].as_str()),
        (Some(true), Some("hf_…WXYZ"))
    );
    assert!(set["created_at"].is_string() && set["updated_at"].is_string());
    let (s, shown) = call(&app, Method::GET, &a.owner.token, None).await;
    assert_eq!((s, &shown), (200, &set));
    assert!(!shown.to_string().contains(&first[3..]));
    // Another organization's view is its own.
    let (_, other) = call(&app, Method::GET, &b.owner.token, None).await;
    assert_eq!(other["configured"], false);

    // Stored encrypted, and it decrypts to exactly what was sent.
    let (version, ciphertext): (i32, Vec<u8>) = sqlx::query_as(
        "SELECT key_version, ciphertext FROM huggingface_tokens WHERE organization_id = $1",
    )
    .bind(a.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!(version, 1);
    assert!(!ciphertext
        .windows(first.len())
        .any(|w| w == first.as_bytes()));
    let load =
        |org| inventiv_store::huggingface::load(&app.state.db, &app.state.config.keyring, org);
    assert_eq!(load(a.id).await.unwrap().unwrap().expose_secret(), first);
    assert!(load(b.id).await.unwrap().is_none());

    // The owner replaces it: a new hint, the same creation time.
    let second = "hf_SecondTokenOfOrgA0123456789abcdQRST";
    let (s, replaced) = call(
        &app,
        Method::PUT,
        &a.owner.token,
        Some(json!({ "token": second })),
    )
    .await;
    assert_eq!(s, 200, "{replaced}");
    assert_eq!(replaced["hint"], "hf_…QRST");
    assert_eq!(replaced["created_at"], set["created_at"]);
    assert_ne!(replaced["updated_at"], set["updated_at"]);
    assert_eq!(load(a.id).await.unwrap().unwrap().expose_secret(), second);

    // Deleted: unset again, and deleting twice is harmless.
    for _ in 0..2 {
        let (s, _) = call(&app, Method::DELETE, &a.admin.token, None).await;
        assert_eq!(s, 204);
    }
    let (_, gone) = call(&app, Method::GET, &a.owner.token, None).await;
    assert_eq!(gone, unset);
    assert_eq!(stored_rows(&app).await, 0);

    // Audited once per change, with the hint and never the token; the
    // organization's audit log API shows the same.
    let audit = audit_actions(&app, &a).await;
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "huggingface_token.set",
            "huggingface_token.set",
            "huggingface_token.deleted"
        ]
    );
    assert_eq!(audit[0].1, json!({ "hint": "hf_…WXYZ" }));
    let (_, log) = app
        .get("/organizations/current/audit-logs", Some(&a.owner.token))
        .await;
    let log = log.to_string();
    assert!(log.contains("huggingface_token.set"), "{log}");
    for token in [first, second] {
        assert!(!log.contains(&token[3..]));
    }
    app.stop().await;
}

/// Instances, commands waiting in the outbox, and commands on the stream.
async fn stored_and_sent(app: &TestApp) -> (i64, i64, usize) {
    let (instances, commands): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM instances), (SELECT count(*) FROM command_outbox)",
    )
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    let mut redis = app.state.redis.clone();
    let sent: usize = redis::cmd("XLEN")
        .arg(inventiv_api::outbox::stream_key(&app.state))
        .query_async(&mut redis)
        .await
        .unwrap();
    (instances, commands, sent)
}

#[tokio::test]
async fn a_gated_model_needs_the_organizations_token_to_be_deployed() {
    let app = TestApp::spawn().await;
    let admin = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;

    // The seeded catalog marks the gated repositories.
    let (_, models) = app.get("/models", Some(&admin)).await;
    let gated = |hf_id: &str| {
        models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["hf_id"] == hf_id)
            .unwrap_or_else(|| panic!("{hf_id} seeded"))["gated"]
            .as_bool()
    };
    assert_eq!(gated("meta-llama/Llama-3.1-8B-Instruct"), Some(true));
    assert_eq!(gated("mistralai/Mistral-7B-Instruct-v0.3"), Some(true));
    assert_eq!(gated("Qwen/Qwen2.5-0.5B-Instruct"), Some(false));
    assert_eq!(gated("BAAI/bge-m3"), Some(false));

    // Platform admins mark models gated when adding or editing them.
    let (s, model) = app
        .post(
            "/models",
            Some(&admin),
            json!({ "hf_id": "meta-llama/Llama-3.2-1B-Instruct", "display_name": "Llama 3.2 1B", "required_vram_gb": 4,
                    "context_length": 8192, "recommended_data_volume_gb": 20, "gated": true }),
        )
        .await;
    assert_eq!(
        (s.as_u16(), model["gated"].as_bool()),
        (201, Some(true)),
        "{model}"
    );
    let model_id = model["id"].as_str().unwrap().to_owned();
    for flag in [false, true] {
        let (s, edited) = app
            .patch(
                &format!("/models/{model_id}"),
                Some(&admin),
                json!({ "gated": flag }),
            )
            .await;
        assert_eq!((s.as_u16(), edited["gated"].as_bool()), (200, Some(flag)));
    }

    let a = app.org("a").await;
    app.activate_mock(&a, &model_id).await;
    let deploy = json!({ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g",
                         "model_id": "meta-llama/Llama-3.2-1B-Instruct" });
    let before = stored_and_sent(&app).await;
    let (s, refused) = app
        .post("/deployments", Some(&a.admin.token), deploy.clone())
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&refused)),
        (409, "HUGGINGFACE_TOKEN_REQUIRED"),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("meta-llama/Llama-3.2-1B-Instruct")
            && message.contains("Hugging Face token"),
        "{message}"
    );
    // Refused before anything: no instance, no command stored or sent.
    assert_eq!(stored_and_sent(&app).await, before);

    let (s, _) = call(
        &app,
        Method::PUT,
        &a.owner.token,
        Some(json!({ "token": "hf_GatedDeploymentToken0123456789abcd" })),
    )
    .await;
    assert_eq!(s, 200);
    let (s, instance) = app.post("/deployments", Some(&a.admin.token), deploy).await;
    assert_eq!(s, 202, "{instance}");
    assert_eq!(instance["model_id"], "meta-llama/Llama-3.2-1B-Instruct");
    app.stop().await;
}

#[tokio::test]
async fn rotating_the_key_version_re_encrypts_the_tokens() {
    let app = app_on_key_1().await;
    let mut orgs = Vec::new();
    for label in ["r1", "r2"] {
        let org = app.org(label).await;
        let token = format!("hf_Rotate{label}0123456789abcdefghijklm");
        let (s, _) = call(
            &app,
            Method::PUT,
            &org.owner.token,
            Some(json!({ "token": token })),
        )
        .await;
        assert_eq!(s, 200);
        orgs.push((org.id, token));
    }
    // A new process with key 2 (and key 1 as the previous one) rewrites them.
    let rotated = rotated_to_key_2(
        &app,
        "SELECT key_version, ciphertext FROM huggingface_tokens ORDER BY organization_id",
        2,
    )
    .await;
    let (only_2, only_1) = single_keys();
    for (org, token) in &orgs {
        let loaded = inventiv_store::huggingface::load(&app.state.db, &only_2, *org)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.expose_secret(), token);
        assert!(
            inventiv_store::huggingface::load(&app.state.db, &only_1, *org)
                .await
                .is_err()
        );
    }
    rotated.stop().await;
    app.stop().await;
}
