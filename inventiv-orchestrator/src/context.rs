//! The orchestrator's shared context: connections, providers, the SSH
//! client and the agent bundle it installs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inventiv_providers::mock::{MockConfig, MockProvider};
use inventiv_providers::CloudProvider;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::clouds::{CloudError, Clouds};
use crate::config::Config;
use crate::node::ssh::Ssh;

/// The agent bundle installed on nodes and its checksum.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub sha256: String,
    pub script: PathBuf,
}

/// Everything a reconcile step needs.
pub struct Orchestrator {
    pub db: PgPool,
    pub redis: redis::aio::ConnectionManager,
    pub config: Config,
    /// Platform-wide providers (the mock one).
    pub providers: HashMap<&'static str, Arc<dyn CloudProvider>>,
    /// Cloud providers per organization, from its credentials.
    pub clouds: Clouds,
    pub ssh: Ssh,
    /// The public half of the key `ssh` logs in with, as an OpenSSH line.
    pub ssh_public_key: String,
    pub http: reqwest::Client,
    pub bundle: Bundle,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The orchestrator's SSH key pair, made once per state directory; returns
/// (private key, public key line).
///
/// Several orchestrators may start at once on a fresh state directory: each
/// makes a pair in a directory of its own, then renames it to
/// `ssh/keypair`. A rename onto a directory that exists and is not empty
/// fails, so exactly one pair wins and every process uses it. A key made
/// by earlier versions at `ssh/id_ed25519` is kept.
pub async fn ssh_key(state_dir: &std::path::Path) -> anyhow::Result<(PathBuf, String)> {
    let dir = state_dir.join("ssh");
    tokio::fs::create_dir_all(&dir).await?;
    let legacy = dir.join("id_ed25519");
    let pair = if tokio::fs::try_exists(&legacy).await? {
        dir.clone()
    } else {
        let pair = dir.join("keypair");
        if !tokio::fs::try_exists(pair.join("id_ed25519.pub")).await? {
            make_key_pair(&dir, &pair).await?;
        }
        pair
    };
    let public = tokio::fs::read_to_string(pair.join("id_ed25519.pub")).await?;
    Ok((pair.join("id_ed25519"), public.trim().to_owned()))
}

/// Makes a key pair in a private directory under `dir` and renames it to
/// `pair`, unless another process got there first.
async fn make_key_pair(dir: &std::path::Path, pair: &std::path::Path) -> anyhow::Result<()> {
    let scratch = dir.join(format!("new-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::create_dir(&scratch).await?;
    let status = tokio::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "inventiv-orchestrator",
            "-f",
        ])
        .arg(scratch.join("id_ed25519"))
        .stdin(std::process::Stdio::null())
        .status()
        .await?;
    anyhow::ensure!(
        status.success(),
        "ssh-keygen failed (install Debian's openssh-client)"
    );
    let won = tokio::fs::rename(&scratch, pair).await.is_ok();
    if !won {
        tokio::fs::remove_dir_all(&scratch).await?;
        anyhow::ensure!(
            tokio::fs::try_exists(pair.join("id_ed25519.pub")).await?,
            "{} exists but holds no key pair",
            pair.display()
        );
    }
    Ok(())
}

/// Reads the bundle and computes its checksum.
pub async fn bundle(path: PathBuf, script: PathBuf) -> anyhow::Result<Bundle> {
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        anyhow::anyhow!(
            "agent bundle {}: {e} (build it with `make agent-checksum`)",
            path.display()
        )
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    anyhow::ensure!(
        tokio::fs::try_exists(&script).await?,
        "bootstrap script {} not found",
        script.display()
    );
    Ok(Bundle {
        path,
        sha256,
        script,
    })
}

impl Orchestrator {
    /// Connects and sets up the providers (the mock one always; cloud ones
    /// come with per-organization credentials).
    pub async fn build(
        config: Config,
        db: PgPool,
        redis: redis::aio::ConnectionManager,
        bundle: Bundle,
    ) -> anyhow::Result<Orchestrator> {
        Orchestrator::build_with(config, db, redis, bundle, |mock| mock.with_env()).await
    }

