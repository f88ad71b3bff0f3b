//! Test harness: the real application on 127.0.0.1:0 against a fresh
//! database (cloned from a migrated template) and its own Redis key prefix,
//! an SMTP sink, fixtures and deadline-based waiting.

pub use inventiv_testkit::db;
pub mod engines;
pub mod fixture;
pub mod matrix;
pub mod replica;
pub mod rotation;
pub mod smtp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use inventiv_api::config::{Config, Env};
use inventiv_api::startup::Application;
use inventiv_api::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The admin created at start-up in every test app.
pub const ADMIN_EMAIL: &str = "admin@inventiv.test";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A random JWT secret and credentials key, as `make run` generates: tests
/// never run on the built-in development values.
pub fn random_secrets() -> Vec<(String, String)> {
    let hex = || {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    };
    vec![
        ("INVENTIV_JWT_SECRET".into(), hex()),
        ("INVENTIV_ENCRYPTION_KEY".into(), hex()),
    ]
}

/// The environment of an API replica on `database` and the Redis `prefix`
/// with `secrets`, keeping its state in `state_dir`: what the in-process
/// [`TestApp`] reads, and what a replica process (`replica.rs`) is given.
pub fn replica_env(
    database: &str,
    prefix: &str,
    secrets: &[(String, String)],
    state_dir: &std::path::Path,
) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), db::url_for(database)),
        (
            "REDIS_URL".into(),
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into()),
        ),
        ("INVENTIV_REDIS_PREFIX".into(), prefix.to_owned()),
        ("INVENTIV_API_ADDR".into(), "127.0.0.1:0".into()),
        ("INVENTIV_METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ("INVENTIV_STATE_DIR".into(), state_dir.display().to_string()),
        ("INVENTIV_PUBLIC_URL".into(), "http://dashboard.test".into()),
        ("INVENTIV_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
        ("INVENTIV_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ("INVENTIV_MAX_CONCURRENT_HASHES".into(), "4".into()),
        // Off: tests send a worker's heartbeats back to back;
        // heartbeat_limit.rs turns it on.
        ("INVENTIV_HEARTBEAT_MIN_INTERVAL_MS".into(), "0".into()),
    ]);
    env.extend(secrets.iter().cloned());
    env
}

/// A running API with its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    pub state: AppState,
    /// The random JWT secret and encryption key of this app (its replicas share them).
    pub secrets: Vec<(String, String)>,
    pub database: String,
    pub state_dir: PathBuf,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// One counter or gauge of the engine's Prometheus text.
pub async fn engine_metric(port: u16, name: &str) -> i64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value: f64 = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
    value as i64
}

pub use inventiv_testkit::wait::eventually;

/// The rows of `sql` (bound to `org` when given) once there are at least
/// `want` of them: usage is written off the request path, so tests wait for
/// it (10 s at most).
pub async fn rows_at_least<T>(
    app: &TestApp,
    want: usize,
    sql: &str,
    org: Option<uuid::Uuid>,
) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    eventually(
        &format!("{want} rows of {sql}"),
        Duration::from_secs(10),
        || async {
            let mut query = sqlx::query_as::<_, T>(sql);
            if let Some(org) = org {
                query = query.bind(org);
            }
            let rows = query.fetch_all(&app.state.db).await.expect("rows");
            (rows.len() >= want).then_some(rows)
        },
    )
    .await
}

