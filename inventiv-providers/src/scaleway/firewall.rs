//! The security group of an instance on Scaleway: created once (tagged
//! like the server, found again by its instance tag), its inbound rules
//! set as a whole (SSH from anywhere, the worker's ports from the control
//! plane only when its address is known, the rest dropped), attached to
//! the server; deleted after the server.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::http::Replay;
use super::ScalewayProvider;
use crate::error::ProviderError;
use crate::tags;
use crate::types::{Firewall, ServerRef};

#[derive(Debug, Deserialize)]
struct GroupList {
    security_groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
struct GroupEnvelope {
    security_group: Group,
}

#[derive(Debug, Deserialize)]
struct Group {
    id: String,
}

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
    /// The security groups tagged for the instance.
    async fn groups(&self, zone: &str, instance_id: Uuid) -> Result<Vec<Group>, ProviderError> {
        let query = [
            ("project", self.project_id.clone()),
            ("tags", tags::instance(instance_id)),
            ("per_page", "100".to_owned()),
        ];
        let list: Option<GroupList> = self
            .http
            .call::<(), _>(Method::GET, &groups_path(zone), &query, None, Replay::Safe)
            .await?;
        Ok(list.map(|l| l.security_groups).unwrap_or_default())
    }

    pub(super) async fn firewall(
        &self,
        server: ServerRef,
        rules: Firewall,
    ) -> Result<(), ProviderError> {
        let zone = &server.zone;
        let group = match self
            .groups(zone, rules.instance_id)
            .await?
            .into_iter()
            .next()
        {
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
        let path = format!("{}/{}/rules", groups_path(zone), group.id);
        self.http
            .call::<_, Value>(
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
            .call::<_, Value>(
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
        for group in self.groups(&zone, instance_id).await? {
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
