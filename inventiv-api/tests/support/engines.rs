//! Mock engines as workers: a real `inventiv-mock-engine` process on a
//! free port, killed when dropped, and an organization's instance made a
//! ready worker of it in the routing table.

use std::process::{Child, Command};
use std::time::Duration;

use super::fixture::Org;
use super::{wait_for, TestApp};

/// A running mock engine, killed however the test ends.
pub struct Engine {
    pub port: u16,
    pub child: Child,
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
    wait_for("the mock engine", Duration::from_secs(10), || async {
        http.get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
    Engine { port, child }
}

/// Makes `org`'s instance a ready worker of `mock/model` on the engine.
pub async fn serve(app: &TestApp, org: &mut Org, engine: &Engine) {
    app.add_instance(org).await;
    sqlx::query(
        "UPDATE instances SET status = 'ready', ip_address = '127.0.0.1', worker_engine_port = $2, worker_status = 'ready',
                worker_engine_ready = true, last_heartbeat_at = now(), model_id = 'mock/model' WHERE id = $1",
    )
    .bind(org.instance_id)
    .bind(i32::from(engine.port))
    .execute(&app.state.db)
    .await
    .unwrap();
    app.state.routing.refresh(&app.state).await.unwrap();
}
