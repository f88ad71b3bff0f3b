//! Statements you can bill on, with the clock under the test's control (the
//! cost job's loop off; the test drives `run_once` and the adjustment
//! reconciler): a termination recorded late reopens the cost minutes past
//! it with a visible adjustment, never a silent rewrite of a closed month;
//! a closed month's statement is a snapshot that nothing changes afterwards
//! (late usage lands in the next open month as an adjustment line); totals
//! are the exact sum of their lines' cents; the JSON and CSV exports are
//! the snapshot; a correction racing the close of its month waits for it
//! and lands in the next month, never in neither.

use crate::support;

use std::time::Duration;

use crate::support::fixture::Org;
use crate::support::TestApp;
use chrono::{DateTime, Utc};
use inventiv_api::finops::adjustments::reconcile;
use inventiv_api::finops::cost_job::run_once;
use inventiv_api::finops::statement::{self, Closer, Month};
use inventiv_common::OrgId;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const CLOCKED: &[(&str, &str)] = &[("INVENTIV_COST_JOB_INTERVAL_SECS", "0")];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// "-1.04" -> -104: amounts compared as integer cents.
fn cents(amount: &str) -> i64 {
    let (sign, digits) = amount
        .strip_prefix('-')
        .map_or((1, amount), |rest| (-1, rest));
    let (units, frac) = digits.split_once('.').unwrap();
    assert_eq!(frac.len(), 2, "{amount} is not to the cent");
    sign * (units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap())
}

/// The statement's total equals the sum of its lines' cents, and each
/// subtotal the sum of its kind's.
fn assert_totals_are_sums(s: &Value) {
    let lines = s["lines"].as_array().unwrap();
    let sum = |kind: Option<&str>| -> i64 {
        lines
            .iter()
            .filter(|l| kind.is_none_or(|k| l["kind"] == k))
            .map(|l| cents(l["amount_eur"].as_str().unwrap()))
            .sum()
    };
    let t = &s["totals"];
    assert_eq!(cents(t["total_eur"].as_str().unwrap()), sum(None), "{s}");
    for (field, kind) in [
        ("gpu_eur", "gpu"),
        ("debit_eur", "debit"),
        ("credit_eur", "credit"),
        ("adjustments_eur", "adjustment"),
    ] {
        assert_eq!(cents(t[field].as_str().unwrap()), sum(Some(kind)), "{s}");
    }
}

async fn start_instance(app: &TestApp, org: &mut Org, price: &str, start: &str) -> Uuid {
    app.add_instance(org).await;
    sqlx::query("UPDATE instances SET price_eur_per_hour = $2::numeric, started_at = $3, status = 'ready' WHERE id = $1")
        .bind(org.instance_id)
        .bind(price)
        .bind(at(start))
        .execute(&app.state.db)
        .await
        .unwrap();
    org.instance_id
}

