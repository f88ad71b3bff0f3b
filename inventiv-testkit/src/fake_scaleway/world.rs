//! The fake's state: servers, Block Storage volumes, security groups,
//! server types and marketplace images per project, the faults to inject,
//! and the clock that moves transitions forward (power states, volume
//! resizes and detachments).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub(super) const GB: u64 = 1_000_000_000;

/// One call as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
}

/// Faults to inject; each counter is consumed one call at a time. Every
/// call answering 503 is `unavailable: u32::MAX`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N server creations happen but answer 500.
    pub fail_after_create: u32,
    /// The next N calls answer 429 (empty body, `X-Envoy-Ratelimited`)
    /// without doing anything.
    pub rate_limited: u32,
    /// The next N calls answer 503 without doing anything.
    pub unavailable: u32,
    /// The next N deletions (servers or volumes) answer 409 (locked).
    pub refuse_deletes: u32,
    /// The next N server creations answer 403 with Scaleway's quota body.
    pub quota_exceeded: u32,
    /// The next N server creations or power-ons answer out of stock.
    pub out_of_stock: u32,
    /// The next N power-ons answer out of stock (creations still succeed:
    /// the stock ran out between the create and the power-on).
    pub out_of_stock_on_poweron: u32,
    /// Added to every answer.
    pub latency: Duration,
}

/// Cloud-init user data set on a server, and the server's state then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDataSet {
    pub key: String,
    pub value: String,
    /// The server's state when it was set (`stopped` before power-on).
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct FakeServer {
    pub id: String,
    pub project: String,
    pub zone: String,
    pub name: String,
    pub commercial_type: String,
    pub image: String,
    pub state: String,
    /// The state a transition (`starting`, `stopping`) ends in; `None`
    /// for a terminated server, which disappears.
    pub(super) next_state: Option<String>,
    /// When the current transition began.
    pub(super) changed_at: DateTime<Utc>,
    pub tags: Vec<String>,
    pub volume_ids: Vec<String>,
    pub creation_date: DateTime<Utc>,
    pub security_group: Option<String>,
    /// The root volume size (bytes) the create request asked for.
    pub root_volume_requested: Option<u64>,
    /// Current user data by key.
    pub user_data: BTreeMap<String, String>,
    /// Every user data write, in order.
    pub user_data_log: Vec<UserDataSet>,
    pub(super) ip_id: String,
}

#[derive(Debug, Clone)]
pub struct FakeVolume {
    pub id: String,
    pub project: String,
    pub zone: String,
    pub name: String,
    pub size: u64,
    pub tags: Vec<String>,
    pub server_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    /// A resize under way: the new size, and when it is done.
    pub(super) resizing: Option<(u64, DateTime<Utc>)>,
    /// Detaching from a deleted server until then.
    pub(super) detaching_until: Option<DateTime<Utc>>,
}

