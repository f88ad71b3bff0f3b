//! `inventiv_organization_cost_eur`, with the clock under the test's control
//! (the cost job's loop off): each organization's cost of the month per
//! line kind, served on the metrics listener, adds up to the exact sum of
//! the lines of its open month's statement; a new month starts from what
//! it carries (an adjustment), and the previous month leaves the gauges.

use std::collections::BTreeMap;

use crate::support::fixture::Org;
use crate::support::TestApp;
use chrono::{DateTime, Utc};
use inventiv_api::finops::adjustments::reconcile;
use inventiv_api::finops::cost_job::run_once;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

const CLOCKED: &[(&str, &str)] = &[("INVENTIV_COST_JOB_INTERVAL_SECS", "0")];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A usage row of `consumer` through `provider`'s `offering` at `when`, charged `eur`.
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

/// The gauges of the metrics listener: (organization, kind) -> EUR.
async fn scraped(app: &TestApp) -> BTreeMap<(String, String), f64> {
    let text = app.metrics().await;
    assert!(
        text.contains("# TYPE inventiv_organization_cost_eur gauge\n"),
        "{text}"
    );
    text.lines()
        .filter_map(|l| l.strip_prefix("inventiv_organization_cost_eur{organization_id=\""))
        .map(|l| {
            let (org, rest) = l.split_once("\",kind=\"").unwrap();
            let (kind, value) = rest.split_once("\"} ").unwrap();
            ((org.to_owned(), kind.to_owned()), value.parse().unwrap())
        })
        .collect()
}

/// The exact sum of the lines of an organization's statement of `month`.
async fn statement_sum(app: &TestApp, org: &Org, month: &str) -> f64 {
    let (status, body) = app
        .get(
            &format!("/finops/statements/{month}"),
            Some(&org.owner.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["exact_eur"].as_str().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-9, "{what}: {got}, want {want}");
}

#[tokio::test]
async fn organization_costs_of_the_month_add_up_to_their_open_statement() {
    let app = TestApp::spawn_with(CLOCKED).await;
    let mut consumer = app.org("consumer").await;
    let provider = app.org("provider").await;
    let idle = app.org("idle").await;
    let (offering, _) = app.offer(&provider, &consumer).await;
    // Seven minutes of GPU at 0.333 EUR/h in February: 0.03885 EUR.
    app.add_instance(&mut consumer).await;
    sqlx::query(
        "UPDATE instances SET price_eur_per_hour = 0.333, status = 'terminated',
                started_at = '2026-02-01T10:00:00Z', terminated_at = '2026-02-01T10:07:00Z' WHERE id = $1",
    )
    .bind(consumer.instance_id)
    .execute(&app.state.db)
    .await
    .unwrap();
    run_once(&app.state.db, at("2026-03-01T00:00:00Z"))
        .await
        .unwrap();
    // Two calls through the share in February, one in January (not this month's).
    for when in ["2026-02-10T12:00:00Z", "2026-02-11T12:00:00Z"] {
        usage(&app, &consumer, &provider, offering, when, "0.003").await;
    }
    usage(
        &app,
        &consumer,
        &provider,
        offering,
        "2026-01-31T23:59:59Z",
        "0.7",
    )
    .await;

    // Nothing measured yet: the family, no series.
    assert!(scraped(&app).await.is_empty());
    let costs = &app.state.metrics.costs;
    costs
        .refresh(&app.state.db, at("2026-02-20T00:00:00Z"))
        .await
        .unwrap();
    let february = scraped(&app).await;
    let (c, p) = (consumer.id.to_string(), provider.id.to_string());
    // Gpu and debit of the consumer, credit of the provider; nothing for
    // the idle organization.
    let series: Vec<(String, String)> = february.keys().cloned().collect();
    let mut want = vec![
        (c.clone(), "debit".to_owned()),
        (c.clone(), "gpu".to_owned()),
        (p.clone(), "credit".to_owned()),
    ];
    want.sort();
    assert_eq!(series, want, "idle: {}", idle.id);
    assert_close(february[&(c.clone(), "gpu".into())], 0.03885, "GPU");
    assert_close(february[&(c.clone(), "debit".into())], 0.006, "debit");
    assert_close(february[&(p.clone(), "credit".into())], -0.006, "credit");
    for (org, id) in [(&consumer, &c), (&provider, &p)] {
        let gauge: f64 = february
            .iter()
            .filter(|((o, _), _)| o == id)
            .map(|(_, v)| v)
            .sum();
        assert_close(
            gauge,
            statement_sum(&app, org, "2026-02").await,
            "February's statement",
        );
    }

    // February is closed; a call of February metered late is carried into
    // March as an adjustment, and February leaves the gauges.
    let (status, body) = app
        .post(
            "/finops/statements/2026-02/close",
            Some(&consumer.owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    usage(
        &app,
        &consumer,
        &provider,
        offering,
        "2026-02-20T08:00:00Z",
        "0.5",
    )
    .await;
    let march = at("2026-03-05T00:00:00Z");
    assert_eq!(reconcile(&app.state.db, march).await.unwrap(), 1);
    costs.refresh(&app.state.db, march).await.unwrap();
    let now = scraped(&app).await;
    assert_eq!(
        now.keys().cloned().collect::<Vec<_>>(),
        [(c.clone(), "adjustment".to_owned())],
        "{now:?}"
    );
    assert_close(now[&(c.clone(), "adjustment".into())], 0.5, "adjustment");
    assert_close(
        0.5,
        statement_sum(&app, &consumer, "2026-03").await,
        "March's statement",
    );
}
