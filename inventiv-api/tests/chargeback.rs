//! Attacks on what a share charges. A key holder reusing one
//! `x-request-id` is billed for every request it makes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::engines::{engine, serve};
use support::fixture::Org;
use support::{wait_for, TestApp};
use uuid::Uuid;

/// `provider` offers `mock/model` to `consumer` (0.001 / 0.002 EUR per 1k
/// tokens), the consumer's manager accepted; returns (address, share id).
async fn accepted_share(app: &TestApp, provider: &Org, consumer: &Org) -> (String, Uuid) {
    let (_, share) = app.offer(provider, consumer).await;
    sqlx::query("UPDATE offering_shares SET accepted_at = now(), accepted_by = $2 WHERE id = $1")
        .bind(share)
        .bind(consumer.manager.user_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
    (format!("{}/mock/model", provider.slug), share)
}

/// The consumer's usage rows through shares: (request id, prompt, completion, charge).
async fn charged(app: &TestApp, org: Uuid, want: usize) -> Vec<(String, i32, i32, String)> {
    wait_for(
        &format!("{want} usage rows"),
        Duration::from_secs(10),
        || async {
            let rows: Vec<(String, i32, i32, String)> = sqlx::query_as(
                "SELECT request_id, prompt_tokens, completion_tokens, charged_eur::text FROM usage_records
                  WHERE organization_id = $1 AND share_id IS NOT NULL ORDER BY id",
            )
            .bind(org)
            .fetch_all(&app.state.db)
            .await
            .unwrap();
            (rows.len() >= want).then_some(rows)
        },
    )
    .await
}

#[tokio::test]
async fn five_calls_with_one_request_id_are_five_charges() {
    let app = TestApp::spawn().await;
    let engine = engine(&[]).await;
    let mut a = app.org("a").await;
    let b = app.org("b").await;
    serve(&app, &mut a, &engine).await;
    let (address, _) = accepted_share(&app, &a, &b).await;
    let body = json!({ "model": address, "messages": [{ "role": "user", "content": "bill me once" }], "max_tokens": 4 });
    for _ in 0..5 {
        let res = app
            .http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&b.api_key)
            .header("x-request-id", "same-id-every-time")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        assert!(answer["usage"]["prompt_tokens"].as_i64().unwrap() > 0);
    }
    let rows = charged(&app, b.id, 5).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    for (request_id, prompt, _, charge) in &rows {
        assert_eq!(request_id, "same-id-every-time", "kept for correlation");
        assert!(*prompt > 0 && charge != "0.000000000", "{rows:?}");
    }
}
