//! `ScalewayProvider`: the [`CloudProvider`] of Scaleway, over its HTTP
//! APIs as recorded from the real service (`fixtures/scaleway-recordings/`):
//! the Instance API v1 for servers, power actions, user data and security
//! groups, the Block Storage API v1 for volumes, and the marketplace for
//! image labels, with one organization's credentials.
//!
//! - **Create**: the image label (e.g. `ubuntu_jammy_gpu_os_12`) is
//!   resolved to the local image of the commercial type and zone
//!   ([`images`]); the root volume is a Block Storage volume sized at
//!   creation when the request says so; the root volume is then tagged
//!   like the server so reconciliation finds it.
//! - **SSH key**: Scaleway images log in as `root` and run cloud-init on
//!   first boot. Right after the create, before any power-on, the key is
//!   set as the server's `cloud-init` user data ([`user_data`]). A create
//!   whose answer was lost is adopted later through `list_servers` and
//!   never went through that step, so `start_server` sets the user data
//!   again (a cheap, idempotent `PATCH`) before powering a stopped server
//!   on, with [`Settings::ssh_public_key`]: the deployment's key, known
//!   without the create request.
//! - **Power**: `start_server` waits for the server's Block Storage
//!   volumes to settle (a resized volume is `updating` for a while) by
//!   answering `Transient` until they have.
//! - **Lists**: Instance API lists carry their total in `X-Total-Count`
//!   and their pages in `Link`, not in the body; Block Storage and the
//!   marketplace keep `total_count` in the body. Every list is followed to
//!   its last page.

mod catalog;
#[doc(hidden)]
pub mod errors;
mod firewall;
mod http;
mod images;
mod servers;
mod user_data;
mod volumes;
#[doc(hidden)]
pub mod wire;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::ProviderError;
use crate::provider::{BoxFuture, CloudProvider};
use crate::types::{
    CreateServer, Firewall, FirewallGroup, ListFilter, Server, ServerRef, Volume, VolumeRef,
};
pub use catalog::Offer;
use http::{Http, Replay};
pub use http::{Paging, RetryPolicy};
pub use user_data::cloud_config;

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
    /// Image label of new servers when the request names none.
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
    /// The OpenSSH public key `start_server` sets (again) as cloud-init
    /// user data before powering a stopped server on, so a server adopted
    /// after a lost create answer authorizes it too. `None`: only the key
    /// of the create request is set, at creation.
    pub ssh_public_key: Option<String>,
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
            ssh_public_key: None,
        }
    }
}

/// (image label, zone, commercial type) → image id.
type ImageCache = Mutex<HashMap<(String, String, String), String>>;

/// Scaleway with one organization's credentials.
pub struct ScalewayProvider {
    http: Http,
    project_id: String,
    default_zone: String,
    settings: Settings,
    images: ImageCache,
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
            images: Mutex::new(HashMap::new()),
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

    /// The zones a filter covers: its own, else the default zone (the
    /// orchestrator asks zone by zone).
    fn zones(&self, filter: &ListFilter) -> Vec<String> {
        vec![filter
            .zone
            .clone()
            .unwrap_or_else(|| self.default_zone.clone())]
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

    fn list_firewalls(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<FirewallGroup>, ProviderError>> {
        Box::pin(self.list_groups(filter))
    }
}
