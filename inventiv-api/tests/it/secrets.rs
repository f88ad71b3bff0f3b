//! No secret in clear, anywhere we keep things: a whole run's database
//! (every column of every table) and its logs at debug level are searched
//! for every password, access token, refresh token, reset and invitation
//! token, provider credential and Hugging Face token the run used.

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::smtp::app_with_sink;
use crate::support::TestApp;
use reqwest::Method;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn dump_database(app: &TestApp) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    let mut dump = String::new();
    for table in tables {
        // Names come from the catalog; bytea columns appear hex-encoded.
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                .fetch_all(&app.state.db)
                .await
                .unwrap();
        dump.push_str(&rows.join("\n"));
    }
    dump
}

// The test binary is one process for every test, so the capture cannot be
// the global subscriber: it is this test's thread's default, and the
// current-thread runtime polls every task of its app (handlers, background
// jobs) on that thread. What runs elsewhere (password hashing on the
// blocking pool, the usage journal's writer thread) logs no request data.
#[tokio::test(flavor = "current_thread")]
async fn database_and_logs_hold_no_secret_in_clear() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _capture = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let (app, sink) = app_with_sink(&[("INVENTIV_OPEN_SIGNUP", "true")]).await;
    let mut secrets: Vec<String> = vec![support::ADMIN_PASSWORD.to_owned()];

    // Sign-up, login (right and wrong), refresh, an organization, an invitation
    // accepted by a newcomer, a password change and a reset.
    let signup_password = "Sign-Up-Secret-Passw0rd";
    let (_, signed) = app.post("/auth/register", None, json!({ "email": "owner@example.com", "display_name": "Owner", "password": signup_password })).await;
    secrets.extend([
        signup_password.to_owned(),
        signed["access_token"].as_str().unwrap().to_owned(),
        signed["refresh_token"].as_str().unwrap().to_owned(),
    ]);
    let wrong = "Wrong-Guess-Passw0rd";
    app.post(
        "/auth/login",
        None,
        json!({ "email": "owner@example.com", "password": wrong }),
    )
    .await;
    secrets.push(wrong.to_owned());
    let login = app.login_full("owner@example.com", signup_password).await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (_, renewed) = app
        .post(
            "/auth/refresh",
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    secrets.extend([
        token.clone(),
        login["refresh_token"].as_str().unwrap().to_owned(),
        renewed["refresh_token"].as_str().unwrap().to_owned(),
    ]);

    let (_, org) = app
        .post(
            "/organizations",
            Some(&token),
            json!({ "name": "Secretive" }),
        )
        .await;
    let (_, switched) = app
        .put(
            "/organizations/current",
            Some(&token),
            json!({ "organization_id": org["id"] }),
        )
        .await;
    let token = switched["access_token"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    let (_, key) = app
        .post("/api-keys", Some(&token), json!({ "name": "secret key" }))
        .await;
    secrets.push(key["key"].as_str().expect("api key shown once").to_owned());
    let (scw_access, scw_secret) = (
        "SCWSECRETACCESS12345",
        "5f0c9a0e-8b1d-4c2e-9f3a-7d6e5c4b3a21",
    );
    let (_, _, set) = app
        .call(
            Method::PUT,
            "/organizations/current/providers/scaleway/credentials",
            Some(&token),
            Some(&json!({ "access_key": scw_access, "secret_key": scw_secret, "project_id": "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
                          "organization_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "default_zone": "fr-par-2" })),
        )
        .await;
    assert_eq!(set["configured"], true, "{set}");
    secrets.extend([scw_access.to_owned(), scw_secret.to_owned()]);
    let hf_token = "hf_SecretHuggingFaceToken0123456789ab";
    let (status, set) = app
        .put(
            "/organizations/current/huggingface-token",
            Some(&token),
            json!({ "token": hf_token }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &set["configured"]),
        (200, &json!(true)),
        "{set}"
    );
    secrets.push(hf_token.to_owned());
    app.post(
        "/organizations/current/invitations",
        Some(&token),
        json!({ "email": "newbie@example.com", "role": "user" }),
    )
    .await;
    let link = sink
        .wait_for("newbie@example.com", "/invitations/")
        .await
        .link_containing("/invitations/")
        .unwrap();
    let invitation_token = link.rsplit('/').next().unwrap().to_owned();
    let newbie_password = "Newbie-Secret-Passw0rd";
    let (_, accepted) = app
        .post(
            &format!("/organizations/invitations/{invitation_token}/accept"),
            None,
            json!({ "display_name": "Newbie", "password": newbie_password }),
        )
        .await;
    secrets.extend([
        invitation_token,
        newbie_password.to_owned(),
        accepted["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    ]);

    let changed = "Changed-Secret-Passw0rd";
    app.call(
        Method::PUT,
        "/auth/me/password",
        Some(&token),
        Some(&json!({ "current_password": signup_password, "new_password": changed })),
    )
    .await;
    secrets.push(changed.to_owned());
    app.post(
        "/auth/password-reset/request",
        None,
        json!({ "email": "newbie@example.com" }),
    )
    .await;
    let link = sink
        .wait_for("newbie@example.com", "reset-password")
        .await
        .link_containing("reset-password")
        .unwrap();
    let reset_token = link.split("token=").nth(1).unwrap().to_owned();
    let reset_password = "Reset-Secret-Passw0rd";
    let (status, _) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": reset_token, "new_password": reset_password }),
        )
        .await;
    assert_eq!(status, 204);
    secrets.extend([reset_token, reset_password.to_owned()]);

    let dump = dump_database(&app).await;
    assert!(
        dump.contains("owner@example.com") && dump.contains("$argon2id$"),
        "the dump covers users"
    );
    let db = app.state.db.clone();
    app.stop().await;
    drop(db);
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("login"), "logs were captured");
    for secret in &secrets {
        assert!(
            !dump.contains(secret.as_str()),
            "the database holds a secret in clear: {}…",
            &secret[..6]
        );
        if let Some(i) = logs.find(secret.as_str()) {
            panic!(
                "the logs hold a secret in clear: {}",
                &logs[i.saturating_sub(300)..i + 20]
            );
        }
    }
}
