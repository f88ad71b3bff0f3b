//! Budgets against the real proxy, mock engine, Postgres, Redis and SMTP
//! sink: 50 concurrent streams never spend past a key's hard budget, the
//! refusal names the budget, each threshold is mailed once; reservations
//! settle to the exact charge, are released on failure and expire when
//! their replica dies; GPU-hour budgets refuse deployments and stop
//! instances; bounds and other organizations' budgets.

use std::time::Duration;

use crate::support::engines::serving;
use crate::support::fixture::Org;
use crate::support::matrix::SMALL_MODEL;
use crate::support::smtp::app_with_sink;
use crate::support::{error_code, eventually, TestApp};
use futures_util::StreamExt;
use inventiv_api::proxy::budgets::{admit, Request};
use inventiv_api::proxy::plausible::Bounds;
use reqwest::Method;
use serde_json::{json, Value};

/// A request's worst case for the body below: its bytes + 256 template
/// tokens of prompt, and 8 completion tokens.
fn stream_body() -> Value {
    json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "tell me about GPUs" }],
            "max_tokens": 8, "stream": true })
}

/// The tokens metered in the database for a key.
async fn metered(app: &TestApp, key: uuid::Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(prompt_tokens + completion_tokens), 0)::bigint FROM usage_records WHERE api_key_id = $1",
    )
    .bind(key)
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

async fn usage_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&app.state.db)
        .await
        .unwrap()
}

/// One stream read to its end: (status, the refusal when refused).
async fn stream(app: &TestApp, key: &str) -> (u16, Value) {
    let res = app
        .post_response("/v1/chat/completions", key, &stream_body())
        .await;
    let status = res.status().as_u16();
    if status != 200 {
        return (status, res.json().await.unwrap_or(Value::Null));
    }
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunk.unwrap();
    }
    (status, Value::Null)
}

async fn key_budget(app: &TestApp, a: &Org, body: Value) -> Value {
    let (status, budget) = app
        .post("/organizations/current/budgets", Some(&a.owner.token), body)
        .await;
    assert_eq!(status, 201, "{budget}");
    budget
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_streams_never_overshoot_a_key_budget() {
    let (app, sink) = app_with_sink(&[("INVENTIV_BUDGET_REFRESH_SECS", "1")]).await;
    let app = std::sync::Arc::new(app);
    let (_engine, a) = serving(&app, "a", &["--tokens-per-sec", "40"]).await;
    // A few requests' worth of reservations: each reserves about 350 tokens.
    let limit = 1500;
    let budget = key_budget(
        &app,
        &a,
        json!({ "scope": "api_key", "api_key_id": a.api_key_id, "monthly_tokens": limit, "thresholds": [25, 50] }),
    )
    .await;
    let budget_id = budget["id"].as_str().unwrap().to_owned();

    // Waves of 50 concurrent streams until the budget refuses them all.
    let (mut served, mut refused) = (0, 0);
    let mut refusal = Value::Null;
    for _ in 0..100 {
        let mut wave = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (app, key) = (app.clone(), a.api_key.clone());
            wave.spawn(async move { stream(&app, &key).await });
        }
        let mut wave_served = 0;
        while let Some(done) = wave.join_next().await {
            match done.unwrap() {
                (200, _) => wave_served += 1,
                (429, body) => {
                    refused += 1;
                    refusal = body;
                }
                (s, body) => panic!("unexpected {s}: {body}"),
            }
        }
        served += wave_served;
        if wave_served == 0 {
            break;
        }
    }
    assert!(
        served >= 3,
        "the budget let some requests through: {served}"
    );
    assert!(refused >= 50, "the budget refused: {refused}");
    assert_eq!(refusal["error"]["code"], "insufficient_quota", "{refusal}");
    assert_eq!(refusal["error"]["type"], "insufficient_quota", "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("API key {}", a.api_key_id)) && message.contains(&budget_id),
        "the refusal names the budget: {message}"
    );
    assert!(message.contains(&format!("{limit} tokens")), "{message}");

    // Every served stream is metered; together they stay within the limit
    // (each was charged at most what it reserved).
    eventually("the usage rows", Duration::from_secs(10), || async {
        (usage_rows(&app).await == served).then_some(())
    })
    .await;
    let spent = metered(&app, a.api_key_id).await;
    assert!(spent <= limit, "spent {spent} of {limit}");
    // Settled to the exact charge, nothing left reserved.
    let (_, shown) = app
        .get(
            &format!("/organizations/current/budgets/{budget_id}"),
            Some(&a.manager.token),
        )
        .await;
    assert_eq!(shown["consumption"]["tokens"], spent, "{shown}");
    assert_eq!(shown["consumption"]["reserved_tokens"], 0, "{shown}");
    assert!(shown["consumption"]["forecast_tokens"].as_i64().unwrap() >= spent);

    // Each threshold crossed is recorded and mailed to the owner once.
    eventually("both alerts mailed", Duration::from_secs(20), || async {
        let mailed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM budget_alerts WHERE mailed_at IS NOT NULL")
                .fetch_one(&app.state.db)
                .await
                .unwrap();
        (mailed == 2).then_some(())
    })
    .await;
    // More rounds add nothing.
    for _ in 0..2 {
        inventiv_api::budgets::reconcile(&app.state).await.unwrap();
    }
    let to_owner: Vec<String> = sink
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.contains(&a.owner.email)))
        .map(|m| m.text())
        .collect();
    assert_eq!(to_owner.len(), 2, "{to_owner:?}");
    for threshold in ["25%", "50%"] {
        assert_eq!(
            to_owner.iter().filter(|t| t.contains(threshold)).count(),
            1,
            "{threshold}: {to_owner:?}"
        );
    }
    assert!(
        sink.messages()
            .iter()
            .all(|m| m.to.iter().all(|t| t.contains(&a.owner.email))),
        "only owners are mailed"
    );
    let (_, alerts) = app
        .get("/organizations/current/budget-alerts", Some(&a.admin.token))
        .await;
    assert_eq!(alerts.as_array().map(Vec::len), Some(2), "{alerts}");
}

