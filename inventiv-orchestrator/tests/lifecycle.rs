//! End to end on the mock provider: the real API and orchestrator in this
//! process, mock VMs with their own loopback address and sshd, the real
//! agent bootstrapped over SSH and the mock engine. Deploy → ready with the
//! milestones in order and progress 100; terminate → terminated, every
//! process of the VM gone and its directory removed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use inventiv_orchestrator::config::Config;
use inventiv_orchestrator::engine::{self, Orchestrator};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bundle_path() -> PathBuf {
    let out = std::process::Command::new(repo().join("scripts/agent-bundle.sh"))
        .output()
        .expect("agent-bundle.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(line.trim().split_once("  ").unwrap().1)
}

fn mock_engine() -> PathBuf {
    let path = repo().join("target/debug/inventiv-mock-engine");
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "inventiv-mock-engine"])
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) && !text.contains("cargo") {
            found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

struct Harness {
    api: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    state_dir: PathBuf,
    orchestrator: Arc<Orchestrator>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = inventiv_providers::mock::purge(&self.state_dir);
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

impl Harness {
    async fn start(first_address: Ipv4Addr) -> Harness {
        let database = inventiv_testkit::db::fresh_database().await;
        let db_url = inventiv_testkit::db::url_for(&database);
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let prefix = format!("inventiv-test:{}:", uuid::Uuid::new_v4().simple());
        let state_dir =
            std::env::temp_dir().join(format!("inventiv-e2e-{}", uuid::Uuid::new_v4().simple()));
        let env: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", db_url.clone()),
            ("REDIS_URL", redis_url.clone()),
            ("INVENTIV_REDIS_PREFIX", prefix.clone()),
            ("INVENTIV_API_ADDR", "127.0.0.1:0".into()),
            ("INVENTIV_STATE_DIR", state_dir.display().to_string()),
            ("INVENTIV_ADMIN_EMAIL", "admin@inventiv.test".into()),
            ("INVENTIV_ADMIN_PASSWORD", "admin-password-for-tests".into()),
        ]);
        let config = inventiv_api::config::Config::from_lookup(&inventiv_api::config::Env(|k| {
            env.get(k).cloned()
        }))
        .unwrap();
        let app = inventiv_api::startup::Application::build(config)
            .await
            .unwrap();
        let api_addr = app.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.serve(shutdown.clone()));

        let db = sqlx::PgPool::connect(&db_url).await.unwrap();
        let redis =
            redis::aio::ConnectionManager::new(redis::Client::open(redis_url.as_str()).unwrap())
                .await
                .unwrap();
        let config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            database_url: db_url,
            redis_url,
            redis_prefix: prefix,
            state_dir: state_dir.clone(),
            control_plane_url: format!("http://{api_addr}"),
            consumer: "test-orchestrator".into(),
            reconcile_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(120),
            bootstrap_attempts: 3,
            max_dead_share: 1.0,
            max_deliveries: 5,
            mock_engine: mock_engine(),
            worker_heartbeat: Duration::from_secs(1),
            agent_bundle: bundle_path(),
            bootstrap_script: repo().join("inventiv-worker/bootstrap.sh"),
        };
        let bundle = engine::bundle(config.agent_bundle.clone(), config.bootstrap_script.clone())
            .await
            .unwrap();
        let orchestrator = Arc::new(
            Orchestrator::build_with(config, db, redis, bundle, move |mut m| {
                m.first_address = first_address;
                m.boot_delay = Duration::from_millis(100);
                Ok(m)
            })
            .await
            .unwrap(),
        );
        tokio::spawn(inventiv_orchestrator::run(
            orchestrator.clone(),
            shutdown.clone(),
        ));
        Harness {
            api: format!("http://{api_addr}"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown,
            state_dir,
            orchestrator,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Logs in as the admin, creates a team organization and activates the mock catalog items.
    async fn team(&self) -> String {
        let res = self
            .http
            .post(format!("{}/auth/login", self.api))
            .json(
                &json!({ "email": "admin@inventiv.test", "password": "admin-password-for-tests" }),
            )
            .send()
            .await
            .unwrap();
        let token = res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, org) = self
            .call(
                reqwest::Method::POST,
                "/organizations",
                &token,
                Some(json!({ "name": "E2E" })),
            )
            .await;
        let (_, switched) = self
            .call(
                reqwest::Method::PUT,
                "/organizations/current",
                &token,
                Some(json!({ "organization_id": org["id"] })),
            )
            .await;
        let token = switched["access_token"].as_str().unwrap().to_owned();
        for (kind, item) in [
            ("provider", "mock"),
            ("zone", "8a1d0000-0000-4000-8000-000000000001"),
            ("instance_type", "8a1e0000-0000-4000-8000-000000000001"),
            ("model", "8a1f0000-0000-4000-8000-000000000001"),
        ] {
            let (s, _) = self
                .call(
                    reqwest::Method::PUT,
                    &format!("/organizations/current/activations/{kind}/{item}"),
                    &token,
                    Some(json!({ "technical": true, "economic": true })),
                )
                .await;
            assert_eq!(s, 200);
        }
        token
    }

    async fn wait_status(&self, token: &str, id: &str, want: &str, deadline: Duration) -> Value {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let (_, inst) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/instances/{id}"),
                    token,
                    None,
                )
                .await;
            if inst["status"] == want {
                return inst;
            }
            if tokio::time::Instant::now() > until {
                let (_, actions) = self
                    .call(
                        reqwest::Method::GET,
                        &format!("/instances/{id}/actions"),
                        token,
                        None,
                    )
                    .await;
                panic!("instance not {want} in time: {inst}\nactions: {actions:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_to_ready_then_terminate_on_the_mock_provider() {
    let h = Harness::start(Ipv4Addr::new(127, 0, 61, 1)).await;
    let token = h.team().await;
    let started = std::time::Instant::now();
    let (status, instance) = h
        .call(
            reqwest::Method::POST,
            "/deployments",
            &token,
            Some(json!({ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g", "model_id": "Qwen/Qwen2.5-0.5B-Instruct" })),
        )
        .await;
    assert_eq!(status, 202, "{instance}");
    let id = instance["id"].as_str().unwrap().to_owned();
    let ready = h
        .wait_status(&token, &id, "ready", Duration::from_secs(90))
        .await;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "deploy to ready"
    );
    assert_eq!(ready["progress"], 100);
    assert_eq!(ready["worker_status"], "ready");
    let ip = ready["ip_address"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("127.0.61."), "{ip}");

    // The milestones, in order.
    let (_, actions) = h
        .call(
            reqwest::Method::GET,
            &format!("/instances/{id}/actions"),
            &token,
            None,
        )
        .await;
    let done: Vec<String> = actions
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "success")
        .map(|a| a["action_type"].as_str().unwrap().to_owned())
        .collect();
    let milestones = [
        "PROVIDER_CREATE",
        "PROVIDER_START",
        "PROVIDER_GET_IP",
        "WORKER_SSH_ACCESSIBLE",
        "WORKER_SSH_INSTALL",
        "WORKER_VLLM_HTTP_OK",
        "WORKER_MODEL_LOADED",
        "WORKER_VLLM_WARMUP",
        "HEALTH_CHECK",
    ];
    let positions: Vec<usize> = milestones
        .iter()
        .map(|m| {
            done.iter()
                .position(|d| d == m)
                .unwrap_or_else(|| panic!("{m} missing from {done:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "milestones out of order: {done:?}"
    );
    let (_, history) = h
        .call(
            reqwest::Method::GET,
            &format!("/instances/{id}/history"),
            &token,
            None,
        )
        .await;
    let path: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        ["provisioning", "booting", "installing", "starting", "ready"]
    );

    // The model answers through the node's engine.
    let completion: Value = h
        .http
        .post(format!("http://{ip}:8000/v1/chat/completions"))
        .json(&json!({ "model": "Qwen/Qwen2.5-0.5B-Instruct", "messages": [{ "role": "user", "content": "hello" }] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(completion["usage"]["completion_tokens"].as_i64().unwrap() > 0);

    // Terminate: the server, its processes and its directory are gone.
    let server_id: String =
        sqlx::query_scalar("SELECT provider_server_id FROM instances WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&h.orchestrator.db)
            .await
            .unwrap();
    let vm_dir = h.state_dir.join("mock-vms").join(&server_id);
    assert!(vm_dir.exists());
    let (status, _) = h
        .call(
            reqwest::Method::DELETE,
            &format!("/instances/{id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let done = h
        .wait_status(&token, &id, "terminated", Duration::from_secs(60))
        .await;
    assert!(done["terminated_at"].is_string());
    assert!(!vm_dir.exists(), "the VM directory is removed");
    let left = processes_mentioning(&vm_dir.display().to_string());
    assert!(left.is_empty(), "processes of the VM survived: {left:?}");
    assert!(
        processes_mentioning(&format!("{ip}"))
            .iter()
            .all(|p| !p.contains("sshd")),
        "the VM's sshd is gone"
    );
}
