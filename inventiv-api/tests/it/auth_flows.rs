//! Sessions, tokens, password reset and login throttling, end to end.

use crate::support::fixture::PASSWORD;
use crate::support::smtp::app_with_sink;
use crate::support::{error_code, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn password_reset_through_smtp_kills_every_session() {
    let (app, sink) = app_with_sink(&[]).await;
    let (user, _, email) = app.person("reset").await;
    let laptop = app.login(&email, PASSWORD).await;
    let phone = app.login(&email, PASSWORD).await;

    // Same answer for an unknown address, and no mail.
    let (status, known) = app
        .post(
            "/auth/password-reset/request",
            None,
            json!({ "email": email }),
        )
        .await;
    let (status2, unknown) = app
        .post(
            "/auth/password-reset/request",
            None,
            json!({ "email": "nobody@example.com" }),
        )
        .await;
    assert_eq!(
        (status, status2),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(known, unknown);

    let mail = sink.wait_for(&email, "/reset-password?token=").await;
    let link = mail.link_containing("/reset-password?token=").unwrap();
    assert!(
        link.starts_with("http://dashboard.test/reset-password?token="),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap().to_owned();
    assert!(sink
        .messages()
        .iter()
        .all(|m| !m.to.contains(&"nobody@example.com".to_owned())));

    let (status, body) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": token, "new_password": "short" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": token, "new_password": "a-brand-new-password" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for old in [&laptop, &phone] {
        assert_eq!(
            app.get("/auth/me", Some(old)).await.0,
            StatusCode::UNAUTHORIZED,
            "old sessions die"
        );
    }
    let (status, body) = app
        .post(
            "/auth/login",
            None,
            json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (401, "INVALID_CREDENTIALS")
    );
    app.login(&email, "a-brand-new-password").await;
    let (status, body) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": token, "new_password": "yet-another-password" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (400, "INVALID_TOKEN"),
        "single use"
    );

    // An expired token fails too.
    sqlx::query("DELETE FROM password_reset_tokens")
        .execute(&app.state.db)
        .await
        .unwrap();
    let (token2, hash) = inventiv_api::auth::tokens::generate();
    sqlx::query("INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, now() - interval '1 second')")
        .bind(uuid::Uuid::new_v4())
        .bind(user.0)
        .bind(hash)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, _) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": token2, "new_password": "yet-another-password" }),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn revoked_session_and_logout_stop_working_at_once() {
    let app = TestApp::spawn().await;
    let (_, _, email) = app.person("sessions").await;
    let first = app.login_full(&email, PASSWORD).await;
    let second = app.login(&email, PASSWORD).await;
    let first_token = first["access_token"].as_str().unwrap();
    let first_id = first["session_id"].as_str().unwrap();

    let (status, sessions) = app.get("/auth/sessions", Some(&second)).await;
    assert_eq!(status, 200);
    let list = sessions.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["is_current"] == true).count(), 1);
    assert!(list.iter().all(|s| s["ip"] == "127.0.0.1"));

    let (status, _, _) = app
        .call(
            Method::POST,
            &format!("/auth/sessions/{first_id}/revoke"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // No cache: the very next request is refused.
    let (status, body) = app.get("/auth/me", Some(first_token)).await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (401, "UNAUTHENTICATED")
    );
    let (status, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({ "refresh_token": first["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 401, "a revoked session cannot be refreshed");

    let (status, _, _) = app
        .call(Method::POST, "/auth/logout", Some(&second), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/auth/me", Some(&second)).await.0, 401);
}

#[tokio::test]
async fn refresh_rotates_and_cookies_authenticate_the_dashboard() {
    let app = TestApp::spawn().await;
    let (_, _, email) = app.person("cookies").await;
    let res = app
        .http
        .post(app.url("/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(
        cookies
            .iter()
            .all(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict")),
        "{cookies:?}"
    );
    let tokens: serde_json::Value = res.json().await.unwrap();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("inventiv_access="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("inventiv_refresh="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let res = app
        .http
        .get(app.url("/auth/me"))
        .header("cookie", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the access cookie authenticates");

    // Refresh from the cookie alone (no body), then the old refresh token is spent.
    let res = app
        .http
        .post(app.url("/auth/refresh"))
        .header("cookie", &refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let renewed: serde_json::Value = res.json().await.unwrap();
    assert_ne!(renewed["refresh_token"], tokens["refresh_token"]);
    assert_eq!(renewed["session_id"], tokens["session_id"]);
    let (status, body) = app
        .post(
            "/auth/refresh",
            None,
            json!({ "refresh_token": tokens["refresh_token"] }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (401, "INVALID_REFRESH_TOKEN")
    );
    let (status, _) = app
        .post(
            "/auth/refresh",
            None,
            json!({ "refresh_token": renewed["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 200);

    // A token signed with another secret, or tampered with, is refused.
    let mut forged = renewed["access_token"].as_str().unwrap().to_owned();
    forged.pop();
    assert_eq!(app.get("/auth/me", Some(&forged)).await.0, 401);
}

#[tokio::test]
async fn changing_the_password_revokes_the_other_sessions() {
    let app = TestApp::spawn().await;
    let (_, _, email) = app.person("change").await;
    let here = app.login(&email, PASSWORD).await;
    let elsewhere = app.login(&email, PASSWORD).await;
    let (status, _, body) = app
        .call(Method::PUT, "/auth/me/password", Some(&here), Some(&json!({ "current_password": "wrong-password", "new_password": "new-password-123" })))
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (400, "WRONG_PASSWORD")
    );
    let (status, _) = app
        .put(
            "/auth/me/password",
            Some(&here),
            json!({ "current_password": PASSWORD, "new_password": "new-password-123" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/auth/me", Some(&here)).await.0,
        200,
        "this session lives on"
    );
    assert_eq!(
        app.get("/auth/me", Some(&elsewhere)).await.0,
        401,
        "the others die"
    );
    app.login(&email, "new-password-123").await;
    let (status, me) = app
        .put(
            "/auth/me",
            Some(&here),
            json!({ "display_name": "  Renamed  " }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["display_name"], "Renamed");
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_account() {
    let app = TestApp::spawn_with(&[
        ("INVENTIV_LOGIN_MAX_FAILURES", "3"),
        ("INVENTIV_LOGIN_LOCKOUT_SECS", "120"),
    ])
    .await;
    let (_, _, email) = app.person("throttle").await;
    let (_, _, other) = app.person("bystander").await;
    for _ in 0..3 {
        let (status, _) = app
            .post(
                "/auth/login",
                None,
                json!({ "email": email, "password": "not-the-password" }),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(&json!({ "email": email, "password": PASSWORD })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (429, "RATE_LIMITED"),
        "even the right password waits"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    app.login(&other, PASSWORD).await;

    // Unknown accounts answer exactly like wrong passwords.
    let (s1, b1) = app
        .post(
            "/auth/login",
            None,
            json!({ "email": "ghost@example.com", "password": "whatever-pass" }),
        )
        .await;
    let (s2, b2) = app
        .post(
            "/auth/login",
            None,
            json!({ "email": other, "password": "whatever-pass" }),
        )
        .await;
    assert_eq!((s1, error_code(&b1)), (s2, error_code(&b2)));
    assert_eq!(b1["error"]["message"], b2["error"]["message"]);
}

#[tokio::test]
async fn open_signup_is_off_by_default_and_works_when_enabled() {
    let closed = TestApp::spawn().await;
    let body =
        json!({ "email": "new@example.com", "display_name": "New", "password": "new-password-1" });
    let (status, answer) = closed.post("/auth/register", None, body.clone()).await;
    assert_eq!(
        (status.as_u16(), error_code(&answer)),
        (403, "SIGNUP_DISABLED")
    );
    let open = TestApp::spawn_with(&[("INVENTIV_OPEN_SIGNUP", "true")]).await;
    let (status, tokens) = open.post("/auth/register", None, body.clone()).await;
    assert_eq!(status, 201, "{tokens}");
    let me = open
        .get("/auth/me", tokens["access_token"].as_str())
        .await
        .1;
    assert_eq!(me["current_organization"]["kind"], "personal");
    assert_eq!(me["current_organization"]["role"], "owner");
    assert_eq!(me["user"]["is_platform_admin"], false);
    let (status, answer) = open.post("/auth/register", None, json!({ "email": "NEW@example.com", "display_name": "Dup", "password": "new-password-1" })).await;
    assert_eq!(
        (status.as_u16(), error_code(&answer)),
        (409, "EMAIL_TAKEN"),
        "emails are case-insensitive"
    );
}

#[tokio::test]
async fn switching_organization_reissues_the_token_and_scopes_everything() {
    let app = TestApp::spawn().await;
    let a = app.org("alpha").await;
    let b = app.org("beta").await;
    // The owner of A joins B as a user, then switches.
    sqlx::query("INSERT INTO organization_memberships (organization_id, user_id, role) VALUES ($1, $2, 'user')")
        .bind(b.id)
        .bind(a.owner.user_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, switched) = app
        .put(
            "/organizations/current",
            Some(&a.owner.token),
            json!({ "organization_id": b.id }),
        )
        .await;
    assert_eq!(status, 200, "{switched}");
    assert_eq!(switched["role"], "user");
    let token = switched["access_token"].as_str().unwrap();
    let (status, body) = app
        .get("/organizations/current/audit-logs", Some(token))
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (403, "FORBIDDEN"),
        "a user in B"
    );
    let members = app
        .get("/organizations/current/members", Some(token))
        .await
        .1;
    assert!(members
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user_id"] == b.owner.user_id.to_string()));
    // The session, not the token, holds the organization: the old token follows.
    assert_eq!(
        app.get("/organizations/current", Some(&a.owner.token))
            .await
            .1["organization"]["id"],
        b.id.to_string()
    );
    let orgs = app.get("/organizations", Some(token)).await.1;
    assert_eq!(orgs.as_array().unwrap().len(), 3, "personal, A, B: {orgs}");
    // PATCH with a color, then clearing it.
    let (status, org) = app
        .patch(
            "/organizations/current",
            Some(&a.admin.token),
            json!({ "sidebar_color": "#A1B2C3" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), org["sidebar_color"].as_str()),
        (200, Some("#a1b2c3"))
    );
    let (_, org) = app
        .patch(
            "/organizations/current",
            Some(&a.admin.token),
            json!({ "sidebar_color": null }),
        )
        .await;
    assert!(org["sidebar_color"].is_null());
    assert_eq!(org["name"], "Org alpha");
    // Deleting names the organization: the owner of A may, from B; B's
    // owner may not (404, not a member). A's members' sessions move home.
    let (status, _) = app
        .delete(&format!("/organizations/{}", a.id), Some(&b.owner.token))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .delete(&format!("/organizations/{}", a.id), Some(token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let me = app.get("/auth/me", Some(&a.admin.token)).await.1;
    assert_eq!(me["current_organization"]["kind"], "personal", "{me}");
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1 AND deleted_at IS NULL)",
    )
    .bind(a.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert!(!exists);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE organization_id = $1 AND action = 'organization.deleted'")
        .bind(a.id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audit, 1, "the audit log outlives the organization");
}

#[tokio::test]
async fn an_organization_with_live_instances_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let mut a = app.org("busy").await;
    app.add_instance(&mut a).await;
    let path = format!("/organizations/{}", a.id);
    let (status, _, body) = app
        .call(Method::DELETE, &path, Some(&a.owner.token), None)
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "ORGANIZATION_HAS_INSTANCES")
    );
    sqlx::query("UPDATE instances SET status = 'terminated' WHERE id = $1")
        .bind(a.instance_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&a.owner.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The organization stays as a tombstone for its instances' history, with no members.
    let (deleted, members): (bool, i64) = sqlx::query_as(
        "SELECT deleted_at IS NOT NULL, (SELECT count(*) FROM organization_memberships WHERE organization_id = $1) FROM organizations WHERE id = $1",
    )
    .bind(a.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((deleted, members), (true, 0));
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&a.owner.token), None)
        .await;
    assert_eq!(status, 404, "gone for its former members");
}
