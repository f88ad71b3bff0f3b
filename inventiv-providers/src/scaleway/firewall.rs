//! The security group of an instance on Scaleway: created once (tagged
//! like the server, found again by its instance tag), its inbound rules
//! set as a whole (SSH from anywhere, the worker's ports from the control
//! plane only when its address is known, the rest dropped), attached to
//! the server; deleted after the server. Tagged groups are listed for
//! reconciliation.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::http::Replay;
use super::wire::{GroupEnvelope, GroupList, RuleList, ServerEnvelope, WireGroup};
use super::{ScalewayProvider, PAGE_SIZE};
use crate::error::ProviderError;
use crate::tags;
use crate::types::{Firewall, FirewallGroup, ListFilter, ServerRef};

fn groups_path(zone: &str) -> String {
    format!("/instance/v1/zones/{zone}/security_groups")
}

fn rule(port: u16, from: &str, position: usize) -> Value {
    json!({
        "action": "accept", "direction": "inbound", "protocol": "TCP", "ip_range": from,
        "dest_port_from": port, "dest_port_to": null, "position": position, "editable": true,
    })
}

impl ScalewayProvider {
    /// The project's security groups in `zone` carrying `tag` (all of
    /// them without a tag), every page.
    async fn groups(
        &self,
        zone: &str,
        tag: Option<String>,
    ) -> Result<Vec<WireGroup>, ProviderError> {
        let mut query = vec![("project", self.project_id.clone())];
        if let Some(tag) = tag {
            query.push(("tags", tag));
        }
        self.http
            .all_pages(&groups_path(zone), &query, PAGE_SIZE, |l: GroupList| {
                l.security_groups
            })
            .await
    }

    pub(super) async fn list_groups(
        &self,
        filter: ListFilter,
    ) -> Result<Vec<FirewallGroup>, ProviderError> {
        let mut all = Vec::new();
        for zone in self.zones(&filter) {
            all.extend(
                self.groups(&zone, filter.tag.clone())
                    .await?
                    .into_iter()
                    .filter(|g| filter.matches(&g.zone, &g.tags))
                    .map(FirewallGroup::from),
            );
        }
        Ok(all)
    }

    pub(super) async fn firewall(
        &self,
        server: ServerRef,
        rules: Firewall,
    ) -> Result<(), ProviderError> {
        let zone = &server.zone;
        let existing = self
            .groups(zone, Some(tags::instance(rules.instance_id)))
            .await?
            .into_iter()
            .next();
        let group = match existing {
            Some(g) => g,
            None => {
                let body = json!({
                    "name": format!("inventiv-{}", rules.instance_id.simple()),
                    "project": self.project_id, "stateful": true,
                    "inbound_default_policy": "drop", "outbound_default_policy": "accept",
                    "tags": tags::standard(rules.instance_id, rules.organization_id),
                });
                // A lost answer leaves a tagged group that the next call finds.
                self.http
                    .call::<_, GroupEnvelope>(
                        Method::POST,
                        &groups_path(zone),
                        &[],
                        Some(&body),
                        Replay::OnlyRateLimited,
                    )
                    .await?
                    .ok_or_else(|| {
                        ProviderError::Internal("security group creation answered nothing".into())
                    })?
                    .security_group
            }
        };
        let workers_from = rules.control_plane.map_or_else(
            || "0.0.0.0/0".to_owned(),
            |ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }),
        );
        let mut list = vec![rule(rules.ssh_port, "0.0.0.0/0", 1)];
        for (i, port) in rules.worker_ports.iter().enumerate() {
            list.push(rule(*port, &workers_from, i + 2));
        }
        // The answer lists Scaleway's own non-editable rules too.
        let path = format!("{}/{}/rules", groups_path(zone), group.id);
        self.http
            .call::<_, RuleList>(
                Method::PUT,
                &path,
                &[],
                Some(&json!({ "rules": list })),
                Replay::Safe,
            )
            .await?;
        let server_path = format!("/instance/v1/zones/{zone}/servers/{}", server.provider_id);
        let attach = json!({ "security_group": { "id": group.id } });
        self.http
            .call::<_, ServerEnvelope>(
                Method::PATCH,
                &server_path,
                &[],
                Some(&attach),
                Replay::Safe,
            )
            .await
            .map(drop)
    }

    pub(super) async fn remove_firewall(
        &self,
        zone: String,
        instance_id: Uuid,
    ) -> Result<(), ProviderError> {
        for group in self
            .groups(&zone, Some(tags::instance(instance_id)))
            .await?
        {
            let path = format!("{}/{}", groups_path(&zone), group.id);
            match self
                .http
                .call::<(), Value>(Method::DELETE, &path, &[], None, Replay::Safe)
                .await
            {
                Ok(_) | Err(ProviderError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
