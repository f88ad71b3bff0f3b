//! Mock engines as workers: a real `inventiv-mock-engine` process on a
//! free port behind a stand-in relay (TLS, relay key), killed when
//! dropped, and an organization's instance made a ready worker of it in
//! the routing table, with its relay key issued and its certificate pinned
//! as the orchestrator does. A tenant-controlled worker (redirects, huge
//! bodies, forged usage) is a test server whose answers the test writes,
//! behind the same relay, and a trap counts what reaches an internal service.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::fixture::Org;
use super::{eventually, TestApp};

/// A running mock engine, killed however the test ends.
pub struct Engine {
    /// The engine's own plain port (its metrics, for assertions).
    pub port: u16,
    pub child: Child,
    /// The node's public side: what the proxy talks to.
    pub relay: inventiv_testkit::relay::Relay,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a mock engine serving `mock/model` with extra flags and waits
/// for its `/health`.
pub async fn engine(extra: &[&str]) -> Engine {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(inventiv_testkit::engine::mock_engine())
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--model",
            "mock/model",
            "--workers",
            "1",
        ])
        .args(extra)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    eventually("the mock engine", Duration::from_secs(10), || async {
        http.get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
    let relay =
        inventiv_testkit::relay::start(port, inventiv_testkit::relay::Certificate::generate())
            .await;
    Engine { port, child, relay }
}

/// A test server on the node's address; stopped when dropped.
pub struct Fake {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on 127.0.0.1 and a port from the kernel.
pub async fn fake(router: axum::Router) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Fake { port, task }
}

/// An internal service a tenant's worker must never make the control plane
/// reach: it answers 200 to anything and counts the requests.
pub struct Trap {
    pub server: Fake,
    pub hits: Arc<AtomicUsize>,
}

impl Trap {
    pub async fn start() -> Trap {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let router = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({ "secret": "internal", "usage": { "prompt_tokens": 0, "completion_tokens": 0 } }))
            }
        });
        Trap {
            server: fake(router).await,
            hits,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.server.port)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A new organization of `app` (named after `label`) whose instance is a
/// ready worker of `mock/model` on a new mock engine started with `extra`
/// flags: where most tests of the data plane start.
pub async fn serving(app: &TestApp, label: &str, extra: &[&str]) -> (Engine, Org) {
    let engine = engine(extra).await;
    let mut org = app.org(label).await;
    serve(app, &mut org, &engine).await;
    (engine, org)
}

/// Makes `org`'s instance a ready worker of `mock/model` on the engine.
pub async fn serve(app: &TestApp, org: &mut Org, engine: &Engine) {
    app.add_instance(org).await;
    ready_behind_relay(app, org.instance_id, &engine.relay).await;
}

/// Makes `org`'s instance a ready worker of `mock/model` served by the test
/// server on 127.0.0.1:`port`, behind a relay whose port is the one the
/// orchestrator installed; keep the relay for as long as the worker serves.
pub async fn serve_port(app: &TestApp, org: &mut Org, port: u16) -> inventiv_testkit::relay::Relay {
    let relay =
        inventiv_testkit::relay::start(port, inventiv_testkit::relay::Certificate::generate())
            .await;
    app.add_instance(org).await;
    ready_behind_relay(app, org.instance_id, &relay).await;
    relay
}

/// Makes an instance a ready worker of `mock/model` behind `relay`: its
/// relay key issued (the relay told the key's SHA-256) and the relay's
/// certificate pinned, as at bootstrap.
pub async fn ready_behind_relay(
    app: &TestApp,
    instance_id: uuid::Uuid,
    relay: &inventiv_testkit::relay::Relay,
) {
    let key_sha256 =
        inventiv_store::relay::issue_key(&app.state.db, &app.state.config.keyring, instance_id)
            .await
            .unwrap();
    relay.allow(&key_sha256);
    inventiv_store::relay::pin_certificate(&app.state.db, instance_id, relay.certificate.sha256)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE instances SET status = 'ready', ip_address = '127.0.0.1', worker_engine_port = $2, worker_status = 'ready',
                worker_engine_ready = true, last_heartbeat_at = now(), model_id = 'mock/model' WHERE id = $1",
    )
    .bind(instance_id)
    .bind(i32::from(relay.port))
    .execute(&app.state.db)
    .await
    .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
}
