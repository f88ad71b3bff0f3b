//! Which image a new server boots: an explicit image id is used as is; an
//! image label (`ubuntu_jammy_gpu_os_12`) is resolved as Scaleway's SDK
//! does, through the marketplace's local images of the zone for Block
//! Storage root volumes (`type=instance_sbs`), picking the one whose
//! `compatible_commercial_types` holds the server's type. Answers are
//! cached per (label, zone, type): they change with image releases, not
//! between two creates.

use std::sync::PoisonError;

use reqwest::Method;

use super::http::Replay;
use super::wire::LocalImageList;
use super::{ScalewayProvider, PAGE_SIZE};
use crate::error::ProviderError;

const LOCAL_IMAGES: &str = "/marketplace/v2/local-images";

impl ScalewayProvider {
    /// The image id for `image` (an id or a label) on `commercial_type`
    /// in `zone`; `InvalidRequest` when the label has none.
    pub(super) async fn image_id(
        &self,
        image: &str,
        zone: &str,
        commercial_type: &str,
    ) -> Result<String, ProviderError> {
        if uuid::Uuid::parse_str(image).is_ok() {
            return Ok(image.to_owned());
        }
        let key = (
            image.to_owned(),
            zone.to_owned(),
            commercial_type.to_ascii_uppercase(),
        );
        if let Some(id) = self
            .images
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(id.clone());
        }
        let id = self.resolve(&key.0, &key.1, &key.2).await?;
        self.images
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, id.clone());
        Ok(id)
    }

    async fn resolve(
        &self,
        label: &str,
        zone: &str,
        commercial_type: &str,
    ) -> Result<String, ProviderError> {
        let mut seen = 0u64;
        for page in 1u64.. {
            let query = [
                ("image_label", label.to_owned()),
                ("zone", zone.to_owned()),
                ("type", "instance_sbs".to_owned()),
                ("order_by", "type_asc".to_owned()),
                ("page", page.to_string()),
                ("page_size", PAGE_SIZE.to_string()),
            ];
            let list: LocalImageList = self
                .http
                .call::<(), _>(Method::GET, LOCAL_IMAGES, &query, None, Replay::Safe)
                .await?
                .ok_or_else(|| ProviderError::Internal("empty local image list".into()))?;
            if let Some(image) = list.pick(label, zone, commercial_type) {
                return Ok(image.id.clone());
            }
            let count = list.local_images.len() as u64;
            seen += count;
            if count == 0 || seen >= list.total_count {
                break;
            }
        }
        Err(ProviderError::InvalidRequest(format!(
            "Scaleway has no image `{label}` for {commercial_type} in {zone}"
        )))
    }
}
