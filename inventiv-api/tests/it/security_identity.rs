//! Attacks on identity, sessions, members' keys and the operators'
//! surfaces (issue "Hardening"), each written as the attack: it failed on
//! the code before the fix.

use crate::support;

use crate::support::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// An owner read a member's session id in the audit log (`auth.login`) and,
/// with the public development JWT secret, forged the member's session. No
/// audit entry may carry a session id.
#[tokio::test]
async fn no_audit_entry_carries_a_session_id() {
    let app = TestApp::spawn().await;
    let org = app.org("audit").await;
    // A real login through the API, a password change, an organization
    // switch and a logout: everything that touches sessions.
    let login = app
        .login_full(&org.user.email, support::fixture::PASSWORD)
        .await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app
        .put(
            "/organizations/current",
            Some(&token),
            json!({ "organization_id": org.id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app
        .call(
            Method::PUT,
            "/auth/me/password",
            Some(&token),
            Some(&json!({
                "current_password": support::fixture::PASSWORD,
                "new_password": "another-long-password"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.post("/auth/logout", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let sessions: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM user_sessions")
        .fetch_all(&app.state.db)
        .await
        .unwrap();
    assert!(sessions.len() >= 2);
    let entries: Vec<(String, String, String)> =
        sqlx::query_as("SELECT action, target_id, details::text FROM audit_logs ORDER BY id")
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert!(entries.iter().any(|(a, _, _)| a == "auth.login"));
    for (action, target, details) in &entries {
        for sid in &sessions {
            let sid = sid.to_string();
            assert!(
                !target.contains(&sid) && !details.contains(&sid),
                "audit entry {action} carries session id {sid}"
            );
        }
    }
}

/// POSTs `body` to `path` as if from `ip` (the test app trusts 127.0.0.1 as
/// a proxy, so `X-Forwarded-For` names the client).
async fn post_from(
    app: &TestApp,
    ip: &str,
    path: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let res = app
        .http
        .post(app.url(path))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Unauthenticated clients made the API hash a password for made-up
/// invitation and reset tokens, on the two permits logins share: logins
/// slowed 7x. A made-up token must cost no hash.
#[tokio::test]
async fn a_made_up_token_costs_no_password_hash() {
    let app = TestApp::spawn().await;
    let before = app.state.hasher.work_done();
    let (bogus, _) = inventiv_api::auth::tokens::generate();
    let (status, body) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": bogus, "new_password": "a-long-new-password" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(support::error_code(&body), "INVALID_TOKEN");
    let (status, _) = app
        .post(
            &format!("/organizations/invitations/{bogus}/accept"),
            None,
            json!({ "display_name": "Mallory", "password": "a-long-new-password" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.state.hasher.work_done(),
        before,
        "a made-up token made the API hash a password"
    );
}

/// The same routes are throttled per client address.
#[tokio::test]
async fn password_token_routes_are_throttled_per_address() {
    let app = TestApp::spawn_with(&[("INVENTIV_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let (bogus, _) = inventiv_api::auth::tokens::generate();
    let attempt = json!({ "token": bogus, "new_password": "a-long-new-password" });
    let mut limited = None;
    for n in 0..40 {
        let (status, body) = post_from(
            &app,
            "203.0.113.5",
            "/auth/password-reset/reset",
            attempt.clone(),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(support::error_code(&body), "RATE_LIMITED");
            limited = Some(n);
            break;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    assert!(
        limited.is_some(),
        "40 attempts from one address, none throttled"
    );
    let accept = format!("/organizations/invitations/{bogus}/accept");
    let (status, _) = post_from(&app, "203.0.113.5", &accept, json!({})).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the budget is shared"
    );
    // Another address is not affected.
    let (status, _) = post_from(&app, "198.51.100.5", "/auth/password-reset/reset", attempt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A reset left the other reset links of the account alive: whoever got an
/// older mail could take the account back.
#[tokio::test]
async fn a_reset_kills_every_other_reset_link() {
    let app = TestApp::spawn().await;
    let org = app.org("reset").await;
    let mut links = Vec::new();
    for _ in 0..2 {
        let (token, hash) = inventiv_api::auth::tokens::generate();
        sqlx::query(
            "INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at)
             VALUES ($1, $2, $3, now() + interval '1 hour')",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(org.user.user_id)
        .bind(hash)
        .execute(&app.state.db)
        .await
        .unwrap();
        links.push(token);
    }
    let (status, _) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": links[0], "new_password": "the-owners-new-password" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .post(
            "/auth/password-reset/reset",
            None,
            json!({ "token": links[1], "new_password": "the-attackers-password" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.login(&org.user.email, "the-owners-new-password").await;
}

/// Five wrong passwords from anywhere locked the account for everyone,
/// its owner included. Failures from one address only slow that address; a
/// distributed guess slows only addresses the account never used.
#[tokio::test]
async fn wrong_passwords_do_not_lock_the_owner_out() {
    let app = TestApp::spawn_with(&[("INVENTIV_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let org = app.org("lockout").await;
    let victim = org.user.email.as_str();
    let login = |ip: String, password: &'static str| {
        let body = json!({ "email": victim, "password": password });
        let app = &app;
        async move { post_from(app, &ip, "/auth/login", body).await }
    };
    // The owner logs in from home once: a known address.
    let (status, _) = login("198.51.100.7".into(), support::fixture::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // An attacker guesses from one address until it is throttled.
    let mut throttled = false;
    for _ in 0..10 {
        let (status, _) = login("203.0.113.9".into(), "wrong-guess-123").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(throttled, "the guessing address was never throttled");
    // The owner, even from a new address, still gets in.
    let (status, body) = login("198.51.100.8".into(), support::fixture::PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "owner locked out: {body}");
    // A distributed guess (one try per address) ...
    for n in 0..30 {
        let (status, _) = login(format!("192.0.2.{n}"), "wrong-guess-456").await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
    }
    // ... makes new addresses wait, even with the right password ...
    let (status, _) = login("192.0.2.200".into(), support::fixture::PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ... but not the addresses the owner used.
    let (status, _) = login("198.51.100.7".into(), support::fixture::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

/// A member with the `user` role lifted the rate limits, model list and
/// expiry an owner had set on the user's own key, and kept spending.
/// Loosening now returns the key to "awaiting economic approval";
/// tightening stays free.
#[tokio::test]
async fn a_user_cannot_lift_the_limits_an_owner_set_on_their_key() {
    let app = TestApp::spawn().await;
    let org = app.org("keys").await;
    let path = format!("/api-keys/{}", org.api_key_id);
    let patch = |token: String, body: serde_json::Value| {
        let app = &app;
        let path = path.clone();
        async move {
            let (status, _, body) = app
                .call(Method::PATCH, &path, Some(&token), Some(&body))
                .await;
            (status, body)
        }
    };
    let expiry = chrono::Utc::now() + chrono::Duration::days(1);
    let (status, key) = patch(
        org.owner.token.clone(),
        json!({ "rpm_limit": 10, "tpm_limit": 1000, "models": ["org/small"], "expires_at": expiry }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    assert_eq!(key["status"], "active");
    // Tightening by the key's own user: still active.
    let (status, key) = patch(org.spare.token.clone(), json!({ "rpm_limit": 5 })).await;
    assert_eq!(status, StatusCode::OK, "{key}");
    assert_eq!(key["status"], "active");
    // Each way of loosening sends the key back for approval.
    for loosen in [
        json!({ "rpm_limit": null }),
        json!({ "tpm_limit": 100000 }),
        json!({ "models": ["org/small", "org/huge"] }),
        json!({ "expires_at": expiry + chrono::Duration::days(365) }),
    ] {
        let (status, key) = patch(org.spare.token.clone(), loosen.clone()).await;
        assert_eq!(status, StatusCode::OK, "{loosen}: {key}");
        assert_eq!(key["status"], "inactive", "{loosen} kept the key active");
        assert_eq!(key["activation"]["economic"], false, "{key}");
        let (status, key) = patch(org.manager.token.clone(), json!({ "economic": true })).await;
        assert_eq!(status, StatusCode::OK, "a manager approves: {key}");
        assert_eq!(key["status"], "active");
    }
    // The proxy's key cache dropped the key when it changed, so the state
    // seen by /v1 is the database's.
    let economic: bool = sqlx::query_scalar("SELECT economic_active FROM api_keys WHERE id = $1")
        .bind(org.api_key_id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert!(economic);
}

/// A manager (who approves spending) could not approve other members' keys:
/// they were invisible to them. A manager now sees every key and switches
/// its economic activation, but changes nothing else on others' keys.
#[tokio::test]
async fn a_manager_approves_other_members_keys() {
    let app = TestApp::spawn().await;
    let org = app.org("approve").await;
    let (status, created) = app
        .post(
            "/api-keys",
            Some(&org.user.token),
            json!({ "name": "mine" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["api_key"]["status"], "inactive");
    let id = created["api_key"]["id"].as_str().unwrap().to_owned();
    let (status, list) = app.get("/api-keys", Some(&org.manager.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["id"] == id.as_str()));
    let path = format!("/api-keys/{id}");
    let (status, key) = app
        .patch(&path, Some(&org.manager.token), json!({ "economic": true }))
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    assert_eq!(key["activation"]["economic"], true);
    let (status, body) = app
        .patch(
            &path,
            Some(&org.manager.token),
            json!({ "rpm_limit": null, "name": "taken over" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Another user of the organization still does not see it.
    let (status, _) = app
        .patch(&path, Some(&org.spare.token), json!({ "economic": true }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Activates the mock catalog for `org` and returns a deployment body.
async fn mock_deployable(app: &TestApp, org: &support::fixture::Org) -> serde_json::Value {
    app.activate_mock(org, support::matrix::SMALL_MODEL).await;
    json!({ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g",
            "model_id": support::matrix::SMALL_MODEL })
}

/// Any owner could start unlimited root processes on the control-plane host
/// through the mock provider, in production too. It is off in production.
#[tokio::test]
async fn the_mock_provider_is_refused_in_production() {
    let app = TestApp::spawn_with(&[("INVENTIV_ENV", "production")]).await;
    let org = app.org("prod").await;
    let deploy = mock_deployable(&app, &org).await;
    let (status, body) = app
        .post("/deployments", Some(&org.owner.token), deploy)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(support::error_code(&body), "MOCK_PROVIDER_DISABLED");
    let instances: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(instances, 0);
}

/// There was no deployment quota. Organizations get the platform default,
/// platform admins set their own, and a deployment beyond it is refused with
/// QUOTA_EXCEEDED.
#[tokio::test]
async fn deployments_beyond_the_quota_are_refused() {
    let app = TestApp::spawn_with(&[("INVENTIV_DEFAULT_MAX_INSTANCES", "2")]).await;
    let org = app.org("quota").await;
    let deploy = mock_deployable(&app, &org).await;
    for _ in 0..2 {
        let (status, body) = app
            .post("/deployments", Some(&org.owner.token), deploy.clone())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = app
        .post("/deployments", Some(&org.owner.token), deploy.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(support::error_code(&body), "QUOTA_EXCEEDED");
    // The organization's owner cannot raise it; a platform admin can.
    let path = format!("/admin/organizations/{}/quotas", org.id);
    let raise = json!({ "max_instances": 3, "max_gpus": null });
    let (status, _, _) = app
        .call(Method::PUT, &path, Some(&org.owner.token), Some(&raise))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let (status, _, quotas) = app
        .call(Method::PUT, &path, Some(&admin), Some(&raise))
        .await;
    assert_eq!(status, StatusCode::OK, "{quotas}");
    assert_eq!(
        (
            quotas["effective_max_instances"].as_i64(),
            quotas["instances_used"].as_i64()
        ),
        (Some(3), Some(2))
    );
    let (status, body) = app
        .post("/deployments", Some(&org.owner.token), deploy.clone())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // A GPU quota counts the GPUs of the instance types (one each here).
    let (status, _) = app
        .put(
            &path,
            Some(&admin),
            json!({ "max_instances": 10, "max_gpus": 3 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post("/deployments", Some(&org.owner.token), deploy)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(support::error_code(&body), "QUOTA_EXCEEDED");
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/admin/organizations/{}/quotas", uuid::Uuid::new_v4()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Invitations (each sends a mail) and object creation had no rate limit:
/// one member could mail-bomb or fill the database.
#[tokio::test]
async fn invitations_and_creations_are_rate_limited_per_user() {
    let app = TestApp::spawn().await;
    let org = app.org("flood").await;
    let mut limited = false;
    for n in 0..60 {
        let (status, body) = app
            .post(
                "/organizations/current/invitations",
                Some(&org.owner.token),
                json!({ "email": format!("flood-{n}@example.com"), "role": "user" }),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(support::error_code(&body), "RATE_LIMITED");
            limited = true;
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert!(limited, "60 invitations in a row, none limited");
    let mut limited = false;
    for _ in 0..130 {
        let (status, body) = app
            .post("/api-keys", Some(&org.user.token), json!({ "name": "k" }))
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert!(limited, "130 keys in a row, none limited");
    // Another member is not affected.
    let (status, _) = app
        .post("/api-keys", Some(&org.spare.token), json!({ "name": "k" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// CSRF was defended by SameSite alone and no security header was sent: a
/// cookie-authenticated write from another origin is refused, and every
/// answer carries nosniff, a CSP forbidding framing, and a referrer policy.
#[tokio::test]
async fn cross_origin_cookie_writes_are_refused_and_headers_are_set() {
    let app = TestApp::spawn().await;
    let org = app.org("csrf").await;
    let cookie = format!("inventiv_access={}", org.owner.token);
    let write = |origin: String| {
        app.http
            .patch(app.url("/organizations/current"))
            .header("cookie", cookie.clone())
            .header("origin", origin)
            .json(&json!({ "name": "Renamed by someone" }))
            .send()
    };
    let res = write("https://evil.example".into()).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(support::error_code(&body), "CROSS_ORIGIN_REQUEST");
    let own = format!("http://{}", app.addr);
    assert_eq!(write(own).await.unwrap().status(), StatusCode::OK);
    // A bearer token is not sent by browsers on their own: no check.
    let res = app
        .http
        .patch(app.url("/organizations/current"))
        .bearer_auth(&org.owner.token)
        .header("origin", "https://evil.example")
        .json(&json!({ "name": "Renamed by a script" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(
        headers.get("strict-transport-security").is_none(),
        "no HSTS over http"
    );
}

/// A member's display name went verbatim into invitation mails sent in the
/// platform's name: "Alice. Your account is suspended, verify at
/// https://evil.example". Names are quoted and cannot carry a link.
#[tokio::test]
async fn display_names_cannot_put_links_in_mails() {
    let app = TestApp::spawn().await;
    let org = app.org("mail").await;
    let (status, _) = app
        .put(
            "/auth/me",
            Some(&org.owner.token),
            json!({ "display_name": "Alice. Verify your account at https://evil.example/login" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            "/organizations/current/invitations",
            Some(&org.owner.token),
            json!({ "email": "victim@example.com", "role": "user" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let outbox = app.state_dir.join("outbox");
    let mail = support::eventually(
        "the invitation mail",
        std::time::Duration::from_secs(5),
        || {
            let outbox = outbox.clone();
            async move {
                let entry = std::fs::read_dir(&outbox).ok()?.flatten().next()?;
                std::fs::read_to_string(entry.path()).ok()
            }
        },
    )
    .await;
    assert!(mail.contains("invited you to join"), "{mail}");
    assert!(!mail.contains("evil.example"), "{mail}");
    assert!(!mail.contains("https://evil"), "{mail}");
}

/// A member with the `user` role sent an empty activation change: it passed
/// every role check and wrote an activation row and an audit entry meant
/// for admins and managers.
#[tokio::test]
async fn a_user_writes_no_activation_or_audit_row() {
    let app = TestApp::spawn().await;
    let org = app.org("act").await;
    let (status, _, body) = app
        .call(
            Method::PUT,
            &format!(
                "/organizations/current/activations/model/{}",
                support::matrix::SMALL_MODEL
            ),
            Some(&org.user.token),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (activations, audits): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM organization_activations WHERE organization_id = $1),
                (SELECT count(*) FROM audit_logs WHERE organization_id = $1 AND action = 'catalog.activation_changed')",
    )
    .bind(org.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((activations, audits), (0, 0));
}

/// `/metrics` (the platform's instance counts, load) was served on the
/// public API port. It has its own listener now.
#[tokio::test]
async fn metrics_are_not_on_the_public_port() {
    let app = TestApp::spawn().await;
    let (status, _) = app.get("/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_ne!(app.metrics_addr.port(), app.addr.port());
    let res = app
        .http
        .get(format!("http://{}/metrics", app.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("inventiv_instances"));
}

/// List routes answered every row at once. They page now, with a default
/// and a maximum size; a bad page is a 400, never a 500.
#[tokio::test]
async fn lists_are_paged_with_a_maximum() {
    let app = TestApp::spawn().await;
    let org = app.org("pages").await;
    let admin = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let (status, all) = app.get("/users", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let total = all.as_array().unwrap().len();
    assert!(total >= 6, "{all}");
    let (_, first) = app.get("/users?limit=2", Some(&admin)).await;
    let (_, second) = app.get("/users?limit=2&offset=2", Some(&admin)).await;
    assert_eq!(first.as_array().unwrap().len(), 2);
    assert_eq!(second.as_array().unwrap().len(), 2);
    assert_ne!(first[0]["id"], second[0]["id"]);
    let (status, members) = app
        .get(
            "/organizations/current/members?limit=3",
            Some(&org.owner.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members.as_array().unwrap().len(), 3);
    for bad in [
        "/users?limit=99999999",
        "/users?offset=-1",
        "/users?limit=x",
    ] {
        let (status, body) = app.get(bad, Some(&admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // A limit above the maximum is capped, not refused.
    let (status, _) = app
        .get("/api-keys?limit=5000", Some(&org.owner.token))
        .await;
    assert_eq!(status, StatusCode::OK);
}