#[tokio::test]
async fn failures_release_and_dead_replicas_expire() {
    let app = TestApp::spawn_with(&[("INVENTIV_BUDGET_RESERVATION_TTL_SECS", "2")]).await;
    let (slow, a) = serving(
        &app,
        "a",
        &["--tokens-per-sec", "20", "--output-len", "200"],
    )
    .await;
    let budget = key_budget(
        &app,
        &a,
        json!({ "scope": "api_key", "api_key_id": a.api_key_id, "monthly_tokens": 100000 }),
    )
    .await;
    let path = format!(
        "/organizations/current/budgets/{}",
        budget["id"].as_str().unwrap()
    );

    // A client that leaves after the first chunk: charged what it got, released.
    let res = app.post_response("/v1/completions", &a.api_key, &json!({ "model": "mock/model", "prompt": "long story", "max_tokens": 150, "stream": true })).await;
    let mut body = res.bytes_stream();
    body.next().await.unwrap().unwrap();
    let (_, during) = app.get(&path, Some(&a.owner.token)).await;
    assert!(
        during["consumption"]["reserved_tokens"].as_i64().unwrap() >= 150,
        "reserved while in flight: {during}"
    );
    drop(body);
    eventually("the cut stream's row", Duration::from_secs(10), || async {
        (usage_rows(&app).await == 1).then_some(())
    })
    .await;
    let spent = metered(&app, a.api_key_id).await;
    let settled = eventually("the release", Duration::from_secs(10), || async {
        let (_, b) = app.get(&path, Some(&a.owner.token)).await;
        (b["consumption"]["reserved_tokens"] == 0).then_some(b)
    })
    .await;
    assert_eq!(settled["consumption"]["tokens"], spent, "{settled}");

    // A worker that fails before any byte: nothing charged, nothing held.
    drop(slow);
    let res = app
        .post_response(
            "/v1/completions",
            &a.api_key,
            &json!({ "model": "mock/model", "prompt": "x", "max_tokens": 5 }),
        )
        .await;
    assert!(
        [502, 503].contains(&res.status().as_u16()),
        "{}",
        res.status()
    );
    let released = eventually("the failure's release", Duration::from_secs(10), || async {
        let (_, b) = app.get(&path, Some(&a.owner.token)).await;
        (b["consumption"]["reserved_tokens"] == 0).then_some(b)
    })
    .await;
    assert_eq!(released["consumption"]["tokens"], spent, "{released}");

    // A replica that dies holding a reservation: it blocks the budget only
    // until it expires.
    let (status, _) = app
        .put(
            &path,
            Some(&a.owner.token),
            json!({ "monthly_tokens": spent + 400 }),
        )
        .await;
    assert_eq!(status, 200);
    let request = || Request {
        organization_id: a.id,
        api_key_id: Some(a.api_key_id),
        share_id: None,
        bounds: Bounds::new(br#"{"prompt":"x","max_tokens":100}"#, None),
        context_length: None,
    };
    let held = admit(&app.state, request()).await.unwrap();
    std::mem::forget(held);
    let refused = admit(&app.state, request()).await.err().unwrap();
    assert_eq!(refused.code, "insufficient_quota");
    eventually(
        "the dead replica's reservation to expire",
        Duration::from_secs(10),
        || async { admit(&app.state, request()).await.ok() },
    )
    .await;
}

#[tokio::test]
async fn a_gpu_hour_budget_refuses_deployments_and_stops_instances() {
    let app = TestApp::spawn().await;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    app.activate_mock(&a, SMALL_MODEL).await;
    // 90 minutes of one GPU this month.
    sqlx::query(
        "INSERT INTO cost_buckets (instance_id, minute, organization_id, provider, instance_type, model_id, seconds, price_eur_per_hour, cost_eur)
         SELECT $1, date_trunc('month', now()) + make_interval(mins => m), $2, 'mock', 'mock-1gpu-24g', 'mock/model', 60, 1, 0.0166
           FROM generate_series(0, 89) m",
    )
    .bind(a.instance_id)
    .bind(a.id)
    .execute(&app.state.db)
    .await
    .unwrap();
    let deploy = json!({ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g", "model_id": SMALL_MODEL });
    let (status, created) = app
        .post("/deployments", Some(&a.admin.token), deploy.clone())
        .await;
    assert_eq!(status, 202, "under no budget: {created}");
    let (status, budget) = app
        .put(
            &format!("/organizations/current/budgets/{}", a.budget_id),
            Some(&a.owner.token),
            json!({ "monthly_gpu_hours": "1.5", "stop_running": true }),
        )
        .await;
    assert_eq!(status, 200, "{budget}");
    assert_eq!(budget["consumption"]["gpu_hours"], 1.5, "{budget}");
    let (status, refused) = app
        .post("/deployments", Some(&a.admin.token), deploy.clone())
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(error_code(&refused), "BUDGET_EXCEEDED");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GPU-hour budget is 1.50"),
        "{refused}"
    );
    // The running ones are stopped through the termination path.
    inventiv_api::budgets::reconcile(&app.state).await.unwrap();
    let (live, terminating): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status NOT IN ('terminating', 'terminated', 'archived')),
                count(*) FILTER (WHERE status = 'terminating')
           FROM instances WHERE organization_id = $1",
    )
    .bind(a.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((live, terminating), (0, 2));
    let commands: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM command_outbox WHERE organization_id = $1 AND command = 'terminate'",
    )
    .bind(a.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!(commands, 2);
}

#[tokio::test]
async fn bounds_and_other_organizations() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM budgets")
            .fetch_one(&app.state.db)
            .await
            .unwrap()
    };
    let before = count().await;
    let key = a.api_key_id;
    for (body, code) in [
        (
            json!({ "scope": "api_key", "api_key_id": key, "monthly_eur": "-1" }),
            "INVALID_AMOUNT",
        ),
        (
            json!({ "scope": "api_key", "api_key_id": key, "monthly_eur": "1.23456" }),
            "INVALID_AMOUNT",
        ),
        (
            json!({ "scope": "api_key", "api_key_id": key, "monthly_tokens": -5 }),
            "INVALID_AMOUNT",
        ),
        (
            json!({ "scope": "api_key", "api_key_id": key, "monthly_tokens": 10, "thresholds": [150] }),
            "INVALID_THRESHOLDS",
        ),
        (
            json!({ "scope": "api_key", "api_key_id": key, "monthly_tokens": 10, "thresholds": [0] }),
            "INVALID_THRESHOLDS",
        ),
        (
            json!({ "scope": "api_key", "api_key_id": key }),
            "INVALID_BUDGET",
        ),
        (
            json!({ "scope": "api_key", "api_key_id": key, "monthly_gpu_hours": "3" }),
            "INVALID_BUDGET",
        ),
        (
            json!({ "scope": "share", "monthly_tokens": 10 }),
            "INVALID_SCOPE",
        ),
        (
            json!({ "scope": "team", "monthly_tokens": 10 }),
            "INVALID_SCOPE",
        ),
        (
            json!({ "scope": "api_key", "api_key_id": key, "monthly_tokens": 10, "surprise": 1 }),
            "MALFORMED_BODY",
        ),
    ] {
        let (status, answer) = app
            .post(
                "/organizations/current/budgets",
                Some(&a.owner.token),
                body.clone(),
            )
            .await;
        assert_eq!(
            (status.as_u16(), error_code(&answer)),
            (400, code),
            "{body}: {answer}"
        );
    }
    // Another organization's key: 404, like its budgets.
    let (status, _) = app
        .post(
            "/organizations/current/budgets",
            Some(&a.owner.token),
            json!({ "scope": "api_key", "api_key_id": b.api_key_id, "monthly_tokens": 10 }),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            "/organizations/current/budgets",
            Some(&a.owner.token),
            json!({ "scope": "organization", "monthly_tokens": 10 }),
        )
        .await;
    assert_eq!(status, 409, "one budget per scope");
    assert_eq!(count().await, before);
    let foreign = format!("/organizations/current/budgets/{}", b.budget_id);
    assert_eq!(app.get(&foreign, Some(&a.owner.token)).await.0, 404);
    let (status, _, _) = app
        .call(Method::DELETE, &foreign, Some(&a.owner.token), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(count().await, before);
}

