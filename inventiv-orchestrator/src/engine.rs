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
use crate::ssh::Ssh;

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
    pub metrics: crate::metrics::Metrics,
}

/// Makes the orchestrator's SSH key pair once; returns (private key, public key line).
pub async fn ssh_key(state_dir: &std::path::Path) -> anyhow::Result<(PathBuf, String)> {
    let dir = state_dir.join("ssh");
    tokio::fs::create_dir_all(&dir).await?;
    let key = dir.join("id_ed25519");
    if !tokio::fs::try_exists(&key).await? {
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
            .arg(&key)
            .status()
            .await?;
        anyhow::ensure!(
            status.success(),
            "ssh-keygen failed (install Debian's openssh-client)"
        );
    }
    let public = tokio::fs::read_to_string(dir.join("id_ed25519.pub")).await?;
    Ok((key, public.trim().to_owned()))
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
        providers.insert("mock", Arc::new(mock));
        let ssh = Ssh {
            key,
            work_dir: config.state_dir.join("ssh").join("known"),
            connect_timeout: Duration::from_secs(5),
        };
        let http = reqwest::Client::builder()
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
    /// mock, the organization's own credentials for a cloud.
    pub async fn provider(
        &self,
        code: &str,
        org: uuid::Uuid,
    ) -> Result<Arc<dyn CloudProvider>, CloudError> {
        match self.providers.get(code) {
            Some(p) => Ok(p.clone()),
            None => self.clouds.get(&self.db, code, org).await,
        }
    }
}
