//! A consumer leaves a share (`DELETE /organizations/current/available-
//! offerings/{id}`): its manager withdraws the acceptance, the proxy stops
//! routing its keys at once, one audit entry says who left; the offering
//! stays offered and may be accepted again. Leaving what was not accepted
//! changes nothing; an offering the organization has no share of, or a
//! revoked one, is a 404 like any unknown id.

use crate::sharing::routed;
use crate::support::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

async fn left_entries(app: &TestApp, org: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE organization_id = $1 AND action = 'share.left'",
    )
    .bind(org)
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

async fn accepted(app: &TestApp, share: Uuid) -> bool {
    sqlx::query_scalar("SELECT accepted_at IS NOT NULL FROM offering_shares WHERE id = $1")
        .bind(share)
        .fetch_one(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_consumer_leaves_a_share_and_may_accept_it_again() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let (offering, share) = app.offer(&a, &b).await;
    let address = format!("{}/mock/model", a.slug);
    let path = format!("/organizations/current/available-offerings/{offering}");
    let leave = |token: &str| {
        let (app, path, token) = (&app, path.clone(), token.to_owned());
        async move { app.call(Method::DELETE, &path, Some(&token), None).await }
    };

    // Not accepted yet: nothing to withdraw, nothing recorded.
    let (status, _, body) = leave(&b.manager.token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(left_entries(&app, b.id).await, 0);

    let (status, body) = app
        .post(&format!("{path}/accept"), Some(&b.manager.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    routed(&app, b.id, &address, Some(false)).await;

    // Admins and users may not leave; the share stays accepted.
    for token in [&b.admin.token, &b.user.token] {
        let (status, _, body) = leave(token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    assert!(accepted(&app, share).await);

    let (status, _, body) = leave(&b.manager.token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!accepted(&app, share).await);
    routed(&app, b.id, &address, None).await;
    assert_eq!(left_entries(&app, b.id).await, 1);
    let actor: Option<Uuid> = sqlx::query_scalar(
        "SELECT actor_user_id FROM audit_logs WHERE organization_id = $1 AND action = 'share.left' AND target_id = $2",
    )
    .bind(b.id)
    .bind(share.to_string())
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!(actor, Some(b.manager.user_id), "the entry names who left");

    // Still offered to B, not accepted; leaving again changes nothing.
    let (status, listed) = app
        .get(
            "/organizations/current/available-offerings",
            Some(&b.manager.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["offering_id"], offering.to_string(), "{listed}");
    assert_eq!(listed[0]["accepted"], false, "{listed}");
    let (status, _, _) = leave(&b.manager.token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(left_entries(&app, b.id).await, 1);

    // Accepting again routes B's keys again.
    let (status, body) = app
        .post(&format!("{path}/accept"), Some(&b.owner.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    routed(&app, b.id, &address, Some(false)).await;
}

#[tokio::test]
async fn leaving_what_is_not_the_organizations_share_is_a_404() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let c = app.org("c").await;
    let (offering, share) = app.offer(&a, &b).await;
    let path = format!("/organizations/current/available-offerings/{offering}");
    // C has no share of A's private offering: as unknown as a random id.
    for (who, target) in [
        (&c, path.clone()),
        (
            &b,
            format!(
                "/organizations/current/available-offerings/{}",
                Uuid::new_v4()
            ),
        ),
    ] {
        let (status, _, body) = app
            .call(Method::DELETE, &target, Some(&who.manager.token), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{body}");
    }
    // The provider itself has no share of its own offering.
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&a.manager.token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A revoked share is gone for the consumer.
    sqlx::query("UPDATE offering_shares SET status = 'revoked' WHERE id = $1")
        .bind(share)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&b.manager.token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A malformed id is a 400 in the error shape.
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/organizations/current/available-offerings/not-a-uuid",
            Some(&b.manager.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
}
