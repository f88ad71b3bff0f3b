//! Tokens priced as engines count them (issue 14, acceptance 3): a repeated
//! prompt prefix shows the mock engine's `cached_tokens` in the answer
//! (whole and streamed), on the usage row and in the statements, and is
//! charged at the offering's cached rate, exactly. The cached rate is
//! bounded by the input rate, and a worker's report is bounded by the
//! prompt it is part of.

use std::time::Duration;

use crate::support::engines::{fake, serve_port, serving};
use crate::support::fixture::Org;
use crate::support::{eventually, rows_at_least, TestApp};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use uuid::Uuid;

/// `provider` offers `mock/model` to `consumer`, who accepted; then the
/// provider prices it at 0.001 / 0.002 EUR per 1k tokens, cached prompt
/// tokens at 0.0002 (not a raise: it applies at once). Returns the address.
async fn priced_share(app: &TestApp, provider: &Org, consumer: &Org) -> String {
    let (offering, share) = app.offer(provider, consumer).await;
    app.accept_share(share, consumer).await;
    let prices = format!("/organizations/current/offerings/{offering}/prices");
    let (status, version) = app
        .post(
            &prices,
            Some(&provider.manager.token),
            json!({ "input_eur_per_1k": "0.001", "output_eur_per_1k": "0.002", "cached_input_eur_per_1k": "0.0002" }),
        )
        .await;
    assert_eq!(status, 201, "{version}");
    assert_eq!(version["cached_input_eur_per_1k"], "0.000200");
    // Bounds: never above the input rate, never negative, never unknown.
    for bad in [
        json!({ "input_eur_per_1k": "0.001", "output_eur_per_1k": "0.002", "cached_input_eur_per_1k": "0.0011" }),
        json!({ "input_eur_per_1k": "0.001", "output_eur_per_1k": "0.002", "cached_input_eur_per_1k": "-1" }),
        json!({ "input_eur_per_1k": "0.001", "output_eur_per_1k": "0.002", "cached_rate": "0" }),
    ] {
        let (status, body) = app
            .post(&prices, Some(&provider.manager.token), bad.clone())
            .await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (_, offerings) = app
        .get(
            "/organizations/current/offerings",
            Some(&provider.manager.token),
        )
        .await;
    assert_eq!(offerings[0]["cached_input_eur_per_1k"], "0.000200");
    app.state.routing.refresh(&app.state).await.unwrap();
    format!("{}/mock/model", provider.slug)
}

/// 40 distinct words: two whole 16-token blocks of the mock's prefix cache.
fn system_prompt() -> String {
    (0..40)
        .map(|i| format!("rule{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn chat(address: &str, question: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": address,
        "max_tokens": 4,
        "messages": [
            { "role": "system", "content": system_prompt() },
            { "role": "user", "content": question },
        ],
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// The consumer's rows: (prompt, cached, completion, charge in nano-euros).
async fn rows(app: &TestApp, org: Uuid, want: usize) -> Vec<(i32, i32, i32, i64)> {
    rows_at_least(
        app,
        want,
        "SELECT prompt_tokens, cached_prompt_tokens, completion_tokens, (charged_eur * 1000000000)::bigint
           FROM usage_records WHERE organization_id = $1 ORDER BY id",
        Some(org),
    )
    .await
}

#[tokio::test]
async fn a_repeated_prefix_is_cached_metered_and_charged_at_the_cached_rate() {
    let app = TestApp::spawn().await;
    let (_engine, a) = serving(&app, "a", &["--enable-prompt-tokens-details"]).await;
    let b = app.org("b").await;
    let address = priced_share(&app, &a, &b).await;
    let post = |body: Value| {
        app.http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&b.api_key)
            .json(&body)
            .send()
    };

    let first: Value = post(chat(&address, "first question", json!({})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["usage"]["prompt_tokens"], 42, "{first}");
    assert_eq!(first["usage"]["prompt_tokens_details"], Value::Null);
    // Same system prompt: its two whole blocks come from the cache.
    let second: Value = post(chat(&address, "and another question", json!({})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        second["usage"]["prompt_tokens_details"]["cached_tokens"], 32,
        "{second}"
    );
    // Streamed, with the usage asked for: the final usage chunk says so too.
    let stream = post(chat(
        &address,
        "first question",
        json!({ "stream": true, "stream_options": { "include_usage": true } }),
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let usage: Value = stream
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|e| e["choices"] == json!([]))
        .map(|e| e["usage"].clone())
        .unwrap_or_else(|| panic!("no usage chunk in {stream}"));
    assert_eq!(
        usage["prompt_tokens_details"]["cached_tokens"], 32,
        "{stream}"
    );

    // The rows: cached apart, charged exactly at the cached rate. Rates in
    // micro-euros per 1k tokens times tokens are nano-euros.
    let rows = rows(&app, b.id, 3).await;
    let charge = |(prompt, cached, completion): (i32, i32, i32)| {
        i64::from(prompt - cached) * 1000 + i64::from(cached) * 200 + i64::from(completion) * 2000
    };
    let want = [(42, 0, 4), (43, 32, 4), (42, 32, 4)];
    for (row, want) in rows.iter().zip(want) {
        assert_eq!((row.0, row.1, row.2), want, "{rows:?}");
        assert_eq!(row.3, charge(want), "{rows:?}");
    }
    let total_nano: i64 = rows.iter().map(|r| r.3).sum();

    // The usage view and the chargeback statement show them apart.
    let (status, usage) = app.get("/usage", Some(&b.owner.token)).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage[0]["cached_prompt_tokens"], 64, "{usage}");
    let (status, series) = app
        .get(
            "/finops/usage/series?group_by=model",
            Some(&b.manager.token),
        )
        .await;
    assert_eq!(status, 200, "{series}");
    let cached: i64 = series
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["cached_prompt_tokens"].as_i64().unwrap())
        .sum();
    assert_eq!(cached, 64, "{series}");
    let (status, statement) = app.get("/finops/statements", Some(&b.manager.token)).await;
    assert_eq!(status, 200, "{statement}");
    let line = &statement["lines"][0];
    assert_eq!(
        (
            line["direction"].as_str(),
            line["cached_prompt_tokens"].as_i64()
        ),
        (Some("debit"), Some(64)),
        "{statement}"
    );
    let amount: f64 = line["amount_eur"].as_str().unwrap().parse().unwrap();
    assert_eq!((amount * 1e9).round() as i64, total_nano, "{statement}");
    let csv = app
        .get_text("/finops/statements?format=csv", &b.manager.token)
        .await;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = header
        .iter()
        .position(|h| h.trim_matches('"') == "cached_prompt_tokens")
        .unwrap_or_else(|| panic!("no cached column in {csv}"));
    let first_line: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(first_line[column].trim_matches('"'), "64", "{csv}");

    // The month's statement (live while open): its call line too.
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let (status, month_statement) = app
        .get(
            &format!("/finops/statements/{month}"),
            Some(&b.manager.token),
        )
        .await;
    assert_eq!(status, 200, "{month_statement}");
    let calls = month_statement["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "debit")
        .unwrap_or_else(|| panic!("no debit line in {month_statement}"));
    assert_eq!(calls["cached_tokens"], 64, "{month_statement}");
    let exact: f64 = calls["exact_eur"].as_str().unwrap().parse().unwrap();
    assert_eq!((exact * 1e9).round() as i64, total_nano);
}

#[tokio::test]
async fn a_worker_cannot_report_more_cached_than_prompt_tokens() {
    // A provider's worker claiming more cached (cheaper) tokens than the
    // prompt, and reasoning tokens beyond the completion.
    let forged = axum::Router::new().fallback(|| async {
        axum::Json(json!({
            "id": "x", "object": "chat.completion", "choices": [{ "index": 0, "message": { "role": "assistant", "content": "a b c" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                       "prompt_tokens_details": { "cached_tokens": 1000 },
                       "completion_tokens_details": { "reasoning_tokens": 99 } }
        }))
        .into_response()
    });
    let server = fake(forged).await;
    let app = TestApp::spawn().await;
    let mut a = app.org("a").await;
    let b = app.org("b").await;
    let _relay = serve_port(&app, &mut a, server.port).await;
    let address = priced_share(&app, &a, &b).await;
    let (status, answer) = app
        .post(
            "/v1/chat/completions",
            Some(&b.api_key),
            chat(&address, "q", json!({})).clone(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let row: (i32, i32, i32, i32) =
        eventually("the usage row", Duration::from_secs(10), || async {
            sqlx::query_as(
                "SELECT prompt_tokens, cached_prompt_tokens, completion_tokens, reasoning_tokens
               FROM usage_records WHERE organization_id = $1",
            )
            .bind(b.id)
            .fetch_optional(&app.state.db)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(row, (10, 10, 3, 3), "parts never exceed their whole");
}
