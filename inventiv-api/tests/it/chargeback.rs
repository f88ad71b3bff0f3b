//! Attacks on what a share charges. A key holder reusing one
//! `x-request-id` is billed for every request it makes; a provider raising
//! its price reaches an accepted share only after the notice period or a
//! new acceptance, never above the consumer's maximum; a provider's worker
//! forging usage is billed at the plausible bound, and both organizations
//! see the dispute.

use crate::support::engines::{fake, serve_port, serving};
use crate::support::fixture::Org;
use crate::support::{error_code, rows_at_least, TestApp};
use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// `provider` offers `mock/model` to `consumer` (0.001 / 0.002 EUR per 1k
/// tokens), the consumer's manager accepted; returns (address, offering
/// id, share id).
async fn accepted_share(app: &TestApp, provider: &Org, consumer: &Org) -> (String, Uuid, Uuid) {
    let (offering, share) = app.offer(provider, consumer).await;
    app.accept_share(share, consumer).await;
    (format!("{}/mock/model", provider.slug), offering, share)
}

/// The consumer's usage rows through shares: (request id, prompt, completion, charge).
async fn charged(app: &TestApp, org: Uuid, want: usize) -> Vec<(String, i32, i32, String)> {
    rows_at_least(
        app,
        want,
        "SELECT request_id, prompt_tokens, completion_tokens, charged_eur::text FROM usage_records
          WHERE organization_id = $1 AND share_id IS NOT NULL ORDER BY id",
        Some(org),
    )
    .await
}

#[tokio::test]
async fn five_calls_with_one_request_id_are_five_charges() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let b = app.org("b").await;
    let (address, _, _) = accepted_share(&app, &a, &b).await;
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

/// B's key calls `address`; returns the status and answer.
async fn call(app: &TestApp, b: &Org, address: &str) -> (u16, Value) {
    let body = json!({ "model": address, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 4 });
    let (status, answer) = app
        .post("/v1/chat/completions", Some(&b.api_key), body.clone())
        .await;
    (status.as_u16(), answer)
}

/// The price in nano-euros per 1k tokens of B's `n`-th charged row, from
/// its counts and charge: (charge, prompt x 1000 + completion x 2000) for
/// the fixture's ratio.
async fn nth_charge(app: &TestApp, b: &Org, n: usize) -> (i32, i32, f64) {
    let rows = charged(app, b.id, n).await;
    let (_, prompt, completion, charge) = rows[n - 1].clone();
    (prompt, completion, charge.parse().unwrap())
}

#[tokio::test]
async fn a_price_increase_waits_for_notice_or_a_new_acceptance() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let b = app.org("b").await;
    let (address, offering, _) = accepted_share(&app, &a, &b).await;
    let old = |p: i32, c: i32| (f64::from(p) * 0.001 + f64::from(c) * 0.002) / 1000.0;

    // The provider multiplies its price by a million, with immediate effect.
    let prices = format!("/organizations/current/offerings/{offering}/prices");
    let (status, raised) = app
        .post(
            &prices,
            Some(&a.manager.token),
            json!({ "input_eur_per_1k": "1000", "output_eur_per_1k": "2000" }),
        )
        .await;
    assert_eq!(status, 201, "{raised}");
    assert_eq!(call(&app, &b, &address).await.0, 200);
    let (p, c, charge) = nth_charge(&app, &b, 1).await;
    assert!(
        (charge - old(p, c)).abs() < 1e-9,
        "charged {charge} at once for {p}+{c} tokens"
    );
    let (_, listed) = app
        .get(
            "/organizations/current/available-offerings",
            Some(&b.user.token),
        )
        .await;
    assert_eq!(listed[0]["input_eur_per_1k"], "0.001000", "{listed}");
    assert_eq!(
        listed[0]["announced_input_eur_per_1k"], "1000.000000",
        "{listed}"
    );

    // Once the notice period (7 days by default) has passed, it applies.
    sqlx::query(
        "UPDATE offering_prices SET created_at = created_at - interval '8 days' WHERE id = $1",
    )
    .bind(raised["id"].as_str().unwrap().parse::<Uuid>().unwrap())
    .execute(&app.state.db)
    .await
    .unwrap();
    assert_eq!(call(&app, &b, &address).await.0, 200);
    let (p, c, charge) = nth_charge(&app, &b, 2).await;
    assert!(
        (charge - old(p, c) * 1e6).abs() < 1e-6,
        "{charge} after the notice"
    );

    // A further increase applies at once when the consumer accepts it.
    let (status, _) = app
        .post(
            &prices,
            Some(&a.manager.token),
            json!({ "input_eur_per_1k": "3000", "output_eur_per_1k": "6000" }),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(call(&app, &b, &address).await.0, 200);
    let (p, c, charge) = nth_charge(&app, &b, 3).await;
    assert!(
        (charge - old(p, c) * 1e6).abs() < 1e-6,
        "{charge} before the new acceptance"
    );
    let accept = format!("/organizations/current/available-offerings/{offering}/accept");
    let (status, accepted) = app.post(&accept, Some(&b.manager.token), json!({})).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["input_eur_per_1k"], "3000.000000", "{accepted}");
    assert_eq!(call(&app, &b, &address).await.0, 200);
    let (p, c, charge) = nth_charge(&app, &b, 4).await;
    assert!(
        (charge - old(p, c) * 3e6).abs() < 1e-6,
        "{charge} after the new acceptance"
    );
}

