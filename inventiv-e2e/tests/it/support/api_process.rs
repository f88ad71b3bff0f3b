//! The API binary as a child process, beside the in-process API: the same
//! database, Redis prefix and secrets, a usage journal of its own, and
//! whatever else a test adds to its environment (the trace exporter's
//! endpoint). For what only a separate process shows, such as its traces.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use inventiv_testkit::binaries::cargo_bin;

use super::orchestrator::Process;
use super::Stack;

impl Stack {
    /// Starts `inventiv-api` with `extra` variables and waits until it
    /// answers; its base URL is `http://{addr()}`.
    pub async fn spawn_api(&self, name: &str, extra: &[(&str, &str)]) -> Process {
        let bin = tokio::task::spawn_blocking(|| cargo_bin("inventiv-api", "inventiv-api"))
            .await
            .unwrap();
        let n = self.spawned.fetch_add(1, Ordering::SeqCst);
        let log = self
            .state_dir
            .join("logs")
            .join(format!("{n:02}-{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        // Its own journal directory: a replica's journal is locked by it.
        let state_dir = self.state_dir.join(name);
        std::fs::create_dir_all(&state_dir).unwrap();
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .envs(self.api_env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("INVENTIV_STATE_DIR", &state_dir)
            .envs(extra.iter().copied())
            .current_dir(&state_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let p = Process {
            child: Some(cmd.spawn().expect("start inventiv-api")),
            log,
            announces: "inventiv-api listening",
            addr: None,
        };
        self.wait_up(p, name).await
    }
}
