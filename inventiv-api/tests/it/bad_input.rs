//! Bad input to every route: malformed JSON, wrong content type, huge
//! bodies, missing, mistyped, over-long, out-of-bounds and unknown fields, invalid emails,
//! unparsable path and query parameters. Each gets a 4xx in the error shape,
//! never a 5xx, and leaves the database exactly as it was.
//!
//! Mutations are derived from each route's request schema in the OpenAPI
//! document, so new routes are covered as soon as they have a row in the
//! route table.

use crate::support::matrix::{fill, token_for, MATRIX};
use crate::support::TestApp;
use reqwest::Method;
use serde_json::{json, Map, Value};

/// A digest of every row of every table (but the migration bookkeeping, and
/// a session's `last_seen_at`: any authenticated request stamps it, at most
/// once a minute, whatever its body; a run longer than a minute sees it).
async fn fingerprint(app: &TestApp) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    let mut all = String::new();
    for table in tables {
        // Table names come from the catalog, not from input.
        let digest: Option<String> = sqlx::query_scalar(&format!(
            "SELECT md5(string_agg(r::text, '|' ORDER BY r::text))
               FROM (SELECT to_jsonb(t) - 'last_seen_at' AS r FROM \"{table}\" t) stamped"
        ))
        .fetch_one(&app.state.db)
        .await
        .unwrap();
        all.push_str(&format!("{table}:{}\n", digest.unwrap_or_default()));
    }
    all
}

/// The request schema of an operation, resolved through `$ref`.
fn request_schema<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let op = &doc["paths"][path][method.to_lowercase()];
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    if schema["type"] == "object" {
        // Inline (e.g. the /v1 bodies, passed through to the engine).
        return Some(schema);
    }
    let reference = schema["$ref"]
        .as_str()
        .or_else(|| schema["oneOf"][1]["$ref"].as_str())?;
    let name = reference.rsplit('/').next()?;
    Some(&doc["components"]["schemas"][name])
}

/// A value of the wrong type for a property schema.
fn wrong_type(prop: &Value) -> Value {
    match prop["type"].as_str().or_else(|| prop["type"][0].as_str()) {
        Some("string") => json!(12345),
        Some("boolean") => json!("yes"),
        Some("integer" | "number") => json!("many"),
        _ => json!({ "nested": [1, 2] }),
    }
}

fn is_string(prop: &Value) -> bool {
    prop["type"] == "string"
        || prop["type"][0] == "string"
        || prop["$ref"].is_string()
        || prop["enum"].is_array()
}

