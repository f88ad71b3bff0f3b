//! Typed configuration, read once from the environment with development defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use inventiv_common::secrets;
use secrecy::{ExposeSecret, SecretString};

/// The JWT secret used when none is configured. Refused in production.
pub const DEV_JWT_SECRET: &str = "inventiv-development-jwt-secret-do-not-use-in-production";
/// The credentials encryption key used when none is configured. Refused in production.
pub const DEV_ENCRYPTION_KEY: &str = inventiv_store::crypto::DEV_KEY;
/// How to make a credentials encryption key.
pub const ENCRYPTION_KEY_HINT: &str = "generate one with `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'` (make run keeps one in its state dir)";

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a local relay or test sink).
    None,
    /// Upgrade with STARTTLS (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where outgoing mail goes.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub tls: SmtpTls,
}

/// Everything the API process needs to know, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub production: bool,
    pub addr: SocketAddr,
    pub public_url: String,
    pub state_dir: PathBuf,
    pub database_url: SecretString,
    pub redis_url: SecretString,
    pub redis_prefix: String,
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
    pub jwt_secret: SecretString,
    /// Keys that encrypt provider credentials (current and previous).
    pub keyring: std::sync::Arc<inventiv_store::crypto::Keyring>,
    /// Scaleway's API (a fake in tests).
    pub scaleway_api_url: String,
    /// The orchestrator's orphan grace window (for reconciliation reports).
    pub orphan_grace: Duration,
    pub open_signup: bool,
    pub access_token_ttl: Duration,
    pub session_ttl: Duration,
    pub invitation_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub login_max_failures: u32,
    pub login_lockout: Duration,
    pub max_concurrent_hashes: usize,
    pub max_body_bytes: usize,
    /// Bounds on what a (tenant-controlled) worker's answer may make the proxy hold.
    pub upstream: UpstreamLimits,
    /// How long before a price increase applies to an accepted share (unless
    /// its consumer accepts the new price sooner).
    pub price_notice: Duration,
    pub cookie_secure: bool,
    pub smtp: Option<SmtpConfig>,
    pub smtp_from: String,
    /// How long worker GPU/system samples are kept.
    pub sample_retention: Duration,
    /// How often old samples are pruned.
    pub sample_prune_interval: Duration,
    /// How often each replica writes the heartbeats it accepted.
    pub heartbeat_flush: Duration,
    /// How often each replica publishes its load for the autoscaler.
    pub signals_interval: Duration,
    /// How often services' replicas are converged to their wish (one
    /// replica at a time does it).
    pub replicas_interval: Duration,
    /// The least time between two accepted heartbeats of one worker on a
    /// replica (zero: no limit).
    pub heartbeat_min_interval: Duration,
    /// How long a replica taken away may drain (no new requests, in-flight
    /// ones finishing) before it is terminated anyway.
    pub drain_timeout: Duration,
    /// How long a placement where a replica failed for capacity or quota
    /// is skipped when making replicas.
    pub placement_avoid: Duration,
    /// How often the cost job runs in this replica; None: not here.
    pub cost_job_interval: Option<Duration>,
    /// Reconciling the proxy's metering with the engines' token counters.
    pub usage_drift: UsageDrift,
    /// Where `/metrics` is served (not on the API's port).
    pub metrics_addr: SocketAddr,
    /// Bearer token required by `/metrics` when set.
    pub metrics_token: Option<SecretString>,
    /// The built dashboard served at `/`.
    pub frontend_dir: PathBuf,
    /// Whether the mock provider (processes on this host) may be deployed on.
    pub mock_provider: bool,
    /// Deployment quotas of organizations without their own.
    pub default_max_instances: i64,
    pub default_max_gpus: i64,
    /// Budgets (see `proxy/budgets.rs`): how often each replica reloads
    /// them, refreshes their consumption from the database and raises alerts.
    pub budget_refresh: Duration,
    /// How long a `/v1` request's budget reservation lives if its replica
    /// never settles it (a crash); past it the reservation is dropped.
    pub budget_reservation_ttl: Duration,
    /// The completion tokens reserved for a request that sets no
    /// `max_tokens` on a model whose context length is unknown.
    pub budget_default_max_tokens: i64,
    /// How often a live event stream re-checks its session and membership.
    pub events_recheck: Duration,
    /// Live event streams one user may hold open on one replica.
    pub events_max_streams_per_user: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Names this replica's usage journal directory; stable across restarts.
    pub replica_id: String,
    /// Usage goes through the durable journal (off: the benchmark baseline).
    pub usage_journal: bool,
    /// Uncommitted journal bytes beyond which `/v1` answers 503.
    pub usage_journal_max_bytes: u64,
    /// Requests held for a cold model (a service at zero replicas).
    pub held: HeldLimits,
    /// Fair admission on a deployment (`crate::proxy::admission`).
    pub admission: crate::proxy::admission::AdmissionLimits,
    /// The prefix-cache-aware worker choice (`proxy/prefix.rs`).
    pub prefix_routing: crate::proxy::prefix::PrefixSettings,
}

