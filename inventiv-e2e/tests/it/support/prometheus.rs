//! A real Prometheus (Debian's `prometheus` package) scraping a test's
//! stack with the shipped configuration, deploy/prometheus/prometheus.yml:
//! its jobs, relabelling, metrics paths, authorization and rule files as
//! shipped. Only the files it names are the test's, written at the same
//! relative paths beside a copy of it: the targets files list the test's
//! metrics listeners, the token file holds the test's token, the rule
//! files are copies of the shipped ones. Prometheus listens on a port the
//! kernel chooses (read back from its log) and is killed when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{poll, repo, Stack};

/// The shipped files.
fn shipped() -> PathBuf {
    repo().join("deploy/prometheus")
}

/// A YAML file as JSON values (Prometheus reads JSON too: it is YAML).
fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where `name`, a path of the shipped configuration, lands in `dir`.
fn place(dir: &Path, name: &Value) -> PathBuf {
    let name = name.as_str().expect("a path");
    assert!(
        Path::new(name).is_relative(),
        "prometheus.yml names {name}: its paths are relative to it (deploy/prometheus)"
    );
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

/// The rule groups of the shipped rule files: (group name, rules in it).
pub fn shipped_rule_groups() -> Vec<(String, usize)> {
    let config = yaml(&shipped().join("prometheus.yml"));
    let files = config["rule_files"].as_array().cloned().unwrap_or_default();
    files
        .iter()
        .flat_map(|f| {
            let rules = yaml(&shipped().join(f.as_str().expect("a path")));
            rules["groups"].as_array().cloned().unwrap_or_default()
        })
        .map(|g| {
            let name = g["name"].as_str().unwrap().to_owned();
            (name, g["rules"].as_array().map_or(0, Vec::len))
        })
        .collect()
}

/// Writes the shipped configuration into `dir` for a stack whose metrics
/// listeners are `targets` (job name → address) and want `token`;
/// returns the configuration file's path.
fn configure(dir: &Path, targets: &HashMap<&str, SocketAddr>, token: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut config = yaml(&shipped().join("prometheus.yml"));
    // The one change: 1 s instead of the shipped intervals, so that the
    // test sees samples and rule evaluations within seconds.
    let fast = json!("1s");
    config["global"]["scrape_interval"] = fast.clone();
    config["global"]["evaluation_interval"] = fast.clone();
    for file in config["rule_files"].as_array().cloned().unwrap_or_default() {
        let from = shipped().join(file.as_str().expect("a path"));
        std::fs::copy(&from, place(dir, &file))
            .unwrap_or_else(|e| panic!("prometheus.yml's rule file {}: {e}", from.display()));
    }
    let jobs = config["scrape_configs"]
        .as_array_mut()
        .expect("prometheus.yml: scrape_configs");
    for job in jobs {
        let name = job["job_name"].as_str().unwrap().to_owned();
        let addr = targets.get(name.as_str()).unwrap_or_else(|| {
            panic!("prometheus.yml scrapes {name}, which this test does not start")
        });
        for key in ["scrape_interval", "scrape_timeout"] {
            if job.get(key).is_some() {
                job[key] = fast.clone();
            }
        }
        assert!(
            job.get("static_configs").is_none(),
            "{name}: static targets cannot name the test's listeners (file_sd_configs can)"
        );
        let listed = json!([{ "targets": [addr.to_string()] }]).to_string();
        let files: Vec<Value> = job["file_sd_configs"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no file_sd_configs"))
            .iter()
            .flat_map(|sd| sd["files"].as_array().cloned().unwrap_or_default())
            .collect();
        assert!(!files.is_empty(), "{name}: no targets files");
        for file in &files {
            std::fs::write(place(dir, file), &listed).unwrap();
        }
        let credentials = &job["authorization"]["credentials_file"];
        if !credentials.is_null() {
            std::fs::write(place(dir, credentials), format!("{token}\n")).unwrap();
        }
    }
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    child: Child,
    http: reqwest::Client,
    /// Its base URL.
    pub url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address of the log line where Prometheus says where it listens
/// (`msg="Listening on" address=127.0.0.1:PORT`).
fn listening(log: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter(|l| l.contains("msg=\"Listening on\""))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
        })
        .and_then(|a| a.parse().ok())
}

impl Prometheus {
    /// Starts Prometheus on the shipped configuration, scraping `targets`
    /// (job name → metrics listener) with `token`, and waits until it is
    /// ready. Its data and log are in the stack's state directory.
    pub async fn start(s: &Stack, targets: &[(&str, SocketAddr)], token: &str) -> Prometheus {
        let dir = s.state_dir.join("prometheus");
        let config = configure(&dir, &targets.iter().copied().collect(), token);
        let log = s.state_dir.join("logs").join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            // Port 0: the kernel chooses, and Prometheus logs what it got.
            .arg("--web.listen-address=127.0.0.1:0")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("prometheus (Debian: apt-get install prometheus; scripts/test.sh installs it)");
        // Killed by its drop from here on, even when the test fails.
        let mut p = Prometheus {
            child,
            http: s.http.clone(),
            url: String::new(),
        };
        let up: Option<Result<SocketAddr, ExitStatus>> =
            poll(Duration::from_secs(30), Duration::from_millis(50), || {
                let now = match p.child.try_wait() {
                    Ok(Some(status)) => Some(Err(status)),
                    _ => listening(&log).map(Ok),
                };
                async move { now }
            })
            .await;
        match up {
            Some(Ok(addr)) => p.url = format!("http://{addr}"),
            Some(Err(status)) => panic!("prometheus exited ({status})\n{}", s.logs()),
            None => panic!("prometheus never logged where it listens\n{}", s.logs()),
        }
        let ready = format!("{}/-/ready", p.url);
        s.until("prometheus to be ready", Duration::from_secs(60), || {
            let req = p.http.get(&ready).send();
            async move { req.await.ok()?.status().is_success().then_some(()) }
        })
        .await;
        p
    }

    /// The `data` of a `GET` of its HTTP API (`/api/v1/...`).
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let res = self
            .http
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert!(
            status.is_success() && body["status"] == "success",
            "{path} {query:?}: {status} {body}"
        );
        body["data"].clone()
    }

    /// The samples of the instant query `promql`: (labels, value).
    pub async fn query(&self, promql: &str) -> Vec<(Map<String, Value>, f64)> {
        let data = self.api("/api/v1/query", &[("query", promql)]).await;
        data["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|sample| {
                let labels = sample["metric"].as_object().cloned().unwrap_or_default();
                let value = sample["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }
}
