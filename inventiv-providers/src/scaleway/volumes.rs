//! Block Storage volumes (API v1alpha1): read one, list with pagination,
//! tag, grow, delete. Sizes are bytes on the wire, decimal GB here.

use reqwest::Method;

use super::http::Replay;
use super::wire::{UpdateVolume, VolumeList, WireVolume, GB};
use super::{ScalewayProvider, PAGE_SIZE};
use crate::error::ProviderError;
use crate::types::{ListFilter, Volume, VolumeRef};

impl ScalewayProvider {
    pub(super) async fn volume(
        &self,
        zone: &str,
        id: &str,
    ) -> Result<Option<Volume>, ProviderError> {
        match self
            .http
            .call::<(), WireVolume>(
                Method::GET,
                &Self::volume_path(zone, id),
                &[],
                None,
                Replay::Safe,
            )
            .await
        {
            Ok(v) => Ok(v.map(Volume::from)),
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
                .call::<_, serde_json::Value>(
                    Method::PATCH,
                    &Self::volume_path(zone, id),
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
            let mut page = 1u64;
            loop {
                let mut query = vec![
                    ("project_id", self.project_id.clone()),
                    ("page", page.to_string()),
                    ("page_size", PAGE_SIZE.to_string()),
                ];
                if let Some(tag) = &filter.tag {
                    query.push(("tags", tag.clone()));
                }
                let path = format!("/block/v1alpha1/zones/{zone}/volumes");
                let list: VolumeList = self
                    .http
                    .call::<(), _>(Method::GET, &path, &query, None, Replay::Safe)
                    .await?
                    .ok_or_else(|| ProviderError::Internal("empty volume list".into()))?;
                let done = list.volumes.is_empty() || page * PAGE_SIZE >= list.total_count;
                all.extend(
                    list.volumes
                        .into_iter()
                        .map(Volume::from)
                        .filter(|v| filter.matches(&v.zone, &v.tags)),
                );
                if done {
                    break;
                }
                page += 1;
            }
        }
        Ok(all)
    }

    pub(super) async fn resize(&self, r: VolumeRef, size_gb: u64) -> Result<(), ProviderError> {
        let current = self
            .volume(&r.zone, &r.provider_id)
            .await?
            .ok_or_else(|| ProviderError::NotFound(format!("volume {}", r.provider_id)))?;
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
            .call::<_, serde_json::Value>(
                Method::PATCH,
                &Self::volume_path(&r.zone, &r.provider_id),
                &[],
                Some(&body),
                Replay::Safe,
            )
            .await
            .map(drop)
    }

    pub(super) async fn remove_volume(&self, r: VolumeRef) -> Result<(), ProviderError> {
        match self
            .http
            .call::<(), serde_json::Value>(
                Method::DELETE,
                &Self::volume_path(&r.zone, &r.provider_id),
                &[],
                None,
                Replay::Safe,
            )
            .await
        {
            Ok(_) | Err(ProviderError::NotFound(_)) => Ok(()),
            Err(ProviderError::Refused(m)) => Err(ProviderError::InvalidRequest(m)),
            Err(e) => Err(e),
        }
    }
}
