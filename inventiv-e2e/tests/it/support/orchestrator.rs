//! The orchestrator binary as a child process: configured by its
//! environment only, started on a port the kernel chooses (read back from
//! its `listening` log line), waited for, SIGKILLed. [`Process`] serves
//! the API binary too (`api_process`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{poll, repo, Stack};

/// How to run an orchestrator process.
#[derive(Debug, Clone)]
pub struct Opts {
    pub name: String,
    pub first_address: Ipv4Addr,
    pub boot_delay_ms: u64,
    pub heartbeat_timeout_secs: u64,
    pub startup_timeout_secs: u64,
    pub extra: Vec<(String, String)>,
}

impl Opts {
    pub fn new(name: &str, first_address: Ipv4Addr) -> Opts {
        Opts {
            name: name.into(),
            first_address,
            boot_delay_ms: 0,
            heartbeat_timeout_secs: 10,
            startup_timeout_secs: 180,
            extra: Vec::new(),
        }
    }
}

/// A running `inventiv-orchestrator` (or `inventiv-api`) process;
/// SIGKILLed when dropped.
pub struct Process {
    pub(super) child: Option<Child>,
    pub log: PathBuf,
    /// The log line that says where it listens (`addr=` on it).
    pub(super) announces: &'static str,
    /// Where its probes listen, once `spawn_up` has read it from the log.
    pub(super) addr: Option<SocketAddr>,
}

impl Process {
    /// Where its probes listen (known once it is up).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("an address: start it with spawn_up")
    }

    /// Where its metrics listener is (logged before the probes' address).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.logged("metrics listening")
            .expect("a metrics address: start it with spawn_up")
    }

    /// The address its log says it listens on, once it has said so.
    pub(super) fn listening(&self) -> Option<SocketAddr> {
        self.logged(self.announces)
    }

    /// The `addr=` of the first log line that says `what`.
    fn logged(&self, what: &str) -> Option<SocketAddr> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        log.lines()
            .filter(|l| l.contains(what))
            .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
            .and_then(|a| a.parse().ok())
    }

    /// `kill -9`, then reaps it. Only the orchestrator: what it started
    /// (ssh clients, mock VMs) lives on, as after a real crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it exited on its own (it must not).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Stack {
    /// Starts the orchestrator binary, configured by its environment only.
    pub fn spawn(&self, opts: &Opts) -> Process {
        let n = self.spawned.fetch_add(1, Ordering::SeqCst);
        let log = self
            .state_dir
            .join("logs")
            .join(format!("{n:02}-{}.log", opts.name));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&self.orchestrator_bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            )
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", &self.redis_url)
            .env("INVENTIV_REDIS_PREFIX", &self.prefix)
            .env("INVENTIV_ENCRYPTION_KEY", &self.encryption_key)
            .env("INVENTIV_STATE_DIR", &self.state_dir)
            .env("INVENTIV_ORCHESTRATOR_NAME", &opts.name)
            .env("INVENTIV_ORCHESTRATOR_ADDR", "127.0.0.1:0")
            .env("INVENTIV_ORCHESTRATOR_METRICS_ADDR", "127.0.0.1:0")
            .env("INVENTIV_CONTROL_PLANE_URL", &self.api)
            .env("INVENTIV_AGENT_BUNDLE", &self.bundle)
            .env(
                "INVENTIV_BOOTSTRAP_SCRIPT",
                repo().join("inventiv-worker/bootstrap.sh"),
            )
            .env("INVENTIV_MOCK_ENGINE", &self.mock_engine)
            .env(
                "INVENTIV_MOCK_FIRST_ADDRESS",
                opts.first_address.to_string(),
            )
            .env(
                "INVENTIV_MOCK_BOOT_DELAY_MS",
                opts.boot_delay_ms.to_string(),
            )
            .env("INVENTIV_RECONCILE_INTERVAL_MS", "200")
            .env("INVENTIV_WORKER_HEARTBEAT_SECS", "1")
            .env(
                "INVENTIV_HEARTBEAT_TIMEOUT_SECS",
                opts.heartbeat_timeout_secs.to_string(),
            )
            .env(
                "INVENTIV_STARTUP_TIMEOUT_SECS",
                opts.startup_timeout_secs.to_string(),
            )
            .env("INVENTIV_WATCHDOG_MAX_DEAD_SHARE", "1.0")
            .envs(opts.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.state_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        Process {
            child: Some(cmd.spawn().expect("start inventiv-orchestrator")),
            log,
            announces: "inventiv-orchestrator listening",
            addr: None,
        }
    }

    /// SIGKILLs `process` (`kill -9`) and starts the orchestrator binary again
    /// with `opts` (the same name, or another replica's), without waiting.
    pub fn restart(&self, mut process: Process, opts: &Opts) -> Process {
        process.kill9();
        self.spawn(opts)
    }

    /// Starts the orchestrator binary and waits until its probes answer.
    pub async fn spawn_up(&self, opts: &Opts) -> Process {
        let p = self.spawn(opts);
        self.wait_up(p, &opts.name).await
    }

    /// Waits until `p` said where it listens and its `/healthz` answers.
    pub(super) async fn wait_up(&self, mut p: Process, name: &str) -> Process {
        let addr = poll(Duration::from_secs(30), Duration::from_millis(50), || {
            let addr = p.listening();
            async move { addr }
        })
        .await;
        let Some(addr) = addr else {
            panic!(
                "{} never logged its address ({:?})\n{}",
                name,
                p.exited(),
                self.logs()
            );
        };
        p.addr = Some(addr);
        let url = format!("http://{addr}/healthz");
        let up = poll(Duration::from_secs(30), Duration::from_millis(50), || {
            let req = self.http.get(&url).send();
            async move { req.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        assert!(
            up.is_some(),
            "{} did not come up ({:?})\n{}",
            name,
            p.exited(),
            self.logs()
        );
        p
    }
}