#[tokio::test]
async fn a_maximum_price_refuses_calls_above_it() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let b = app.org("b").await;
    let (address, offering, _) = accepted_share(&app, &a, &b).await;
    let max = format!("/organizations/current/available-offerings/{offering}/max-price");
    let cap = |i: &str, o: &str| json!({ "max_input_eur_per_1k": i, "max_output_eur_per_1k": o });
    let (status, body, _) = {
        let (s, _, b) = app
            .call(Method::PUT, &max, Some(&b.user.token), Some(&cap("1", "1")))
            .await;
        (s, b, ())
    };
    assert_eq!(status, 403, "a user cannot set it: {body}");
    let (status, body) = app
        .put(&max, Some(&b.manager.token), cap("0.0005", "0.001").clone())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["max_input_eur_per_1k"], "0.000500");
    app.state.routing.refresh(&app.state).await.unwrap();
    let (status, answer) = call(&app, &b, &address).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(error_code(&answer), "price_above_maximum");
    let (status, _) = app
        .put(&max, Some(&b.manager.token), cap("0.01", "0.01").clone())
        .await;
    assert_eq!(status, 200);
    app.state.routing.refresh(&app.state).await.unwrap();
    assert_eq!(call(&app, &b, &address).await.0, 200);
}

#[tokio::test]
async fn forged_usage_is_billed_at_the_bound_and_disputed_on_both_sides() {
    let app = TestApp::spawn().await;
    // The provider's worker claims a million tokens each way, then a
    // negative count.
    let worker = fake(axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        let request: Value = serde_json::from_slice(&body).unwrap_or_default();
        let count = if request["messages"][0]["content"] == "hi" { 1_000_000 } else { -1000 };
        axum::Json(json!({ "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" } }],
                           "usage": { "prompt_tokens": count, "completion_tokens": count } }))
            .into_response()
    }))
    .await;
    let mut a = app.org("a").await;
    let b = app.org("b").await;
    let _relay = serve_port(&app, &mut a, worker.port).await;
    let (address, _, share) = accepted_share(&app, &a, &b).await;
    let (status, answer) = call(&app, &b, &address).await;
    assert_eq!(status, 200, "{answer}");
    let body = json!({ "model": address, "messages": [{ "role": "user", "content": "negative" }] });
    let (status, _) = app
        .post("/v1/chat/completions", Some(&b.api_key), body.clone())
        .await;
    assert_eq!(status, 200);

    let rows = charged(&app, b.id, 2).await;
    let (_, prompt, completion, charge) = &rows[0];
    assert!(
        *prompt < 1000,
        "billed {prompt} prompt tokens for a 2-character prompt"
    );
    assert_eq!(*completion, 4, "at most max_tokens: {rows:?}");
    let charge: f64 = charge.parse().unwrap();
    assert!(charge < 0.001, "charged {charge} EUR");
    assert_eq!(
        (rows[1].1, rows[1].2, rows[1].3.as_str()),
        (0, 0, "0.000000000"),
        "{rows:?}"
    );

    for (token, side) in [(&b.owner.token, "consumer"), (&a.manager.token, "provider")] {
        let (status, disputes) = app.get("/finops/disputes", Some(token)).await;
        assert_eq!(status, 200, "{disputes}");
        let list = disputes.as_array().unwrap();
        assert_eq!(list.len(), 2, "{side}: {disputes}");
        let forged = list
            .iter()
            .find(|d| d["reported_prompt_tokens"] == 1_000_000)
            .unwrap();
        assert_eq!(forged["side"], side);
        assert_eq!(forged["billed_completion_tokens"], 4);
        assert_eq!(forged["share_id"], share.to_string());
        assert_eq!(forged["provider_org_slug"], a.slug.as_str());
    }
    let (_, none) = app
        .get("/finops/disputes", Some(&app.org("c").await.owner.token))
        .await;
    assert_eq!(none, json!([]), "a third organization sees nothing");
}
