//! `GET /usage/requests` and `GET /usage/latency`: filters, pages that
//! neither skip nor repeat a request (ties on the time included), nothing of
//! another organization, key names hidden from a `user` for others' keys,
//! and percentiles on known data.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, DurationRound, Utc};

use crate::support::{error_code, TestApp};
use serde_json::Value;
use uuid::Uuid;

/// The time requests are placed before, to the second.
static BASE: LazyLock<DateTime<Utc>> = LazyLock::new(|| {
    Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap()
});

/// One metered request, `seconds_ago` before the test's start (to the
/// second, the same for every row: ties on the time are meant).
struct Rec<'a> {
    request_id: &'a str,
    seconds_ago: i32,
    key: Option<Uuid>,
    user: Option<Uuid>,
    model: &'a str,
    status: i32,
    latency_ms: i32,
    ttft_ms: Option<i32>,
}

async fn record(app: &TestApp, org: Uuid, r: Rec<'_>) {
    let base = *BASE;
    sqlx::query(
        "INSERT INTO usage_records (request_id, at, organization_id, api_key_id, user_id, model, endpoint,
                                    prompt_tokens, completion_tokens, latency_ms, ttft_ms, status, streamed)
         VALUES ($1, $10 - make_interval(secs => $2), $3, $4, $5, $6, '/v1/chat/completions',
                 12, 34, $7, $8, $9, $8 IS NOT NULL)",
    )
    .bind(r.request_id)
    .bind(f64::from(r.seconds_ago))
    .bind(org)
    .bind(r.key)
    .bind(r.user)
    .bind(r.model)
    .bind(r.latency_ms)
    .bind(r.ttft_ms)
    .bind(r.status)
    .bind(base)
    .execute(&app.state.db)
    .await
    .unwrap();
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["request_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `query`, `limit` at a time: the request ids in order.
async fn all_pages(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let cursor = before.map(|b| format!("&before={b}")).unwrap_or_default();
        let (status, page) = app
            .get(
                &format!("/usage/requests?limit={limit}{query}{cursor}"),
                Some(token),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let got = ids(&page);
        assert!(got.len() <= limit, "{page}");
        out.extend(got);
        match page["next_before"].as_str() {
            Some(next) => {
                assert_eq!(page["items"].as_array().unwrap().len(), limit);
                before = Some(next.to_owned());
            }
            None => return out,
        }
    }
}

/// Organization A: 23 requests, three to a second (ties on the time),
/// models alternating, every fifth a 500, every seventh else a 429, even
/// ones through the fixture key; B: the same times and models.
async fn seeded(app: &TestApp) -> (crate::support::fixture::Org, crate::support::fixture::Org) {
    let a = app.org("a").await;
    let b = app.org("b").await;
    for (org, tag) in [(&a, "a"), (&b, "b")] {
        let n = if tag == "a" { 23 } else { 5 };
        for i in 0..n {
            let status = match i {
                i if i % 5 == 0 => 500,
                i if i % 7 == 0 => 429,
                _ => 200,
            };
            let via_key = i % 2 == 0;
            record(
                app,
                org.id,
                Rec {
                    request_id: &format!("req-{tag}-{i}"),
                    seconds_ago: 10 + i / 3,
                    key: via_key.then_some(org.api_key_id),
                    user: Some(if via_key {
                        org.spare.user_id
                    } else {
                        org.owner.user_id
                    }),
                    model: if i % 2 == 0 { "m/one" } else { "m/two" },
                    status,
                    latency_ms: 100 + i,
                    ttft_ms: None,
                },
            )
            .await;
        }
    }
    (a, b)
}

#[tokio::test]
async fn pages_cover_every_request_once_newest_first_and_nothing_of_another_organization() {
    let app = TestApp::spawn().await;
    let (a, b) = seeded(&app).await;
    for limit in [1, 4, 5, 50] {
        let got = all_pages(&app, &a.user.token, "", limit).await;
        let expected: HashSet<String> = (0..23).map(|i| format!("req-a-{i}")).collect();
        assert_eq!(got.len(), 23, "limit {limit}: {got:?}");
        assert_eq!(
            got.iter().cloned().collect::<HashSet<_>>(),
            expected,
            "limit {limit}"
        );
    }
    // Newest first: the time never increases down the list.
    let (_, page) = app
        .get("/usage/requests?limit=200", Some(&a.owner.token))
        .await;
    let times: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["at"].as_str().unwrap())
        .collect();
    let parsed: Vec<DateTime<Utc>> = times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert_eq!(page["next_before"], Value::Null);
    let first = &page["items"][0];
    assert_eq!(first["prompt_tokens"], 12);
    assert_eq!(first["completion_tokens"], 34);
    assert_eq!(first["endpoint"], "/v1/chat/completions");
    // B sees its own five, never A's; A's request id means nothing to B.
    let got = all_pages(&app, &b.owner.token, "", 2).await;
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|id| id.starts_with("req-b-")), "{got:?}");
    let (_, page) = app
        .get("/usage/requests?request_id=req-a-3", Some(&b.owner.token))
        .await;
    assert_eq!(ids(&page), Vec::<String>::new());
    let (_, page) = app
        .get(
            &format!("/usage/requests?api_key_id={}", a.api_key_id),
            Some(&b.owner.token),
        )
        .await;
    assert_eq!(ids(&page), Vec::<String>::new());
}