async fn statement(app: &TestApp, org: &Org, month: &str) -> Value {
    let (status, body) = app
        .get(
            &format!("/finops/statements/{month}"),
            Some(&org.owner.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn close(app: &TestApp, org: &Org, month: &str) -> Value {
    let (status, body) = app
        .post(
            &format!("/finops/statements/{month}/close"),
            Some(&org.owner.token),
            json!({ "note": "books closed" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn a_late_termination_reopens_its_minutes_with_an_adjustment_and_leaves_the_closed_month_alone(
) {
    let app = TestApp::spawn_with(CLOCKED).await;
    let mut a = app.org("a").await;
    let instance = start_instance(&app, &mut a, "2.10", "2026-03-31T23:00:00Z").await;
    // Two hours of buckets while it is thought running: one in March, one in April.
    let now = at("2026-04-01T01:00:00Z");
    assert_eq!(run_once(&app.state.db, now).await.unwrap(), 120);
    let march = statement(&app, &a, "2026-03").await;
    assert_eq!(march["closed"], Value::Null);
    assert_eq!(march["lines"][0]["kind"], "gpu");
    assert_eq!(march["lines"][0]["exact_eur"], "2.1");
    assert_eq!(march["lines"][0]["gpu_seconds"], "3600");
    let closed = close(&app, &a, "2026-03").await;
    assert_eq!(closed["closed"]["closed_by_email"], a.owner.email.as_str());
    assert_eq!(closed["closed"]["note"], "books closed");
    assert_eq!(closed["totals"]["total_eur"], "2.10");
    assert_totals_are_sums(&closed);

    // Then the end time arrives: 23:30:15, long after those minutes were counted.
    sqlx::query("UPDATE instances SET terminated_at = $2, status = 'terminated' WHERE id = $1")
        .bind(instance)
        .bind(at("2026-03-31T23:30:15Z"))
        .execute(&app.state.db)
        .await
        .unwrap();
    assert_eq!(run_once(&app.state.db, now).await.unwrap(), 0);
    assert_eq!(
        reconcile(&app.state.db, now).await.unwrap(),
        2,
        "one adjustment per month it touches"
    );
    assert_eq!(
        reconcile(&app.state.db, now).await.unwrap(),
        0,
        "a second pass records nothing"
    );

    // The cost minutes are reopened: 23:00 .. 23:30:15 is all that is left.
    let (buckets, seconds): (i64, String) = sqlx::query_as(
        "SELECT count(*), sum(seconds)::text FROM cost_buckets WHERE instance_id = $1",
    )
    .bind(instance)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((buckets, seconds.as_str()), (31, "1815.000000"));

    // The closed statement does not change.
    assert_eq!(statement(&app, &a, "2026-03").await, closed);

    // April carries the correction of March as a line (29 min 45 s at
    // 2.10 EUR/h = 1.04125 EUR back), and lists its own in-place correction.
    let april = statement(&app, &a, "2026-04").await;
    let lines = april["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{april}");
    let line = &lines[0];
    assert_eq!(line["kind"], "adjustment");
    assert_eq!(line["source_month"], "2026-03");
    assert_eq!(line["exact_eur"], "-1.04125");
    assert_eq!(line["amount_eur"], "-1.04");
    assert_eq!(line["gpu_seconds"], "-1785");
    assert_eq!(line["instance_id"], instance.to_string());
    let reason = line["reason"].as_str().unwrap();
    assert!(reason.contains("ended at 2026-03-31T23:30:15"), "{reason}");
    assert_eq!(april["totals"]["total_eur"], "-1.04");
    assert_totals_are_sums(&april);
    let corrections = april["corrections"].as_array().unwrap();
    assert_eq!(corrections.len(), 1, "{april}");
    assert_eq!(corrections[0]["kind"], "late_termination");
    assert_eq!(corrections[0]["amount_eur"], "-2.1");
    assert_eq!(corrections[0]["recorded_by"], "cost job");

    // Recorded adjustments are immutable too.
    let rewrite = sqlx::query("UPDATE statement_adjustments SET amount_eur = 0")
        .execute(&app.state.db)
        .await;
    assert!(rewrite.is_err(), "adjustments can be rewritten");
}

/// A usage row of `consumer` through `offering` at `when`, charged `eur`.
async fn usage(
    app: &TestApp,
    consumer: &Org,
    provider: &Org,
    offering: Uuid,
    when: &str,
    eur: &str,
) {
    sqlx::query(
        "INSERT INTO usage_records (request_id, at, organization_id, model, endpoint, prompt_tokens, completion_tokens,
                                    latency_ms, status, provider_organization_id, offering_id, charged_eur)
         VALUES ($1, $2, $3, 'mock/model', '/v1/chat/completions', 100, 50, 20, 200, $4, $5, $6::numeric)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(at(when))
    .bind(consumer.id)
    .bind(provider.id)
    .bind(offering)
    .bind(eur)
    .execute(&app.state.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_closed_month_is_a_snapshot_and_late_usage_lands_in_the_next_open_month() {
    let app = TestApp::spawn_with(CLOCKED).await;
    let mut consumer = app.org("consumer").await;
    let first = app.org("first").await;
    let second = app.org("second").await;
    let (offering1, _) = app.offer(&first, &consumer).await;
    let (offering2, _) = app.offer(&second, &consumer).await;
    // Two offerings at 0.006 EUR each: each line rounds to 0.01, so the
    // total is 0.02 (the sum of the lines), not round(0.012) = 0.01.
    for (provider, offering) in [(&first, offering1), (&second, offering2)] {
        usage(
            &app,
            &consumer,
            provider,
            offering,
            "2026-02-10T12:00:00Z",
            "0.003",
        )
        .await;
        usage(
            &app,
            &consumer,
            provider,
            offering,
            "2026-02-11T12:00:00Z",
            "0.003",
        )
        .await;
    }
    // And seven minutes of GPU at 0.333 EUR/h: 0.03885 EUR.
    let instance = start_instance(&app, &mut consumer, "0.333", "2026-02-01T10:00:00Z").await;
    sqlx::query("UPDATE instances SET terminated_at = '2026-02-01T10:07:00Z' WHERE id = $1")
        .bind(instance)
        .execute(&app.state.db)
        .await
        .unwrap();
    run_once(&app.state.db, at("2026-03-01T00:00:00Z"))
        .await
        .unwrap();

    // Only the owner closes, only a month that has ended, only once.
    let path = "/finops/statements/2026-02/close";
    let (status, _) = app
        .post(path, Some(&consumer.manager.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let this_month = Utc::now().format("%Y-%m").to_string();
    let (status, body) = app
        .post(
            &format!("/finops/statements/{this_month}/close"),
            Some(&consumer.owner.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, support::error_code(&body)),
        (StatusCode::CONFLICT, "MONTH_NOT_OVER")
    );
    let closed = close(&app, &consumer, "2026-02").await;
    let (status, body) = app.post(path, Some(&consumer.owner.token), json!({})).await;
    assert_eq!(
        (status, support::error_code(&body)),
        (StatusCode::CONFLICT, "ALREADY_CLOSED")
    );
    let amounts: Vec<(&str, &str)> = closed["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap(),
                l["amount_eur"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        [("debit", "0.01"), ("debit", "0.01"), ("gpu", "0.04")]
    );
    assert_eq!(closed["totals"]["debit_eur"], "0.02");
    assert_eq!(closed["totals"]["total_eur"], "0.06");
    assert_totals_are_sums(&closed);
    let (stored, audited): (String, i64) = sqlx::query_as(
        "SELECT (SELECT total_eur::text FROM statement_closes WHERE organization_id = $1),
                (SELECT count(*) FROM audit_logs WHERE organization_id = $1 AND action = 'statement.close' AND target_id = '2026-02')",
    )
    .bind(consumer.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((stored.as_str(), audited), ("0.06", 1));
    assert_eq!(closed["lines"][0]["requests"], 2);
    assert_eq!(closed["lines"][0]["tokens"], 300);

    // A request of February is metered late, after the close.
    usage(
        &app,
        &consumer,
        &first,
        offering1,
        "2026-02-20T08:00:00Z",
        "0.5",
    )
    .await;
    assert_eq!(statement(&app, &consumer, "2026-02").await, closed);

    // The exports are the snapshot, with their content types.
    let export = |format: &'static str| {
        app.http
            .get(app.url(&format!("/finops/statements/2026-02?format={format}")))
            .bearer_auth(&consumer.owner.token)
            .send()
    };
    let json_export = export("json").await.unwrap();
    assert_eq!(json_export.headers()["content-type"], "application/json");
    assert_eq!(
        json_export.headers()["content-disposition"],
        "attachment; filename=\"statement-2026-02.json\""
    );
    assert_eq!(json_export.json::<Value>().await.unwrap(), closed);
    let csv_export = export("csv").await.unwrap();
    assert_eq!(
        csv_export.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let csv = csv_export.text().await.unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next().unwrap(),
        "month,status,kind,label,source_month,gpu_seconds,requests,tokens,exact_eur,amount_eur,adjustment_id,instance_id,reason,cached_tokens"
    );
    let fields: Vec<Vec<String>> = rows
        .map(|r| {
            r.trim_matches('"')
                .split("\",\"")
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let (total, lines) = fields.split_last().unwrap();
    assert_eq!(lines.len(), 3, "{csv}");
    for (row, line) in lines.iter().zip(closed["lines"].as_array().unwrap()) {
        assert_eq!(row[1], "closed");
        assert_eq!(row[2], line["kind"].as_str().unwrap());
        assert_eq!(row[3], line["label"].as_str().unwrap());
        assert_eq!(row[8], line["exact_eur"].as_str().unwrap());
        assert_eq!(row[9], line["amount_eur"].as_str().unwrap());
    }
    assert_eq!((total[2].as_str(), total[9].as_str()), ("total", "0.06"));
    let csv_sum: i64 = lines.iter().map(|r| cents(&r[9])).sum();
    assert_eq!(csv_sum, cents(&total[9]));

    // The reconciler carries the late request into March, once.
    let now = at("2026-03-05T00:00:00Z");
    assert_eq!(reconcile(&app.state.db, now).await.unwrap(), 1);
    assert_eq!(reconcile(&app.state.db, now).await.unwrap(), 0);
    assert_eq!(statement(&app, &consumer, "2026-02").await, closed);
    let march = statement(&app, &consumer, "2026-03").await;
    let line = &march["lines"][0];
    assert_eq!(line["kind"], "adjustment", "{march}");
    assert_eq!(line["source_month"], "2026-02");
    assert_eq!(line["amount_eur"], "0.50");
    assert_eq!(line["label"], format!("Calls to {}/mock/model", first.slug));
    assert!(line["reason"]
        .as_str()
        .unwrap()
        .contains("recorded after 2026-02 was closed"));
    assert_eq!(march["totals"]["total_eur"], "0.50");

    // March closes with the adjustment line in it; nothing is carried twice.
    let march_closed = close(&app, &consumer, "2026-03").await;
    assert_eq!(march_closed["lines"], march["lines"]);
    assert_totals_are_sums(&march_closed);
    assert_eq!(
        reconcile(&app.state.db, at("2026-04-02T00:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        statement(&app, &consumer, "2026-04").await["lines"],
        json!([])
    );

    // The provider's February is still open: its credit holds all three calls.
    let provider_feb = statement(&app, &first, "2026-02").await;
    assert_eq!(provider_feb["lines"][0]["kind"], "credit");
    assert_eq!(provider_feb["lines"][0]["requests"], 3);
    assert_eq!(provider_feb["lines"][0]["amount_eur"], "-0.51");
    assert_totals_are_sums(&provider_feb);

    // The snapshot cannot be rewritten, even from inside the database.
    let rewrite = sqlx::query("UPDATE statement_lines SET amount_eur = 0, exact_eur = 0")
        .execute(&app.state.db)
        .await;
    assert!(rewrite.is_err(), "a closed statement can be rewritten");
    let delete = sqlx::query("DELETE FROM statement_closes")
        .execute(&app.state.db)
        .await;
    assert!(delete.is_err(), "a closed month can be reopened");

    // Managers read; another organization sees only its own.
    let (status, _) = app
        .get("/finops/statements/2026-02", Some(&consumer.manager.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let stranger = app.org("stranger").await;
    let theirs = statement(&app, &stranger, "2026-02").await;
    assert_eq!(theirs["lines"], json!([]));
    assert_eq!(theirs["closed"], Value::Null);
}

#[tokio::test]
async fn a_correction_racing_the_close_of_its_month_lands_in_the_next_month_not_in_the_void() {
    let app = TestApp::spawn_with(CLOCKED).await;
    let mut a = app.org("a").await;
    let instance = start_instance(&app, &mut a, "6.00", "2026-05-31T23:00:00Z").await;
    let now = at("2026-06-01T00:30:00Z");
    assert_eq!(run_once(&app.state.db, now).await.unwrap(), 90);
    sqlx::query("UPDATE instances SET terminated_at = '2026-05-31T23:45:00Z' WHERE id = $1")
        .bind(instance)
        .execute(&app.state.db)
        .await
        .unwrap();

    // May is being closed (its transaction not committed yet) when the
    // reconciler comes to correct it: the correction waits for the close.
    let mut closing = app.state.db.begin().await.unwrap();
    let by = Closer {
        user_id: a.owner.user_id,
        email: &a.owner.email,
        note: None,
    };
    statement::close(
        &mut closing,
        OrgId(a.id),
        Month::parse("2026-05").unwrap(),
        by,
        Utc::now(),
    )
    .await
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    let db = app.state.db.clone();
    let reconciler = tokio::spawn(async move { reconcile(&db, now).await });
    support::eventually(
        "the reconciler to wait for the close",
        Duration::from_secs(10),
        || async {
            let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)",
        )
        .fetch_one(&app.state.db)
        .await
        .unwrap();
            waiting.then_some(())
        },
    )
    .await;
    closing.commit().await.unwrap();
    assert_eq!(reconciler.await.unwrap().unwrap(), 2);

    // May keeps the hour it was closed with (6.00); June carries the 15
    // minutes given back (-1.50) and holds its own 30 minutes corrected in place.
    let may = statement(&app, &a, "2026-05").await;
    assert_eq!(may["totals"]["total_eur"], "6.00");
    let june = statement(&app, &a, "2026-06").await;
    let lines = june["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{june}");
    assert_eq!(
        (
            &lines[0]["kind"],
            &lines[0]["source_month"],
            &lines[0]["amount_eur"]
        ),
        (&json!("adjustment"), &json!("2026-05"), &json!("-1.50"))
    );
    assert_eq!(june["corrections"][0]["amount_eur"], "-3");
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM statement_adjustments a
          WHERE EXISTS (SELECT 1 FROM statement_closes c WHERE c.organization_id = a.organization_id AND c.month = a.statement_month)
            AND NOT EXISTS (SELECT 1 FROM statement_lines l WHERE l.adjustment_id = a.id)
            AND a.statement_month <> a.period_month",
    )
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!(
        orphans, 0,
        "an adjustment carried by a closed month missing from its snapshot"
    );
}

#[tokio::test]
async fn cost_minutes_written_after_the_close_are_carried_to_the_next_month() {
    let app = TestApp::spawn_with(CLOCKED).await;
    let mut a = app.org("a").await;
    start_instance(&app, &mut a, "1.20", "2026-07-31T22:00:00Z").await;
    // The cost job is behind: it has written only the first hour of the two.
    assert_eq!(
        run_once(&app.state.db, at("2026-07-31T23:00:00Z"))
            .await
            .unwrap(),
        60
    );
    let closed = close(&app, &a, "2026-07").await;
    assert_eq!(closed["totals"]["total_eur"], "1.20");

    // It catches up; the last hour of July is billed on August's statement.
    let now = at("2026-08-01T00:10:00Z");
    assert_eq!(run_once(&app.state.db, now).await.unwrap(), 70);
    assert_eq!(reconcile(&app.state.db, now).await.unwrap(), 1);
    assert_eq!(statement(&app, &a, "2026-07").await, closed);
    let august = statement(&app, &a, "2026-08").await;
    let kinds: Vec<(&str, &str, &str)> = august["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap(),
                l["source_month"].as_str().unwrap(),
                l["amount_eur"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("gpu", "2026-08", "0.20"),
            ("adjustment", "2026-07", "1.20")
        ],
        "{august}"
    );
    assert_eq!(august["lines"][1]["gpu_seconds"], "3600");
    assert_eq!(august["totals"]["total_eur"], "1.40");
    assert_totals_are_sums(&august);
}
