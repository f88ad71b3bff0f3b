//! The harness of the end-to-end tests: a fresh database, a
//! Redis prefix and a state directory per test, the real API in this
//! process, and the orchestrator either in this process (`in_process`) or
//! as the real binary (`spawn`) that a test can SIGKILL and start again.
//! Everything it starts is stopped and removed when dropped (mock VMs are
//! purged); waits are on conditions with deadlines.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use inventiv_orchestrator::config::{AutoscalerConfig, Config, MockEngineArgs};
use inventiv_orchestrator::context::{self, Orchestrator};
pub use inventiv_providers::mock::MockFaults;
use inventiv_testkit::binaries::cargo_bin;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod api;
pub use api::scalings;
mod api_process;
mod checks;
mod hosts;
mod load;
mod orchestrator;
mod prometheus;

pub use checks::{assert_in_order, files_under};
pub use hosts::SHAPE;

pub use orchestrator::Opts;
pub use prometheus::{shipped_rule_groups, Prometheus};

pub const MODEL: &str = "Qwen/Qwen2.5-0.5B-Instruct";

pub use inventiv_testkit::binaries::repo;

/// Builds the agent bundle into `out` (per test: no two builds share a
/// temporary file) and returns its path.
fn build_bundle(out: &Path) -> PathBuf {
    let out = Command::new(repo().join("scripts/agent-bundle.sh"))
        .arg("--out")
        .arg(out)
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

/// Live processes whose command line mentions `needle` (pid, command line).
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) && !text.contains("cargo") {
            found.push((pid, text));
        }
    }
    found
}

