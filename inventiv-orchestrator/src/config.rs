//! The orchestrator's configuration, from the environment with development
//! defaults (see docs/configuration.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inventiv_common::secrets;
use inventiv_store::crypto::{Keyring, DEV_KEY};
use secrecy::SecretString;

/// Everything the orchestrator needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The probes (`/healthz`, `/readyz`).
    pub addr: SocketAddr,
    /// `/metrics`, on a listener of its own (loopback by default).
    pub metrics_addr: SocketAddr,
    /// Bearer token `/metrics` requires when set (`INVENTIV_METRICS_TOKEN`,
    /// the API's too).
    pub metrics_token: Option<SecretString>,
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub state_dir: PathBuf,
    /// Where worker agents reach the API (register, heartbeats).
    pub control_plane_url: String,
    /// The address worker nodes see the control plane come from: their
    /// engine and agent ports are open to it only (to anyone when unset,
    /// which production refuses: see `production`).
    pub control_plane_address: Option<std::net::IpAddr>,
    /// `INVENTIV_ENV=production`: cloud deployments fail with
    /// `CONTROL_PLANE_ADDRESS_REQUIRED` while `control_plane_address` is unset.
    pub production: bool,
    /// This replica's name in the Redis consumer group and in leases.
    pub consumer: String,
    /// How often every live instance is reconciled.
    pub reconcile_interval: Duration,
    /// A ready instance whose last heartbeat is older is declared dead.
    pub heartbeat_timeout: Duration,
    /// An instance not ready this long after provisioning began fails.
    pub startup_timeout: Duration,
    /// Install attempts before `startup_failed` (the default of the
    /// worker settings' `bootstrap_attempts`).
    pub bootstrap_attempts: i32,
    /// At most this share of the ready workers is declared dead in one sweep.
    pub max_dead_share: f64,
    /// A command delivered this many times without success is dead-lettered.
    pub max_deliveries: u64,
    /// The mock engine binary the mock provider's nodes run.
    pub mock_engine: PathBuf,
    /// Arguments added to the mock engine's command line, after those the
    /// orchestrator gives it (`INVENTIV_MOCK_ENGINE_ARGS`: e.g. its time to
    /// first token and decode speed, so that requests stay outstanding).
    pub mock_engine_args: MockEngineArgs,
    /// How often worker agents heartbeat.
    pub worker_heartbeat: Duration,
    /// The agent bundle and the bootstrap script installed on nodes.
    pub agent_bundle: PathBuf,
    pub bootstrap_script: PathBuf,
    /// Keys that decrypt organizations' provider credentials (the API's).
    pub keyring: Arc<Keyring>,
    /// Scaleway's API (a fake in tests).
    pub scaleway_api_url: String,
    /// SSH port of Scaleway servers and where the worker goes on them.
    pub scaleway_ssh_port: u16,
    pub scaleway_install_dir: Option<String>,
    /// Run the mock engine (and skip the GPU checks) on every provider's
    /// nodes, not only the mock provider's: development and tests.
    pub mock_engine_everywhere: bool,
    /// How often cloud resources are compared with the database.
    pub cloud_reconcile_interval: Duration,
    /// How often the organizations' hosts (the `ssh` provider) are
    /// verified again, and their pending cleanups tried.
    pub host_check_interval: Duration,
    /// A tagged resource without a live instance is deleted once this old.
    pub orphan_grace: Duration,
    /// How long an instance lease lasts without renewal; a running step
    /// renews it every third of this, so a dead replica's instances are
    /// taken over after at most this long.
    pub lease: Duration,
    /// The autoscaler's pace, lease and windows.
    pub autoscaler: AutoscalerConfig,
    /// How long provisioning (the provider's side: create, power-on, boot)
    /// may take in all before the instance ends in `provisioning_failed`
    /// and what was created is deleted.
    pub provisioning_deadline: Duration,
    /// Whether the mock provider (VMs as root processes of this host)
    /// serves deployments: development only unless enabled explicitly.
    pub mock_provider: bool,
}

fn var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// A secret: the variable, else the file named by `<key>_FILE`.
fn secret(key: &str) -> anyhow::Result<Option<String>> {
    secrets::read(|k| std::env::var(k).ok(), key).map_err(anyhow::Error::from)
}

