//! Installing the worker on a node over SSH: check the node answers (recording
//! its host key), upload the agent bundle, its configuration, the secret
//! files (the Hugging Face token of a gated model, the Scaleway key of the
//! dead-man switch's API power-off: each its own file, mode 600, through
//! stdin, never on a command line) and the bootstrap script, run the script,
//! and turn each `::phase::NAME` it prints into a `WORKER_SSH_<NAME>` action
//! log with the tail of its output. The script also prints the SHA-256 of
//! the relay's certificate (`::relay-cert::HEX`), made on the node: read
//! over this SSH session (whose host key is pinned), it is the pin of the
//! node's TLS.

use std::collections::VecDeque;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::ssh::{Session, Ssh, SshError, Target};
use inventiv_store::action_log::{ActionLog, Step};

/// Lines of output kept per phase in the action log.
const TAIL_LINES: usize = 20;
const MAX_LINE: usize = 500;

/// Everything needed to install the worker on one node.
pub struct Install<'a> {
    pub ssh: &'a Ssh,
    pub log: ActionLog,
    pub target: Target,
    /// The agent bundle (tar.gz) and the checksum it must have.
    pub bundle: &'a Path,
    pub bundle_sha256: &'a str,
    /// `inventiv-worker/bootstrap.sh`.
    pub script: &'a Path,
    /// The agent's configuration file (carries the worker token).
    pub agent_config: Value,
    /// The organization's Hugging Face token, for a gated model only;
    /// without it any copy left on the node is removed.
    pub hf_token: Option<&'a SecretString>,
    /// The organization's Scaleway secret key, for the dead-man switch's
    /// `scaleway-poweroff` only (opted in); without it any copy is removed.
    pub scaleway_key: Option<&'a SecretString>,
    /// Where on the node everything goes.
    pub install_dir: &'a str,
    /// Skip the GPU steps (mock provider).
    pub mock: bool,
    /// Run the agent as a background service, never the one systemd unit
    /// of the machine (own hosts hold several engines).
    pub background: bool,
}

/// Why an install stopped.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("bootstrap failed in phase {phase}: {message}")]
    Phase { phase: String, message: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
}

impl InstallError {
    /// Whether running the install again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            InstallError::Ssh(e) => e.retryable(),
            InstallError::Db(_) => true,
            InstallError::Phase { .. } | InstallError::Io(_) => false,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            InstallError::Ssh(SshError::HostKeyChanged) => "HOST_KEY_MISMATCH",
            InstallError::Ssh(SshError::Unreachable(_)) => "SSH_UNREACHABLE",
            InstallError::Ssh(_) => "SSH_FAILED",
            InstallError::Phase { .. } => "BOOTSTRAP_FAILED",
            InstallError::Db(_) | InstallError::Io(_) => "INTERNAL",
        }
    }
}

/// One line of the script's output.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Phase(String),
    Skip(String, String),
    Error(String, String),
    /// The SHA-256 of the relay's certificate.
    RelayCert([u8; 32]),
    Output(String),
}

fn phase_name(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    ok.then(|| s.to_owned())
}

/// Recognizes `::phase::NAME`, `::phase-skip::NAME reason` and `::error::NAME message`.
pub fn parse(line: &str) -> Line {
    let split = |rest: &str| {
        let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
        phase_name(name.trim()).map(|n| (n, text.trim().to_owned()))
    };
    if let Some(name) = line
        .strip_prefix("::phase::")
        .and_then(|r| phase_name(r.trim()))
    {
        return Line::Phase(name);
    }
    if let Some((name, reason)) = line.strip_prefix("::phase-skip::").and_then(split) {
        return Line::Skip(name, reason);
    }
    if let Some((name, message)) = line.strip_prefix("::error::").and_then(split) {
        return Line::Error(name, message);
    }
    if let Some(pin) = line
        .strip_prefix("::relay-cert::")
        .and_then(|hex| <[u8; 32]>::try_from(hex::decode(hex.trim()).ok()?).ok())
    {
        return Line::RelayCert(pin);
    }
    Line::Output(line.chars().take(MAX_LINE).collect())
}

/// Where a node keeps the Hugging Face token: a file only its owner (the
/// engine's user) can read, in a directory only it can enter.
pub fn hf_token_path(install_dir: &str) -> String {
    format!("{install_dir}/secrets/{HF_TOKEN_FILE}")
}

