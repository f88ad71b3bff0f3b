//! API replicas as real processes: the `inventiv-api` binary cargo built
//! for this test, on the database, Redis prefix and secrets of a
//! [`TestApp`], with a state dir of its own that it keeps across restarts.
//! A replica can be killed with SIGKILL (`kill -9`) at any moment and is
//! always killed when dropped, so no test leaves one behind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{replica_env, TestApp};

/// How long a (debug) replica may take to listen after it was started.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// One replica process, started again on the same state dir after a kill.
pub struct Replica {
    pub name: String,
    pub state_dir: PathBuf,
    env: std::collections::HashMap<String, String>,
    /// One log file per life (`<life>.log`), JSON lines.
    logs: PathBuf,
    child: Option<Child>,
    /// Starts so far; the current life is `lives - 1`.
    pub lives: usize,
    /// Where the current life listens (None while down).
    pub addr: Option<SocketAddr>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.state_dir);
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

impl Replica {
    /// Starts a replica of `app` with extra environment variables and
    /// waits until it listens.
    pub async fn start(app: &TestApp, name: &str, vars: &[(&str, &str)]) -> Replica {
        let id = uuid::Uuid::new_v4().simple();
        let state_dir = std::env::temp_dir().join(format!("inventiv-replica-{name}-{id}"));
        let logs = std::env::temp_dir().join(format!("inventiv-replica-logs-{name}-{id}"));
        std::fs::create_dir_all(&logs).unwrap();
        let mut env = replica_env(
            &app.database,
            &app.state.config.redis_prefix,
            &app.secrets,
            &state_dir,
        );
        // Its own journal again after a restart (on port 0 the default id
        // is new at each start).
        env.insert("INVENTIV_REPLICA_ID".into(), name.to_owned());
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env.insert("LOG_FORMAT".into(), "json".into());
        env.insert("RUST_LOG".into(), "info".into());
        if let Ok(path) = std::env::var("PATH") {
            env.insert("PATH".into(), path);
        }
        let mut replica = Replica {
            name: name.to_owned(),
            state_dir,
            env,
            logs,
            child: None,
            lives: 0,
            addr: None,
        };
        replica.restart().await;
        replica
    }

    /// Starts the next life (the previous one must be dead) and waits for
    /// its `inventiv-api listening` line.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let log = self.logs.join(format!("{}.log", self.lives));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_inventiv-api"))
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.lives += 1;
        let until = tokio::time::Instant::now() + START_DEADLINE;
        let addr = loop {
            if let Some(addr) = listening(&std::fs::read_to_string(&log).unwrap_or_default()) {
                break addr;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "{} exited at start-up ({exited:?}):\n{}",
                self.name,
                self.log_tail(30)
            );
            assert!(
                tokio::time::Instant::now() < until,
                "{} did not listen within {START_DEADLINE:?}:\n{}",
                self.name,
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.addr = Some(addr);
    }

    /// `kill -9`, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.addr = None;
    }

    /// The last `lines` lines the current (or last) life logged.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self
            .logs
            .join(format!("{}.log", self.lives.saturating_sub(1)));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The address of the API's `inventiv-api listening` log line.
fn listening(log: &str) -> Option<SocketAddr> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["message"] == "inventiv-api listening")
        .and_then(|v| v["addr"].as_str()?.parse().ok())
}