fn flag(key: &str, default: bool) -> anyhow::Result<bool> {
    match var(key).map(|v| v.trim().to_lowercase()).as_deref() {
        None => Ok(default),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(other) => anyhow::bail!("{key}={other:?} is not a boolean"),
    }
}

fn production() -> anyhow::Result<bool> {
    match var("INVENTIV_ENV").as_deref() {
        None | Some("development" | "test") => Ok(false),
        Some("production") => Ok(true),
        Some(other) => anyhow::bail!("INVENTIV_ENV={other:?}: use development or production"),
    }
}

/// The credentials key: refused when missing or a built-in value, unless
/// `INVENTIV_INSECURE_DEVELOPMENT=1` outside production on a loopback
/// listener (the API applies the same rule).
fn encryption_key(addr: SocketAddr, production: bool) -> anyhow::Result<String> {
    let insecure = secrets::insecure_allowed(
        flag(secrets::INSECURE_DEVELOPMENT, false)?,
        production,
        addr,
    )?;
    Ok(secrets::choose(
        "INVENTIV_ENCRYPTION_KEY",
        secret("INVENTIV_ENCRYPTION_KEY")?,
        DEV_KEY,
        &[DEV_KEY],
        64,
        insecure,
        "set the API's key (make run keeps one in its state dir)",
    )?)
}

