//! Block Storage volumes (API v1): read one, list with pagination (this
//! API keeps `total_count` in the body), tag, grow, delete. Sizes are
//! bytes on the wire, decimal GB here. A resized volume is `updating` for
//! a while; a volume still detaching from a deleted server cannot be
//! deleted yet (`Transient`).

use reqwest::Method;

use super::http::Replay;
use super::wire::{UpdateVolume, VolumeList, WireVolume, GB};
use super::{ScalewayProvider, PAGE_SIZE};
use crate::error::ProviderError;
use crate::types::{ListFilter, ServerRef, Volume, VolumeRef};

fn volumes_path(zone: &str) -> String {
    format!("/block/v1/zones/{zone}/volumes")
}

fn volume_path(zone: &str, id: &str) -> String {
    format!("{}/{id}", volumes_path(zone))
}

impl ScalewayProvider {
    pub(super) async fn wire_volume(
        &self,
        zone: &str,
        id: &str,
    ) -> Result<Option<WireVolume>, ProviderError> {
        match self
            .http
            .call::<(), WireVolume>(Method::GET, &volume_path(zone, id), &[], None, Replay::Safe)
            .await
        {
            Ok(v) => Ok(v),
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn tag_volumes(
        &self,
        zone: &str,
        ids: &[String],
        tags: &[String],
    ) -> Result<(), ProviderError> {
        let body = UpdateVolume {
            size: None,
            tags: Some(tags),
        };
        for id in ids {
            self.http
                .call::<_, WireVolume>(
                    Method::PATCH,
                    &volume_path(zone, id),
                    &[],
                    Some(&body),
                    Replay::Safe,
                )
                .await?;
        }
        Ok(())
    }

    pub(super) async fn list_volumes_in(
        &self,
        filter: ListFilter,
    ) -> Result<Vec<Volume>, ProviderError> {
        let mut all = Vec::new();
        for zone in self.zones(&filter) {
            let mut seen = 0u64;
            for page in 1u64.. {
                let mut query = vec![
                    ("project_id", self.project_id.clone()),
                    ("page", page.to_string()),
                    ("page_size", PAGE_SIZE.to_string()),
                ];
                if let Some(tag) = &filter.tag {
                    query.push(("tags", tag.clone()));
                }
                let list: VolumeList = self
                    .http
                    .call::<(), _>(
                        Method::GET,
                        &volumes_path(&zone),
                        &query,
                        None,
                        Replay::Safe,
                    )
                    .await?
                    .ok_or_else(|| ProviderError::Internal("empty volume list".into()))?;
                let count = list.volumes.len() as u64;
                seen += count;
                all.extend(
                    list.volumes
                        .into_iter()
                        .map(Volume::from)
                        .filter(|v| filter.matches(&v.zone, &v.tags)),
                );
                if count == 0 || seen >= list.total_count {
                    break;
                }
            }
        }
        Ok(all)
    }

    pub(super) async fn resize(&self, r: VolumeRef, size_gb: u64) -> Result<(), ProviderError> {
        let wire = self
            .wire_volume(&r.zone, &r.provider_id)
            .await?
            .ok_or_else(|| ProviderError::NotFound(format!("volume {}", r.provider_id)))?;
        // While `updating`, the size shown may be the old one: wait.
        if !wire.settled() {
            return Err(ProviderError::Transient(format!(
                "volume {} is {}: it can be resized once settled",
                r.provider_id, wire.status
            )));
        }
        let current = Volume::from(wire);
        if current.size_gb == size_gb {
            return Ok(());
        }
        if current.size_gb > size_gb {
            return Err(ProviderError::InvalidRequest(format!(
                "volume {} is {} GB: it cannot shrink to {size_gb} GB",
                r.provider_id, current.size_gb
            )));
        }
        let body = UpdateVolume {
            size: Some(size_gb * GB),
            tags: None,
        };
        self.http
            .call::<_, WireVolume>(
                Method::PATCH,
                &volume_path(&r.zone, &r.provider_id),
                &[],
                Some(&body),
                Replay::Safe,
            )
            .await
            .map(drop)
    }

    pub(super) async fn remove_volume(&self, r: VolumeRef) -> Result<(), ProviderError> {
        let refusal = match self
            .http
            .call::<(), serde_json::Value>(
                Method::DELETE,
                &volume_path(&r.zone, &r.provider_id),
                &[],
                None,
                Replay::Safe,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound(_)) => return Ok(()),
            Err(ProviderError::Refused(m) | ProviderError::InvalidRequest(m)) => m,
            Err(e) => return Err(e),
        };
        // Refused: attached for good (a caller's mistake) or still
        // detaching from a deleted server (wait)?
        let Some(volume) = self.wire_volume(&r.zone, &r.provider_id).await? else {
            return Ok(());
        };
        if let Some(reference) = volume.server_reference() {
            let server = ServerRef {
                zone: r.zone.clone(),
                provider_id: reference.product_resource_id.clone(),
            };
            if reference.status == "attached" && self.wire_server(&server).await?.is_some() {
                return Err(ProviderError::InvalidRequest(format!(
                    "volume {} is attached to server {}: {refusal}",
                    r.provider_id, server.provider_id
                )));
            }
        }
        Err(ProviderError::Transient(format!(
            "volume {} is {}: {refusal}",
            r.provider_id, volume.status
        )))
    }
}
