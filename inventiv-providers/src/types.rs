//! What goes in and out of a `CloudProvider`: server creation requests,
//! servers and volumes as the cloud reports them, and the references and
//! filters that address them.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::tags;

/// A request for a new server for one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateServer {
    pub instance_id: Uuid,
    pub organization_id: Uuid,
    /// Provider zone, e.g. `fr-par-2` (validated against the catalog).
    pub zone: String,
    /// Provider commercial type, e.g. `L4-1-24G`.
    pub instance_type: String,
    /// Server name shown in the cloud console.
    pub name: String,
    /// OS image; `None` lets the provider pick its default GPU image.
    pub image: Option<String>,
    /// Tags added to the standard ones (see [`CreateServer::all_tags`]).
    pub tags: Vec<String>,
    /// Size of the root volume at creation, in decimal GB; `None` keeps
    /// the provider's default size for the image.
    pub root_volume_gb: Option<u64>,
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`) that must
    /// be authorized for [`Server::ssh_user`] when the server first boots
    /// (on Scaleway: cloud-init user data set before power-on).
    pub ssh_public_key: Option<String>,
}

impl CreateServer {
    /// The standard tags of [`crate::tags::standard`] followed by the
    /// extra ones, without duplicates. Providers tag with exactly these.
    pub fn all_tags(&self) -> Vec<String> {
        let mut all = tags::standard(self.instance_id, self.organization_id);
        for t in &self.tags {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        all
    }
}

/// How a server is addressed: ids are only unique within a zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerRef {
    pub zone: String,
    pub provider_id: String,
}

/// Power state of a server as the cloud reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Powering on or booting: not reachable yet.
    Starting,
    /// Booted. (A crashed OS can still be `Running`; SSH tells the rest.)
    Running,
    /// Created but powered off, or stopping.
    Stopped,
    /// A state this code does not know (locked, in maintenance...).
    Unknown,
}

/// A server as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub provider_id: String,
    pub zone: String,
    pub name: String,
    pub instance_type: String,
    pub state: ServerState,
    /// Address to reach the server at; may be `None` until it has one.
    pub ip: Option<IpAddr>,
    /// Port of its SSH server.
    pub ssh_port: u16,
    /// User to log in as over SSH.
    pub ssh_user: String,
    /// Where the worker must be installed on this server, when the provider
    /// requires a place (the mock does); `None` means the bootstrap default.
    pub install_dir: Option<String>,
    pub tags: Vec<String>,
    /// Volumes attached to it, the root volume first.
    pub volumes: Vec<Volume>,
    pub created_at: DateTime<Utc>,
}

impl Server {
    /// How to address this server in later calls.
    pub fn reference(&self) -> ServerRef {
        ServerRef {
            zone: self.zone.clone(),
            provider_id: self.provider_id.clone(),
        }
    }

    /// The instance it was created for, from its tags.
    pub fn instance_id(&self) -> Option<Uuid> {
        tags::instance_id(&self.tags)
    }

    /// The organization it was created for, from its tags.
    pub fn organization_id(&self) -> Option<Uuid> {
        tags::org_id(&self.tags)
    }
}

/// How a volume is addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VolumeRef {
    pub zone: String,
    pub provider_id: String,
}

/// A block volume as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub provider_id: String,
    pub zone: String,
    pub name: String,
    pub size_gb: u64,
    /// The server it is attached to, `None` when detached.
    pub server_id: Option<String>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl Volume {
    /// How to address this volume in later calls.
    pub fn reference(&self) -> VolumeRef {
        VolumeRef {
            zone: self.zone.clone(),
            provider_id: self.provider_id.clone(),
        }
    }
}

/// The inbound traffic a worker's server accepts: SSH from anywhere, the
/// worker's ports only from the control plane when its address is known
/// (from anywhere otherwise); everything else is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    pub instance_id: Uuid,
    pub organization_id: Uuid,
    pub ssh_port: u16,
    pub worker_ports: Vec<u16>,
    pub control_plane: Option<IpAddr>,
}

/// A firewall object of the cloud (on Scaleway: a security group), as
/// listed for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallGroup {
    pub provider_id: String,
    pub zone: String,
    pub name: String,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl FirewallGroup {
    /// The instance it was made for, from its tags.
    pub fn instance_id(&self) -> Option<Uuid> {
        tags::instance_id(&self.tags)
    }
}

/// Which servers or volumes to list. The default lists everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Only this zone; `None` means every zone the provider is set up for.
    pub zone: Option<String>,
    /// Only resources carrying this tag (e.g. [`crate::tags::MANAGED`]).
    pub tag: Option<String>,
}

impl ListFilter {
    /// Whether a resource in `zone` with `tags` passes the filter.
    pub fn matches(&self, zone: &str, tags: &[String]) -> bool {
        self.zone.as_deref().is_none_or(|z| z == zone)
            && self.tag.as_ref().is_none_or(|t| tags.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_tags_puts_the_standard_ones_first_without_duplicates() {
        let req = CreateServer {
            instance_id: Uuid::new_v4(),
            organization_id: Uuid::new_v4(),
            zone: "z".into(),
            instance_type: "t".into(),
            name: "n".into(),
            image: None,
            tags: vec![tags::MANAGED.to_owned(), "extra".into()],
            root_volume_gb: None,
            ssh_public_key: None,
        };
        let all = req.all_tags();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], tags::MANAGED);
        assert_eq!(all[3], "extra");
    }

    #[test]
    fn filter_matches_zone_and_tag() {
        let tags = vec!["a".to_owned()];
        let table = [
            (ListFilter::default(), true),
            (
                ListFilter {
                    zone: Some("z1".into()),
                    tag: None,
                },
                true,
            ),
            (
                ListFilter {
                    zone: Some("z2".into()),
                    tag: None,
                },
                false,
            ),
            (
                ListFilter {
                    zone: None,
                    tag: Some("a".into()),
                },
                true,
            ),
            (
                ListFilter {
                    zone: None,
                    tag: Some("b".into()),
                },
                false,
            ),
        ];
        for (filter, expected) in table {
            assert_eq!(filter.matches("z1", &tags), expected, "{filter:?}");
        }
    }
}
