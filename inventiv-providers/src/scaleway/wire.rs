//! Scaleway's JSON shapes, as documented for the Instance API v1 and the
//! Block Storage API v1alpha1, reduced to the fields this crate reads or
//! writes, and their conversion into this crate's types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{Server, ServerState, Volume};

/// Scaleway sizes are in bytes, counted in decimal gigabytes.
pub const GB: u64 = 1_000_000_000;

#[derive(Debug, Serialize)]
pub struct CreateServerBody<'a> {
    pub name: &'a str,
    pub commercial_type: &'a str,
    pub image: &'a str,
    pub project: &'a str,
    pub tags: &'a [String],
    pub dynamic_ip_required: bool,
}

#[derive(Debug, Deserialize)]
pub struct ServerEnvelope {
    pub server: WireServer,
}

#[derive(Debug, Deserialize)]
pub struct ServerList {
    pub servers: Vec<WireServer>,
    pub total_count: u64,
}

#[derive(Debug, Deserialize)]
pub struct WireIp {
    pub address: IpAddr,
}

#[derive(Debug, Deserialize)]
pub struct WireServerVolume {
    pub id: String,
    pub volume_type: String,
}

#[derive(Debug, Deserialize)]
pub struct WireServer {
    pub id: String,
    pub name: String,
    pub commercial_type: String,
    pub state: String,
    pub zone: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub public_ip: Option<WireIp>,
    #[serde(default)]
    pub public_ips: Vec<WireIp>,
    /// Keyed by attachment index, `"0"` being the root volume.
    #[serde(default)]
    pub volumes: BTreeMap<String, WireServerVolume>,
    pub creation_date: DateTime<Utc>,
}

impl WireServer {
    /// Ids of its Block Storage volumes, the root one first.
    pub fn block_volume_ids(&self) -> Vec<String> {
        let mut indexed: Vec<(u32, &WireServerVolume)> = self
            .volumes
            .iter()
            .map(|(k, v)| (k.parse().unwrap_or(u32::MAX), v))
            .collect();
        indexed.sort_by_key(|(i, _)| *i);
        indexed
            .into_iter()
            .filter(|(_, v)| v.volume_type == "sbs_volume")
            .map(|(_, v)| v.id.clone())
            .collect()
    }

    /// Our view of it, with its volumes as read from Block Storage and
    /// how to log in (from the provider's settings).
    pub fn into_server(
        self,
        volumes: Vec<Volume>,
        ssh_port: u16,
        install_dir: Option<String>,
    ) -> Server {
        let ip = self
            .public_ip
            .as_ref()
            .or(self.public_ips.first())
            .map(|i| i.address);
        Server {
            provider_id: self.id,
            zone: self.zone,
            name: self.name,
            instance_type: self.commercial_type,
            state: server_state(&self.state),
            ip,
            ssh_port,
            ssh_user: "root".into(),
            install_dir,
            tags: self.tags,
            volumes,
            created_at: self.creation_date,
        }
    }
}

/// Scaleway's server states mapped onto ours.
pub fn server_state(state: &str) -> ServerState {
    match state {
        "running" => ServerState::Running,
        "starting" => ServerState::Starting,
        "stopped" | "stopped in place" | "stopping" => ServerState::Stopped,
        _ => ServerState::Unknown,
    }
}

#[derive(Debug, Deserialize)]
pub struct VolumeList {
    pub volumes: Vec<WireVolume>,
    pub total_count: u64,
}

#[derive(Debug, Deserialize)]
pub struct WireReference {
    pub product_resource_type: String,
    pub product_resource_id: String,
}

#[derive(Debug, Deserialize)]
pub struct WireVolume {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub zone: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub references: Vec<WireReference>,
    pub created_at: DateTime<Utc>,
}

impl From<WireVolume> for Volume {
    fn from(v: WireVolume) -> Volume {
        let server_id = v
            .references
            .into_iter()
            .find(|r| r.product_resource_type == "instance_server")
            .map(|r| r.product_resource_id);
        Volume {
            provider_id: v.id,
            zone: v.zone,
            name: v.name,
            size_gb: v.size / GB,
            server_id,
            tags: v.tags,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Action<'a> {
    pub action: &'a str,
}

#[derive(Debug, Serialize)]
pub struct UpdateVolume<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<&'a [String]>,
}