#[tokio::test]
async fn filters_by_model_key_status_time_and_request_id() {
    let app = TestApp::spawn().await;
    let (a, _b) = seeded(&app).await;
    let set = |f: &dyn Fn(i32) -> bool| -> HashSet<String> {
        (0..23)
            .filter(|&i| f(i))
            .map(|i| format!("req-a-{i}"))
            .collect()
    };
    let is_500 = |i: i32| i % 5 == 0;
    let is_429 = |i: i32| i % 5 != 0 && i % 7 == 0;
    let cases: Vec<(String, HashSet<String>)> = vec![
        ("&model=m/one".into(), set(&|i| i % 2 == 0)),
        ("&model=m/none".into(), HashSet::new()),
        (
            format!("&api_key_id={}", a.api_key_id),
            set(&|i| i % 2 == 0),
        ),
        ("&status=ok".into(), set(&|i| !is_500(i) && !is_429(i))),
        ("&status=error".into(), set(&|i| is_500(i) || is_429(i))),
        ("&status=4xx".into(), set(&is_429)),
        ("&status=5xx".into(), set(&is_500)),
        ("&request_id=req-a-7".into(), set(&|i| i == 7)),
        (
            "&model=m/two&status=error".into(),
            set(&|i| i % 2 == 1 && (is_500(i) || is_429(i))),
        ),
    ];
    for (query, expected) in cases {
        let got = all_pages(&app, &a.owner.token, &query, 3).await;
        assert_eq!(got.len(), expected.len(), "{query}: {got:?}");
        assert_eq!(got.into_iter().collect::<HashSet<_>>(), expected, "{query}");
    }
    // The time window: [from, to) on the stored times (seconds 10 to 17 ago).
    let (_, page) = app
        .get("/usage/requests?limit=1", Some(&a.owner.token))
        .await;
    let newest: DateTime<Utc> = page["items"][0]["at"].as_str().unwrap().parse().unwrap();
    let from =
        (newest - chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = newest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let got = all_pages(&app, &a.owner.token, &format!("&from={from}&to={to}"), 2).await;
    assert_eq!(
        got.into_iter().collect::<HashSet<_>>(),
        set(&|i| (3..6).contains(&i))
    );
    let (status, answer) = app
        .get(
            &format!("/usage/requests?from={to}&to={from}"),
            Some(&a.owner.token),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&answer), "INVALID_QUERY");
}