/// Where a node keeps the Scaleway key its agent powers it off with, beside
/// the Hugging Face token (the agent's default `dead_man_key_file`).
pub fn scaleway_key_path(install_dir: &str) -> String {
    format!("{install_dir}/secrets/{SCALEWAY_KEY_FILE}")
}

const HF_TOKEN_FILE: &str = "hf_token";
const SCALEWAY_KEY_FILE: &str = "scaleway_poweroff_key";

/// `s` as one word for the remote shell (single quotes, inner ones escaped).
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The phase being run and what it printed.
struct Current {
    name: String,
    step: Step,
    tail: VecDeque<String>,
}

fn tail_json(tail: &VecDeque<String>) -> Value {
    json!({ "output_tail": tail.iter().collect::<Vec<_>>() })
}

/// Runs the whole install, recording each step; returns the SHA-256 of
/// the node's relay certificate. A span of its own: in a deployment's
/// trace, the install is most of the time.
#[tracing::instrument(name = "ssh_install", skip_all, fields(host = %b.target.host))]
pub async fn run(b: Install<'_>) -> Result<[u8; 32], InstallError> {
    let known = sqlx::query_scalar!(
        "SELECT ssh_known_hosts FROM instances WHERE id = $1",
        b.log.instance_id,
    )
    .fetch_one(&b.log.db)
    .await?;
    let session = b
        .ssh
        .session(b.log.instance_id, b.target.clone(), known.as_deref())
        .await?;

    let step = b.log.start("WORKER_SSH_ACCESSIBLE").await?;
    let where_ =
        json!({ "host": b.target.host, "port": b.target.port, "first_contact": known.is_none() });
    if let Err(e) = session.run("true", b"").await {
        let e = InstallError::from(e);
        b.log.fail(step, e.code(), &e.to_string(), where_).await?;
        return Err(e);
    }
    if known.is_none() {
        let recorded = session.known_hosts().await?;
        sqlx::query!(
            "UPDATE instances SET ssh_known_hosts = $2 WHERE id = $1 AND ssh_known_hosts IS NULL",
            b.log.instance_id,
            recorded,
        )
        .execute(&b.log.db)
        .await?;
    }
    b.log.succeed(step, where_).await?;

    let step = b.log.start("WORKER_SSH_INSTALL").await?;
    match upload_and_run(&b, &session).await {
        Ok(pin) => {
            sqlx::query!(
                "UPDATE instances SET expected_bundle_sha256 = $2 WHERE id = $1",
                b.log.instance_id,
                b.bundle_sha256,
            )
            .execute(&b.log.db)
            .await?;
            let done = json!({ "install_dir": b.install_dir, "bundle_sha256": b.bundle_sha256,
                               "hf_token_delivered": b.hf_token.is_some(),
                               "scaleway_key_delivered": b.scaleway_key.is_some(),
                               "relay_cert_sha256": hex::encode(pin) });
            b.log.succeed(step, done).await?;
            Ok(pin)
        }
        Err(e) => {
            b.log
                .fail(
                    step,
                    e.code(),
                    &e.to_string(),
                    json!({ "install_dir": b.install_dir }),
                )
                .await?;
            Err(e)
        }
    }
}

async fn upload(session: &Session, dir: &str, name: &str, bytes: &[u8]) -> Result<(), SshError> {
    let dir = quote(dir);
    let remote = format!("umask 077 && mkdir -p {dir} && cat > {dir}/{name}.part && mv {dir}/{name}.part {dir}/{name}");
    session.run(&remote, bytes).await.map(|_| ())
}

