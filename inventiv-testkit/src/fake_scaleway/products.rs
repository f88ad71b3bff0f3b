//! The fake's catalog: server types (`/products/servers`) and their
//! availability, paged like every Instance API list (50 per page unless
//! asked, 100 at most, total in `X-Total-Count`), prices as JSON numbers
//! and memory in binary gigabytes as recorded; and the marketplace's local
//! images by label, zone and type (total in the body).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::shapes::{instance_list, page_of, paging};
use super::Shared;

const GIB: u64 = 1 << 30;

pub(super) async fn products(
    State(world): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let paged = match paging(&q, "per_page") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let total = w.offers.len();
    let servers: serde_json::Map<String, Value> = page_of(w.offers.clone(), paged.0, paged.1)
        .into_iter()
        .map(|o| {
            let price: Value = serde_json::from_str(&o.hourly_price).unwrap();
            let monthly = o.hourly_price.parse::<f64>().unwrap() * 730.0;
            let gpu_info = (o.gpu > 0).then(|| {
                json!({ "gpu_manufacturer": "NVIDIA", "gpu_name": o.code.split('-').next(), "gpu_memory": o.gpu_memory_gib * GIB })
            });
            let product = json!({
                "alt_names": [], "arch": "x86_64", "ncpus": o.ncpus, "ram": o.ram_gib * GIB,
                "gpu": o.gpu, "gpu_info": gpu_info, "mig_profile": null, "monthly_price": monthly,
                "hourly_price": price, "end_of_service": false,
            });
            (o.code, product)
        })
        .collect();
    instance_list(
        "servers",
        Value::Object(servers),
        "/products/servers",
        &q,
        paged,
        total,
    )
}

pub(super) async fn availability(
    State(world): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let paged = match paging(&q, "per_page") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let known: Vec<_> = w
        .offers
        .iter()
        .filter(|o| o.availability != "unknown")
        .collect();
    let total = known.len();
    let servers: serde_json::Map<String, Value> = page_of(known, paged.0, paged.1)
        .into_iter()
        .map(|o| (o.code.clone(), json!({ "availability": o.availability })))
        .collect();
    instance_list(
        "servers",
        Value::Object(servers),
        "/products/servers/availability",
        &q,
        paged,
        total,
    )
}

pub(super) async fn local_images(
    State(world): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let (page, size) = match paging(&q, "page_size") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let wanted = |key: &str, value: &str| q.get(key).is_none_or(|v| v == value);
    let zone = q.get("zone").cloned().unwrap_or_default();
    let matching: Vec<Value> = w
        .images
        .iter()
        .filter(|i| wanted("image_label", &i.label) && wanted("type", &i.kind))
        .filter(|i| i.zone.as_deref().is_none_or(|z| z == zone))
        .map(|i| {
            json!({
                "id": i.id, "arch": "x86_64", "zone": i.zone.clone().unwrap_or_else(|| zone.clone()),
                "compatible_commercial_types": i.compatible_commercial_types, "label": i.label,
                "type": i.kind,
            })
        })
        .collect();
    let total = matching.len();
    Json(json!({ "local_images": page_of(matching, page, size), "total_count": total }))
        .into_response()
}
