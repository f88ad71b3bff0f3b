//! Inter-organization sharing end to end: A publishes its model, prices it
//! and shares it with B at B's own price; B's manager accepts; B's key
//! calls `a-slug/mock/model` with the official `openai` SDK. Every usage
//! row carries the provider, offering, share, price version and the exact
//! charge; B's statement debit and A's credit equal Σ tokens × price. A
//! paused share answers 403 `share_paused` and charges nothing; a revoked
//! share disappears from B's `/v1/models`. A price change in the middle of
//! the month (accepted by B) leaves earlier rows at the old price.

use crate::support;

use std::path::Path;
use std::time::Duration;

use crate::support::engines::serving;
use crate::support::fixture::Org;
use crate::support::{eventually, rows_at_least, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, answer) = app.call(method, path, Some(token), body.as_ref()).await;
    (status, answer)
}

/// A decimal string as an exact count of nano-euros (1e-9 EUR).
fn nanos(s: &str) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(frac.len() <= 9, "{s}");
    int.parse::<i128>().unwrap() * 1_000_000_000 + format!("{frac:0<9}").parse::<i128>().unwrap()
}

/// A publishes `mock/model` (admin), switches it on and prices it (manager).
pub(crate) async fn publish(app: &TestApp, a: &Org, input: &str, output: &str) -> Uuid {
    let (status, offering) = app
        .post(
            "/organizations/current/offerings",
            Some(&a.admin.token),
            json!({ "model_code": "mock/model", "visibility": "private" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{offering}");
    assert_eq!(offering["address"], format!("{}/mock/model", a.slug));
    let id: Uuid = offering["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/organizations/current/offerings/{id}");
    let (status, body) = app
        .patch(
            &path,
            Some(&a.admin.token),
            json!({ "economic_active": true }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the economic switch is the manager's: {body}"
    );
    let (status, body) = app
        .patch(
            &path,
            Some(&a.manager.token),
            json!({ "economic_active": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            &format!("{path}/prices"),
            Some(&a.manager.token),
            json!({ "input_eur_per_1k": input, "output_eur_per_1k": output }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id
}

/// Usage rows of `org`'s calls: (prompt, completion, share, price version, charge).
type Charged = (i32, i32, Option<Uuid>, Option<Uuid>, Option<String>);

async fn charged_rows(app: &TestApp, org: Uuid, want: usize) -> Vec<Charged> {
    rows_at_least(
        app,
        want,
        "SELECT prompt_tokens, completion_tokens, share_id, price_version_id, charged_eur::text
           FROM usage_records WHERE organization_id = $1 ORDER BY id",
        Some(org),
    )
    .await
}

/// A's own call of its model with its key; once its row is written, every
/// row from before it is too (one writer, in order).
async fn sentinel(app: &TestApp, a: &Org, rows_before: usize) {
    let (status, _, body) = app
        .call(Method::POST, "/v1/chat/completions", Some(&a.api_key),
              Some(&json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "own" }], "max_tokens": 3 })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    charged_rows(app, a.id, rows_before + 1).await;
}

/// Waits until the proxy's table shows `consumer`'s share of `address` in
/// the given state: Some(paused) or None (gone).
pub(crate) async fn routed(app: &TestApp, consumer: Uuid, address: &str, paused: Option<bool>) {
    let what = format!("{address} as {paused:?} in the routing table");
    eventually(&what, Duration::from_secs(5), || async {
        let now = app
            .state
            .routing
            .share_for(consumer, address)
            .map(|s| s.paused);
        (now == paused).then_some(())
    })
    .await;
}

/// Runs tests/it/sdk/shared.py on `model` and returns its report.
async fn sdk(python: &Path, app: &TestApp, key: &str, model: &str, mode: &str) -> Value {
    let mut command = support::sdk_command(python, "shared.py", app, key, mode);
    command.env("MODEL", model);
    support::sdk_report(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_model_is_called_with_the_sdk_and_charged_exactly() {
    let python = tokio::task::spawn_blocking(support::sdk_python)
        .await
        .unwrap();
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let b = app.org("b").await;
    let offering = publish(&app, &a, "0.002", "0.006").await;
    let address = format!("{}/mock/model", a.slug);

    // Shared with B at B's own price (wins over the offering's).
    let shares = format!("/organizations/current/offerings/{offering}/shares");
    let share = json!({ "consumer_org_slug": b.slug, "input_eur_per_1k": "0.0015", "output_eur_per_1k": "0.0045" });
    let (status, body) = app.post(&shares, Some(&a.admin.token), share.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "sharing is the manager's: {body}"
    );
    let (status, created) = app.post(&shares, Some(&a.manager.token), share).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let share_id = created["id"].as_str().unwrap().to_owned();

    // B sees it, at its price, and cannot call it before accepting.
    let (_, available) = app
        .get(
            "/organizations/current/available-offerings",
            Some(&b.user.token),
        )
        .await;
    assert_eq!(available.as_array().unwrap().len(), 1, "{available}");
    assert_eq!(available[0]["address"], address.as_str());
    assert_eq!(
        (
            available[0]["input_eur_per_1k"].as_str(),
            available[0]["accepted"].as_bool()
        ),
        (Some("0.001500"), Some(false))
    );
    let before = sdk(&python, &app, &b.api_key, &address, "one").await;
    assert_eq!(before["error"]["status"], 404, "{before}");
    let accept = format!("/organizations/current/available-offerings/{offering}/accept");
    let (status, _) = send(&app, Method::POST, &accept, &b.user.token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "accepting is the manager's");
    let (status, accepted) = send(&app, Method::POST, &accept, &b.manager.token, None).await;
    assert_eq!(
        (status, &accepted["accepted"]),
        (StatusCode::OK, &json!(true)),
        "{accepted}"
    );

    // B's key, the official SDK, the address.
    // The change reaches the proxy's table through the `offering.changed` event.
    routed(&app, b.id, &address, Some(false)).await;
    let report = sdk(&python, &app, &b.api_key, &address, "calls").await;
    assert_eq!(report["models"], json!([address]), "{report}");
    let rows = charged_rows(&app, b.id, 3).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let mut expected_nanos = 0;
    for (row, call) in rows.iter().zip(["chat", "stream", "completion"]) {
        let (p, c) = (row.0, row.1);
        assert_eq!(
            json!({ "prompt_tokens": p, "completion_tokens": c }),
            report[call],
            "{call}"
        );
        assert!(p > 0 && c > 0, "{call}: {row:?}");
        assert_eq!(row.2.unwrap().to_string(), share_id);
        assert!(row.3.is_some(), "price version recorded");
        // 0.0015 and 0.0045 EUR per 1k tokens = 1500 and 4500 nano-euros a token.
        let charge = i128::from(p) * 1500 + i128::from(c) * 4500;
        assert_eq!(nanos(row.4.as_deref().unwrap()), charge, "{call}: {row:?}");
        expected_nanos += charge;
    }
    let (provider, offering_on_row): (Uuid, Uuid) = sqlx::query_as(
        "SELECT DISTINCT provider_organization_id, offering_id FROM usage_records WHERE organization_id = $1",
    )
    .bind(b.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((provider, offering_on_row), (a.id, offering));

    // A's own usage, which B must never see.
    sentinel(&app, &a, 0).await;
    // A's instance metrics count B's calls; B cannot read A's instance.
    let metrics = format!("/instances/{}/metrics", a.instance_id);
    let (_, m) = app.get(&metrics, Some(&a.owner.token)).await;
    let served: i64 = m["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(served, 4, "3 calls of B and 1 of A: {m}");
    assert_eq!(
        app.get(&metrics, Some(&b.owner.token)).await.0,
        StatusCode::NOT_FOUND
    );

    // Statements reconcile exactly: B's debit = A's credit = Σ tokens × price.
    let (status, b_statement) = app.get("/finops/statements", Some(&b.manager.token)).await;
    assert_eq!(status, StatusCode::OK, "{b_statement}");
    assert_eq!(
        nanos(b_statement["debit_total_eur"].as_str().unwrap()),
        expected_nanos
    );
    assert_eq!(b_statement["credit_total_eur"], "0");
    let lines = b_statement["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "B sees one consumer line: {b_statement}");
    assert_eq!(
        (
            lines[0]["direction"].as_str(),
            lines[0]["counterparty_org_slug"].as_str()
        ),
        (Some("debit"), Some(a.slug.as_str()))
    );
    assert_eq!(lines[0]["requests"], 3);
    let (_, a_statement) = app.get("/finops/statements", Some(&a.owner.token)).await;
    assert_eq!(
        nanos(a_statement["credit_total_eur"].as_str().unwrap()),
        expected_nanos
    );
    assert_eq!(a_statement["debit_total_eur"], "0");
    assert_eq!(
        a_statement["lines"][0]["counterparty_org_slug"],
        b.slug.as_str()
    );
    let (_, csv) = app
        .get("/finops/statements?format=csv", Some(&b.owner.token))
        .await;
    let csv = csv.as_str().unwrap();
    assert!(csv.contains("\"debit\"") && csv.contains(&address), "{csv}");

    // B's members never see A's other usage, nor A's offerings or shares.
    let (_, b_usage) = app
        .get("/finops/usage/series?group_by=model", Some(&b.owner.token))
        .await;
    let models: Vec<&str> = b_usage
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["group"].as_str().unwrap())
        .collect();
    assert_eq!(models, [address.as_str()], "{b_usage}");
    assert_eq!(
        nanos(b_usage[0]["charged_eur"].as_str().unwrap()),
        expected_nanos
    );
    let (status, _) = app.get(&shares, Some(&b.owner.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, recovery) = app.get("/finops/cost-recovery", Some(&b.owner.token)).await;
    assert_eq!(recovery, json!([]));
    let (_, recovery) = app.get("/finops/cost-recovery", Some(&a.owner.token)).await;
    assert_eq!(
        nanos(recovery[0]["revenue_eur"].as_str().unwrap()),
        expected_nanos
    );

    // Paused: the SDK gets an OpenAI-shaped 403, nothing is charged.
    let share_path = format!("{shares}/{share_id}");
    let (status, body) = app
        .patch(
            &share_path,
            Some(&a.manager.token),
            json!({ "status": "paused" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    routed(&app, b.id, &address, Some(true)).await;
    let paused = sdk(&python, &app, &b.api_key, &address, "one").await;
    assert_eq!(
        paused["error"],
        json!({ "class": "PermissionDeniedError", "status": 403, "code": "share_paused" })
    );
    sentinel(&app, &a, 1).await;
    assert_eq!(
        charged_rows(&app, b.id, 3).await.len(),
        3,
        "no row, no charge while paused"
    );

    // Resumed, then revoked: gone from B's models and listing; final.
    let (status, _) = app
        .patch(
            &share_path,
            Some(&a.manager.token),
            json!({ "status": "active" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .patch(
            &share_path,
            Some(&a.owner.token),
            json!({ "status": "revoked" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    routed(&app, b.id, &address, None).await;
    let revoked = sdk(&python, &app, &b.api_key, &address, "one").await;
    assert_eq!(revoked["error"]["status"], 404, "{revoked}");
    assert_eq!(revoked["models"], json!([]), "{revoked}");
    let (_, available) = app
        .get(
            "/organizations/current/available-offerings",
            Some(&b.owner.token),
        )
        .await;
    assert_eq!(available, json!([]));
    let (status, body) = app
        .patch(
            &share_path,
            Some(&a.owner.token),
            json!({ "status": "active" }),
        )
        .await;
    assert_eq!(
        (status, support::error_code(&body)),
        (StatusCode::CONFLICT, "SHARE_REVOKED")
    );
    let (status, _) = send(&app, Method::POST, &accept, &b.manager.token, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a revoked share cannot be accepted again"
    );
}

#[tokio::test]
async fn a_price_change_mid_month_leaves_earlier_rows_at_the_old_price() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let b = app.org("b").await;
    // Public this time: B accepts without a share being offered.
    let offering = publish(&app, &a, "0.010", "0.020").await;
    let path = format!("/organizations/current/offerings/{offering}");
    let (status, _) = app
        .patch(
            &path,
            Some(&a.admin.token),
            json!({ "visibility": "public" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = app
        .get(
            "/organizations/current/available-offerings",
            Some(&b.user.token),
        )
        .await;
    assert_eq!(
        listed[0]["address"],
        format!("{}/mock/model", a.slug),
        "{listed}"
    );
    assert_eq!(
        (
            listed[0]["visibility"].as_str(),
            listed[0]["accepted"].as_bool()
        ),
        (Some("public"), Some(false))
    );
    let (_, listed) = app
        .get(
            "/organizations/current/available-offerings?hide_public=true",
            Some(&b.user.token),
        )
        .await;
    assert_eq!(
        listed,
        json!([]),
        "hide_public hides a public offering not shared"
    );
    let (_, listed) = app
        .get(
            "/organizations/current/available-offerings?hide_paid=true",
            Some(&b.owner.token),
        )
        .await;
    assert_eq!(listed, json!([]), "hide_paid hides a priced offering");
    // Stored preferences (the manager's) apply by default; the query overrides.
    let prefs = "/organizations/current/offering-preferences";
    let hide = json!({ "hide_public": true, "hide_paid": false });
    let (status, _) = app.put(prefs, Some(&b.user.token), hide.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.put(prefs, Some(&b.manager.token), hide.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(prefs, Some(&b.user.token)).await.1, hide);
    let listing = "/organizations/current/available-offerings";
    assert_eq!(app.get(listing, Some(&b.user.token)).await.1, json!([]));
    let (_, listed) = app
        .get(&format!("{listing}?hide_public=false"), Some(&b.user.token))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/organizations/current/available-offerings/{offering}/accept"),
        &b.owner.token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let address = format!("{}/mock/model", a.slug);
    let call = || async {
        let body = json!({ "model": address, "messages": [{ "role": "user", "content": "price me" }], "max_tokens": 5 });
        let (status, answer) = app
            .post("/v1/chat/completions", Some(&b.api_key), body.clone())
            .await;
        (status, answer)
    };
    eventually(
        "the share in the routing table",
        Duration::from_secs(5),
        || async { Some(()).filter(|_| app.state.routing.share_for(b.id, &address).is_some()) },
    )
    .await;
    for _ in 0..2 {
        let (status, answer) = call().await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let old = charged_rows(&app, b.id, 2).await;

    // A past effective time is refused: written charges never move.
    let prices = format!("{path}/prices");
    let past = json!({ "input_eur_per_1k": "1", "output_eur_per_1k": "1", "effective_at": "2026-01-01T00:00:00Z" });
    let (status, body) = app.post(&prices, Some(&a.manager.token), past).await;
    assert_eq!(
        (status, support::error_code(&body)),
        (StatusCode::BAD_REQUEST, "PRICE_IN_PAST")
    );
    let (status, body) = app
        .post(
            &prices,
            Some(&a.manager.token),
            json!({ "input_eur_per_1k": "0.030", "output_eur_per_1k": "0.050" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_version: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    // A later version, not yet in force, changes nothing now.
    let future = json!({ "input_eur_per_1k": "9", "output_eur_per_1k": "9", "effective_at": "2099-01-01T00:00:00Z" });
    assert_eq!(
        app.post(&prices, Some(&a.manager.token), future).await.0,
        StatusCode::CREATED
    );
    // The increase reaches B's accepted share once B accepts again (else
    // after the notice period; chargeback.rs).
    let (status, _) = send(
        &app,
        Method::POST,
        &format!("/organizations/current/available-offerings/{offering}/accept"),
        &b.owner.token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(call().await.0, StatusCode::OK);
    }
    let rows = charged_rows(&app, b.id, 4).await;
    assert_eq!(&rows[..2], &old[..], "earlier rows keep the old price");
    let mut total = 0;
    for (i, row) in rows.iter().enumerate() {
        let (per_in, per_out) = if i < 2 {
            (10_000, 20_000)
        } else {
            (30_000, 50_000)
        };
        let charge = i128::from(row.0) * per_in + i128::from(row.1) * per_out;
        assert_eq!(nanos(row.4.as_deref().unwrap()), charge, "row {i}: {row:?}");
        assert!(row.2.is_some(), "through B's acceptance share");
        if i >= 2 {
            assert_eq!(row.3, Some(new_version));
        } else {
            assert_ne!(row.3, Some(new_version));
        }
        total += charge;
    }
    let (_, statement) = app.get("/finops/statements", Some(&b.owner.token)).await;
    assert_eq!(nanos(statement["debit_total_eur"].as_str().unwrap()), total);
    let (_, statement) = app.get("/finops/statements", Some(&a.manager.token)).await;
    assert_eq!(
        nanos(statement["credit_total_eur"].as_str().unwrap()),
        total
    );
}