fn parse<T: std::str::FromStr>(key: &str, default: T) -> anyhow::Result<T> {
    match var(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{key}={v:?} is not a valid value")),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let state_dir = PathBuf::from(var("INVENTIV_STATE_DIR").unwrap_or_else(|| ".local".into()));
        let api = var("INVENTIV_API_ADDR").unwrap_or_else(|| "127.0.0.1:8003".into());
        let addr = parse(
            "INVENTIV_ORCHESTRATOR_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8001)),
        )?;
        let metrics_addr = parse(
            "INVENTIV_ORCHESTRATOR_METRICS_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8002)),
        )?;
        Ok(Config {
            addr,
            metrics_addr,
            metrics_token: secret("INVENTIV_METRICS_TOKEN")?.map(SecretString::from),
            database_url: secret("DATABASE_URL")?
                .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is required (make run sets it up)"))?,
            redis_url: secret("REDIS_URL")?
                .ok_or_else(|| anyhow::anyhow!("REDIS_URL is required (make run sets it up)"))?,
            redis_prefix: var("INVENTIV_REDIS_PREFIX").unwrap_or_else(|| "inventiv:".into()),
            control_plane_url: var("INVENTIV_CONTROL_PLANE_URL")
                .unwrap_or_else(|| format!("http://{api}")),
            control_plane_address: var("INVENTIV_CONTROL_PLANE_ADDRESS")
                .map(|v| {
                    v.trim().parse().map_err(|_| {
                        anyhow::anyhow!("INVENTIV_CONTROL_PLANE_ADDRESS={v:?} is not an IP address")
                    })
                })
                .transpose()?,
            production: match var("INVENTIV_ENV").as_deref() {
                None | Some("development") => false,
                Some("production") => true,
                Some(other) => {
                    anyhow::bail!("INVENTIV_ENV={other:?}: use development or production")
                }
            },
            consumer: var("INVENTIV_ORCHESTRATOR_NAME")
                .unwrap_or_else(|| format!("orchestrator-{}", std::process::id())),
            reconcile_interval: Duration::from_millis(
                parse("INVENTIV_RECONCILE_INTERVAL_MS", 1000u64)?.max(50),
            ),
            heartbeat_timeout: Duration::from_secs(parse(
                "INVENTIV_HEARTBEAT_TIMEOUT_SECS",
                30u64,
            )?),
            startup_timeout: Duration::from_secs(parse("INVENTIV_STARTUP_TIMEOUT_SECS", 900u64)?),
            bootstrap_attempts: parse("INVENTIV_BOOTSTRAP_ATTEMPTS", 3i32)?.max(1),
            max_dead_share: parse("INVENTIV_WATCHDOG_MAX_DEAD_SHARE", 0.5f64)?.clamp(0.0, 1.0),
            max_deliveries: parse("INVENTIV_MAX_COMMAND_DELIVERIES", 5u64)?.max(1),
            mock_engine: var("INVENTIV_MOCK_ENGINE").map_or_else(
                || PathBuf::from("target/debug/inventiv-mock-engine"),
                PathBuf::from,
            ),
            mock_engine_args: var("INVENTIV_MOCK_ENGINE_ARGS")
                .map(|v| MockEngineArgs::parse(&v))
                .transpose()
                .map_err(|e| anyhow::anyhow!("INVENTIV_MOCK_ENGINE_ARGS: {e}"))?
                .unwrap_or_default(),
            worker_heartbeat: Duration::from_secs(
                parse("INVENTIV_WORKER_HEARTBEAT_SECS", 5u64)?.max(1),
            ),
            agent_bundle: var("INVENTIV_AGENT_BUNDLE").map_or_else(newest_bundle, PathBuf::from),
            bootstrap_script: var("INVENTIV_BOOTSTRAP_SCRIPT").map_or_else(
                || PathBuf::from("inventiv-worker/bootstrap.sh"),
                PathBuf::from,
            ),
            keyring: Arc::new(
                Keyring::from_hex(
                    &encryption_key(addr, production()?)?,
                    parse("INVENTIV_ENCRYPTION_KEY_VERSION", 1i32)?,
                    secret("INVENTIV_ENCRYPTION_KEY_PREVIOUS")?.as_deref(),
                )
                .map_err(|e| anyhow::anyhow!("INVENTIV_ENCRYPTION_KEY*: {e}"))?,
            ),
            scaleway_api_url: var("INVENTIV_SCALEWAY_API_URL")
                .unwrap_or_else(|| "https://api.scaleway.com".into()),
            scaleway_ssh_port: parse("INVENTIV_SCALEWAY_SSH_PORT", 22u16)?,
            scaleway_install_dir: var("INVENTIV_SCALEWAY_INSTALL_DIR"),
            mock_engine_everywhere: match var("INVENTIV_WORKER_ENGINE").as_deref() {
                None | Some("vllm") => false,
                Some("mock") => true,
                Some(other) => anyhow::bail!("INVENTIV_WORKER_ENGINE={other:?}: use vllm or mock"),
            },
            cloud_reconcile_interval: Duration::from_secs(
                parse("INVENTIV_CLOUD_RECONCILE_INTERVAL_SECS", 300u64)?.max(1),
            ),
            host_check_interval: Duration::from_millis(
                parse("INVENTIV_HOST_CHECK_INTERVAL_MS", 30_000u64)?.max(200),
            ),
            orphan_grace: Duration::from_secs(parse("INVENTIV_ORPHAN_GRACE_SECS", 1800u64)?),
            lease: Duration::from_millis(parse("INVENTIV_INSTANCE_LEASE_MS", 120_000u64)?.max(300)),
            autoscaler: AutoscalerConfig {
                interval: Duration::from_millis(
                    parse("INVENTIV_AUTOSCALER_INTERVAL_MS", 1000u64)?.clamp(100, 10_000),
                ),
                lease: Duration::from_millis(
                    parse("INVENTIV_AUTOSCALER_LEASE_MS", 10_000u64)?.clamp(300, 600_000),
                ),
                up_window: Duration::from_millis(
                    parse("INVENTIV_AUTOSCALER_UP_WINDOW_MS", 30_000u64)?.clamp(100, 3_600_000),
                ),
                down_window: Duration::from_millis(
                    parse("INVENTIV_AUTOSCALER_DOWN_WINDOW_MS", 120_000u64)?.clamp(100, 3_600_000),
                ),
            },
            provisioning_deadline: Duration::from_secs(
                parse("INVENTIV_PROVISIONING_DEADLINE_SECS", 1200u64)?.max(1),
            ),
            mock_provider: flag("INVENTIV_MOCK_PROVIDER", !production()?)?,
            state_dir,
        })
    }
}

/// Extra arguments of the mock engine, checked by its own parser: flags
/// it knows with valid values, none of those the orchestrator sets itself
/// (where it listens, the model it serves), no placeholder braces (the
/// agent fills `{host}`, `{port}`, `{model}` in the command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockEngineArgs(Vec<String>);

