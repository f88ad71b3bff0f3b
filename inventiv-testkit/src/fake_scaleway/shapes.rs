//! The JSON the fake answers, in the shapes recorded from the real API
//! (`fixtures/scaleway-recordings/`), each a subset of the recorded
//! fields: servers with their public IP only once running, Block Storage
//! v1 volumes, security groups; list answers with the Instance API's
//! paging headers (`X-Total-Count`, `Link`, no total in the body) or Block
//! Storage's `total_count`; errors as Scaleway writes them.

use std::collections::HashMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::world::{FakeGroup, FakeServer, FakeVolume, World};

/// Instance API dates: `2026-02-24T11:29:06.723007+00:00`.
pub(super) fn instance_date(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Block Storage dates: `2026-06-15T15:33:46.725992Z`.
pub(super) fn block_date(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn server_json(world: &World, s: &FakeServer) -> Value {
    let ip = matches!(s.state.as_str(), "running" | "stopping")
        .then_some(world.public_ip)
        .flatten()
        .map(|a| {
            json!({
                "id": s.ip_id, "address": a.to_string(), "dynamic": true, "gateway": "62.210.0.1",
                "netmask": "32", "family": if a.is_ipv4() { "inet" } else { "inet6" },
                "provisioning_mode": "dhcp", "tags": [], "state": "attached", "ipam_id": s.ip_id,
            })
        });
    let volumes: serde_json::Map<String, Value> = s
        .volume_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let v = json!({ "boot": false, "volume_type": "sbs_volume", "id": id, "state": "available", "zone": s.zone });
            (i.to_string(), v)
        })
        .collect();
    let detail = match s.state.as_str() {
        "running" => "booted",
        "starting" => "allocating node",
        "stopping" => "stopping",
        _ => "",
    };
    json!({
        "id": s.id, "name": s.name, "arch": "x86_64", "commercial_type": s.commercial_type,
        "boot_type": "local", "organization": s.project, "project": s.project, "hostname": s.name,
        "volumes": volumes, "tags": s.tags, "state": s.state, "protected": false, "state_detail": detail,
        "public_ip": ip, "public_ips": ip.iter().collect::<Vec<_>>(), "dynamic_ip_required": true,
        "enable_ipv6": false, "private_ip": null, "creation_date": instance_date(&s.creation_date),
        "modification_date": instance_date(&s.changed_at),
        "security_group": match &s.security_group {
            Some(id) => json!({ "id": id, "name": world.groups.get(id).map_or(id.as_str(), |g| g.name.as_str()) }),
            None => json!({ "id": world.default_group, "name": "Default security group" }),
        },
        "placement_group": null, "private_nics": [], "zone": s.zone,
    })
}

pub(super) fn volume_json(v: &FakeVolume) -> Value {
    let reference_status = if v.detaching_until.is_some() {
        "detaching"
    } else {
        "attached"
    };
    let references: Vec<Value> = v
        .server_id
        .iter()
        .map(|s| {
            json!({
                "id": uuid::Uuid::new_v4(), "product_resource_type": "instance_server",
                "product_resource_id": s, "created_at": block_date(&v.created_at), "type": "exclusive",
                "status": reference_status,
            })
        })
        .collect();
    json!({
        "id": v.id, "name": v.name, "type": "sbs_5k", "size": v.size, "project_id": v.project,
        "created_at": block_date(&v.created_at), "updated_at": block_date(&v.updated_at),
        "references": references, "parent_snapshot_id": null, "status": v.status(), "tags": v.tags,
        "specs": { "perf_iops": 5000, "class": "sbs" }, "last_detached_at": null, "zone": v.zone,
    })
}

