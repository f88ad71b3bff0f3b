//! The proxy's side of the worker transport, as attacks: it speaks only
//! TLS to a node's relay, accepts only the certificate pinned for that
//! instance (another node, or a machine in the middle, gets no request),
//! sends the instance's relay key, and never routes to a worker it cannot
//! authenticate.

use crate::support::engines::{engine, serve, serving, Engine};
use crate::support::{engine_metric, error_code, TestApp};
use serde_json::{json, Value};

const SUCCESS: &str = "vllm:request_success_total";

async fn chat(app: &TestApp, key: &str) -> (u16, Value) {
    let res = app.post_response("/v1/chat/completions", key, &json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 4 })).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn served(engine: &Engine) -> i64 {
    engine_metric(engine.port, SUCCESS).await
}

/// Points `instance`'s row at `port` on loopback, as if its address now
/// answered from another machine.
async fn move_to_port(app: &TestApp, instance: uuid::Uuid, port: u16) {
    sqlx::query("UPDATE instances SET worker_engine_port = $2 WHERE id = $1")
        .bind(instance)
        .bind(i32::from(port))
        .execute(&app.state.db)
        .await
        .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
}

#[tokio::test]
async fn another_node_answering_at_a_workers_address_gets_no_request() {
    let app = TestApp::spawn().await;
    let (mine, theirs) = (engine(&[]).await, engine(&[]).await);
    let mut a = app.org("a").await;
    let mut b = app.org("b").await;
    serve(&app, &mut a, &mine).await;
    serve(&app, &mut b, &theirs).await;
    let (status, body) = chat(&app, &a.api_key).await;
    assert_eq!(status, 200, "{body}");

    // a's address now leads to b's node (another instance, or a machine in
    // the middle holding a certificate of its own): the proxy refuses its
    // certificate and sends it nothing, not even a's relay key.
    move_to_port(&app, a.instance_id, theirs.relay.port).await;
    let before = served(&theirs).await;
    for _ in 0..3 {
        let (status, body) = chat(&app, &a.api_key).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(error_code(&body), "upstream_error");
    }
    assert_eq!(served(&theirs).await, before, "b's engine served a's calls");
}

#[tokio::test]
async fn the_proxy_never_speaks_plain_http_to_a_worker() {
    let app = TestApp::spawn().await;
    let (engine, a) = serving(&app, "a", &[]).await;
    // The engine's own plain-HTTP port, as every worker was reached before.
    move_to_port(&app, a.instance_id, engine.port).await;
    let (status, body) = chat(&app, &a.api_key).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(served(&engine).await, 0, "a request went in clear");
}

#[tokio::test]
async fn a_relay_refusing_the_key_is_a_worker_failure_not_the_callers() {
    let app = TestApp::spawn().await;
    let (engine, a) = serving(&app, "a", &[]).await;
    // A reinstall issued a new key that this relay was never given.
    inventiv_store::relay::issue_key(&app.state.db, &app.state.config.keyring, a.instance_id)
        .await
        .unwrap();
    inventiv_store::relay::pin_certificate(
        &app.state.db,
        a.instance_id,
        engine.relay.certificate.sha256,
    )
    .await
    .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
    let (status, body) = chat(&app, &a.api_key).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_code(&body), "upstream_error");
    assert!(!body.to_string().contains("relay"), "{body}");
    assert_eq!(served(&engine).await, 0);
}

#[tokio::test]
async fn a_worker_without_a_pinned_certificate_is_not_routed_to() {
    let app = TestApp::spawn().await;
    let (engine, a) = serving(&app, "a", &[]).await;
    sqlx::query("UPDATE instances SET relay_cert_sha256 = NULL WHERE id = $1")
        .bind(a.instance_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
    let (status, body) = chat(&app, &a.api_key).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "no_capacity");
    assert_eq!(served(&engine).await, 0);
}
