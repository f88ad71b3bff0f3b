//! GPU-hour costs with the clock under the test's control: the cost job
//! (driven through `run_once(now)`, its background loop disabled) turns an
//! instance's running time into minute buckets; 90.5 minutes at 2.10 EUR/h
//! cost exactly 3.1675 EUR, whether the job runs once, twice, in two
//! replicas at once, or stops half-way and catches up later. The cost routes
//! report it to owners and managers of the organization only.

use crate::support;

use crate::support::TestApp;
use chrono::{DateTime, Duration, Utc};
use inventiv_api::finops::cost_job::{run_once, LOCK_KEY};
use reqwest::StatusCode;
use serde_json::Value;

/// The background loop off: the test drives the job and its clock.
const CLOCKED: &[(&str, &str)] = &[("INVENTIV_COST_JOB_INTERVAL_SECS", "0")];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// (buckets, distinct minutes, first minute, last minute, Σ seconds, Σ cost rounded to 4).
type Summary = (i64, i64, DateTime<Utc>, DateTime<Utc>, String, String);

async fn summary(app: &TestApp, instance: uuid::Uuid) -> Summary {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT minute), min(minute), max(minute), sum(seconds)::text, round(sum(cost_eur), 4)::text
           FROM cost_buckets WHERE instance_id = $1",
    )
    .bind(instance)
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn ninety_and_a_half_minutes_at_2_10_cost_exactly_3_1675_across_a_restart() {
    let app = TestApp::spawn_with(CLOCKED).await;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    // Started 20 s into a minute: the first and last buckets are partial.
    let start = at("2026-03-02T10:00:20Z");
    let end = start + Duration::seconds(90 * 60 + 30);
    sqlx::query("UPDATE instances SET price_eur_per_hour = 2.10, started_at = $2, status = 'ready' WHERE id = $1")
        .bind(a.instance_id)
        .bind(start)
        .execute(&app.state.db)
        .await
        .unwrap();

    // Half-way, running: 45 closed minutes (10:00 .. 10:44), the first one 40 s.
    let half = start + Duration::minutes(45);
    assert_eq!(run_once(&app.state.db, half).await.unwrap(), 45);
    let s = summary(&app, a.instance_id).await;
    assert_eq!((s.0, s.1, s.4.as_str()), (45, 45, "2680.000000"));
    // The same pass again, in two replicas at once: nothing more.
    let replica = app.replica_with(CLOCKED).await;
    let (x, y) = tokio::join!(
        run_once(&app.state.db, half),
        run_once(&replica.state.db, half)
    );
    assert_eq!(x.unwrap() + y.unwrap(), 0);

    // The instance is terminated. A pass dies mid-step: it holds the lock
    // and wrote a bucket, but never commits.
    sqlx::query("UPDATE instances SET terminated_at = $2, status = 'terminated' WHERE id = $1")
        .bind(a.instance_id)
        .bind(end)
        .execute(&app.state.db)
        .await
        .unwrap();
    let later = end + Duration::hours(2);
    let mut dying = app.state.db.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *dying)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO cost_buckets (instance_id, minute, organization_id, provider, instance_type, model_id, seconds, price_eur_per_hour, cost_eur)
         VALUES ($1, '2026-03-02T10:45:00Z', $2, 'mock', 'mock-1gpu-24g', 'mock/model', 60, 2.10, 0.035)",
    )
    .bind(a.instance_id)
    .bind(a.id)
    .execute(&mut *dying)
    .await
    .unwrap();
    assert_eq!(
        run_once(&replica.state.db, later).await.unwrap(),
        0,
        "another pass holds the lock"
    );
    drop(dying);
    replica.stop().await;

    // Restarted (two replicas racing), the job catches up from the watermark.
    let restarted = app.replica_with(CLOCKED).await;
    let (x, y) = tokio::join!(
        run_once(&app.state.db, later),
        run_once(&restarted.state.db, later)
    );
    assert_eq!(x.unwrap() + y.unwrap(), 46, "10:45 .. 11:30");
    assert_eq!(
        run_once(&restarted.state.db, later + Duration::days(3))
            .await
            .unwrap(),
        0
    );

    let (buckets, minutes, first, last, seconds, cost) = summary(&app, a.instance_id).await;
    assert_eq!(buckets, 91, "10:00 .. 11:30, one bucket per minute");
    assert_eq!(minutes, 91, "no minute counted twice");
    assert_eq!(
        (first, last),
        (at("2026-03-02T10:00:00Z"), at("2026-03-02T11:30:00Z")),
        "no gap"
    );
    assert_eq!(seconds, "5430.000000", "90.5 minutes");
    assert_eq!(cost, "3.1675");

    // The route says the same, to a manager; the CSV too.
    let series = "/finops/cost/series?from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z&bucket=day&group_by=instance_type";
    let (status, body) = app.get(series, Some(&a.manager.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body[0]["cost_eur"], "3.1675");
    assert_eq!(body[0]["group"], "mock:mock-1gpu-24g");
    assert_eq!(body[0]["bucket"], "2026-03-02T00:00:00Z");
    let (_, hourly) = app
        .get(
            &series.replace("bucket=day", "bucket=hour"),
            Some(&a.owner.token),
        )
        .await;
    let hours: Vec<&str> = hourly
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["cost_eur"].as_str().unwrap())
        .collect();
    // 10:00:20-11:00 = 59m40s, 11:00-11:30:50 = 30m50s at 2.10/h.
    assert_eq!(hours, ["2.0883", "1.0792"]);
    let csv = app
        .get_text(&format!("{series}&format=csv"), &a.owner.token)
        .await;
    assert!(csv.starts_with("bucket,group,cost_eur,seconds\n"), "{csv}");
    assert!(csv.contains("\"3.1675\",\"5430.000000\""), "{csv}");

    // Another organization sees none of it; a plain user may not look.
    let b = app.org("b").await;
    let (_, other) = app.get(series, Some(&b.owner.token)).await;
    assert_eq!(other, Value::Array(vec![]));
    let (status, _) = app.get(series, Some(&a.user.token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .get(
            "/finops/cost/series?bucket=minute&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            Some(&a.owner.token),
        )
        .await;
    assert_eq!(
        (status, support::error_code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_QUERY")
    );
}

#[tokio::test]
async fn the_burn_rate_forecasts_what_runs_now() {
    let app = TestApp::spawn_with(CLOCKED).await;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    let running = a.instance_id;
    app.add_instance(&mut a).await;
    let stopped = a.instance_id;
    for (id, price, terminated) in [(running, "2.10", None), (stopped, "5.00", Some(Utc::now()))] {
        sqlx::query("UPDATE instances SET price_eur_per_hour = $2::numeric, started_at = now() - interval '1 hour', terminated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(price)
            .bind(terminated)
            .execute(&app.state.db)
            .await
            .unwrap();
    }
    let (status, now) = app.get("/finops/cost/current", Some(&a.owner.token)).await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(now["running_instances"], 1);
    assert_eq!(now["per_minute_eur"], "0.0350");
    assert_eq!(now["per_hour_eur"], "2.1000");
    assert_eq!(now["per_day_eur"], "50.4000");
    assert_eq!(now["per_30_days_eur"], "1512.0000");
    assert_eq!(now["per_365_days_eur"], "18396.0000");
    assert_eq!(now["instances"][0]["instance_id"], running.to_string());
    let (status, _) = app.get("/finops/cost/current", Some(&a.admin.token)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "costs are for owners and managers"
    );
}
