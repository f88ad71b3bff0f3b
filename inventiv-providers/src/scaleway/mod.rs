//! `ScalewayProvider`: the [`CloudProvider`] of Scaleway, over its
//! documented HTTP APIs (Instance API v1 for servers and their power
//! actions, Block Storage API v1alpha1 for volumes), with one
//! organization's credentials. Servers are created from an image with no
//! extra volume; Scaleway attaches a Block Storage root volume, which is
//! tagged like the server right after creation so reconciliation finds it.

mod catalog;
mod firewall;
mod http;
mod volumes;
mod wire;

use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::ProviderError;
use crate::provider::{BoxFuture, CloudProvider};
use crate::types::{
    CreateServer, Firewall, ListFilter, Server, ServerRef, ServerState, Volume, VolumeRef,
};
pub use catalog::Offer;
pub use http::RetryPolicy;
use http::{Http, Replay};
use wire::{ServerEnvelope, ServerList, WireServer};

/// An organization's Scaleway credentials, as stored (encrypted) in the
/// database. Only `secret_key` is secret; it authenticates every call.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: SecretString,
    pub project_id: String,
    pub organization_id: String,
    pub default_zone: String,
}

/// Deployment-wide settings of the Scaleway provider (not per organization).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://api.scaleway.com`, or a fake in tests.
    pub base_url: String,
    /// Image of new servers when the request names none.
    pub default_image: String,
    pub retry: RetryPolicy,
    /// How often a power transition is polled, and for how long at most.
    pub poll_interval: Duration,
    pub power_timeout: Duration,
    /// The SSH port of the image (22 on Scaleway's images).
    pub ssh_port: u16,
    /// Where the worker is installed on servers; `None`: the bootstrap's
    /// default (`/opt/inventiv`).
    pub install_dir: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            base_url: "https://api.scaleway.com".into(),
            default_image: "ubuntu_jammy_gpu_os_12".into(),
            retry: RetryPolicy {
                attempts: 5,
                base_delay: Duration::from_millis(500),
            },
            poll_interval: Duration::from_secs(3),
            power_timeout: Duration::from_secs(300),
            ssh_port: 22,
            install_dir: None,
        }
    }
}

/// Scaleway with one organization's credentials.
pub struct ScalewayProvider {
    http: Http,
    project_id: String,
    default_zone: String,
    settings: Settings,
}

/// Page size of list calls (Scaleway's maximum is 100).
const PAGE_SIZE: u64 = 100;

impl ScalewayProvider {
    /// A provider calling `settings.base_url` through `client` (shared,
    /// with its timeouts) with these credentials.
    pub fn new(
        client: reqwest::Client,
        settings: Settings,
        creds: Credentials,
    ) -> ScalewayProvider {
        ScalewayProvider {
            http: Http::new(client, &settings.base_url, creds.secret_key, settings.retry),
            project_id: creds.project_id,
            default_zone: creds.default_zone,
            settings,
        }
    }

    /// Checks the credentials with a cheap authenticated read of the
    /// project's servers in the default zone.
    pub async fn verify(&self) -> Result<(), ProviderError> {
        let path = format!("/instance/v1/zones/{}/servers", self.default_zone);
        let query = [
            ("project", self.project_id.clone()),
            ("per_page", "1".into()),
        ];
        self.http
            .call::<(), serde_json::Value>(Method::GET, &path, &query, None, Replay::Safe)
            .await
            .map(drop)
    }

    fn servers_path(zone: &str) -> String {
        format!("/instance/v1/zones/{zone}/servers")
    }

    fn volume_path(zone: &str, id: &str) -> String {
        format!("/block/v1alpha1/zones/{zone}/volumes/{id}")
    }

    fn zones(&self, filter: &ListFilter) -> Vec<String> {
        vec![filter
            .zone
            .clone()
            .unwrap_or_else(|| self.default_zone.clone())]
    }