pub(super) fn group_json(world: &World, g: &FakeGroup) -> Value {
    let servers: Vec<Value> = world
        .servers
        .values()
        .filter(|s| s.security_group.as_deref() == Some(g.id.as_str()))
        .map(|s| json!({ "id": s.id, "name": s.name }))
        .collect();
    json!({
        "id": g.id, "creation_date": instance_date(&g.creation_date),
        "modification_date": instance_date(&g.creation_date), "name": g.name, "description": "",
        "organization": g.project, "project": g.project, "servers": servers, "stateful": true,
        "inbound_default_policy": g.inbound_default_policy, "outbound_default_policy": "accept",
        "organization_default": false, "project_default": false, "enable_default_security": true,
        "state": "available", "tags": g.tags, "zone": g.zone,
    })
}

/// Scaleway's own outbound rules that every security group lists first
/// (SMTP dropped, not editable).
pub(super) fn default_rules(zone: &str) -> Vec<Value> {
    let mut rules = Vec::new();
    for (i, (range, port)) in ["0.0.0.0/0", "::/0"]
        .iter()
        .flat_map(|r| [25, 465, 587].map(|p| (*r, p)))
        .enumerate()
    {
        rules.push(json!({
            "id": format!("11111111-2222-4333-8444-{:012}", i + 1), "protocol": "TCP",
            "direction": "outbound", "ip_range": range, "dest_ip_range": null,
            "dest_port_from": port, "dest_port_to": null, "position": i + 1, "editable": false,
            "action": "drop", "zone": zone,
        }));
    }
    rules
}

/// `page` and the page size (`per_page` or `page_size`) of a list call:
/// 50 unless asked, 100 at most (more is refused, as `Err`).
pub(super) fn paging(
    q: &HashMap<String, String>,
    size_key: &str,
) -> Result<(usize, usize), Box<Response>> {
    let page = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let size = q
        .get(size_key)
        .and_then(|p| p.parse().ok())
        .unwrap_or(50usize);
    if !(1..=100).contains(&size) {
        return Err(Box::new(invalid_argument(
            size_key,
            "constraint",
            "must be between 1 and 100",
        )));
    }
    Ok((page, size))
}

/// One page of `items`.
pub(super) fn page_of<T>(items: Vec<T>, page: usize, size: usize) -> Vec<T> {
    items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect()
}

/// An Instance API list answer: only `key` in the body, the total in
/// `X-Total-Count` and the pages in `Link` (`resource` is the path after
/// the zone, e.g. `/servers`).
pub(super) fn instance_list(
    key: &str,
    items: Value,
    resource: &str,
    q: &HashMap<String, String>,
    (page, size): (usize, usize),
    total: usize,
) -> Response {
    let mut extra: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, _)| *k != "page" && *k != "per_page")
        .collect();
    extra.sort();
    let extra: String = extra.iter().map(|(k, v)| format!("{k}={v}&")).collect();
    let last = total.div_ceil(size);
    let link = |p: usize, rel: &str| {
        format!("<{resource}?page={p}&per_page={size}&{extra}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "previous"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
    }
    links.push(link(last, "last"));
    let mut response = Json(json!({ key: items })).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    if let Ok(v) = HeaderValue::from_str(&links.join(",")) {
        headers.insert(header::LINK, v);
    }
    response
}

/// A 204 with an empty body, typed as Scaleway types it.
pub(super) fn no_content(content_type: &'static str) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::CONTENT_TYPE, content_type)],
    )
        .into_response()
}

pub(super) fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// 404 as recorded: `{"type":"not_found","message":"resource is not found","resource","resource_id"}`.
pub(super) fn not_found(resource: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({ "type": "not_found", "message": "resource is not found", "resource": resource, "resource_id": id }),
    )
}

/// 400 as recorded: `invalid_arguments` with its `details`.
pub(super) fn invalid_arguments(details: Vec<Value>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({ "type": "invalid_arguments", "message": "invalid argument(s)", "details": details }),
    )
}

pub(super) fn invalid_argument(name: &str, reason: &str, help: &str) -> Response {
    invalid_arguments(vec![
        json!({ "argument_name": name, "reason": reason, "help_message": help }),
    ])
}

/// The Instance API's refusal of an action in the wrong state.
pub(super) fn invalid_request(message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({ "type": "invalid_request_error", "message": message }),
    )
}