    /// Like [`Orchestrator::build`], with the mock provider's settings
    /// adjusted by `mock` (tests give each run its own address range).
    pub async fn build_with(
        config: Config,
        db: PgPool,
        redis: redis::aio::ConnectionManager,
        bundle: Bundle,
        mock: impl FnOnce(MockConfig) -> Result<MockConfig, inventiv_providers::ProviderError>,
    ) -> anyhow::Result<Orchestrator> {
        let (key, public) = ssh_key(&config.state_dir).await?;
        let mock = MockProvider::new(mock(MockConfig::new(
            config.state_dir.clone(),
            public.clone(),
        ))?)?;
        let mut providers: HashMap<&'static str, Arc<dyn CloudProvider>> = HashMap::new();
        if config.mock_provider {
            providers.insert("mock", Arc::new(mock));
        }
        let ssh = Ssh {
            key,
            work_dir: config.state_dir.join("ssh").join("known"),
            connect_timeout: Duration::from_secs(5),
        };
        // Talks to tenant-controlled workers: a redirect is never followed
        // (it would point the orchestrator at its own or internal services).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .no_proxy()
            .build()?;
        let cloud_http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let scaleway = inventiv_providers::scaleway::Settings {
            base_url: config.scaleway_api_url.clone(),
            ssh_port: config.scaleway_ssh_port,
            install_dir: config.scaleway_install_dir.clone(),
            ssh_public_key: Some(public.clone()),
            ..Default::default()
        };
        let clouds = Clouds::new(config.keyring.clone(), scaleway, cloud_http);
        Ok(Orchestrator {
            clouds,
            db,
            redis,
            config,
            providers,
            ssh,
            ssh_public_key: public,
            http,
            bundle,
            metrics: Default::default(),
        })
    }

    /// The client for one node's relay (the start-up checks of the
    /// engine): this orchestrator's timeouts, pinned to the relay's
    /// certificate, with the instance's relay key.
    pub fn engine_client(
        &self,
        access: &inventiv_store::relay::RelayAccess,
    ) -> Result<reqwest::Client, inventiv_store::relay::ClientError> {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .no_proxy();
        inventiv_store::relay::pinned_client(builder, access)
    }

    /// How `org`'s nodes on `provider` run the worker: its settings, or the
    /// defaults with this orchestrator's start-up timeout and attempts.
    pub async fn worker_settings(
        &self,
        org: uuid::Uuid,
        provider: &str,
    ) -> sqlx::Result<inventiv_common::worker_settings::WorkerSettings> {
        let stored = inventiv_store::worker_settings::load(&self.db, org, provider).await?;
        Ok(
            stored.unwrap_or_else(|| inventiv_common::worker_settings::WorkerSettings {
                startup_timeout_secs: u32::try_from(self.config.startup_timeout.as_secs())
                    .unwrap_or(u32::MAX),
                bootstrap_attempts: u8::try_from(self.config.bootstrap_attempts).unwrap_or(u8::MAX),
                ..Default::default()
            }),
        )
    }

    /// The provider an instance of `org` runs on: the platform's for the
    /// mock, the organization's own credentials for a cloud; its calls
    /// counted and timed.
    pub async fn provider(
        &self,
        code: &str,
        org: uuid::Uuid,
    ) -> Result<Arc<dyn CloudProvider>, CloudError> {
        let inner = match self.providers.get(code) {
            Some(p) => p.clone(),
            None if code == "ssh" => Arc::new(crate::hosts::SshHosts {
                db: self.db.clone(),
                keyring: self.config.keyring.clone(),
                org,
                scratch: crate::hosts::scratch_dir(self),
            }),
            None => self.clouds.get(&self.db, code, org).await?,
        };
        Ok(Arc::new(crate::measured::Measured {
            inner,
            metrics: self.metrics.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn orchestrators_starting_together_share_one_key_pair() {
        let state = std::env::temp_dir().join(format!("inventiv-key-{}", uuid::Uuid::new_v4()));
        let runs: Vec<_> = (0..8)
            .map(|_| {
                let state = state.clone();
                tokio::spawn(async move { super::ssh_key(&state).await })
            })
            .collect();
        let mut pairs = Vec::new();
        for run in runs {
            pairs.push(run.await.unwrap().unwrap());
        }
        let (key, public) = pairs[0].clone();
        assert!(pairs.iter().all(|p| *p == (key.clone(), public.clone())));
        // The private key is the one the public line names.
        let derived = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&key)
            .output()
            .unwrap();
        assert!(derived.status.success());
        let derived = String::from_utf8(derived.stdout).unwrap();
        assert!(public.starts_with(derived.trim()), "{public} vs {derived}");
        // Nothing half-made is left beside it.
        let left: Vec<_> = std::fs::read_dir(state.join("ssh"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["keypair".to_owned()]);
        std::fs::remove_dir_all(&state).unwrap();
    }
}
