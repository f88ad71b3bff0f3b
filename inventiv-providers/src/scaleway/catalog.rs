//! What Scaleway offers in a zone: its GPU server types with their size
//! and hourly price (`/products/servers`) and their availability
//! (`/products/servers/availability`), for the catalog sync.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use super::http::Replay;
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
    /// EUR per hour as Scaleway wrote it (a decimal text, never a float).
    pub hourly_price: String,
    /// False when Scaleway reports a shortage.
    pub available: bool,
}

/// Memory sizes in products are bytes counted in binary gigabytes.
const GIB: u64 = 1 << 30;

#[derive(Debug, Deserialize)]
struct Products {
    servers: BTreeMap<String, Product>,
    total_count: u64,
}

#[derive(Debug, Deserialize)]
struct GpuInfo {
    gpu_memory: u64,
}

#[derive(Debug, Deserialize)]
struct Product {
    hourly_price: serde_json::Number,
    ncpus: u32,
    ram: u64,
    #[serde(default)]
    gpu: u32,
    gpu_info: Option<GpuInfo>,
}

#[derive(Debug, Deserialize)]
struct Availability {
    servers: BTreeMap<String, Available>,
}

#[derive(Debug, Deserialize)]
struct Available {
    availability: String,
}

impl ScalewayProvider {
    /// The GPU server types of `zone`, every page.
    pub async fn offers(&self, zone: &str) -> Result<Vec<Offer>, ProviderError> {
        let base = format!("/instance/v1/zones/{zone}/products/servers");
        let mut products = BTreeMap::new();
        for page in 1u64.. {
            let query = [
                ("page", page.to_string()),
                ("per_page", PAGE_SIZE.to_string()),
            ];
            let list: Products = self
                .http
                .call::<(), _>(Method::GET, &base, &query, None, Replay::Safe)
                .await?
                .ok_or_else(|| ProviderError::Internal("empty product list".into()))?;
            let done = list.servers.is_empty() || page * PAGE_SIZE >= list.total_count;
            products.extend(list.servers);
            if done {
                break;
            }
        }
        let availability: Availability = self
            .http
            .call::<(), _>(
                Method::GET,
                &format!("{base}/availability"),
                &[],
                None,
                Replay::Safe,
            )
            .await?
            .ok_or_else(|| ProviderError::Internal("empty availability".into()))?;
        Ok(products
            .into_iter()
            .filter(|(_, p)| p.gpu > 0)
            .map(|(code, p)| Offer {
                available: availability
                    .servers
                    .get(&code)
                    .is_some_and(|a| a.availability != "shortage"),
                code,
                gpu_count: p.gpu,
                vram_per_gpu_gb: p.gpu_info.map_or(0, |g| g.gpu_memory / GIB),
                vcpu: p.ncpus,
                ram_gb: p.ram / GIB,
                hourly_price: p.hourly_price.to_string(),
            })
            .collect())
    }
}
