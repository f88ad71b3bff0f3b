//! What Scaleway offers in a zone: its GPU server types with their size
//! and hourly price (`/products/servers`) and their availability
//! (`/products/servers/availability`), both paged like every Instance API
//! list (total in `X-Total-Count`, 50 per page unless asked), for the
//! catalog sync.

use std::collections::BTreeMap;

use super::wire::{AvailabilityList, ProductList};
use super::{ScalewayProvider, PAGE_SIZE};
use crate::error::ProviderError;

/// A GPU server type offered in a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub code: String,
    pub gpu_count: u32,
    pub vram_per_gpu_gb: u64,
    pub vcpu: u32,
    pub ram_gb: u64,
    /// EUR per hour as Scaleway wrote it (the JSON number's text, never
    /// rounded through a float of ours).
    pub hourly_price: String,
    /// False only when Scaleway reports a `shortage`. A type missing from
    /// the availability answer is unknown, and counted as available: a
    /// create then says for sure (out of stock is its own error).
    pub available: bool,
}

/// Memory sizes in products are bytes counted in binary gigabytes.
const GIB: u64 = 1 << 30;

impl ScalewayProvider {
    /// The GPU server types of `zone`, every page.
    pub async fn offers(&self, zone: &str) -> Result<Vec<Offer>, ProviderError> {
        let base = format!("/instance/v1/zones/{zone}/products/servers");
        let products: BTreeMap<_, _> = self
            .http
            .all_pages(&base, &[], PAGE_SIZE, |l: ProductList| {
                l.servers.into_iter().collect()
            })
            .await?
            .into_iter()
            .collect();
        let availability: BTreeMap<_, _> = self
            .http
            .all_pages(
                &format!("{base}/availability"),
                &[],
                PAGE_SIZE,
                |l: AvailabilityList| l.servers.into_iter().collect(),
            )
            .await?
            .into_iter()
            .collect();
        Ok(products
            .into_iter()
            .filter_map(|(code, p)| {
                let gpu_count = p.gpu.filter(|g| *g > 0)?;
                Some(Offer {
                    available: availability
                        .get(&code)
                        .is_none_or(|a| a.availability != "shortage"),
                    code,
                    gpu_count,
                    vram_per_gpu_gb: p.gpu_info.map_or(0, |g| g.gpu_memory / GIB),
                    vcpu: p.ncpus,
                    ram_gb: p.ram / GIB,
                    hourly_price: p.hourly_price.to_string(),
                })
            })
            .collect())
    }
}
