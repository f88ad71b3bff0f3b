//! Which cloud resources are leaks, as a pure decision over what the
//! provider lists and what the database knows, so the orchestrator's
//! reconciliation job (which deletes) and the API's dry-run report (which
//! only shows) cannot disagree. The rules:
//!
//! - a resource without the [`tags::MANAGED`] tag is never touched;
//! - one tagged for another organization is left to that organization;
//! - one whose instance is live (or, for a volume, that a live instance
//!   recorded, or that is marked persistent) is owned and kept;
//! - an attached volume goes with its server, never on its own;
//! - a security group goes after every server of its instance is gone;
//! - anything else tagged for this organization is an orphan: deleted once
//!   older than the grace window, kept (and shown) before.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ProviderError;
use crate::provider::CloudProvider;
use crate::tags;
use crate::types::{FirewallGroup, ListFilter, Server, Volume};

/// What a provider lists of one organization's managed resources.
#[derive(Debug, Clone, Default)]
pub struct Managed {
    pub servers: Vec<Server>,
    pub volumes: Vec<Volume>,
    pub firewalls: Vec<FirewallGroup>,
}

/// Every server, volume and security group carrying [`tags::MANAGED`] in
/// `zones` (the provider's default zone when the list is empty), each
/// listed once.
pub async fn list_managed(
    provider: &dyn CloudProvider,
    zones: &[String],
) -> Result<Managed, ProviderError> {
    let filters: Vec<ListFilter> = if zones.is_empty() {
        vec![ListFilter {
            zone: None,
            tag: Some(tags::MANAGED.to_owned()),
        }]
    } else {
        zones
            .iter()
            .map(|z| ListFilter {
                zone: Some(z.clone()),
                tag: Some(tags::MANAGED.to_owned()),
            })
            .collect()
    };
    let mut all = Managed::default();
    let (servers, volumes, firewalls) = (&mut all.servers, &mut all.volumes, &mut all.firewalls);
    for filter in filters {
        for s in provider.list_servers(filter.clone()).await? {
            if !servers.iter().any(|k| k.reference() == s.reference()) {
                servers.push(s);
            }
        }
        for v in provider.list_volumes(filter.clone()).await? {
            if !volumes.iter().any(|k| k.reference() == v.reference()) {
                volumes.push(v);
            }
        }
        for g in provider.list_firewalls(filter).await? {
            if !firewalls
                .iter()
                .any(|k| k.zone == g.zone && k.provider_id == g.provider_id)
            {
                firewalls.push(g);
            }
        }
    }
    Ok(all)
}

/// What the database knows about one organization on one provider.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub organization_id: Uuid,
    /// Instances not terminated nor archived.
    pub live_instances: HashSet<Uuid>,
    /// Volume ids recorded for live instances, and persistent ones.
    pub live_volumes: HashSet<String>,
    /// Volume ids recorded for instances that are no longer live.
    pub dead_volumes: HashSet<String>,
    /// (instance, server id) of live instances that have a server.
    pub live_servers: Vec<(Uuid, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Server,
    Volume,
    SecurityGroup,
}

/// What to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// An orphan older than the grace window.
    Delete,
    /// An orphan still inside the grace window.
    KeepYoung,
    /// Belongs to a live instance.
    Owned,
    /// Attached to a server: handled with it.
    Attached,
    /// Tagged for another organization.
    OtherOrganization,
    /// Not created by Inventiv.
    Untagged,
}

/// One resource and the decision about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub provider_id: String,
    pub zone: String,
    pub instance_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub verdict: Verdict,
}

fn orphan_verdict(created_at: DateTime<Utc>, now: DateTime<Utc>, grace: Duration) -> Verdict {
    let age = (now - created_at).to_std().unwrap_or_default();
    if age >= grace {
        Verdict::Delete
    } else {
        Verdict::KeepYoung
    }
}

/// The verdict for a resource's tags, before age is considered.
fn ownership(resource_tags: &[String], facts: &Facts) -> Option<Verdict> {
    if !resource_tags.iter().any(|t| t == tags::MANAGED) {
        return Some(Verdict::Untagged);
    }
    if tags::org_id(resource_tags) != Some(facts.organization_id) {
        return Some(Verdict::OtherOrganization);
    }
    match tags::instance_id(resource_tags) {
        Some(i) if facts.live_instances.contains(&i) => Some(Verdict::Owned),
        _ => None,
    }
}

