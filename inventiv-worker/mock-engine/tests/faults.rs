//! Load delay and fault injection against the real app; `exit-after`
//! against the built binary, since it ends the process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use inventiv_mock_engine::faults::{ExitMode, FaultConfig, FaultStatus};
use inventiv_mock_engine::Config;
use inventiv_testkit::wait::eventually;
use serde_json::{json, Value};
use support::{config, spawn};

const CHAT: &str = "/v1/chat/completions";

fn hello() -> Value {
    json!({"model": "mock/model", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2})
}

fn with_faults(faults: FaultConfig) -> Config {
    Config { faults, ..config() }
}

#[tokio::test]
async fn loading_answers_503_then_200() {
    let engine = spawn(Config {
        load_delay: Duration::from_millis(300),
        ..config()
    })
    .await;
    // Listening at once, but not ready.
    assert_eq!(engine.get("/health").await.0, 503);
    let (status, body) = engine.post(CHAT, &hello()).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["type"], "ServiceUnavailableError");
    assert_eq!(engine.get("/v1/models").await.0, 503);
    assert_eq!(
        engine.get("/metrics").await.0,
        200,
        "metrics are always served"
    );

    eventually("/health 200", Duration::from_secs(5), || async {
        (engine.get("/health").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(engine.get("/v1/models").await.0, 200);
    assert_eq!(engine.post(CHAT, &hello()).await.0, 200);
}

#[tokio::test]
async fn fail_first_n_then_serve() {
    let engine = spawn(with_faults(FaultConfig {
        fail_first: 2,
        status: FaultStatus::parse("503").unwrap(),
        ..FaultConfig::default()
    }))
    .await;
    // Probes are never faulted nor counted.
    assert_eq!(engine.get("/health").await.0, 200);
    for _ in 0..2 {
        let (status, body) = engine.post(CHAT, &hello()).await;
        assert_eq!(status, 503);
        assert_eq!(body["error"]["code"], 503);
    }
    assert_eq!(engine.post(CHAT, &hello()).await.0, 200);
    assert_eq!(
        engine
            .post("/v1/completions", &json!({"prompt": "x"}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn fail_always_with_the_configured_status() {
    let engine = spawn(with_faults(FaultConfig {
        fail_always: true,
        status: FaultStatus::parse("502").unwrap(),
        ..FaultConfig::default()
    }))
    .await;
    for path in [CHAT, "/v1/completions", "/v1/embeddings"] {
        let (status, body) = engine
            .post(path, &json!({"prompt": "x", "input": "x"}))
            .await;
        assert_eq!(status, 502, "{path}");
        assert_eq!(body["error"]["type"], "BadGatewayError");
    }
    assert_eq!(engine.get("/v1/models").await.0, 502);
    assert_eq!(engine.get("/health").await.0, 200);
}

#[tokio::test]
async fn hang_after_n_never_answers() {
    let engine = spawn(with_faults(FaultConfig {
        hang_after: Some(1),
        ..FaultConfig::default()
    }))
    .await;
    assert_eq!(engine.post(CHAT, &hello()).await.0, 200);
    let hung = engine
        .client
        .post(engine.url(CHAT))
        .json(&hello())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    let error = hung.expect_err("the request must hang");
    assert!(error.is_timeout(), "{error}");
    assert_eq!(
        engine.get("/health").await.0,
        200,
        "the server itself is alive"
    );
}

#[tokio::test]
async fn hung_requests_count_as_running_and_do_not_block_shutdown() {
    let mut engine = spawn(with_faults(FaultConfig {
        hang_after: Some(0),
        ..FaultConfig::default()
    }))
    .await;
    let pending = tokio::spawn({
        let client = engine.client.clone();
        let url = engine.url(CHAT);
        async move {
            client
                .post(url)
                .json(&hello())
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let running = r#"vllm:num_requests_running{model_name="mock/model"}"#;
    eventually("a hanging request", Duration::from_secs(5), || async {
        (engine.metric(running).await == 1.0).then_some(())
    })
    .await;
    assert!(!pending.is_finished());
    engine.shutdown.cancel();
    let server = engine.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("shutdown in time")
        .unwrap()
        .unwrap();
    assert_eq!(pending.await.unwrap().unwrap(), 503);
}

/// The built binary as a child process, killed if a test fails.
struct Process {
    child: Child,
    addr: String,
    /// Every JSON line it logged after `listening`.
    logs: mpsc::Receiver<Value>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts the engine on a free port and reads the address it logs.
    fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[])
    }

    /// The same, with environment variables.
    fn start_with(args: &[&str], vars: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_inventiv-mock-engine"))
            .args(["--port", "0", "--workers", "1"])
            .args(args)
            .envs(vars.iter().copied())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the engine");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let (logs_tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(log) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if log["message"] == "listening" {
                    let _ = tx.send(log["addr"].as_str().unwrap_or_default().to_owned());
                } else {
                    let _ = logs_tx.send(log);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the engine logs `listening`");
        Self { child, addr, logs }
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the engine did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One access line per request, as vLLM's server writes: the worker's log
/// viewer shows them (the agent leaves out its own probes' lines).
#[tokio::test]
async fn every_request_logs_an_access_line() {
    let process = Process::start(&[]);
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}{CHAT}", process.addr))
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let log = process
            .logs
            .recv_timeout(left)
            .expect("an access line for the chat");
        if log["message"] == format!("\"POST {CHAT} HTTP/1.1\" 200") {
            assert!(log["ms"].is_u64(), "{log}");
            break;
        }
    }
}

#[tokio::test]
async fn exit_after_n_answers_then_exits_zero() {
    let mut process = Process::start(&["--exit-after", "2"]);
    let client = reqwest::Client::new();
    let url = format!("http://{}{CHAT}", process.addr);
    for _ in 0..2 {
        let response = client.post(&url).json(&hello()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["usage"]["completion_tokens"], 2,
            "the answer arrived whole"
        );
    }
    let status = process.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn exit_after_n_in_crash_mode_dies_unanswered() {
    let mut process = Process::start(&["--exit-after", "2", "--exit-mode", "crash"]);
    let client = reqwest::Client::new();
    let url = format!("http://{}{CHAT}", process.addr);
    assert_eq!(
        client
            .post(&url)
            .json(&hello())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let second = client.post(&url).json(&hello()).send().await;
    assert!(second.is_err(), "no answer: {second:?}");
    let status = process.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{status}");
}

#[test]
fn exit_mode_parses() {
    assert_eq!(ExitMode::parse("crash"), Ok(ExitMode::Crash));
    assert!(ExitMode::parse("boom").is_err());
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let mut process = Process::start(&[]);
    let status = Command::new("kill")
        .args(["-TERM", &process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = process.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn variables_configure_the_binary_and_flags_win() {
    // --port 0 (a flag) wins over the variable; an empty variable is unset.
    let process = Process::start_with(
        &[],
        &[
            ("INVENTIV_MOCK_PORT", "1"),
            ("INVENTIV_MOCK_MODEL", "env/model"),
            ("INVENTIV_MOCK_TTFT_MS", ""),
        ],
    );
    let models: Value = reqwest::get(format!("http://{}/v1/models", process.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "env/model", "{models}");
}

#[test]
fn a_bad_variable_stops_the_binary_with_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_inventiv-mock-engine"))
        .env("INVENTIV_MOCK_TTFT_MS", "soon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--ttft-ms") && stderr.contains("\"soon\" is not a valid number"),
        "{stderr}"
    );
}
