//! Invitations end to end through a real SMTP server: the mail arrives, its
//! link accepts once, expired and revoked tokens fail, a newcomer joins by
//! setting a password, and roles cap what can be invited.

use crate::support;

use crate::support::smtp::app_with_sink;
use crate::support::{error_code, TestApp};
use reqwest::Method;
use serde_json::json;

fn token_of(link: &str) -> String {
    link.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn invitation_by_email_accepted_once_by_a_newcomer_and_by_a_member() {
    let (app, sink) = app_with_sink(&[]).await;
    let owner = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let (status, org) = app
        .post(
            "/organizations",
            Some(&owner),
            json!({ "name": "Acme AI", "slug": "acme-ai" }),
        )
        .await;
    assert_eq!(status, 201, "{org}");
    let org_id = org["id"].as_str().unwrap().to_owned();
    let (_, switched) = app
        .put(
            "/organizations/current",
            Some(&owner),
            json!({ "organization_id": org_id }),
        )
        .await;
    let owner = switched["access_token"].as_str().unwrap().to_owned();
    assert_eq!(switched["role"], "owner");

    // Personal organizations take no invitations.
    let personal = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let me = app.get("/auth/me", Some(&personal)).await.1;
    assert_eq!(
        me["current_organization"]["id"], org_id,
        "login resumes the last organization"
    );

    // A newcomer, invited as manager.
    let (status, invitation) = app
        .post(
            "/organizations/current/invitations",
            Some(&owner),
            json!({ "email": "Dana@Example.com", "role": "manager" }),
        )
        .await;
    assert_eq!(status, 201, "{invitation}");
    assert_eq!(invitation["status"], "pending");
    assert!(
        invitation.get("token").is_none(),
        "the token is only in the mail"
    );
    let mail = sink.wait_for("dana@example.com", "/invitations/").await;
    assert!(
        mail.text().contains("Acme AI") && mail.text().contains("manager"),
        "{}",
        mail.data
    );
    let link = mail.link_containing("/invitations/").unwrap();
    assert!(
        link.starts_with("http://dashboard.test/invitations/"),
        "link uses INVENTIV_PUBLIC_URL: {link}"
    );
    let token = token_of(&link);

    let (status, preview) = app
        .get(&format!("/organizations/invitations/{token}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(preview["organization_name"], "Acme AI");
    assert_eq!(preview["role"], "manager");
    assert_eq!(preview["inviter_name"], "Administrator");
    assert_eq!(preview["account_exists"], false);

    let accept = format!("/organizations/invitations/{token}/accept");
    let (status, body) = app.post(&accept, None, json!({})).await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (400, "VALIDATION_ERROR"),
        "a newcomer must choose a password"
    );
    let (status, body) = app
        .post(
            &accept,
            None,
            json!({ "display_name": "Dana", "password": "short" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, accepted) = app
        .post(
            &accept,
            None,
            json!({ "display_name": "Dana", "password": "dana-password-1" }),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["role"], "manager");
    let dana = accepted["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = app.get("/auth/me", Some(&dana)).await.1;
    assert_eq!(me["current_organization"]["id"], org_id);
    assert_eq!(me["current_organization"]["role"], "manager");
    assert_eq!(
        me["memberships"].as_array().unwrap().len(),
        2,
        "personal + Acme"
    );

    // Single use, even racing.
    let (status, body) = app
        .post(
            &accept,
            None,
            json!({ "display_name": "Eve", "password": "eve-password-12" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "INVITATION_USED")
    );
    assert_eq!(
        app.get(&format!("/organizations/invitations/{token}"), None)
            .await
            .1["status"],
        "accepted"
    );

    // A manager cannot invite an admin (nor an owner), but can invite a manager.
    for role in ["admin", "owner"] {
        let (status, body) = app
            .post(
                "/organizations/current/invitations",
                Some(&dana),
                json!({ "email": "x@example.com", "role": role }),
            )
            .await;
        assert_eq!(
            (status.as_u16(), error_code(&body)),
            (403, "ROLE_TOO_HIGH"),
            "{role}"
        );
    }
    let (status, _) = app
        .post(
            "/organizations/current/invitations",
            Some(&dana),
            json!({ "email": "frank@example.com", "role": "user" }),
        )
        .await;
    assert_eq!(status, 201);

    // An existing user accepts while logged in; someone else cannot use their link.
    let (_, gina_user) = app
        .post("/users", Some(&personal), json!({ "email": "gina@example.com", "display_name": "Gina", "password": "gina-password-1" }))
        .await;
    assert_eq!(gina_user["email"], "gina@example.com");
    let (status, _) = app
        .post(
            "/organizations/current/invitations",
            Some(&owner),
            json!({ "email": "gina@example.com", "role": "admin" }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .post(
            "/organizations/current/invitations",
            Some(&owner),
            json!({ "email": "gina@example.com", "role": "user" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "ALREADY_INVITED")
    );
    let gina_token = token_of(
        &sink
            .wait_for("gina@example.com", "/invitations/")
            .await
            .link_containing("/invitations/")
            .unwrap(),
    );
    let gina_accept = format!("/organizations/invitations/{gina_token}/accept");
    assert_eq!(
        app.get(&format!("/organizations/invitations/{gina_token}"), None)
            .await
            .1["account_exists"],
        true
    );
    let (status, body) = app
        .post(
            &gina_accept,
            None,
            json!({ "display_name": "Mallory", "password": "mallory-pass-1" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (401, "LOGIN_REQUIRED"),
        "no account takeover by invitation"
    );
    let (status, body) = app.post(&gina_accept, Some(&dana), json!({})).await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (403, "INVITATION_EMAIL_MISMATCH")
    );
    let gina = app.login("gina@example.com", "gina-password-1").await;
    // Logged in, no body needed.
    let (status, _, accepted) = app
        .call(Method::POST, &gina_accept, Some(&gina), None)
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert!(accepted["session"].is_null());
    let members = app
        .get("/organizations/current/members", Some(&owner))
        .await
        .1;
    let roles: Vec<(String, String)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        roles.contains(&("dana@example.com".into(), "manager".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("gina@example.com".into(), "admin".into())),
        "{roles:?}"
    );

    // The audit log saw it all.
    let logs = app
        .get("/organizations/current/audit-logs", Some(&owner))
        .await
        .1;
    let actions: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    for expected in [
        "organization.created",
        "invitation.created",
        "invitation.accepted",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
}

#[tokio::test]
async fn expired_and_revoked_invitations_fail() {
    let (app, sink) = app_with_sink(&[]).await;
    let a = app.org("acme").await;
    let (status, inv) = app
        .post(
            "/organizations/current/invitations",
            Some(&a.owner.token),
            json!({ "email": "late@example.com", "role": "user" }),
        )
        .await;
    assert_eq!(status, 201);
    let token = token_of(
        &sink
            .wait_for("late@example.com", "/invitations/")
            .await
            .link_containing("/invitations/")
            .unwrap(),
    );
    sqlx::query("UPDATE organization_invitations SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(inv["id"].as_str().unwrap()).unwrap())
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, body) = app
        .post(
            &format!("/organizations/invitations/{token}/accept"),
            None,
            json!({ "display_name": "Late", "password": "late-password-1" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "INVITATION_EXPIRED")
    );
    let listed = app
        .get("/organizations/current/invitations", Some(&a.owner.token))
        .await
        .1;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["email"] == "late@example.com" && i["status"] == "expired"));
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = 'late@example.com')")
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert!(!exists, "a refused acceptance creates no account");

    let (status, _) = app
        .delete(
            &format!("/organizations/current/invitations/{}", a.invitation_id),
            Some(&a.admin.token),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app
        .post(
            &format!("/organizations/invitations/{}/accept", a.invitation_token),
            None,
            json!({ "display_name": "R", "password": "revoked-pass-1" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "INVITATION_REVOKED")
    );
    let (status, _) = app
        .get(
            &format!("/organizations/invitations/{}", "z".repeat(43)),
            None,
        )
        .await;
    assert_eq!(status, 404, "unknown token");
}

#[tokio::test]
async fn member_role_rules_and_the_last_owner() {
    let app = TestApp::spawn().await;
    let a = app.org("acme").await;
    let put = |token: String, user: uuid::Uuid, role: &'static str| {
        let app = &app;
        async move {
            let (s, b) = app
                .put(
                    &format!("/organizations/current/members/{user}"),
                    Some(&token),
                    json!({ "role": role }),
                )
                .await;
            (s.as_u16(), b)
        }
    };
    // Admin: between user and admin only.
    assert_eq!(
        put(a.admin.token.clone(), a.spare.user_id, "admin").await.0,
        200
    );
    assert_eq!(
        put(a.admin.token.clone(), a.spare.user_id, "user").await.0,
        200
    );
    assert_eq!(
        put(a.admin.token.clone(), a.spare.user_id, "manager")
            .await
            .0,
        403
    );
    assert_eq!(
        put(a.admin.token.clone(), a.manager.user_id, "user")
            .await
            .0,
        403
    );
    assert_eq!(
        put(a.admin.token.clone(), a.spare.user_id, "owner").await.0,
        403
    );
    // Manager: between user and manager only.
    assert_eq!(
        put(a.manager.token.clone(), a.spare.user_id, "manager")
            .await
            .0,
        200
    );
    assert_eq!(
        put(a.manager.token.clone(), a.spare.user_id, "admin")
            .await
            .0,
        403
    );
    assert_eq!(
        put(a.manager.token.clone(), a.owner.user_id, "user")
            .await
            .0,
        403
    );
    // The last owner can be neither demoted, removed, nor leave.
    let (status, body) = put(a.owner.token.clone(), a.owner.user_id, "admin").await;
    assert_eq!((status, error_code(&body)), (409, "LAST_OWNER"));
    let (status, body) = app
        .delete(
            &format!("/organizations/current/members/{}", a.owner.user_id),
            Some(&a.owner.token),
        )
        .await;
    assert_eq!((status.as_u16(), error_code(&body)), (409, "LAST_OWNER"));
    let (status, body) = app
        .post(
            "/organizations/current/leave",
            Some(&a.owner.token),
            json!(null),
        )
        .await;
    assert_eq!((status.as_u16(), error_code(&body)), (409, "LAST_OWNER"));
    // With a second owner, the first may step down.
    assert_eq!(
        put(a.owner.token.clone(), a.admin.user_id, "owner").await.0,
        200
    );
    assert_eq!(
        put(a.owner.token.clone(), a.owner.user_id, "user").await.0,
        200
    );
    // A removed member's session falls back to their personal organization.
    let (status, _) = app
        .delete(
            &format!("/organizations/current/members/{}", a.user.user_id),
            Some(&a.admin.token),
        )
        .await;
    assert_eq!(status, 204);
    let me = app.get("/auth/me", Some(&a.user.token)).await.1;
    assert_eq!(me["current_organization"]["kind"], "personal");
    assert_eq!(me["current_organization"]["role"], "owner");
    // Personal organizations cannot be left or deleted.
    let (status, body) = app
        .post(
            "/organizations/current/leave",
            Some(&a.user.token),
            json!(null),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "PERSONAL_ORGANIZATION")
    );
    let personal = me["current_organization"]["id"].as_str().unwrap();
    let (status, body) = app
        .delete(&format!("/organizations/{personal}"), Some(&a.user.token))
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "PERSONAL_ORGANIZATION")
    );
    let (status, body) = app
        .post(
            "/organizations/current/invitations",
            Some(&a.user.token),
            json!({ "email": "x@example.com", "role": "user" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (409, "PERSONAL_ORGANIZATION")
    );
}