#[tokio::test]
async fn a_user_sees_key_names_only_for_their_own_keys() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    // A key of the `user` member, beside the fixture key of `spare` (a user too).
    let key = inventiv_api::auth::api_key::generate();
    let own_key = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO api_keys (id, organization_id, created_by, name, public_id, secret_hash, last_four)
         VALUES ($1, $2, $3, 'user key', $4, $5, $6)",
    )
    .bind(own_key)
    .bind(a.id)
    .bind(a.user.user_id)
    .bind(&key.public_id)
    .bind(&key.hash)
    .bind(&key.last_four)
    .execute(&app.state.db)
    .await
    .unwrap();
    for (id, k, u) in [
        ("by-user", own_key, a.user.user_id),
        ("by-spare", a.api_key_id, a.spare.user_id),
    ] {
        record(
            &app,
            a.id,
            Rec {
                request_id: id,
                seconds_ago: 5,
                key: Some(k),
                user: Some(u),
                model: "m/one",
                status: 200,
                latency_ms: 10,
                ttft_ms: None,
            },
        )
        .await;
    }
    let prefix = format!("inv_{}", key.public_id);
    let shown = |page: &Value, id: &str| -> (Value, Value, Value) {
        let item = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["request_id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {page}"));
        (
            item["api_key_id"].clone(),
            item["api_key_name"].clone(),
            item["api_key_prefix"].clone(),
        )
    };
    let (_, page) = app.get("/usage/requests", Some(&a.user.token)).await;
    assert_eq!(
        shown(&page, "by-user"),
        (
            own_key.to_string().into(),
            "user key".into(),
            prefix.clone().into()
        )
    );
    assert_eq!(
        shown(&page, "by-spare"),
        (a.api_key_id.to_string().into(), Value::Null, Value::Null)
    );
    assert!(page["items"][0]["user_email"].as_str().is_some(), "{page}");
    let (_, page) = app.get("/usage/requests", Some(&a.spare.token)).await;
    assert_eq!(shown(&page, "by-user").1, Value::Null);
    assert_eq!(shown(&page, "by-spare").1, "fixture key");
    for who in [&a.owner, &a.admin, &a.manager] {
        let (_, page) = app.get("/usage/requests", Some(&who.token)).await;
        assert_eq!(shown(&page, "by-user").2, prefix.as_str());
        assert_eq!(shown(&page, "by-spare").1, "fixture key");
    }
}

#[tokio::test]
async fn latency_percentiles_ttft_and_error_rate_per_model() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    // m/lat: 100 successes of 1..=100 ms, the first 40 streamed with a TTFT
    // of 10..=400 ms; 25 slow failures. m/down: failures only.
    for i in 1..=100 {
        record(
            &app,
            a.id,
            Rec {
                request_id: &format!("ok-{i}"),
                seconds_ago: 60,
                key: None,
                user: None,
                model: "m/lat",
                status: 200,
                latency_ms: i,
                ttft_ms: (i <= 40).then_some(i * 10),
            },
        )
        .await;
    }
    for i in 0..25 {
        for (org, model) in [(a.id, "m/lat"), (a.id, "m/down"), (b.id, "m/lat")] {
            record(
                &app,
                org,
                Rec {
                    request_id: &format!("err-{org}-{model}-{i}"),
                    seconds_ago: 60,
                    key: None,
                    user: None,
                    model,
                    status: 502,
                    latency_ms: 100_000,
                    ttft_ms: None,
                },
            )
            .await;
        }
    }
    // Outside the default 24 hours.
    record(
        &app,
        a.id,
        Rec {
            request_id: "old",
            seconds_ago: 25 * 3600,
            key: None,
            user: None,
            model: "m/old",
            status: 200,
            latency_ms: 5,
            ttft_ms: None,
        },
    )
    .await;
    let (status, lines) = app.get("/usage/latency", Some(&a.user.token)).await;
    assert_eq!(status, 200, "{lines}");
    let lines = lines.as_array().unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (down, lat) = (&lines[0], &lines[1]);
    assert_eq!(down["model"], "m/down");
    assert_eq!(down["requests"], 25);
    assert_eq!(down["error_rate"], 1.0);
    assert_eq!(down["latency_p50_ms"], Value::Null);
    assert_eq!(lat["model"], "m/lat");
    assert_eq!(lat["requests"], 125);
    assert_eq!(lat["errors"], 25);
    assert_eq!(lat["error_rate"], 0.2);
    assert_eq!(lat["latency_p50_ms"], 50);
    assert_eq!(lat["latency_p95_ms"], 95);
    assert_eq!(lat["ttft_p50_ms"], 200);
    assert_eq!(lat["ttft_p95_ms"], 380);
    // A wider window takes the old request in.
    let from =
        (Utc::now() - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, lines) = app
        .get(&format!("/usage/latency?from={from}"), Some(&a.owner.token))
        .await;
    assert!(
        lines
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["model"] == "m/old"),
        "{lines}"
    );
    // Bounded: at most 92 days, from before to.
    for query in [
        "from=2026-01-01T00:00:00Z&to=2026-04-03T00:00:01Z",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let (status, answer) = app
            .get(&format!("/usage/latency?{query}"), Some(&a.owner.token))
            .await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(error_code(&answer), "INVALID_QUERY");
    }
    let (status, _) = app
        .get(
            "/usage/latency?from=2026-01-01T00:00:00Z&to=2026-04-03T00:00:00Z",
            Some(&a.owner.token),
        )
        .await;
    assert_eq!(status, 200);
}