impl MockEngineArgs {
    /// At most this many words…
    pub const MAX_WORDS: usize = 32;
    /// …of at most this many bytes each.
    pub const MAX_WORD_LEN: usize = 200;
    /// Flags the orchestrator gives the engine, which must stay as they are.
    const RESERVED: [&'static str; 4] = ["--host", "--port", "--model", "--served-model-name"];

    /// Whitespace-separated words, e.g. `--ttft-ms 200 --tokens-per-second 40`.
    pub fn parse(text: &str) -> Result<MockEngineArgs, String> {
        let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        if words.len() > Self::MAX_WORDS {
            return Err(format!(
                "{} words, at most {} are allowed",
                words.len(),
                Self::MAX_WORDS
            ));
        }
        for w in &words {
            if w.len() > Self::MAX_WORD_LEN {
                return Err(format!(
                    "{:?}… is longer than {} bytes",
                    w.chars().take(20).collect::<String>(),
                    Self::MAX_WORD_LEN
                ));
            }
            if w.contains(['{', '}']) {
                return Err(format!("{w:?}: braces are the agent's placeholders"));
            }
            let flag = w.split_once('=').map_or(w.as_str(), |(f, _)| f);
            if Self::RESERVED.contains(&flag) {
                return Err(format!(
                    "{flag} is set by the orchestrator (where the engine listens, the model it serves)"
                ));
            }
        }
        let base = [
            "inventiv-mock-engine",
            "--host",
            "127.0.0.1",
            "--port",
            "8000",
        ];
        inventiv_mock_engine::Config::try_parse_flags(
            base.iter().copied().chain(words.iter().map(String::as_str)),
        )
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_owned()
        })?;
        Ok(MockEngineArgs(words))
    }

    /// The words, in order.
    pub fn words(&self) -> &[String] {
        &self.0
    }
}

/// The autoscaler's settings (see `autoscaler::run`).
#[derive(Debug, Clone)]
pub struct AutoscalerConfig {
    /// How often it reads the load and decides (the API replicas publish
    /// every `INVENTIV_SIGNALS_INTERVAL_MS`: read at least as often).
    pub interval: Duration,
    /// How long its lease lasts without renewal: another orchestrator
    /// takes over at most this long after the holder died.
    pub lease: Duration,
    /// How long a target must be exceeded before scaling up, and the load
    /// stay low before scaling down.
    pub up_window: Duration,
    pub down_window: Duration,
}

/// The newest `target/agent/inventiv-agent-<version>.tar.gz` (what
/// `make agent-checksum` builds), when `INVENTIV_AGENT_BUNDLE` is not set.
fn newest_bundle() -> PathBuf {
    let dir = PathBuf::from("target/agent");
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("inventiv-agent-") && name.ends_with(".tar.gz")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map_or_else(|| dir.join("inventiv-agent-<version>.tar.gz"), |e| e.path())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::MockEngineArgs;

    #[test]
    fn mock_engine_args_are_the_engine_s_own_flags() {
        let args =
            MockEngineArgs::parse("  --ttft-ms 200\t--tokens-per-second=40 --output-len 16 ")
                .unwrap();
        assert_eq!(
            args.words(),
            [
                "--ttft-ms",
                "200",
                "--tokens-per-second=40",
                "--output-len",
                "16"
            ]
        );
        assert!(MockEngineArgs::parse("").unwrap().words().is_empty());
    }

    #[test]
    fn bad_mock_engine_args_are_refused_with_the_reason() {
        for (text, says) in [
            ("--ttft 200", "--ttft"),
            ("--ttft-ms soon", "soon"),
            ("--tokens-per-second -1", "-1"),
            ("stray", "stray"),
            ("--port 9000", "--port is set by the orchestrator"),
            ("--host=0.0.0.0", "--host is set by the orchestrator"),
            ("--served-model-name x", "--served-model-name"),
            ("--model={model}", "braces"),
        ] {
            let err = MockEngineArgs::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let many = "--ttft-ms 1 ".repeat(17);
        assert!(MockEngineArgs::parse(&many)
            .unwrap_err()
            .contains("at most 32"));
        let long = format!("--model-x{}", "y".repeat(300));
        assert!(MockEngineArgs::parse(&long)
            .unwrap_err()
            .contains("longer than 200"));
    }
}