impl TestApp {
    /// Spawns the app with the default test configuration.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// Spawns the app with extra environment variables.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
        // Logs go to the test's captured output (shown when it fails).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
        let database = db::fresh_database().await;
        let prefix = format!("inventiv-test:{}:", uuid::Uuid::new_v4().simple());
        TestApp::spawn_on(database, prefix, random_secrets(), vars).await
    }

    /// A second API replica on the same database and Redis prefix.
    pub async fn replica(&self) -> TestApp {
        self.replica_with(&[]).await
    }

    /// A second replica with extra environment variables (e.g. a new
    /// encryption key version).
    pub async fn replica_with(&self, vars: &[(&str, &str)]) -> TestApp {
        TestApp::spawn_on(
            self.database.clone(),
            self.state.config.redis_prefix.clone(),
            self.secrets.clone(),
            vars,
        )
        .await
    }

    async fn spawn_on(
        database: String,
        prefix: String,
        secrets: Vec<(String, String)>,
        vars: &[(&str, &str)],
    ) -> TestApp {
        let state_dir =
            std::env::temp_dir().join(format!("inventiv-test-{}", uuid::Uuid::new_v4().simple()));
        let mut env = replica_env(&database, &prefix, &secrets, &state_dir);
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(&Env(|k| env.get(k).cloned())).expect("test config");
        let app = Application::build(config).await.expect("app builds");
        let addr = app.local_addr().expect("bound");
        let metrics_addr = app.metrics_addr().expect("metrics bound");
        let state = app.state().clone();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.serve(shutdown.clone()));
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client");
        TestApp {
            addr,
            metrics_addr,
            state,
            secrets,
            database,
            state_dir,
            http,
            shutdown,
            server: Some(server),
        }
    }

    /// Stops the server gracefully and waits for it (and its background work).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with an optional bearer token and JSON body; returns
    /// the status, the headers and the body parsed as JSON (Null if empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, json)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::GET, path, token, None).await;
        (s, b)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::POST, path, token, Some(&body)).await;
        (s, b)
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::PUT, path, token, Some(&body)).await;
        (s, b)
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::PATCH, path, token, Some(&body)).await;
        (s, b)
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::DELETE, path, token, None).await;
        (s, b)
    }

    /// POSTs `body` as JSON with a bearer token and returns the response
    /// unread (streams, headers).
    pub async fn post_response(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A GET's body as text (the CSV exports).
    pub async fn get_text(&self, path: &str, token: &str) -> String {
        text_of(self.http.get(self.url(path)).bearer_auth(token)).await
    }

    /// The Prometheus text of `/metrics` (on its own port).
    pub async fn metrics(&self) -> String {
        text_of(
            self.http
                .get(format!("http://{}/metrics", self.metrics_addr)),
        )
        .await
    }

    /// Logs in and returns the whole token response.
    pub async fn login_full(&self, email: &str, password: &str) -> Value {
        let (status, body) = self
            .post(
                "/auth/login",
                None,
                serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login of {email}: {body}");
        body
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        self.login_full(email, password).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

async fn text_of(request: reqwest::RequestBuilder) -> String {
    let res = request.send().await.expect("request sent");
    res.text().await.expect("body read")
}

/// Asserts the error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(error["message"].is_string(), "error message in {body}");
    assert!(
        error["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "request id in {body}"
    );
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error code in {body}"))
}

/// A venv with the pinned `openai` SDK (tests/it/sdk/requirements.txt), made
/// once under target/ and remade when the requirements change; returns its
/// python. The tests that want it run in one process and may ask at the
/// same moment: a lock file beside the venv lets one of them build it while
/// the others wait, and then find it current.
pub fn sdk_python() -> PathBuf {
    use fs4::fs_std::FileExt;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = manifest.parent().unwrap().join("target");
    let venv = target.join("venv-sdk");
    let requirements = manifest.join("tests/it/sdk/requirements.txt");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    let lock = std::fs::File::create(target.join("venv-sdk.lock")).unwrap();
    lock.lock_exclusive().unwrap();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        assert!(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap()
                .success(),
            "python3 -m venv"
        );
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .unwrap();
        assert!(pip.success(), "pip install of the openai SDK");
        std::fs::write(&stamp, wanted).unwrap();
    }
    venv.join("bin/python")
}

/// `python` running the SDK script `script` (in tests/it/sdk) against the
/// `/v1` of `app` with `key`, and `MODE` set to `mode`.
pub fn sdk_command(python: &Path, script: &str, app: &TestApp, key: &str, mode: &str) -> Command {
    let mut command = Command::new(python);
    command
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/it/sdk")
                .join(script),
        )
        .env("BASE_URL", app.url("/v1"))
        .env("API_KEY", key)
        .env("MODE", mode);
    command
}

/// Runs an SDK script to its end; returns the JSON report it printed.
pub async fn sdk_report(mut command: Command) -> Value {
    let out = tokio::task::spawn_blocking(move || command.output().expect("SDK script runs"))
        .await
        .expect("SDK script joined");
    assert!(
        out.status.success(),
        "SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("SDK report")
}