/// Classifies every listed server, volume and security group (in that
/// order, which is the order to delete them in).
pub fn classify(
    listed: &Managed,
    facts: &Facts,
    now: DateTime<Utc>,
    grace: Duration,
) -> Vec<Finding> {
    let (servers, volumes) = (&listed.servers, &listed.volumes);
    let mut out = Vec::new();
    for s in servers {
        let tracked = facts
            .live_servers
            .iter()
            .any(|(_, id)| *id == s.provider_id);
        let verdict = if tracked {
            Verdict::Owned
        } else {
            ownership(&s.tags, facts).unwrap_or_else(|| orphan_verdict(s.created_at, now, grace))
        };
        out.push(Finding {
            kind: Kind::Server,
            provider_id: s.provider_id.clone(),
            zone: s.zone.clone(),
            instance_id: s.instance_id(),
            created_at: s.created_at,
            verdict,
        });
    }
    for v in volumes {
        let verdict = if facts.live_volumes.contains(&v.provider_id) {
            Verdict::Owned
        } else if v.server_id.is_some() {
            Verdict::Attached
        } else if facts.dead_volumes.contains(&v.provider_id) {
            orphan_verdict(v.created_at, now, grace)
        } else {
            ownership(&v.tags, facts).unwrap_or_else(|| orphan_verdict(v.created_at, now, grace))
        };
        out.push(Finding {
            kind: Kind::Volume,
            provider_id: v.provider_id.clone(),
            zone: v.zone.clone(),
            instance_id: tags::instance_id(&v.tags),
            created_at: v.created_at,
            verdict,
        });
    }
    for g in &listed.firewalls {
        let instance = g.instance_id();
        let has_server = servers
            .iter()
            .any(|s| instance.is_some() && s.instance_id() == instance);
        let verdict = match ownership(&g.tags, facts) {
            Some(v) => v,
            // Groups are deleted by instance: one without is not ours to judge.
            None if instance.is_none() => Verdict::Untagged,
            None if has_server => Verdict::Attached,
            None => orphan_verdict(g.created_at, now, grace),
        };
        out.push(Finding {
            kind: Kind::SecurityGroup,
            provider_id: g.provider_id.clone(),
            zone: g.zone.clone(),
            instance_id: instance,
            created_at: g.created_at,
            verdict,
        });
    }
    out
}

/// Live instances whose server the provider no longer lists, and recorded
/// volumes of live instances it no longer lists.
pub fn vanished(servers: &[Server], volumes: &[Volume], facts: &Facts) -> (Vec<Uuid>, Vec<String>) {
    let instances = facts
        .live_servers
        .iter()
        .filter(|(_, id)| !servers.iter().any(|s| s.provider_id == *id))
        .map(|(i, _)| *i)
        .collect();
    let mut missing_volumes: Vec<String> = facts
        .live_volumes
        .iter()
        .filter(|id| !volumes.iter().any(|v| v.provider_id == **id))
        .cloned()
        .collect();
    missing_volumes.sort();
    (instances, missing_volumes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ServerState;

    fn server(tags: Vec<String>, age_secs: i64) -> Server {
        Server {
            provider_id: Uuid::new_v4().to_string(),
            zone: "z".into(),
            name: "s".into(),
            instance_type: "t".into(),
            state: ServerState::Running,
            ip: None,
            ssh_port: 22,
            ssh_user: "root".into(),
            install_dir: None,
            tags,
            volumes: Vec::new(),
            created_at: Utc::now() - chrono::Duration::seconds(age_secs),
        }
    }

    #[test]
    fn server_verdicts_follow_the_rules() {
        let org = Uuid::new_v4();
        let live = Uuid::new_v4();
        let facts = Facts {
            organization_id: org,
            live_instances: HashSet::from([live]),
            ..Facts::default()
        };
        let hour = 3600;
        let table = [
            (
                tags::standard(Uuid::new_v4(), org),
                2 * hour,
                Verdict::Delete,
            ),
            (tags::standard(Uuid::new_v4(), org), 60, Verdict::KeepYoung),
            (tags::standard(live, org), 2 * hour, Verdict::Owned),
            (
                tags::standard(Uuid::new_v4(), Uuid::new_v4()),
                2 * hour,
                Verdict::OtherOrganization,
            ),
            (vec!["env=prod".to_owned()], 2 * hour, Verdict::Untagged),
            (
                vec![tags::instance(Uuid::new_v4()), tags::org(org)],
                2 * hour,
                Verdict::Untagged,
            ),
        ];
        for (tags, age, expected) in table {
            let listed = Managed {
                servers: vec![server(tags.clone(), age)],
                ..Managed::default()
            };
            let found = classify(
                &listed,
                &facts,
                Utc::now(),
                Duration::from_secs(hour as u64),
            );
            assert_eq!(found[0].verdict, expected, "{tags:?} aged {age}s");
        }
    }

    #[test]
    fn security_groups_go_once_their_instance_has_no_server() {
        let org = Uuid::new_v4();
        let (live, gone, still_serving) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let facts = Facts {
            organization_id: org,
            live_instances: [live].into(),
            ..Facts::default()
        };
        let group = |instance: Option<Uuid>, age_secs: i64| FirewallGroup {
            provider_id: Uuid::new_v4().to_string(),
            zone: "z".into(),
            name: "g".into(),
            tags: match instance {
                Some(i) => tags::standard(i, org),
                None => vec![tags::MANAGED.to_owned(), tags::org(org)],
            },
            created_at: Utc::now() - chrono::TimeDelta::seconds(age_secs),
        };
        let listed = Managed {
            // An orphan server of `still_serving`: its group waits for it.
            servers: vec![server(tags::standard(still_serving, org), 7200)],
            volumes: Vec::new(),
            firewalls: vec![
                group(Some(live), 7200),
                group(Some(gone), 7200),
                group(Some(gone), 60),
                group(Some(still_serving), 7200),
                group(None, 7200),
            ],
        };
        let verdicts: Vec<Verdict> =
            classify(&listed, &facts, Utc::now(), Duration::from_secs(3600))
                .into_iter()
                .filter(|f| f.kind == Kind::SecurityGroup)
                .map(|f| f.verdict)
                .collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Owned,
                Verdict::Delete,
                Verdict::KeepYoung,
                Verdict::Attached,
                Verdict::Untagged
            ]
        );
    }
}
