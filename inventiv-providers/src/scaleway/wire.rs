//! Scaleway's JSON shapes as recorded from the real API (see
//! `fixtures/scaleway-recordings/`): the Instance API v1, the Block Storage
//! API v1 and the marketplace's local images, reduced to the fields this
//! crate reads or writes, and their conversion into this crate's types.
//! Public (hidden from docs) so the contract tests parse the recordings
//! with exactly these types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{FirewallGroup, Server, ServerState, Volume};

/// Scaleway sizes are in bytes, counted in decimal gigabytes.
pub const GB: u64 = 1_000_000_000;

/// The volume type of a Block Storage (SBS) volume on a server.
pub const SBS_VOLUME: &str = "sbs_volume";

#[derive(Debug, Serialize)]
pub struct CreateServerBody<'a> {
    pub name: &'a str,
    pub commercial_type: &'a str,
    pub image: &'a str,
    pub project: &'a str,
    pub tags: &'a [String],
    pub dynamic_ip_required: bool,
    /// `{"0": {size, volume_type}}`: the root volume sized at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<&'static str, NewVolume>>,
}

#[derive(Debug, Serialize)]
pub struct NewVolume {
    pub size: u64,
    pub volume_type: &'static str,
}

#[derive(Debug, Deserialize)]
pub struct ServerEnvelope {
    pub server: WireServer,
}

/// `GET …/servers`: only the list; the total is in `X-Total-Count`.
#[derive(Debug, Deserialize)]
pub struct ServerList {
    pub servers: Vec<WireServer>,
}

#[derive(Debug, Deserialize)]
pub struct WireIp {
    pub address: IpAddr,
    /// `inet` (IPv4) or `inet6`.
    #[serde(default)]
    pub family: Option<String>,
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
            .filter(|(_, v)| v.volume_type == SBS_VOLUME)
            .map(|(_, v)| v.id.clone())
            .collect()
    }

    /// The public IPv4 address: the first `inet` of `public_ips`, else
    /// the legacy `public_ip`.
    pub fn ipv4(&self) -> Option<IpAddr> {
        self.public_ips
            .iter()
            .find(|ip| ip.family.as_deref() == Some("inet"))
            .or(self.public_ip.as_ref())
            .map(|ip| ip.address)
    }

    /// Our view of it, with its volumes as read from Block Storage and
    /// how to log in (from the provider's settings).
    pub fn into_server(
        self,
        volumes: Vec<Volume>,
        ssh_port: u16,
        install_dir: Option<String>,
    ) -> Server {
        Server {
            ip: self.ipv4(),
            provider_id: self.id,
            zone: self.zone,
            name: self.name,
            instance_type: self.commercial_type,
            state: server_state(&self.state),
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

#[derive(Debug, Serialize)]
pub struct Action<'a> {
    pub action: &'a str,
}

/// The answer to a power action.
#[derive(Debug, Deserialize)]
pub struct TaskEnvelope {
    pub task: Task,
}

#[derive(Debug, Deserialize)]
pub struct Task {
    pub id: String,
    pub status: String,
}

/// `GET …/security_groups`: only the list; the total is in `X-Total-Count`.
#[derive(Debug, Deserialize)]
pub struct GroupList {
    pub security_groups: Vec<WireGroup>,
}

#[derive(Debug, Deserialize)]
pub struct GroupEnvelope {
    pub security_group: WireGroup,
}

#[derive(Debug, Deserialize)]
pub struct WireGroup {
    pub id: String,
    pub name: String,
    pub zone: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub creation_date: DateTime<Utc>,
}

impl From<WireGroup> for FirewallGroup {
    fn from(g: WireGroup) -> FirewallGroup {
        FirewallGroup {
            provider_id: g.id,
            zone: g.zone,
            name: g.name,
            tags: g.tags,
            created_at: g.creation_date,
        }
    }
}

/// The answer to `PUT …/rules`: the group's rules, Scaleway's own
/// non-editable ones included.
#[derive(Debug, Deserialize)]
pub struct RuleList {
    pub rules: Vec<WireRule>,
}

#[derive(Debug, Deserialize)]
pub struct WireRule {
    pub direction: String,
    pub action: String,
    pub protocol: String,
    pub dest_port_from: Option<u16>,
    pub editable: Option<bool>,
}

/// `GET …/products/servers`: only the map; the total is in `X-Total-Count`.
#[derive(Debug, Deserialize)]
pub struct ProductList {
    pub servers: BTreeMap<String, Product>,
}

#[derive(Debug, Deserialize)]
pub struct GpuInfo {
    /// Bytes, counted in binary gigabytes.
    pub gpu_memory: u64,
}

#[derive(Debug, Deserialize)]
pub struct Product {
    /// EUR per hour, a JSON number.
    pub hourly_price: serde_json::Number,
    pub ncpus: u32,
    /// Bytes, counted in binary gigabytes.
    pub ram: u64,
    #[serde(default)]
    pub gpu: Option<u32>,
    pub gpu_info: Option<GpuInfo>,
}

/// `GET …/products/servers/availability`, paged like the products.
#[derive(Debug, Deserialize)]
pub struct AvailabilityList {
    pub servers: BTreeMap<String, Availability>,
}

#[derive(Debug, Deserialize)]
pub struct Availability {
    /// `available`, `scarce` or `shortage`.
    pub availability: String,
}

/// `GET /marketplace/v2/local-images`: this API keeps its total in the body.
#[derive(Debug, Deserialize)]
pub struct LocalImageList {
    pub local_images: Vec<LocalImage>,
    pub total_count: u64,
}

impl LocalImageList {
    /// The image of `label` in `zone` that runs `commercial_type`, as
    /// Scaleway's SDK picks it (the first compatible one).
    pub fn pick(&self, label: &str, zone: &str, commercial_type: &str) -> Option<&LocalImage> {
        self.local_images.iter().find(|i| {
            i.label == label
                && i.zone == zone
                && i.compatible_commercial_types
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(commercial_type))
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct LocalImage {
    pub id: String,
    pub label: String,
    pub zone: String,
    #[serde(default)]
    pub compatible_commercial_types: Vec<String>,
    /// `instance_sbs` or `instance_local`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `GET /block/v1/zones/{zone}/volumes`: this API keeps its total in the body.
#[derive(Debug, Deserialize)]
pub struct VolumeList {
    pub volumes: Vec<WireVolume>,
    pub total_count: u64,
}

#[derive(Debug, Deserialize)]
pub struct WireReference {
    pub product_resource_type: String,
    pub product_resource_id: String,
    /// `attached`, `attaching`, `detaching`...
    pub status: String,
}

#[derive(Debug, Deserialize)]
pub struct WireVolume {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub zone: String,
    /// `available`, `in_use`, `creating`, `updating`, `detaching`...
    pub status: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub references: Vec<WireReference>,
    pub created_at: DateTime<Utc>,
}

impl WireVolume {
    /// Whether the volume is at rest (no resize, attachment or creation
    /// under way): a server may power on with it.
    pub fn settled(&self) -> bool {
        matches!(self.status.as_str(), "available" | "in_use")
    }

    /// The server it is attached (or attaching, detaching) to.
    pub fn server_reference(&self) -> Option<&WireReference> {
        self.references
            .iter()
            .find(|r| r.product_resource_type == "instance_server")
    }
}

impl From<WireVolume> for Volume {
    fn from(v: WireVolume) -> Volume {
        let server_id = v.server_reference().map(|r| r.product_resource_id.clone());
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
pub struct UpdateVolume<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<&'a [String]>,
}
