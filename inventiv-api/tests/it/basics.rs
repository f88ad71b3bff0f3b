//! Probes, OpenAPI coverage, Swagger UI, request ids and the error shape.

use crate::support;

use crate::support::{error_code, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn probes_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/healthz", None).await,
        (
            StatusCode::OK,
            json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })
        )
    );
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["checks"],
        json!({ "postgres": "ok", "redis": "ok", "usage_journal": "ok" })
    );
}

/// Fills `{param}` segments with a syntactically valid value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "00000000-0000-4000-8000-000000000000"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn openapi_documents_every_served_route_and_swagger_is_served() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, _, body) = app.call(m, &concrete(path), None, Some(&json!({}))).await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} documented but not served"
            );
            if status == StatusCode::NOT_FOUND {
                assert_ne!(
                    error_code(&body),
                    "ROUTE_NOT_FOUND",
                    "{method} {path} documented but not served"
                );
            }
            operations += 1;
        }
    }
    // The router is built from the same `routes!` registrations as the
    // document (and clippy forbids `Router::route` in the API), so the
    // reverse holds by construction; the documented set must match the
    // served set the API's own builder reports.
    let (router_doc_paths, served) = {
        let (_, doc) = inventiv_api::startup::api();
        let n: usize = doc
            .paths
            .paths
            .values()
            .map(|p| {
                [&p.get, &p.put, &p.post, &p.delete, &p.patch]
                    .iter()
                    .filter(|o| o.is_some())
                    .count()
            })
            .sum();
        (doc.paths.paths.len(), n)
    };
    assert_eq!(router_doc_paths, paths.len());
    assert_eq!(served, operations);
    assert!(operations >= 30, "only {operations} operations documented");

    let res = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "swagger html");
    let res = app
        .http
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "vendored assets are served locally"
    );
}

#[tokio::test]
async fn request_ids_are_kept_or_generated_and_errors_have_one_shape() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(app.url("/nowhere"))
        .header("x-request-id", "client-id.42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["x-request-id"], "client-id.42");
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "ROUTE_NOT_FOUND");
    assert_eq!(body["error"]["request_id"], "client-id.42");

    let res = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        generated.len() >= 16 && !generated.contains(' '),
        "{generated}"
    );

    let (status, _, body) = app.call(Method::DELETE, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "METHOD_NOT_ALLOWED");

    let (status, _, body) = app.call(Method::GET, "/auth/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn audit_log_is_append_only_in_the_database() {
    let app = TestApp::spawn().await;
    let token = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let (status, logs) = app
        .get("/organizations/current/audit-logs", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(logs[0]["action"], "auth.login");
    for sql in [
        "UPDATE audit_logs SET action = 'x'",
        "DELETE FROM audit_logs",
        "TRUNCATE audit_logs",
    ] {
        let err = sqlx::query(sql)
            .execute(&app.state.db)
            .await
            .expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert!(count >= 1);
}

#[tokio::test]
async fn a_failing_migration_stops_start_up_with_a_clear_message() {
    use sqlx::{Connection, Executor};
    // A database whose schema conflicts with the first migration.
    let name = format!("inventiv_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&support::db::url_for("postgres"))
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&support::db::url_for(&name))
        .await
        .unwrap();
    conn.execute("CREATE TABLE users (id int)").await.unwrap();
    conn.close().await.unwrap();
    let url = support::db::url_for(&name);
    let mut env: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", url.as_str()),
        ("REDIS_URL", "redis://127.0.0.1:6379/"),
        ("INVENTIV_API_ADDR", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(support::random_secrets());
    let redis = std::env::var("REDIS_URL").unwrap_or_default();
    let config = inventiv_api::config::Config::from_lookup(&inventiv_api::config::Env(|k| {
        if k == "REDIS_URL" && !redis.is_empty() {
            return Some(redis.clone());
        }
        env.get(k).map(|v| v.to_string())
    }))
    .unwrap();
    let err = inventiv_api::startup::Application::build(config)
        .await
        .err()
        .expect("start-up must fail");
    let message = err.to_string();
    assert!(
        message.contains("database migration failed, start-up stopped"),
        "{message}"
    );
    assert!(message.contains("users"), "names the cause: {message}");
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_same_origin() {
    let dist =
        std::env::temp_dir().join(format!("inventiv-dist-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><div id=root></div>",
    )
    .unwrap();
    std::fs::write(
        dist.join("assets/app-1234.js"),
        "console.log(1);\n".repeat(200),
    )
    .unwrap();
    let app = TestApp::spawn_with(&[("INVENTIV_FRONTEND_DIR", dist.to_str().unwrap())]).await;
    let page = |path: &str| {
        app.http
            .get(app.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
    };
    // Browser navigations get the app, even on paths the API also serves.
    for path in [
        "/",
        "/instances",
        "/invitations/some-token",
        "/reset-password?token=x",
    ] {
        let res = page(path).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.text().await.unwrap().contains("id=root"), "{path}");
    }
    // API calls are untouched.
    let (status, body) = app.get("/instances", None).await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (401, "UNAUTHENTICATED")
    );
    let docs = page("/docs/").await.unwrap().text().await.unwrap();
    assert!(docs.contains("swagger"), "Swagger UI stays reachable");
    // Build files, cached for good; nothing outside the build.
    let res = app
        .http
        .get(app.url("/assets/app-1234.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    // Compressed for a browser that takes gzip (the dashboard's script is
    // half a megabyte).
    let res = app
        .http
        .get(app.url("/assets/app-1234.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(encoding(&res), Some("gzip"));
    // A missing build file is the API's 404, and not cached for a year.
    let res = app
        .http
        .get(app.url("/assets/app-5678.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.headers().contains_key("cache-control"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), "ROUTE_NOT_FOUND");
    let (status, _, body) = app
        .call(Method::POST, "/assets/app-1234.js", None, None)
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (404, "ROUTE_NOT_FOUND")
    );
    let res = app
        .http
        .get(app.url("/assets/../../../etc/passwd"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let (status, body) = app.get("/no/such/thing", None).await;
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (404, "ROUTE_NOT_FOUND")
    );
    let _ = std::fs::remove_dir_all(&dist);
}

/// The answer's `content-encoding`, if any.
fn encoding(res: &reqwest::Response) -> Option<&str> {
    res.headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn control_plane_answers_are_gzipped_but_not_streams_or_v1() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let get = |path: &str| {
        app.http
            .get(app.url(path))
            .header("accept-encoding", "gzip")
    };
    let res = get("/openapi.json").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(encoding(&res), Some("gzip"));
    let compressed = res.bytes().await.unwrap();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut json)
        .unwrap();
    let (_, plain) = app.get("/openapi.json", None).await;
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), plain);
    assert!(compressed.len() * 4 < json.len(), "{}", compressed.len());

    // An error of the control plane is compressed; the same size of error
    // from the data plane is not.
    let res = get("/auth/me").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(encoding(&res), Some("gzip"));
    let res = get("/v1/models").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(encoding(&res), None);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");

    let token = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let res = get("/events/stream")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(encoding(&res), None);
}