async fn upload_and_run(b: &Install<'_>, session: &Session) -> Result<[u8; 32], InstallError> {
    let bundle = tokio::fs::read(b.bundle).await?;
    let script = tokio::fs::read(b.script).await?;
    let config = serde_json::to_vec_pretty(&b.agent_config).map_err(std::io::Error::other)?;
    upload(session, b.install_dir, "inventiv-agent.tar.gz", &bundle).await?;
    upload(session, b.install_dir, "bootstrap.sh", &script).await?;
    upload(session, b.install_dir, "agent.json", &config).await?;
    let secrets = format!("{}/secrets", b.install_dir);
    for (name, secret) in [
        (HF_TOKEN_FILE, b.hf_token),
        (SCALEWAY_KEY_FILE, b.scaleway_key),
    ] {
        match secret {
            Some(secret) => {
                upload(session, &secrets, name, secret.expose_secret().as_bytes()).await?;
            }
            None => {
                let path = quote(&format!("{secrets}/{name}"));
                session.run(&format!("rm -f {path}"), b"").await?;
            }
        }
    }
    let dir = quote(b.install_dir);
    let command = format!(
        "bash {dir}/bootstrap.sh --bundle {dir}/inventiv-agent.tar.gz --sha256 {} --config {dir}/agent.json --install-dir {dir}{}",
        quote(b.bundle_sha256),
        if b.mock { " --mock" } else { "" }
    ) + if b.background {
        " --service-manager background"
    } else {
        ""
    };
    let mut current: Option<Current> = None;
    let mut failure: Option<(String, String)> = None;
    let mut relay_cert = None;
    let log = &b.log;
    let mut output = session.stream(&command)?;
    while let Some(line) = output.next_line().await? {
        match parse(&line) {
            Line::Phase(name) => {
                if let Some(done) = current.take() {
                    log.succeed(done.step, tail_json(&done.tail)).await?;
                }
                let step = log.start(&format!("WORKER_SSH_{name}")).await?;
                current = Some(Current {
                    name,
                    step,
                    tail: VecDeque::new(),
                });
            }
            Line::Skip(name, reason) => {
                if let Some(done) = current.take() {
                    log.succeed(done.step, tail_json(&done.tail)).await?;
                }
                let step = log.start(&format!("WORKER_SSH_{name}")).await?;
                log.succeed(step, json!({ "skipped": reason })).await?;
            }
            Line::Error(name, message) => failure = Some((name, message)),
            Line::RelayCert(pin) => relay_cert = Some(pin),
            Line::Output(text) => {
                if let Some(c) = current.as_mut() {
                    if c.tail.len() == TAIL_LINES {
                        c.tail.pop_front();
                    }
                    c.tail.push_back(text);
                }
            }
        }
    }
    let outcome = output.finish().await;
    let no_cert = || InstallError::Phase {
        phase: "INSTALL_RELAY".into(),
        message: "the node reported no relay certificate".into(),
    };
    match (outcome, current) {
        (Ok(()), Some(done)) => {
            log.succeed(done.step, tail_json(&done.tail)).await?;
            relay_cert.ok_or_else(no_cert)
        }
        (Ok(()), None) => relay_cert.ok_or_else(no_cert),
        (Err(e), current) => {
            let (phase, message) = match (failure, &current) {
                (Some(f), _) => f,
                (None, Some(c)) => (c.name.clone(), e.to_string()),
                (None, None) => ("START".to_owned(), e.to_string()),
            };
            if let Some(c) = current {
                log.fail(
                    c.step,
                    &format!("{phase}_FAILED"),
                    &message,
                    tail_json(&c.tail),
                )
                .await?;
            }
            match e {
                SshError::Failed { .. } => Err(InstallError::Phase { phase, message }),
                other => Err(other.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            parse("::phase::PYTHON_VENV"),
            Line::Phase("PYTHON_VENV".into())
        );
        assert_eq!(
            parse("::phase-skip::NVIDIA_CHECK mock node"),
            Line::Skip("NVIDIA_CHECK".into(), "mock node".into())
        );
        assert_eq!(
            parse("::error::CHECK_BUNDLE checksum mismatch expected a got b"),
            Line::Error(
                "CHECK_BUNDLE".into(),
                "checksum mismatch expected a got b".into()
            )
        );
        assert_eq!(
            parse("::phase::lower"),
            Line::Output("::phase::lower".into())
        );
        assert_eq!(parse("plain"), Line::Output("plain".into()));
        let pin = "c318be9eebf8fdb691ce42d67c257dd7b4a247369fa50a8e1d0d39af4e14b211";
        assert_eq!(
            parse(&format!("::relay-cert::{pin}")),
            Line::RelayCert(<[u8; 32]>::try_from(hex::decode(pin).unwrap()).unwrap())
        );
        assert_eq!(
            parse("::relay-cert::abc"),
            Line::Output("::relay-cert::abc".into())
        );
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
