//! A tenant who is root on its worker answers the orchestrator's health
//! check with a redirect to a service only the control plane can reach:
//! the orchestrator never follows it, and the check does not pass.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::Stack;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

/// Serves `router` on 127.0.0.1 and a port from the kernel.
async fn serve(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    port
}

/// A server answering 200 to anything, counting the requests.
async fn counting(hits: Arc<AtomicUsize>) -> u16 {
    serve(axum::Router::new().fallback(move || {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            axum::Json(serde_json::json!({ "status": "ok", "data": [] }))
        }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_never_follows_a_worker_redirect() {
    let s = Stack::start().await;
    let token = s.team().await;
    let id = s.deploy(&token, None).await;

    let internal = Arc::new(AtomicUsize::new(0));
    let trap = counting(internal.clone()).await;
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    let worker = serve(axum::Router::new().fallback(move || {
        seen.fetch_add(1, Ordering::SeqCst);
        let location = format!("http://127.0.0.1:{trap}/healthz");
        async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response()
        }
    }))
    .await;
    // The node came up and the tenant's worker now answers on the engine port.
    // The worker behind its relay, with its key issued and its certificate
    // pinned as at install: the redirect comes through the pinned channel.
    let relay =
        inventiv_testkit::relay::start(worker, inventiv_testkit::relay::Certificate::generate())
            .await;
    let keyring = inventiv_store::crypto::Keyring::from_hex(&s.encryption_key, 1, None).unwrap();
    let key_sha256 = inventiv_store::relay::issue_key(&s.db, &keyring, id)
        .await
        .unwrap();
    relay.allow(&key_sha256);
    inventiv_store::relay::pin_certificate(&s.db, id, relay.certificate.sha256)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE instances SET status = 'starting', progress = 60, ip_address = '127.0.0.1', worker_engine_port = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(i32::from(relay.port))
    .execute(&s.db)
    .await
    .unwrap();
    let _orchestrator = s.in_process(Ipv4Addr::new(127, 0, 121, 1)).await;

    // Two checks asked the worker: the first one is over, redirect included.
    s.until("two health checks", Duration::from_secs(20), || {
        let n = asked.load(Ordering::SeqCst);
        async move { (n >= 2).then_some(()) }
    })
    .await;
    assert_eq!(
        internal.load(Ordering::SeqCst),
        0,
        "the orchestrator followed the worker's redirect"
    );
    let passed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM action_logs WHERE instance_id = $1 AND action_type = 'WORKER_VLLM_HTTP_OK'",
    )
    .bind(id)
    .fetch_one(&s.db)
    .await
    .unwrap();
    assert_eq!(passed, 0, "a redirect passed the health check");
}
