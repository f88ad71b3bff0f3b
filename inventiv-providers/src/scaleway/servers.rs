//! Servers on the Instance API: create (image resolved, root volume sized,
//! user data set before any power-on), power on once the volumes have
//! settled, read, list page after page, and delete (powered off first:
//! Scaleway deletes stopped servers only; Block Storage volumes survive).

use std::collections::BTreeMap;

use reqwest::Method;

use super::http::Replay;
use super::wire::{self, ServerEnvelope, ServerList, TaskEnvelope, WireServer, GB, SBS_VOLUME};
use super::{ScalewayProvider, PAGE_SIZE};
use crate::error::ProviderError;
use crate::types::{CreateServer, ListFilter, Server, ServerRef};

pub(super) fn servers_path(zone: &str) -> String {
    format!("/instance/v1/zones/{zone}/servers")
}

fn server_path(r: &ServerRef) -> String {
    format!("{}/{}", servers_path(&r.zone), r.provider_id)
}

impl ScalewayProvider {
    pub(super) async fn wire_server(
        &self,
        r: &ServerRef,
    ) -> Result<Option<WireServer>, ProviderError> {
        match self
            .http
            .call::<(), ServerEnvelope>(Method::GET, &server_path(r), &[], None, Replay::Safe)
            .await
        {
            Ok(env) => Ok(env.map(|e| e.server)),
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The server with its Block Storage volumes read in full.
    pub(super) async fn complete(&self, server: WireServer) -> Result<Server, ProviderError> {
        let mut volumes = Vec::new();
        for id in server.block_volume_ids() {
            if let Some(v) = self.wire_volume(&server.zone, &id).await? {
                volumes.push(v.into());
            }
        }
        Ok(server.into_server(
            volumes,
            self.settings.ssh_port,
            self.settings.install_dir.clone(),
        ))
    }

    async fn action(&self, r: &ServerRef, action: &str) -> Result<(), ProviderError> {
        let path = format!("{}/action", server_path(r));
        self.http
            .call::<_, TaskEnvelope>(
                Method::POST,
                &path,
                &[],
                Some(&wire::Action { action }),
                Replay::Safe,
            )
            .await
            .map(drop)
    }

    pub(super) async fn create(&self, req: CreateServer) -> Result<Server, ProviderError> {
        let tags = req.all_tags();
        let key = req
            .ssh_public_key
            .as_deref()
            .or(self.settings.ssh_public_key.as_deref());
        // Checked before anything exists: a bad key must not leave a server.
        let user_data = key.map(super::cloud_config).transpose()?;
        let label = req.image.as_deref().unwrap_or(&self.settings.default_image);
        let image = self.image_id(label, &req.zone, &req.instance_type).await?;
        let volumes = req.root_volume_gb.map(|gb| {
            BTreeMap::from([(
                "0",
                wire::NewVolume {
                    size: gb * GB,
                    volume_type: SBS_VOLUME,
                },
            )])
        });
        let body = wire::CreateServerBody {
            name: &req.name,
            commercial_type: &req.instance_type,
            image: &image,
            project: &self.project_id,
            tags: &tags,
            dynamic_ip_required: true,
            volumes,
        };
        let created = self
            .http
            .call::<_, ServerEnvelope>(
                Method::POST,
                &servers_path(&req.zone),
                &[],
                Some(&body),
                Replay::OnlyRateLimited,
            )
            .await?
            .ok_or_else(|| ProviderError::Internal("server creation answered nothing".into()))?
            .server;
        let reference = ServerRef {
            zone: created.zone.clone(),
            provider_id: created.id.clone(),
        };
        if let Some(text) = &user_data {
            self.set_user_data(&reference, text).await?;
        }
        self.tag_volumes(&created.zone, &created.block_volume_ids(), &tags)
            .await?;
        self.complete(created).await
    }

    pub(super) async fn start(&self, r: ServerRef) -> Result<(), ProviderError> {
        let server = self
            .wire_server(&r)
            .await?
            .ok_or_else(|| ProviderError::NotFound(format!("server {}", r.provider_id)))?;
        match server.state.as_str() {
            "running" | "starting" => return Ok(()),
            "stopping" => {
                return Err(ProviderError::Transient(format!(
                    "server {} is stopping: it can be powered on once stopped",
                    r.provider_id
                )))
            }
            _ => {}
        }
        self.volumes_settled(&server).await?;
        if let Some(key) = &self.settings.ssh_public_key {
            self.set_user_data(&r, &super::cloud_config(key)?).await?;
        }
        match self.action(&r, "poweron").await {
            // Refused while a volume moved (resize, attachment): wait.
            Err(e @ (ProviderError::InvalidRequest(_) | ProviderError::Refused(_))) => {
                self.volumes_settled(&server).await?;
                Err(e)
            }
            other => other,
        }
    }

    /// `Transient` while one of the server's Block Storage volumes is not
    /// at rest (e.g. `updating` after a resize).
    async fn volumes_settled(&self, server: &WireServer) -> Result<(), ProviderError> {
        for id in server.block_volume_ids() {
            if let Some(v) = self.wire_volume(&server.zone, &id).await? {
                if !v.settled() {
                    return Err(ProviderError::Transient(format!(
                        "volume {id} of server {} is {}",
                        server.id, v.status
                    )));
                }
            }
        }
        Ok(())
    }

    /// Powers the server off, waits until it is stopped, then deletes it;
    /// its Block Storage volumes survive, detached.
    pub(super) async fn delete(&self, r: ServerRef) -> Result<(), ProviderError> {
        let deadline = tokio::time::Instant::now() + self.settings.power_timeout;
        loop {
            let Some(server) = self.wire_server(&r).await? else {
                return Ok(());
            };
            match server.state.as_str() {
                "stopped" => break,
                "running" | "stopped in place" => self.action(&r, "poweroff").await?,
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
        match self
            .http
            .call::<(), serde_json::Value>(
                Method::DELETE,
                &server_path(&r),
                &[],
                None,
                Replay::Safe,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn list_servers_in(
        &self,
        filter: ListFilter,
    ) -> Result<Vec<Server>, ProviderError> {
        let mut all = Vec::new();
        for zone in self.zones(&filter) {
            let mut query = vec![("project", self.project_id.clone())];
            if let Some(tag) = &filter.tag {
                query.push(("tags", tag.clone()));
            }
            let servers = self
                .http
                .all_pages(&servers_path(&zone), &query, PAGE_SIZE, |l: ServerList| {
                    l.servers
                })
                .await?;
            for s in servers {
                if filter.matches(&s.zone, &s.tags) {
                    all.push(self.complete(s).await?);
                }
            }
        }
        Ok(all)
    }
}