/// One non-streamed call of `model` with B's key; the status and answer.
async fn call(app: &TestApp, key: &str, model: &str) -> (u16, Value) {
    let body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 4 });
    let (status, _, answer) = app
        .call(Method::POST, "/v1/chat/completions", Some(key), Some(&body))
        .await;
    (status.as_u16(), answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_share_budget_in_eur_holds_across_two_replicas() {
    let vars = [("INVENTIV_BUDGET_REFRESH_SECS", "1")];
    let app = std::sync::Arc::new(TestApp::spawn_with(&vars).await);
    let replica = std::sync::Arc::new(app.replica_with(&vars).await);
    let (_engine, a) = serving(&app, "a", &[]).await;
    let b = app.org("b").await;
    let (offering, share) = app.offer(&a, &b).await;
    // 1 EUR and 2 EUR per 1k tokens: each call reserves about 0.37 EUR.
    sqlx::query("UPDATE offering_prices SET input_eur_per_1k = 1, output_eur_per_1k = 2 WHERE offering_id = $1")
        .bind(offering)
        .execute(&app.state.db)
        .await
        .unwrap();
    app.accept_share(share, &b).await;
    let (status, budget) = app
        .post(
            "/organizations/current/budgets",
            Some(&b.admin.token),
            json!({ "scope": "share", "share_id": share, "monthly_eur": "1.5" }),
        )
        .await;
    assert_eq!(status, 201, "{budget}");
    for r in [&app, &replica] {
        r.state.routing.refresh(&r.state).await.unwrap();
        inventiv_api::budgets::reconcile(&r.state).await.unwrap();
    }
    let address = format!("{}/mock/model", a.slug);
    let (mut served, mut refusal) = (0i64, Value::Null);
    for _ in 0..100 {
        let mut wave = tokio::task::JoinSet::new();
        for i in 0..20 {
            let target = if i % 2 == 0 {
                app.clone()
            } else {
                replica.clone()
            };
            let (key, model) = (b.api_key.clone(), address.clone());
            wave.spawn(async move { call(&target, &key, &model).await });
        }
        let mut wave_served = 0;
        while let Some(done) = wave.join_next().await {
            match done.unwrap() {
                (200, _) => wave_served += 1,
                (429, body) => refusal = body,
                (s, body) => panic!("unexpected {s}: {body}"),
            }
        }
        served += wave_served;
        if wave_served == 0 {
            break;
        }
    }
    assert!(served >= 3, "{served} served");
    assert_eq!(refusal["error"]["code"], "insufficient_quota", "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("share {share}")) && message.contains("1.5000 EUR"),
        "{message}"
    );
    let charged: f64 = eventually("every charge", Duration::from_secs(10), || async {
        let (rows, sum): (i64, f64) = sqlx::query_as(
            "SELECT count(*), COALESCE(sum(charged_eur), 0)::float8 FROM usage_records WHERE share_id = $1",
        )
        .bind(share)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
        (rows == served).then_some(sum)
    })
    .await;
    assert!(
        charged > 0.0 && charged <= 1.5,
        "charged {charged} EUR of 1.5"
    );
    // Settled to the charge (each rounded up to the nano-euro), nothing held.
    let (_, shown) = replica
        .get(
            &format!(
                "/organizations/current/budgets/{}",
                budget["id"].as_str().unwrap()
            ),
            Some(&b.manager.token),
        )
        .await;
    let eur: f64 = shown["consumption"]["eur"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        eur >= charged && eur <= charged + 0.0002,
        "{eur} vs {charged}: {shown}"
    );
    assert_eq!(shown["consumption"]["reserved_eur"], "0.0000", "{shown}");
}

/// The state of a budget alert's mail: (attempts, mailed, given up, due
/// again later).
async fn alert_mail(app: &TestApp, id: i64) -> (i32, bool, bool, bool) {
    sqlx::query_as(
        "SELECT mail_attempts, mailed_at IS NOT NULL, mail_failed_at IS NOT NULL,
                COALESCE(mail_next_at > now(), false)
           FROM budget_alerts WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

/// A crossed threshold, as the watcher records it.
async fn alert(app: &TestApp, org: &Org) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO budget_alerts (budget_id, organization_id, month, metric, threshold, consumed, monthly_limit)
         VALUES ($1, $2, date_trunc('month', now())::date, 'eur', 80, 8, 10) RETURNING id",
    )
    .bind(org.budget_id)
    .bind(org.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_refused_alert_mail_is_retried_later_then_given_up_without_holding_back_others() {
    let (app, sink) = app_with_sink(&[]).await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    sink.refuse(&a.owner.email);
    // a's alert comes first: its failure must not stop b's.
    let refused = alert(&app, &a).await;
    let fine = alert(&app, &b).await;
    inventiv_api::budgets::reconcile(&app.state).await.unwrap();
    sink.wait_for(&b.owner.email, "reached 80% of its monthly limit")
        .await;
    assert!(alert_mail(&app, fine).await.1, "b's alert is marked mailed");
    assert_eq!(alert_mail(&app, refused).await, (1, false, false, true));
    // Not due yet: another round does not try again.
    inventiv_api::budgets::reconcile(&app.state).await.unwrap();
    assert_eq!(alert_mail(&app, refused).await, (1, false, false, true));

    // Due for its last attempt: refused again, it is given up for good.
    sqlx::query("UPDATE budget_alerts SET mail_attempts = 7, mail_next_at = now() WHERE id = $1")
        .bind(refused)
        .execute(&app.state.db)
        .await
        .unwrap();
    inventiv_api::budgets::reconcile(&app.state).await.unwrap();
    let (attempts, mailed, given_up, _) = alert_mail(&app, refused).await;
    assert_eq!((attempts, mailed, given_up), (8, false, true));
    let error: String = sqlx::query_scalar("SELECT mail_error FROM budget_alerts WHERE id = $1")
        .bind(refused)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert!(
        error.contains("550"),
        "the server's refusal is kept: {error}"
    );
    inventiv_api::budgets::reconcile(&app.state).await.unwrap();
    assert_eq!(alert_mail(&app, refused).await.0, 8, "never tried again");
    assert!(
        sink.messages()
            .iter()
            .all(|m| !m.to.iter().any(|t| t.eq_ignore_ascii_case(&a.owner.email))),
        "nothing reached the refused owner"
    );
}
