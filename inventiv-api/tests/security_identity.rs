//! Attacks on identity, sessions, members' keys and the operators'
//! surfaces (issue "Hardening"), each written as the attack: it failed on
//! the code before the fix.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::TestApp;

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
    let (status, _, _) = app
        .call(
            Method::PUT,
            "/organizations/current",
            Some(&token),
            Some(&json!({ "organization_id": org.id })),
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