/// How many requests may wait for a cold model, and how long.
#[derive(Debug, Clone, Copy)]
pub struct HeldLimits {
    /// Per serving (organization, model) on one replica; 0: none held.
    pub max_per_model: usize,
    /// From the request's arrival; zero: none held.
    pub timeout: Duration,
}

/// This replica's id: `INVENTIV_REPLICA_ID`, else `<hostname>-<port>`
/// (random when the port is picked by the kernel: no restart keeps it).
fn replica_id<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    addr: SocketAddr,
) -> Result<String, ConfigError> {
    let id = match env.get("INVENTIV_REPLICA_ID") {
        Some(id) => id.trim().to_owned(),
        None => {
            let host = env
                .get("HOSTNAME")
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "api".to_owned());
            let host: String = host
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(48)
                .collect();
            match addr.port() {
                0 => format!("{host}-{}", uuid::Uuid::new_v4().simple()),
                port => format!("{host}-{port}"),
            }
        }
    };
    let valid = (1..=64).contains(&id.len())
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(ConfigError(format!(
            "INVENTIV_REPLICA_ID={id:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )));
    }
    Ok(id)
}

/// The prefix-aware choice's weights and bounds (`INVENTIV_ROUTING_PREFIX_*`).
fn prefix_routing<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<crate::proxy::prefix::PrefixSettings, ConfigError> {
    let d = crate::proxy::prefix::PrefixSettings::default();
    let weight = |key: &str, default: f64| {
        Some(env.parse(key, default)?)
            .filter(|w| w.is_finite() && (0.0..=1000.0).contains(w))
            .ok_or_else(|| ConfigError(format!("{key}: a number from 0 to 1000")))
    };
    Ok(crate::proxy::prefix::PrefixSettings {
        prefix_weight: weight("INVENTIV_ROUTING_PREFIX_WEIGHT", d.prefix_weight)?,
        load_weight: weight("INVENTIV_ROUTING_LOAD_WEIGHT", d.load_weight)?,
        max_imbalance: env.parse("INVENTIV_ROUTING_PREFIX_MAX_IMBALANCE", d.max_imbalance)?,
        block_bytes: env
            .parse("INVENTIV_ROUTING_PREFIX_BLOCK_BYTES", d.block_bytes)?
            .clamp(8, 4096),
        capacity: env
            .parse("INVENTIV_ROUTING_PREFIX_CAPACITY", d.capacity)?
            .min(16 << 20),
        max_blocks: d.max_blocks,
    })
}

/// The usage drift job (`crate::drift`): how often, over what window, and
/// when a drift alerts.
#[derive(Debug, Clone)]
pub struct UsageDrift {
    /// How often the job runs in this replica; None: not here.
    pub interval: Option<Duration>,
    /// The span compared (an hour by default).
    pub window: Duration,
    /// How far in the past the window ends, so the usage rows of requests
    /// answered before its end are written (the writer batches them).
    pub settle: Duration,
    /// Drift (|engine - proxy| / engine) above which an instance alerts.
    pub threshold: f64,
    /// Below this many engine tokens in the window nothing is concluded.
    pub min_tokens: i64,
}

/// A configuration problem, reported before anything starts.
/// What a worker's answer may make the proxy hold or wait for.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamLimits {
    /// Largest whole (not streamed) answer; beyond it the client gets a 502.
    pub max_answer_bytes: usize,
    /// Largest single server-sent event of a stream; beyond it the stream ends.
    pub max_event_bytes: usize,
    /// Longest wait for the next byte from a worker (headers or body).
    pub read_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// Reads a variable through a lookup function, so tests can pass a map.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, key: &str) -> Option<String> {
        (self.0)(key).filter(|v| !v.trim().is_empty())
    }

    fn or(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or_else(|| default.to_owned())
    }

    /// A secret: the variable, else the file named by `<key>_FILE`.
    fn secret(&self, key: &str) -> Result<Option<String>, ConfigError> {
        secrets::read(&self.0, key).map_err(|e| ConfigError(e.0))
    }

    fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ConfigError(format!("{key}={v:?} is not a valid value"))),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(|v| v.trim().to_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError(format!("{key}={v:?} is not a boolean"))),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&Env(|k| std::env::var(k).ok()))
    }

    /// Reads any variable source; see `docs/configuration.md` for the list.
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Config, ConfigError> {
        let production = match env.or("INVENTIV_ENV", "development").as_str() {
            "production" => true,
            "development" | "test" => false,
            other => {
                return Err(ConfigError(format!(
                    "INVENTIV_ENV={other:?}: use development or production"
                )))
            }
        };
        let addr: SocketAddr = env.parse(
            "INVENTIV_API_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8003)),
        )?;
        let public_url = env
            .get("INVENTIV_PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError(
                "INVENTIV_PUBLIC_URL must start with http:// or https://".into(),
            ));
        }
        let insecure = secrets::insecure_allowed(
            env.flag(secrets::INSECURE_DEVELOPMENT, false)?,
            production,
            addr,
        )
        .map_err(|e| ConfigError(e.0))?;
        let jwt_secret = secrets::choose(
            "INVENTIV_JWT_SECRET",
            env.secret("INVENTIV_JWT_SECRET")?,
            DEV_JWT_SECRET,
            &[DEV_JWT_SECRET, DEV_ENCRYPTION_KEY],
            32,
            insecure,
            "generate one with `head -c 48 /dev/urandom | base64` (make run keeps one in its state dir)",
        )
        .map_err(|e| ConfigError(e.0))?;
        let encryption_key = secrets::choose(
            "INVENTIV_ENCRYPTION_KEY",
            env.secret("INVENTIV_ENCRYPTION_KEY")?,
            DEV_ENCRYPTION_KEY,
            &[DEV_ENCRYPTION_KEY],
            64,
            insecure,
            ENCRYPTION_KEY_HINT,
        )
        .map_err(|e| ConfigError(e.0))?;
        let key_ok =
            encryption_key.len() == 64 && encryption_key.chars().all(|c| c.is_ascii_hexdigit());
        if !key_ok {
            return Err(ConfigError(
                "INVENTIV_ENCRYPTION_KEY must be 64 hex characters (32 bytes)".into(),
            ));
        }
        if encryption_key == jwt_secret {
            return Err(ConfigError(
                "INVENTIV_ENCRYPTION_KEY must differ from INVENTIV_JWT_SECRET".into(),
            ));
        }
        let keyring = inventiv_store::crypto::Keyring::from_hex(
            &encryption_key,
            env.parse("INVENTIV_ENCRYPTION_KEY_VERSION", 1i32)?,
            env.secret("INVENTIV_ENCRYPTION_KEY_PREVIOUS")?.as_deref(),
        )
        .map_err(|e| ConfigError(format!("INVENTIV_ENCRYPTION_KEY*: {e}")))?;
        let smtp = match env.get("SMTP_HOST") {
            None => None,
            Some(host) => Some(SmtpConfig {
                host,
                port: env.parse("SMTP_PORT", 587u16)?,
                username: env.get("SMTP_USERNAME"),
                password: env.secret("SMTP_PASSWORD")?.map(SecretString::from),
                tls: match env.or("SMTP_TLS", "starttls").as_str() {
                    "none" => SmtpTls::None,
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Tls,
                    other => {
                        return Err(ConfigError(format!(
                            "SMTP_TLS={other:?}: use none, starttls or tls"
                        )))
                    }
                },
            }),
        };
        let secs = |key: &str, default: u64| env.parse(key, default).map(Duration::from_secs);
        let usage_journal = env.flag("INVENTIV_USAGE_JOURNAL", true)?;
        if !usage_journal && !insecure {
            return Err(ConfigError(
                "INVENTIV_USAGE_JOURNAL=off is the benchmark baseline and loses usage on a crash: \
                 it needs INVENTIV_INSECURE_DEVELOPMENT=1 (on a loopback address, never in production)"
                    .into(),
            ));
        }
        let prefix_routing = prefix_routing(env)?;
        Ok(Config {
            prefix_routing,
            replica_id: replica_id(env, addr)?,
            usage_journal,
            held: HeldLimits {
                max_per_model: env.parse("INVENTIV_HELD_MAX_PER_MODEL", 100usize)?,
                timeout: secs("INVENTIV_HELD_TIMEOUT_SECS", 600)?,
            },
            admission: crate::proxy::admission::AdmissionLimits {
                slots_per_worker: env.parse("INVENTIV_ADMISSION_SLOTS_PER_WORKER", 256u32)?,
                org_max_in_flight: env.parse("INVENTIV_ADMISSION_ORG_MAX_IN_FLIGHT", 0u32)?,
                org_max_queued: env
                    .parse("INVENTIV_ADMISSION_ORG_MAX_QUEUED", 256usize)?
                    .clamp(1, 100_000),
                interactive_wait: Duration::from_millis(
                    env.parse("INVENTIV_ADMISSION_INTERACTIVE_WAIT_MS", 30_000u64)?,
                ),
                batch_wait: Duration::from_millis(
                    env.parse("INVENTIV_ADMISSION_BATCH_WAIT_MS", 5_000u64)?,
                ),
                batch_reserve_percent: env
                    .parse("INVENTIV_ADMISSION_BATCH_RESERVE_PERCENT", 10u32)?
                    .min(50),
                idle_after: Duration::from_millis(
                    env.parse("INVENTIV_ADMISSION_IDLE_MS", 2_000u64)?,
                ),
            },
            usage_journal_max_bytes: env
                .parse("INVENTIV_USAGE_JOURNAL_MAX_BYTES", 1u64 << 30)?
                .max(4096),
            production,
            addr,
            cookie_secure: env
                .flag("INVENTIV_COOKIE_SECURE", public_url.starts_with("https://"))?,
            public_url,
            state_dir: PathBuf::from(env.or("INVENTIV_STATE_DIR", ".local")),
            database_url: env
                .secret("DATABASE_URL")?
                .ok_or_else(|| {
                    ConfigError("DATABASE_URL is required (make run sets it up)".into())
                })?
                .into(),
            redis_url: env
                .secret("REDIS_URL")?
                .ok_or_else(|| ConfigError("REDIS_URL is required (make run sets it up)".into()))?
                .into(),
            redis_prefix: env.or("INVENTIV_REDIS_PREFIX", "inventiv:"),
            admin_email: env
                .get("INVENTIV_ADMIN_EMAIL")
                .or_else(|| Some("admin@inventiv.local".into())),
            admin_password: env
                .secret("INVENTIV_ADMIN_PASSWORD")?
                .map(SecretString::from),
            jwt_secret: jwt_secret.into(),
            keyring: std::sync::Arc::new(keyring),
            scaleway_api_url: env.or("INVENTIV_SCALEWAY_API_URL", "https://api.scaleway.com"),
            orphan_grace: secs("INVENTIV_ORPHAN_GRACE_SECS", 1800)?,
            open_signup: env.flag("INVENTIV_OPEN_SIGNUP", false)?,
            access_token_ttl: secs("INVENTIV_ACCESS_TOKEN_TTL_SECS", 900)?,
            session_ttl: Duration::from_secs(
                env.parse("INVENTIV_SESSION_TTL_HOURS", 168u64)? * 3600,
            ),
            invitation_ttl: Duration::from_secs(
                env.parse("INVENTIV_INVITATION_TTL_HOURS", 168u64)? * 3600,
            ),
            password_reset_ttl: Duration::from_secs(
                env.parse("INVENTIV_PASSWORD_RESET_TTL_MINUTES", 60u64)? * 60,
            ),
            login_max_failures: env.parse("INVENTIV_LOGIN_MAX_FAILURES", 5u32)?.max(1),
            login_lockout: secs("INVENTIV_LOGIN_LOCKOUT_SECS", 900)?,
            max_concurrent_hashes: env.parse("INVENTIV_MAX_CONCURRENT_HASHES", 2usize)?.max(1),
            max_body_bytes: env.parse("INVENTIV_MAX_BODY_BYTES", 1024 * 1024usize)?,
            price_notice: Duration::from_secs(
                env.parse("INVENTIV_PRICE_NOTICE_DAYS", 7u64)? * 86_400,
            ),
            upstream: UpstreamLimits {
                max_answer_bytes: env
                    .parse("INVENTIV_PROXY_MAX_ANSWER_BYTES", 16 * 1024 * 1024usize)?
                    .max(1024),
                max_event_bytes: env
                    .parse("INVENTIV_PROXY_MAX_EVENT_BYTES", 1024 * 1024usize)?
                    .max(1024),
                read_timeout: secs("INVENTIV_PROXY_READ_TIMEOUT_SECS", 300)?
                    .max(Duration::from_secs(1)),
            },
            smtp,
            smtp_from: env.or("SMTP_FROM", "Inventiv <no-reply@inventiv.local>"),
            sample_retention: Duration::from_secs(
                env.parse("INVENTIV_SAMPLE_RETENTION_HOURS", 72u64)? * 3600,
            ),
            sample_prune_interval: secs("INVENTIV_SAMPLE_PRUNE_INTERVAL_SECS", 600)?
                .max(Duration::from_secs(1)),
            signals_interval: Duration::from_millis(
                env.parse("INVENTIV_SIGNALS_INTERVAL_MS", 1000u64)?
                    .clamp(100, 10_000),
            ),
            replicas_interval: Duration::from_millis(
                env.parse("INVENTIV_REPLICAS_INTERVAL_MS", 1000u64)?
                    .clamp(100, 60_000),
            ),
            drain_timeout: secs("INVENTIV_DRAIN_TIMEOUT_SECS", 30)?.min(Duration::from_secs(3600)),
            placement_avoid: secs("INVENTIV_PLACEMENT_AVOID_SECS", 600)?,
            heartbeat_flush: Duration::from_millis(
                env.parse("INVENTIV_HEARTBEAT_FLUSH_MS", 1000u64)?
                    .clamp(10, 5000),
            ),
            heartbeat_min_interval: Duration::from_millis(
                env.parse("INVENTIV_HEARTBEAT_MIN_INTERVAL_MS", 1000u64)?
                    .min(10_000),
            ),
            cost_job_interval: Some(secs("INVENTIV_COST_JOB_INTERVAL_SECS", 60)?)
                .filter(|d| !d.is_zero()),
            usage_drift: UsageDrift {
                interval: Some(secs("INVENTIV_USAGE_DRIFT_INTERVAL_SECS", 300)?)
                    .filter(|d| !d.is_zero()),
                window: secs("INVENTIV_USAGE_DRIFT_WINDOW_SECS", 3600)?
                    .max(Duration::from_secs(60)),
                settle: secs("INVENTIV_USAGE_DRIFT_SETTLE_SECS", 30)?,
                threshold: Some(env.parse("INVENTIV_USAGE_DRIFT_THRESHOLD", 0.005f64)?)
                    .filter(|t| t.is_finite() && *t > 0.0 && *t <= 1.0)
                    .ok_or_else(|| {
                        ConfigError(
                            "INVENTIV_USAGE_DRIFT_THRESHOLD: a ratio above 0, at most 1".into(),
                        )
                    })?,
                min_tokens: env
                    .parse("INVENTIV_USAGE_DRIFT_MIN_TOKENS", 20_000i64)?
                    .max(1),
            },
            metrics_addr: env.parse(
                "INVENTIV_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8004)),
            )?,
            metrics_token: env
                .secret("INVENTIV_METRICS_TOKEN")?
                .map(SecretString::from),
            frontend_dir: PathBuf::from(env.or("INVENTIV_FRONTEND_DIR", "inventiv-frontend/dist")),
            mock_provider: env.flag("INVENTIV_MOCK_PROVIDER", !production)?,
            default_max_instances: env.parse("INVENTIV_DEFAULT_MAX_INSTANCES", 20i64)?.max(0),
            default_max_gpus: env.parse("INVENTIV_DEFAULT_MAX_GPUS", 64i64)?.max(0),
            budget_refresh: secs("INVENTIV_BUDGET_REFRESH_SECS", 10)?.max(Duration::from_secs(1)),
            budget_reservation_ttl: secs("INVENTIV_BUDGET_RESERVATION_TTL_SECS", 3600)?
                .max(Duration::from_secs(1)),
            budget_default_max_tokens: env
                .parse("INVENTIV_BUDGET_DEFAULT_MAX_TOKENS", 4096i64)?
                .clamp(1, 10_000_000),
            events_recheck: secs("INVENTIV_EVENTS_RECHECK_SECS", 15)?.max(Duration::from_secs(1)),
            events_max_streams_per_user: env
                .parse("INVENTIV_EVENTS_MAX_STREAMS_PER_USER", 8usize)?
                .max(1),
            trusted_proxies: env
                .or("INVENTIV_TRUSTED_PROXIES", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| {
                        ConfigError(format!(
                            "INVENTIV_TRUSTED_PROXIES: {s:?} is not an IP address"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// The database URL, for connecting.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://x/y"),
            ("REDIS_URL", "redis://x/"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        map.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(&Env(|k| map.get(k).cloned()))
    }

    const JWT: &str = "a-random-jwt-secret-of-forty-bytes-long-x";
    const KEY: &str = "3f9c2b7e5a1d4c8f0e6b2a9d7c5e3f1a8b6d4c2e0f9a7b5c3d1e8f6a4b2c0d9e";

    #[test]
    fn development_defaults() {
        let c = config(&[
            ("INVENTIV_JWT_SECRET", JWT),
            ("INVENTIV_ENCRYPTION_KEY", KEY),
        ])
        .map_err(|e| e.to_string());
        let c = c
            .as_ref()
            .map(|c| (c.addr.to_string(), c.public_url.clone(), c.open_signup));
        assert_eq!(
            c,
            Ok((
                "127.0.0.1:8003".into(),
                "http://127.0.0.1:8003".into(),
                false
            ))
        );
    }

    #[test]
    fn builtin_secrets_need_the_insecure_flag_on_loopback() {
        // Nothing configured: refused, in development too.
        assert!(config(&[]).is_err());
        // The published constants, even when set explicitly: refused.
        assert!(config(&[
            ("INVENTIV_JWT_SECRET", DEV_JWT_SECRET),
            ("INVENTIV_ENCRYPTION_KEY", KEY)
        ])
        .is_err());
        assert!(config(&[
            ("INVENTIV_JWT_SECRET", JWT),
            ("INVENTIV_ENCRYPTION_KEY", DEV_ENCRYPTION_KEY)
        ])
        .is_err());
        assert!(config(&[
            ("INVENTIV_JWT_SECRET", "short"),
            ("INVENTIV_ENCRYPTION_KEY", KEY)
        ])
        .is_err());
        // The explicit flag on loopback: the built-in values.
        let dev = config(&[("INVENTIV_INSECURE_DEVELOPMENT", "1")]);
        assert!(dev.is_ok_and(|c| c.jwt_secret.expose_secret() == DEV_JWT_SECRET));
        // The flag is not honoured on a public listener or in production.
        assert!(config(&[
            ("INVENTIV_INSECURE_DEVELOPMENT", "1"),
            ("INVENTIV_API_ADDR", "0.0.0.0:8003")
        ])
        .is_err());
        assert!(config(&[
            ("INVENTIV_INSECURE_DEVELOPMENT", "1"),
            ("INVENTIV_ENV", "production")
        ])
        .is_err());
    }

    #[test]
    fn production_refuses_default_or_short_secrets() {
        assert!(config(&[
            ("INVENTIV_ENV", "production"),
            ("INVENTIV_ENCRYPTION_KEY", KEY)
        ])
        .is_err());
        assert!(config(&[
            ("INVENTIV_ENV", "production"),
            ("INVENTIV_JWT_SECRET", "short"),
            ("INVENTIV_ENCRYPTION_KEY", KEY)
        ])
        .is_err());
        assert!(config(&[("INVENTIV_ENV", "production"), ("INVENTIV_JWT_SECRET", JWT)]).is_err());
        assert!(config(&[
            ("INVENTIV_ENV", "production"),
            ("INVENTIV_JWT_SECRET", JWT),
            ("INVENTIV_ENCRYPTION_KEY", KEY)
        ])
        .is_ok());
    }

    #[test]
    fn the_in_memory_usage_baseline_needs_the_insecure_flag() {
        let secrets = [
            ("INVENTIV_JWT_SECRET", JWT),
            ("INVENTIV_ENCRYPTION_KEY", KEY),
        ];
        let off = [secrets.as_slice(), &[("INVENTIV_USAGE_JOURNAL", "off")]].concat();
        let refused = config(&off).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("INVENTIV_INSECURE_DEVELOPMENT")));
        let insecure = [off.as_slice(), &[("INVENTIV_INSECURE_DEVELOPMENT", "1")]].concat();
        assert!(config(&insecure).is_ok_and(|c| !c.usage_journal));
        assert!(
            config(&secrets).is_ok_and(|c| c.usage_journal && c.usage_journal_max_bytes == 1 << 30)
        );
    }

    #[test]
    fn replica_ids_are_stable_names() {
        let with = |vars: &[(&str, &str)]| {
            let all = [
                &[
                    ("INVENTIV_JWT_SECRET", JWT),
                    ("INVENTIV_ENCRYPTION_KEY", KEY),
                ],
                vars,
            ]
            .concat();
            config(&all).map(|c| c.replica_id)
        };
        assert_eq!(
            with(&[("INVENTIV_REPLICA_ID", "api-1")]).ok().as_deref(),
            Some("api-1")
        );
        assert_eq!(
            with(&[
                ("HOSTNAME", "pod/7"),
                ("INVENTIV_API_ADDR", "127.0.0.1:8013")
            ])
            .ok()
            .as_deref(),
            Some("pod_7-8013")
        );
        for bad in ["../x", ".hidden", "a/b", &"x".repeat(65)] {
            assert!(with(&[("INVENTIV_REPLICA_ID", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_routing_settings() {
        let base = [
            ("INVENTIV_JWT_SECRET", JWT),
            ("INVENTIV_ENCRYPTION_KEY", KEY),
        ];
        let with = |vars: &[(&str, &str)]| config(&[base.as_slice(), vars].concat());
        let d = with(&[]).map(|c| c.prefix_routing).ok();
        assert_eq!(d, Some(crate::proxy::prefix::PrefixSettings::default()));
        let c = with(&[
            ("INVENTIV_ROUTING_PREFIX_WEIGHT", "0"),
            ("INVENTIV_ROUTING_PREFIX_BLOCK_BYTES", "1"),
        ])
        .map(|c| c.prefix_routing)
        .ok();
        assert!(c.is_some_and(|c| !c.enabled() && c.block_bytes == 8));
        for bad in ["-1", "NaN", "x"] {
            let err = with(&[("INVENTIV_ROUTING_LOAD_WEIGHT", bad)]).err();
            assert!(
                err.is_some_and(|e| e.to_string().contains("INVENTIV_ROUTING_LOAD_WEIGHT")),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = config(&[("INVENTIV_API_ADDR", "nowhere")])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("INVENTIV_API_ADDR")));
        assert!(config(&[
            ("INVENTIV_JWT_SECRET", JWT),
            ("INVENTIV_ENCRYPTION_KEY", KEY),
            ("SMTP_HOST", "mail"),
            ("SMTP_TLS", "maybe")
        ])
        .is_err());
    }
}