    async fn wire_server(&self, r: &ServerRef) -> Result<Option<WireServer>, ProviderError> {
        let path = format!("{}/{}", Self::servers_path(&r.zone), r.provider_id);
        match self
            .http
            .call::<(), ServerEnvelope>(Method::GET, &path, &[], None, Replay::Safe)
            .await
        {
            Ok(env) => Ok(env.map(|e| e.server)),
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The server with its Block Storage volumes read in full.
    async fn complete(&self, server: WireServer) -> Result<Server, ProviderError> {
        let mut volumes = Vec::new();
        for id in server.block_volume_ids() {
            if let Some(v) = self.volume(&server.zone, &id).await? {
                volumes.push(v);
            }
        }
        Ok(server.into_server(
            volumes,
            self.settings.ssh_port,
            self.settings.install_dir.clone(),
        ))
    }

    async fn action(&self, r: &ServerRef, action: &str) -> Result<(), ProviderError> {
        let path = format!("{}/{}/action", Self::servers_path(&r.zone), r.provider_id);
        self.http
            .call::<_, serde_json::Value>(
                Method::POST,
                &path,
                &[],
                Some(&wire::Action { action }),
                Replay::Safe,
            )
            .await
            .map(drop)
    }

    async fn create(&self, req: CreateServer) -> Result<Server, ProviderError> {
        let tags = req.all_tags();
        let image = req.image.as_deref().unwrap_or(&self.settings.default_image);
        let body = wire::CreateServerBody {
            name: &req.name,
            commercial_type: &req.instance_type,
            image,
            project: &self.project_id,
            tags: &tags,
            dynamic_ip_required: true,
        };
        let created = self
            .http
            .call::<_, ServerEnvelope>(
                Method::POST,
                &Self::servers_path(&req.zone),
                &[],
                Some(&body),
                Replay::OnlyRateLimited,
            )
            .await?
            .ok_or_else(|| ProviderError::Internal("server creation answered nothing".into()))?
            .server;
        self.tag_volumes(&created.zone, &created.block_volume_ids(), &tags)
            .await?;
        self.complete(created).await
    }

    async fn start(&self, r: ServerRef) -> Result<(), ProviderError> {
        let server = self
            .wire_server(&r)
            .await?
            .ok_or_else(|| ProviderError::NotFound(format!("server {}", r.provider_id)))?;
        match wire::server_state(&server.state) {
            ServerState::Running | ServerState::Starting => Ok(()),
            _ => self.action(&r, "poweron").await,
        }
    }

    /// Powers the server off, waits until it is stopped, then deletes it;
    /// its Block Storage volumes survive, detached.
    async fn delete(&self, r: ServerRef) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + self.settings.power_timeout;
        loop {
            let Some(server) = self.wire_server(&r).await? else {
                return Ok(());
            };
            match server.state.as_str() {
                "stopped" | "stopped in place" => break,
                "running" => self.action(&r, "poweroff").await?,
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::Transient(format!(
                    "server {} is still {}",
                    r.provider_id, server.state
                )));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
        let path = format!("{}/{}", Self::servers_path(&r.zone), r.provider_id);
        match self
            .http
            .call::<(), serde_json::Value>(Method::DELETE, &path, &[], None, Replay::Safe)
            .await
        {
            Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_servers_in(&self, filter: ListFilter) -> Result<Vec<Server>, ProviderError> {
        let mut all = Vec::new();
        for zone in self.zones(&filter) {
            let mut page = 1u64;
            loop {
                let mut query = vec![
                    ("project", self.project_id.clone()),
                    ("page", page.to_string()),
                    ("per_page", PAGE_SIZE.to_string()),
                ];
                if let Some(tag) = &filter.tag {
                    query.push(("tags", tag.clone()));
                }
                let list: ServerList = self
                    .http
                    .call::<(), _>(
                        Method::GET,
                        &Self::servers_path(&zone),
                        &query,
                        None,
                        Replay::Safe,
                    )
                    .await?
                    .ok_or_else(|| ProviderError::Internal("empty server list".into()))?;
                let done = list.servers.is_empty() || page * PAGE_SIZE >= list.total_count;
                for s in list.servers {
                    if filter.matches(&s.zone, &s.tags) {
                        all.push(self.complete(s).await?);
                    }
                }
                if done {
                    break;
                }
                page += 1;
            }
        }
        Ok(all)
    }
}

impl CloudProvider for ScalewayProvider {
    fn name(&self) -> &'static str {
        "scaleway"
    }

    fn create_server(&self, req: CreateServer) -> BoxFuture<'_, Result<Server, ProviderError>> {
        Box::pin(self.create(req))
    }

    fn start_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.start(server))
    }

    fn get_server(
        &self,
        server: ServerRef,
    ) -> BoxFuture<'_, Result<Option<Server>, ProviderError>> {
        Box::pin(async move {
            match self.wire_server(&server).await? {
                Some(s) => self.complete(s).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn list_servers(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<Server>, ProviderError>> {
        Box::pin(self.list_servers_in(filter))
    }

    fn delete_server(&self, server: ServerRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.delete(server))
    }

    fn list_volumes(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<Volume>, ProviderError>> {
        Box::pin(self.list_volumes_in(filter))
    }

    fn resize_volume(
        &self,
        volume: VolumeRef,
        size_gb: u64,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.resize(volume, size_gb))
    }

    fn delete_volume(&self, volume: VolumeRef) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.remove_volume(volume))
    }

    fn ensure_firewall(
        &self,
        server: ServerRef,
        rules: Firewall,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.firewall(server, rules))
    }

    fn delete_firewall(
        &self,
        zone: String,
        instance_id: uuid::Uuid,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(self.remove_firewall(zone, instance_id))
    }
}
