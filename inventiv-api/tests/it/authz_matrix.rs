//! The authorization matrix: every route × every caller (anonymous, owner,
//! admin, manager, user of organization A) × target (an object of A, or the
//! same kind of object of organization B) gets exactly the expected status.
//! Each cell runs on fresh fixtures, so mutations cannot leak between cells.
//!
//! To extend: add a row to `MATRIX`. The test fails if a documented route
//! has no row.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::support::fixture::Org;
use crate::support::matrix::{
    fill, needs_host, needs_instance, needs_offerings, needs_service, CALLERS, MATRIX,
};
use crate::support::TestApp;
use reqwest::Method;
use serde_json::Value;

/// Everything of B that must never appear in an answer about A.
fn b_secrets(b: &Org) -> Vec<String> {
    let mut ids = vec![
        b.id.to_string(),
        b.slug.clone(),
        b.invitation_id.to_string(),
        b.api_key_id.to_string(),
    ];
    for id in [b.instance_id, b.service_id, b.host_id] {
        if !id.is_nil() {
            ids.push(id.to_string());
        }
    }
    for p in [&b.owner, &b.admin, &b.manager, &b.user, &b.spare] {
        ids.extend([
            p.user_id.to_string(),
            p.email.clone(),
            p.session_id.to_string(),
        ]);
    }
    ids
}

async fn run_cell(app: Arc<TestApp>, index: usize, col: usize, foreign: bool) -> Option<String> {
    let row = &MATRIX[index];
    let mut a = app.org("a").await;
    let mut b = app.org("b").await;
    if needs_instance(row) {
        app.add_instance(&mut a).await;
        app.add_instance(&mut b).await;
    }
    if needs_service(row) {
        app.add_service(&mut a).await;
        app.add_service(&mut b).await;
    }
    if needs_offerings(row) {
        app.add_offerings(&mut a).await;
        app.add_offerings(&mut b).await;
    }
    if needs_host(row) {
        app.add_host(&mut a).await;
        app.add_host(&mut b).await;
    }
    let role = CALLERS[col];
    let caller = role.map(|r| a.member(r).clone());
    let extra = match &caller {
        Some(c) => {
            app.session(inventiv_common::UserId(c.user_id), a.id, &c.email)
                .await
                .session_id
        }
        None => a.user.session_id,
    };
    let path = fill(row.path, &a, &b, caller.as_ref(), extra, foreign);
    let body: Option<Value> = row.body.map(|t| {
        serde_json::from_str(&fill(t, &a, &b, caller.as_ref(), extra, foreign))
            .expect("body template")
    });
    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
    let (status, answer) = if row.path == "/events/stream" {
        // An event stream never ends: the status is the answer.
        let mut req = app.http.get(app.url(&path));
        if let Some(c) = &caller {
            req = req.bearer_auth(&c.token);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let body = if status.is_success() {
            Value::Null
        } else {
            res.json().await.unwrap()
        };
        (status, body)
    } else {
        let (s, _, b) = app
            .call(
                method,
                &path,
                caller.as_ref().map(|c| c.token.as_str()),
                body.as_ref(),
            )
            .await;
        (s, b)
    };
    let expected = if foreign {
        row.foreign.unwrap()[col]
    } else {
        row.own[col]
    };
    let who = role.map_or("anonymous".to_owned(), |r| r.to_string());
    let side = if foreign { "B's object" } else { "own" };
    if status.as_u16() != expected {
        return Some(format!(
            "{} {} as {who} ({side}): expected {expected}, got {status}: {answer}",
            row.method, row.path
        ));
    }
    if status.is_client_error() {
        support::error_code(&answer);
    }
    if !foreign && status.is_success() {
        let text = answer.to_string();
        if let Some(leak) = b_secrets(&b)
            .into_iter()
            .find(|s| text.contains(s.as_str()))
        {
            return Some(format!(
                "{} {} as {who}: answer leaks organization B's {leak}",
                row.method, row.path
            ));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_every_role_every_organization() {
    let app = Arc::new(TestApp::spawn().await);
    let mut cells = tokio::task::JoinSet::new();
    let mut failures = Vec::new();
    for (index, row) in MATRIX.iter().enumerate() {
        for col in 0..CALLERS.len() {
            for foreign in [false, true] {
                if foreign && row.foreign.is_none() {
                    continue;
                }
                if cells.len() >= 8 {
                    failures.extend(cells.join_next().await.unwrap().unwrap());
                }
                cells.spawn(run_cell(app.clone(), index, col, foreign));
            }
        }
    }
    while let Some(done) = cells.join_next().await {
        failures.extend(done.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} cell(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_matrix_covers_every_documented_route() {
    let (_, doc) = inventiv_api::startup::api();
    let documented: BTreeSet<(String, String)> = doc
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ]
            .into_iter()
            .filter(|(_, op)| op.is_some())
            .map(move |(m, _)| (m.to_owned(), path.clone()))
        })
        .collect();
    let covered: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes without a matrix row: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "matrix rows for routes that do not exist: {stale:?}"
    );
}

#[tokio::test]
async fn platform_admin_manages_users() {
    let app = TestApp::spawn().await;
    let admin = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let (status, created) = app
        .post("/users", Some(&admin), serde_json::json!({ "email": "Carol@Example.com", "display_name": "Carol", "password": "carol-password-1" }))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["email"], "carol@example.com");
    assert_eq!(created["is_platform_admin"], false);
    let carol = app.login("carol@example.com", "carol-password-1").await;
    assert_eq!(app.get("/users", Some(&carol)).await.0, 403);
    let id = created["id"].as_str().unwrap();
    let (status, body) = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            serde_json::json!({ "is_platform_admin": true }).clone(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.get("/users", Some(&carol)).await.0,
        200,
        "promotion takes effect at once"
    );
    let (status, body) = app.post("/users", Some(&admin), serde_json::json!({ "email": "carol@example.com", "display_name": "C2", "password": "carol-password-2" })).await;
    assert_eq!(
        (status.as_u16(), support::error_code(&body)),
        (409, "EMAIL_TAKEN")
    );
    // Nobody can leave the platform without an administrator.
    let me: Value = app.get("/auth/me", Some(&admin)).await.1;
    let admin_id = me["user"]["id"].as_str().unwrap();
    let (status, _) = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            serde_json::json!({ "is_platform_admin": false }).clone(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .patch(
            &format!("/users/{admin_id}"),
            Some(&admin),
            serde_json::json!({ "is_platform_admin": false }).clone(),
        )
        .await;
    assert_eq!(
        (status.as_u16(), support::error_code(&body)),
        (409, "LAST_PLATFORM_ADMIN")
    );
}
