//! Provider credentials per organization: stored encrypted and never
//! returned, verified against a fake Scaleway with each organization's own
//! token, refused for deletion while instances use them, and re-encrypted
//! with the new key when the key version rotates.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::support::rotation::{app_on_key_1, rotated_to_key_2, single_keys};
use crate::support::{error_code, TestApp};
use inventiv_testkit::fake_scaleway::FakeScaleway;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

const PATH: &str = "/organizations/current/providers/scaleway/credentials";

struct Creds {
    access_key: String,
    secret_key: String,
    project_id: Uuid,
}

impl Creds {
    fn new(access_key: &str) -> Creds {
        Creds {
            access_key: access_key.to_owned(),
            secret_key: Uuid::new_v4().to_string(),
            project_id: Uuid::new_v4(),
        }
    }

    fn body(&self) -> Value {
        json!({
            "access_key": self.access_key, "secret_key": self.secret_key, "project_id": self.project_id,
            "organization_id": Uuid::new_v4(), "default_zone": "fr-par-2",
        })
    }
}

async fn put(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    let (s, _, b) = app.call(Method::PUT, PATH, Some(token), Some(body)).await;
    (s.as_u16(), b)
}

async fn fake() -> FakeScaleway {
    FakeScaleway::start(IpAddr::V4(Ipv4Addr::new(127, 0, 140, 1)), Duration::ZERO).await
}

#[tokio::test]
async fn credentials_are_set_masked_verified_with_the_orgs_token_and_deleted() {
    let fake = fake().await;
    let app = TestApp::spawn_with(&[("INVENTIV_SCALEWAY_API_URL", &fake.url)]).await;
    let mut a = app.org("a").await;
    let b = app.org("b").await;
    let (ca, cb) = (
        Creds::new("SCWAAAAAAAAAAAAAAAA1"),
        Creds::new("SCWBBBBBBBBBBBBBBBB2"),
    );
    fake.accept(&ca.secret_key, &ca.project_id.to_string());

    // Bad input is refused and stores nothing.
    let mut bad_access = ca.body();
    bad_access["access_key"] = json!("AKIA-not-scaleway");
    let mut bad_secret = ca.body();
    bad_secret["secret_key"] = json!("hunter2");
    let mut bad_zone = ca.body();
    bad_zone["default_zone"] = json!("mock-zone-1");
    for (body, code) in [
        (bad_access, "VALIDATION_ERROR"),
        (bad_secret, "VALIDATION_ERROR"),
        (bad_zone, "UNKNOWN_ZONE"),
    ] {
        let (s, answer) = put(&app, &a.owner.token, &body).await;
        assert_eq!((s, error_code(&answer)), (400, code), "{body}");
    }
    let (s, answer) = app
        .put(
            "/organizations/current/providers/mock/credentials",
            Some(&a.owner.token),
            ca.body().clone(),
        )
        .await;
    assert_eq!(s, 404, "{answer}");
    let (_, status) = app.get(PATH, Some(&a.owner.token)).await;
    assert_eq!(status["configured"], false);

    // Set: the answer and later reads never carry the secret.
    let (s, status) = put(&app, &a.admin.token, &ca.body()).await;
    assert_eq!(s, 200, "{status}");
    assert_eq!(status["configured"], true);
    assert_eq!(
        status["hint"].as_str().unwrap(),
        format!(
            "SCWAAAA… (project {})",
            &ca.project_id.simple().to_string()[..8]
        )
    );
    let (s, _) = put(&app, &b.owner.token, &cb.body()).await;
    assert_eq!(s, 200);
    let (_, read) = app.get(PATH, Some(&a.owner.token)).await;
    for text in [status.to_string(), read.to_string()] {
        assert!(
            !text.contains(&ca.secret_key) && !text.contains(&ca.access_key),
            "{text}"
        );
    }

    // Verify: A's credentials are accepted with A's token; B's are rejected
    // by the fake (it does not know B's key) and the failure is recorded.
    let (s, verified) = app
        .post(&format!("{PATH}/verify"), Some(&a.owner.token), json!({}))
        .await;
    assert_eq!(s, 200, "{verified}");
    assert_eq!(verified["last_verification"]["ok"], true, "{verified}");
    let (_, rejected) = app
        .post(&format!("{PATH}/verify"), Some(&b.owner.token), json!({}))
        .await;
    assert_eq!(rejected["last_verification"]["ok"], false, "{rejected}");
    assert!(rejected["last_verification"]["message"]
        .as_str()
        .unwrap()
        .starts_with("PROVIDER_CREDENTIALS_REJECTED"));
    let tokens: Vec<Option<String>> = fake.calls().into_iter().map(|c| c.token).collect();
    assert_eq!(
        tokens,
        vec![Some(ca.secret_key.clone()), Some(cb.secret_key.clone())]
    );

    // Stored encrypted: neither key is anywhere in the row.
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT row_to_json(c)::text FROM provider_credentials c")
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for secret in [
            &ca.secret_key,
            &cb.secret_key,
            &ca.access_key,
            &cb.access_key,
        ] {
            assert!(!row.contains(secret.as_str()), "{row}");
        }
    }

    // A live instance keeps them; once it is terminated they can go.
    app.add_instance(&mut a).await;
    sqlx::query("UPDATE instances SET provider = 'scaleway', zone = 'fr-par-2', instance_type = 'L4-1-24G' WHERE id = $1")
        .bind(a.instance_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (s, _, answer) = app
        .call(Method::DELETE, PATH, Some(&a.owner.token), None)
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&answer)),
        (409, "CREDENTIALS_IN_USE")
    );
    sqlx::query("UPDATE instances SET status = 'terminated' WHERE id = $1")
        .bind(a.instance_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (s, _, _) = app
        .call(Method::DELETE, PATH, Some(&a.owner.token), None)
        .await;
    assert_eq!(s, 204);
    let (_, gone) = app.get(PATH, Some(&a.owner.token)).await;
    assert_eq!(gone["configured"], false);
    let (_, kept) = app.get(PATH, Some(&b.owner.token)).await;
    assert_eq!(kept["configured"], true, "B's credentials are untouched");
    let (s, _, answer) = app
        .call(
            Method::POST,
            &format!("{PATH}/verify"),
            Some(&a.owner.token),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&answer)),
        (409, "PROVIDER_NOT_CONFIGURED")
    );
}

#[tokio::test]
async fn rotating_the_key_version_re_encrypts_every_row() {
    let app = app_on_key_1().await;
    let mut orgs = Vec::new();
    for label in ["r1", "r2", "r3"] {
        let org = app.org(label).await;
        let creds = Creds::new("SCWROTATEROTATE12345");
        let (s, _) = put(&app, &org.owner.token, &creds.body()).await;
        assert_eq!(s, 200);
        orgs.push((org.id, creds.secret_key));
    }
    // A new process with key 2 (and key 1 as the previous one) rewrites them all.
    let rotated = rotated_to_key_2(
        &app,
        "SELECT key_version, ciphertext FROM provider_credentials ORDER BY organization_id",
        3,
    )
    .await;
    // Key 2 alone now opens every row; key 1 alone opens none.
    let (only_2, only_1) = single_keys();
    for (org, secret) in &orgs {
        let creds = inventiv_store::credentials::load(&app.state.db, &only_2, *org, "scaleway")
            .await
            .unwrap()
            .unwrap();
        assert!(creds.document.expose_secret().contains(secret.as_str()));
        assert!(
            inventiv_store::credentials::load(&app.state.db, &only_1, *org, "scaleway")
                .await
                .is_err()
        );
    }
    rotated.stop().await;
    app.stop().await;
}