impl FakeVolume {
    /// Block Storage status: `updating`, `detaching`, `in_use` or `available`.
    pub fn status(&self) -> &'static str {
        if self.resizing.is_some() {
            "updating"
        } else if self.detaching_until.is_some() {
            "detaching"
        } else if self.server_id.is_some() {
            "in_use"
        } else {
            "available"
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub id: String,
    pub project: String,
    pub zone: String,
    pub name: String,
    pub tags: Vec<String>,
    pub inbound_default_policy: String,
    pub rules: Vec<Value>,
    pub creation_date: DateTime<Utc>,
}

/// A server type the fake offers in every zone.
#[derive(Debug, Clone)]
pub struct FakeOffer {
    pub code: String,
    pub gpu: u32,
    pub gpu_memory_gib: u64,
    pub ncpus: u32,
    pub ram_gib: u64,
    /// The hourly price as the JSON number text Scaleway sends.
    pub hourly_price: String,
    /// `available`, `scarce` or `shortage`; `unknown` leaves the type out
    /// of the availability answer.
    pub availability: String,
}

/// A marketplace local image.
#[derive(Debug, Clone)]
pub struct FakeImage {
    pub id: String,
    pub label: String,
    /// `None`: offered in every zone.
    pub zone: Option<String>,
    /// `instance_sbs` or `instance_local`.
    pub kind: String,
    pub compatible_commercial_types: Vec<String>,
}

/// The id of the default image (label `ubuntu_jammy_gpu_os_12`).
pub const DEFAULT_IMAGE_ID: &str = "6c8c8a6b-0c60-4d5e-9c3e-0f2a7c1d9b10";

/// GPU types the default image runs on.
const GPU_TYPES: &[&str] = &[
    "L4-1-24G",
    "L4-2-24G",
    "L4-4-24G",
    "L4-8-24G",
    "L40S-1-48G",
    "L40S-2-48G",
    "L40S-4-48G",
    "L40S-8-48G",
    "H100-1-80G",
    "H100-2-80G",
    "H100-SXM-2-80G",
    "H100-SXM-4-80G",
    "H100-SXM-8-80G",
    "GPU-3070-S",
    "RENDER-S",
];

impl FakeImage {
    /// The images a fresh fake offers: Scaleway's GPU OS label, for Block
    /// Storage root volumes, on the usual GPU types, in every zone.
    pub fn defaults() -> Vec<FakeImage> {
        vec![FakeImage {
            id: DEFAULT_IMAGE_ID.into(),
            label: "ubuntu_jammy_gpu_os_12".into(),
            zone: None,
            kind: "instance_sbs".into(),
            compatible_commercial_types: GPU_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        }]
    }
}

#[derive(Default)]
pub(super) struct World {
    pub offers: Vec<FakeOffer>,
    pub images: Vec<FakeImage>,
    pub groups: BTreeMap<String, FakeGroup>,
    /// Tags of every server created through the API, deleted or not.
    pub created: Vec<Vec<String>>,
    /// Secret key → project it may act on.
    pub tokens: HashMap<String, String>,
    pub servers: BTreeMap<String, FakeServer>,
    pub volumes: BTreeMap<String, FakeVolume>,
    pub calls: Vec<Call>,
    pub faults: Faults,
    pub public_ip: Option<IpAddr>,
    /// The id of the project's default security group, which a server
    /// uses until it is given another.
    pub default_group: String,
    /// How long power transitions take.
    pub transition: Duration,
    /// How long a volume stays `updating` after a resize.
    pub resize_time: Duration,
    /// How long a volume stays `detaching` after its server is deleted.
    pub detach_time: Duration,
}

fn after(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl World {
    /// Moves timed transitions forward.
    pub fn settle(&mut self) {
        let now = Utc::now();
        let transition = after(self.transition);
        let mut terminated = Vec::new();
        for s in self.servers.values_mut() {
            let moving = matches!(s.state.as_str(), "starting" | "stopping");
            if moving && now - s.changed_at >= transition {
                match s.next_state.take() {
                    Some(next) => s.state = next,
                    None => terminated.push(s.id.clone()),
                }
                s.changed_at = now;
            }
        }
        for id in terminated {
            self.remove_server(&id);
        }
        for v in self.volumes.values_mut() {
            if let Some((size, done)) = v.resizing {
                if now >= done {
                    v.size = size;
                    v.resizing = None;
                    v.updated_at = now;
                }
            }
            if v.detaching_until.is_some_and(|t| now >= t) {
                v.detaching_until = None;
                v.server_id = None;
            }
        }
    }

    /// Deletes a server; its volumes detach (and survive).
    pub fn remove_server(&mut self, id: &str) {
        self.servers.remove(id);
        let until = Utc::now() + after(self.detach_time);
        for v in self.volumes.values_mut() {
            if v.server_id.as_deref() == Some(id) {
                if self.detach_time.is_zero() {
                    v.server_id = None;
                } else {
                    v.detaching_until = Some(until);
                }
            }
        }
    }

    /// Starts a resize of a volume to `size` bytes.
    pub fn start_resize(&mut self, id: &str, size: u64) {
        let done = Utc::now() + after(self.resize_time);
        if let Some(v) = self.volumes.get_mut(id) {
            if self.resize_time.is_zero() {
                v.size = size;
            } else {
                v.resizing = Some((size, done));
            }
            v.updated_at = Utc::now();
        }
    }

    /// A new volume, `size` bytes, attached to `server_id` when given (then
    /// named like the root volume Scaleway makes from an image).
    pub fn new_volume(
        &mut self,
        project: &str,
        zone: &str,
        size: u64,
        tags: &[String],
        server_id: Option<String>,
        created_at: DateTime<Utc>,
    ) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let name = match server_id {
            Some(_) => "Ubuntu 22.04 Jammy Jellyfish_sbs_volume_0",
            None => "volume",
        };
        self.volumes.insert(
            id.clone(),
            FakeVolume {
                id: id.clone(),
                project: project.to_owned(),
                zone: zone.to_owned(),
                name: name.to_owned(),
                size,
                tags: tags.to_vec(),
                server_id,
                created_at,
                updated_at: created_at,
                resizing: None,
                detaching_until: None,
            },
        );
        id
    }
}