/// Every mutation of a valid body: (description, body text).
fn mutations(schema: &Value, valid: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = vec![
        ("malformed JSON".to_owned(), "{\"".to_owned()),
        ("an array".to_owned(), "[]".to_owned()),
        ("a string".to_owned(), "\"hello\"".to_owned()),
        ("null".to_owned(), "null".to_owned()),
    ];
    let mut unknown = valid.clone();
    unknown.insert("unexpected_field".into(), json!(1));
    out.push((
        "an unknown field".into(),
        Value::Object(unknown).to_string(),
    ));
    let empty = Map::new();
    let props = schema["properties"].as_object().unwrap_or(&empty);
    for (name, prop) in props {
        let mut body = valid.clone();
        body.insert(name.clone(), wrong_type(prop));
        out.push((
            format!("{name} of the wrong type"),
            Value::Object(body).to_string(),
        ));
        if is_string(prop) {
            let mut body = valid.clone();
            body.insert(name.clone(), json!("x".repeat(5_000)));
            out.push((format!("{name} over-long"), Value::Object(body).to_string()));
        }
        // Below or above the bounds the schema declares.
        let bounds = [
            ("minimum", prop["minimum"].as_i64().map(|m| m - 1)),
            ("maximum", prop["maximum"].as_i64().map(|m| m + 1)),
        ];
        for (bound, outside) in bounds {
            if let Some(v) = outside {
                let mut body = valid.clone();
                body.insert(name.clone(), json!(v));
                out.push((
                    format!("{name} past its {bound}"),
                    Value::Object(body).to_string(),
                ));
            }
        }
        if prop["format"] == "email" {
            let mut body = valid.clone();
            body.insert(name.clone(), json!("not-an-email"));
            out.push((
                format!("{name} not an email"),
                Value::Object(body).to_string(),
            ));
        }
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let mut body = valid.clone();
        body.remove(required.as_str().unwrap());
        out.push((
            format!("{required} missing"),
            Value::Object(body).to_string(),
        ));
    }
    out
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> (u16, Value) {
    // A server that refuses an oversized body may close the connection while
    // the client still writes it; the answer is then lost with the write, so
    // such a send is tried again (a few times; a real failure persists).
    let mut attempt = 0;
    let res = loop {
        let sent = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(res) => break res,
            Err(e) if e.is_request() && attempt < 5 => attempt += 1,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    };
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_to_every_route_get_a_4xx_and_store_nothing() {
    // A small body limit, so that an oversized body still fits in the socket
    // buffers: the client finishes writing before reading the 413 (with
    // megabytes, the server's early answer races the client's writes).
    let app = TestApp::spawn_with(&[
        ("INVENTIV_OPEN_SIGNUP", "true"),
        ("INVENTIV_MAX_BODY_BYTES", "65536"),
    ])
    .await;
    let doc = app.get("/openapi.json", None).await.1;
    let mut a = app.org("a").await;
    app.add_instance(&mut a).await;
    app.add_offerings(&mut a).await;
    app.add_service(&mut a).await;
    app.add_host(&mut a).await;
    let b = app.org("b").await;
    let caller = a.owner.clone();
    let extra = app
        .session(inventiv_common::UserId(caller.user_id), a.id, &caller.email)
        .await
        .session_id;
    let mut failures = Vec::new();
    let mut checked = 0;
    for row in MATRIX.iter().filter(|r| r.body.is_some()) {
        let schema = request_schema(&doc, row.method, row.path)
            .unwrap_or_else(|| panic!("{} {} has no documented body", row.method, row.path));
        let path = fill(row.path, &a, &b, Some(&caller), extra, false);
        let valid: Map<String, Value> = serde_json::from_str(&fill(
            row.body.unwrap(),
            &a,
            &b,
            Some(&caller),
            extra,
            false,
        ))
        .unwrap();
        let mut cases = mutations(schema, &valid);
        cases.push((
            "a huge body".into(),
            json!({ "padding": "x".repeat(200 * 1024) }).to_string(),
        ));
        for (what, body) in cases {
            let before = fingerprint(&app).await;
            let (status, answer) = send(
                &app,
                row.method,
                &path,
                token_for(row.path, &a, &caller),
                "application/json",
                body,
            )
            .await;
            let after = fingerprint(&app).await;
            checked += 1;
            let shaped =
                answer["error"]["code"].is_string() && answer["error"]["request_id"].is_string();
            if !(400..500).contains(&status) || !shaped {
                failures.push(format!(
                    "{} {} with {what}: {status} {answer}",
                    row.method, row.path
                ));
            } else if before != after {
                let changed: Vec<&str> = after
                    .lines()
                    .filter(|line| !before.lines().any(|l| l == *line))
                    .filter_map(|line| line.split(':').next())
                    .collect();
                failures.push(format!(
                    "{} {} with {what}: answered {status} but changed the database ({changed:?})",
                    row.method, row.path
                ));
            }
        }
        let (status, answer) = send(
            &app,
            row.method,
            &path,
            token_for(row.path, &a, &caller),
            "text/plain",
            fill(row.body.unwrap(), &a, &b, Some(&caller), extra, false),
        )
        .await;
        if status != 415
            || !answer["error"]["code"]
                .as_str()
                .is_some_and(|c| c.eq_ignore_ascii_case("UNSUPPORTED_MEDIA_TYPE"))
        {
            failures.push(format!(
                "{} {} as text/plain: {status} {answer}",
                row.method, row.path
            ));
        }
    }
    assert!(checked > 150, "only {checked} cases");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn bad_path_and_query_parameters_get_a_400() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let mut failures = Vec::new();
    for row in MATRIX
        .iter()
        .filter(|r| r.path.contains("_id}") && !r.path.contains("{item_id}"))
    {
        let path: String = row
            .path
            .split('/')
            .map(|seg| {
                if seg.ends_with("_id}") {
                    "not-a-uuid"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let path = path.replace("{token}", "t");
        let body = row.body.map(|_| json!({}));
        let (status, _, answer) = app
            .call(
                Method::from_bytes(row.method.as_bytes()).unwrap(),
                &path,
                Some(&a.owner.token),
                body.as_ref(),
            )
            .await;
        let code = answer["error"]["code"].as_str().unwrap_or("");
        if status != 400 || !["INVALID_PATH", "MALFORMED_BODY"].contains(&code) {
            failures.push(format!("{} {path}: {status} {answer}", row.method));
        }
    }
    for query in ["limit=abc", "limit=99999999", "before=x", "surprise=1"] {
        let (status, answer) = app
            .get(
                &format!("/organizations/current/audit-logs?{query}"),
                Some(&a.owner.token),
            )
            .await;
        if status != 400 || answer["error"]["code"] != "INVALID_QUERY" {
            failures.push(format!("audit-logs?{query}: {status} {answer}"));
        }
    }
    // The request log: limit 1 to 200, a status class, a cursor it gave;
    // the latency window: at most 92 days, from before to.
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "status=teapot",
        "status=OK",
        "before=x",
        "before=MTIz",
        "api_key_id=not-a-uuid",
        "from=yesterday",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "surprise=1",
    ] {
        let (status, answer) = app
            .get(&format!("/usage/requests?{query}"), Some(&a.owner.token))
            .await;
        if status != 400 || answer["error"]["code"] != "INVALID_QUERY" {
            failures.push(format!("usage/requests?{query}: {status} {answer}"));
        }
    }
    for query in [
        "from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "to=soon",
        "limit=5",
    ] {
        let (status, answer) = app
            .get(&format!("/usage/latency?{query}"), Some(&a.owner.token))
            .await;
        if status != 400 || answer["error"]["code"] != "INVALID_QUERY" {
            failures.push(format!("usage/latency?{query}: {status} {answer}"));
        }
    }
    // The worker log: tail 0 to 1000, since an RFC 3339 instant; refused
    // before the worker is asked (the fixture's instance has none: 409).
    for query in [
        "tail=-1",
        "tail=1001",
        "tail=99999999",
        "tail=abc",
        "tail=1.5",
        "since=yesterday",
        "since=2026-13-01T00:00:00Z",
        "since=1733480000",
        "surprise=1",
    ] {
        let path = format!("/instances/{}/logs?{query}", a.instance_id);
        let (status, answer) = app.get(&path, Some(&a.owner.token)).await;
        if status != 400 || answer["error"]["code"] != "INVALID_QUERY" {
            failures.push(format!("logs?{query}: {status} {answer}"));
        }
    }
    // Statement months: a calendar month from 2000-01 to 2999-12, in YYYY-MM.
    for month in [
        "2026-13",
        "2026-1",
        "26-01",
        "1999-12",
        "3000-01",
        "2026-01-01",
        "x",
    ] {
        for (method, path, body) in [
            (Method::GET, format!("/finops/statements/{month}"), None),
            (
                Method::POST,
                format!("/finops/statements/{month}/close"),
                Some(json!({})),
            ),
        ] {
            let (status, _, answer) = app
                .call(method, &path, Some(&a.owner.token), body.as_ref())
                .await;
            if status != 400 || answer["error"]["code"] != "INVALID_PATH" {
                failures.push(format!("{path}: {status} {answer}"));
            }
        }
    }
    for query in ["format=xml", "surprise=1"] {
        let (status, answer) = app
            .get(
                &format!("/finops/statements/2026-01?{query}"),
                Some(&a.owner.token),
            )
            .await;
        if status != 400 || answer["error"]["code"] != "INVALID_QUERY" {
            failures.push(format!("statements/2026-01?{query}: {status} {answer}"));
        }
    }
    let closes: i64 = sqlx::query_scalar("SELECT count(*) FROM statement_closes")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    if closes != 0 {
        failures.push(format!("{closes} month(s) closed by bad input"));
    }
    for token in ["short", &"é".repeat(43)] {
        let (status, _) = app
            .get(&format!("/organizations/invitations/{token}"), None)
            .await;
        if status != 404 {
            failures.push(format!("invitation token {token:?}: {status}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Values serde and chrono accept but PostgreSQL cannot store (a year
/// -200000) are the caller's 400, not a 500; the key keeps its old expiry.
#[tokio::test]
async fn a_timestamp_out_of_the_database_range_gets_a_400() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let (status, created) = app
        .post("/api-keys", Some(&a.owner.token), json!({ "name": "k" }))
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api-keys/{}", created["api_key"]["id"].as_str().unwrap());
    for when in ["-200000-01-01T00:00:00Z", "+262000-01-01T00:00:00Z"] {
        let (status, answer) = app
            .patch(&path, Some(&a.owner.token), json!({ "expires_at": when }))
            .await;
        if when.starts_with('-') {
            assert_eq!(status, 400, "{when}: {answer}");
            assert_eq!(answer["error"]["code"], "VALUE_OUT_OF_RANGE", "{answer}");
        } else {
            // Within PostgreSQL's range (up to 294276 AD): stored as given.
            assert_eq!(status, 200, "{when}: {answer}");
        }
    }
    let listed = app.get("/api-keys", Some(&a.owner.token)).await.1;
    assert_eq!(
        listed[0]["expires_at"], "+262000-01-01T00:00:00Z",
        "{listed}"
    );
}

/// A NUL character in a query or path parameter compared in SQL
/// (PostgreSQL refuses it in any text) is the caller's 400, not a 500.
#[tokio::test]
async fn a_nul_character_in_a_parameter_gets_a_400() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    for path in [
        "/instance_types?provider=%00",
        "/zones?provider=mo%00ck",
        "/organizations/current/providers/mock%00/worker-settings",
    ] {
        let (status, answer) = app.get(path, Some(&a.owner.token)).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "INVALID_CHARACTER", "{answer}");
    }
}