/// Sends SIGKILL to `pids` (gone ones are fine).
pub fn sigkill(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Stops what the bootstrap started on the "server" (the agent and the
/// engine, local processes here), even when the test fails: deleting a
/// real server would.
pub struct NodeGuard {
    /// The node's install directory.
    pub node: String,
    /// A string only its engine's command line holds.
    pub engine: String,
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let left: Vec<u32> = processes_mentioning(&self.node)
            .into_iter()
            .chain(processes_mentioning(&self.engine))
            .map(|(pid, _)| pid)
            .collect();
        sigkill(&left);
    }
}

pub use inventiv_testkit::wait::poll;

/// A database, a Redis prefix, a state directory and the API, for one test.
pub struct Stack {
    pub api: String,
    /// The API's metrics listener (`http://host:port`).
    pub api_metrics: String,
    pub http: reqwest::Client,
    pub db: PgPool,
    pub redis: redis::aio::ConnectionManager,
    pub db_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub state_dir: PathBuf,
    pub bundle: PathBuf,
    /// The orchestrator binary and the mock engine binary, built once per
    /// test process (see `inventiv_testkit::binaries`).
    pub orchestrator_bin: PathBuf,
    pub mock_engine: PathBuf,
    /// The Scaleway API of in-process orchestrators (a fake, or nothing).
    pub scaleway_url: String,
    /// The SSH port of Scaleway servers and where the worker goes on them.
    pub scaleway_ssh: (u16, Option<String>),
    /// How often in-process orchestrators reconcile cloud resources.
    pub cloud_reconcile_interval: Duration,
    /// The provisioning deadline of in-process orchestrators.
    pub provisioning_deadline: Duration,
    /// The random credentials key the API and the orchestrators share.
    pub encryption_key: String,
    /// `INVENTIV_CONTROL_PLANE_ADDRESS` (127.0.0.1 by default).
    pub control_plane_address: Option<IpAddr>,
    /// `INVENTIV_ENV=production` (off by default).
    pub production: bool,
    /// What in-process orchestrators add to the mock engine's command line
    /// (`INVENTIV_MOCK_ENGINE_ARGS`; none by default: it answers at once).
    pub mock_engine_args: &'static str,
    /// The in-process API's environment, for an API process (`spawn_api`).
    api_env: HashMap<&'static str, String>,
    shutdown: CancellationToken,
    spawned: AtomicUsize,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = inventiv_providers::mock::purge(&self.state_dir);
        hosts::kill_host_processes(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.state_dir);
        // The test's Redis keys (a blocking connection: no await in drop).
        let pattern = format!("{}*", self.prefix);
        if let Ok(mut conn) =
            redis::Client::open(self.redis_url.as_str()).and_then(|c| c.get_connection())
        {
            let keys: Vec<String> = redis::Commands::scan_match(&mut conn, &pattern)
                .map(Iterator::collect)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut conn);
            }
        }
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with_scaleway("http://127.0.0.1:9").await
    }

    /// A stack whose API and in-process orchestrators call this Scaleway.
    pub async fn start_with_scaleway(scaleway_url: &str) -> Stack {
        Stack::start_with(scaleway_url, &[]).await
    }

    /// A stack whose API has `extra` in its environment besides the
    /// harness's own variables (which `extra` overrides).
    pub async fn start_with_env(extra: &[(&'static str, &str)]) -> Stack {
        Stack::start_with("http://127.0.0.1:9", extra).await
    }

    async fn start_with(scaleway_url: &str, extra: &[(&'static str, &str)]) -> Stack {
        let database = inventiv_testkit::db::fresh_database().await;
        let db_url = inventiv_testkit::db::url_for(&database);
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let prefix = format!("inventiv-test:{}:", Uuid::new_v4().simple());
        let state_dir =
            std::env::temp_dir().join(format!("inventiv-e2e-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(state_dir.join("logs")).unwrap();
        // Random secrets, as `make run` generates: never the built-in ones.
        let hex = || format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let encryption_key = hex();
        let mut env: HashMap<&str, String> = HashMap::from([
            ("INVENTIV_JWT_SECRET", hex()),
            ("INVENTIV_ENCRYPTION_KEY", encryption_key.clone()),
            ("DATABASE_URL", db_url.clone()),
            ("REDIS_URL", redis_url.clone()),
            ("INVENTIV_REDIS_PREFIX", prefix.clone()),
            ("INVENTIV_API_ADDR", "127.0.0.1:0".into()),
            ("INVENTIV_METRICS_ADDR", "127.0.0.1:0".into()),
            ("INVENTIV_STATE_DIR", state_dir.display().to_string()),
            ("INVENTIV_ADMIN_EMAIL", "admin@inventiv.test".into()),
            ("INVENTIV_ADMIN_PASSWORD", "admin-password-for-tests".into()),
            ("INVENTIV_SCALEWAY_API_URL", scaleway_url.into()),
        ]);
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let config = inventiv_api::config::Config::from_lookup(&inventiv_api::config::Env(|k| {
            env.get(k).cloned()
        }))
        .unwrap();
        let app = inventiv_api::startup::Application::build(config)
            .await
            .unwrap();
        let api_addr = app.local_addr().unwrap();
        let api_metrics = format!("http://{}", app.metrics_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(app.serve(shutdown.clone()));
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(&db_url)
            .await
            .unwrap();
        let redis =
            redis::aio::ConnectionManager::new(redis::Client::open(redis_url.as_str()).unwrap())
                .await
                .unwrap();
        // The orchestrators of a test share the state directory and so the
        // SSH key: made once here, not raced by processes starting together.
        context::ssh_key(&state_dir).await.unwrap();
        let bundle = build_bundle(&state_dir.join("bundle"));
        // Built off the runtime: the first build of a test process is long.
        let (orchestrator_bin, mock_engine) = tokio::task::spawn_blocking(|| {
            (
                cargo_bin("inventiv-orchestrator", "inventiv-orchestrator"),
                inventiv_testkit::engine::mock_engine(),
            )
        })
        .await
        .unwrap();
        Stack {
            api: format!("http://{api_addr}"),
            api_metrics,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            db,
            redis,
            db_url,
            redis_url,
            prefix,
            state_dir,
            bundle,
            orchestrator_bin,
            mock_engine,
            scaleway_url: scaleway_url.into(),
            scaleway_ssh: (22, None),
            cloud_reconcile_interval: Duration::from_secs(3600),
            provisioning_deadline: Duration::from_secs(1200),
            control_plane_address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            production: false,
            mock_engine_args: "",
            api_env: env,
            shutdown,
            encryption_key,
            spawned: AtomicUsize::new(0),
        }
    }

    /// The orchestrator in this process (stopped with the stack).
    pub async fn in_process(&self, first_address: Ipv4Addr) -> Arc<Orchestrator> {
        self.in_process_on(first_address, MockFaults::default(), self.shutdown.clone())
            .await
    }

    /// The orchestrator in this process, its mock provider injecting `faults`.
    pub async fn in_process_with(
        &self,
        first_address: Ipv4Addr,
        faults: MockFaults,
    ) -> Arc<Orchestrator> {
        self.in_process_on(first_address, faults, self.shutdown.clone())
            .await
    }

    /// An orchestrator in this process that stops when `stop` is
    /// cancelled (or with the stack: pass a child of its token).
    pub async fn in_process_until(
        &self,
        first_address: Ipv4Addr,
        stop: CancellationToken,
    ) -> Arc<Orchestrator> {
        self.in_process_on(first_address, MockFaults::default(), stop)
            .await
    }

    async fn in_process_on(
        &self,
        first_address: Ipv4Addr,
        faults: MockFaults,
        stop: CancellationToken,
    ) -> Arc<Orchestrator> {
        let config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            metrics_token: None,
            database_url: self.db_url.clone(),
            redis_url: self.redis_url.clone(),
            redis_prefix: self.prefix.clone(),
            state_dir: self.state_dir.clone(),
            control_plane_url: self.api.clone(),
            control_plane_address: self.control_plane_address,
            production: self.production,
            consumer: format!("test-orchestrator-{first_address}"),
            reconcile_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(10),
            startup_timeout: Duration::from_secs(120),
            bootstrap_attempts: 3,
            max_dead_share: 1.0,
            max_deliveries: 5,
            mock_engine: self.mock_engine.clone(),
            mock_engine_args: MockEngineArgs::parse(self.mock_engine_args).unwrap(),
            worker_heartbeat: Duration::from_secs(1),
            agent_bundle: self.bundle.clone(),
            bootstrap_script: repo().join("inventiv-worker/bootstrap.sh"),
            keyring: Arc::new(
                inventiv_store::crypto::Keyring::from_hex(&self.encryption_key, 1, None).unwrap(),
            ),
            scaleway_api_url: self.scaleway_url.clone(),
            scaleway_ssh_port: self.scaleway_ssh.0,
            scaleway_install_dir: self.scaleway_ssh.1.clone(),
            mock_engine_everywhere: true,
            cloud_reconcile_interval: self.cloud_reconcile_interval,
            host_check_interval: Duration::from_millis(500),
            orphan_grace: Duration::from_secs(1800),
            lease: Duration::from_secs(120),
            autoscaler: AutoscalerConfig {
                interval: Duration::from_millis(200),
                lease: Duration::from_secs(2),
                up_window: Duration::from_secs(1),
                down_window: Duration::from_secs(2),
            },
            provisioning_deadline: self.provisioning_deadline,
            mock_provider: true,
        };
        let bundle = context::bundle(config.agent_bundle.clone(), config.bootstrap_script.clone())
            .await
            .unwrap();
        let db = PgPool::connect(&self.db_url).await.unwrap();
        let orchestrator = Arc::new(
            Orchestrator::build_with(config, db, self.redis.clone(), bundle, move |mut m| {
                m.first_address = first_address;
                m.boot_delay = Duration::from_millis(100);
                m.faults = faults;
                Ok(m)
            })
            .await
            .unwrap(),
        );
        tokio::spawn(inventiv_orchestrator::run(orchestrator.clone(), stop));
        orchestrator
    }

    /// A token cancelled with the stack, or before it.
    pub fn child_token(&self) -> CancellationToken {
        self.shutdown.child_token()
    }

    /// The last lines of every orchestrator log, for failure messages.
    pub fn logs(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.state_dir.join("logs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        let mut text = String::new();
        for f in files {
            let body = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            text.push_str(&format!("--- {}\n{}\n", f.display(), tail.join("\n")));
        }
        text
    }

    /// A client for `id`'s node as the proxy has one (its relay's pinned
    /// certificate, its relay key) and the engine's base URL there.
    pub async fn engine(&self, id: Uuid) -> (reqwest::Client, String) {
        let keyring =
            inventiv_store::crypto::Keyring::from_hex(&self.encryption_key, 1, None).unwrap();
        let (ip, port): (String, i32) =
            sqlx::query_as("SELECT ip_address, worker_engine_port FROM instances WHERE id = $1")
                .bind(id)
                .fetch_one(&self.db)
                .await
                .unwrap();
        let access = inventiv_store::relay::load(&self.db, &keyring, id)
            .await
            .unwrap()
            .expect("a relay key and a pinned certificate");
        let client =
            inventiv_store::relay::pinned_client(reqwest::Client::builder().no_proxy(), &access)
                .unwrap();
        let port = u16::try_from(port).unwrap();
        (client, inventiv_store::relay::base_url(&ip, port))
    }

    /// Waits for `check`, failing the test with the orchestrators' logs.
    pub async fn until<T, F, Fut>(&self, what: &str, deadline: Duration, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        match poll(deadline, Duration::from_millis(50), check).await {
            Some(v) => v,
            None => panic!(
                "timed out after {deadline:?} waiting for {what}\n{}",
                self.logs()
            ),
        }
    }
}
