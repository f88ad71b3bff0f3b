//! The fake's route handlers: servers and their actions, Block Storage
//! volumes, security groups, as the documented JSON shapes.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{error, project, settle, FakeGroup, FakeServer, FakeVolume, Shared, World, GB};

const GIB: u64 = 1 << 30;

pub(super) fn server_json(world: &World, s: &FakeServer) -> Value {
    let ip = (s.state == "running")
        .then_some(world.public_ip)
        .flatten()
        .map(|a| json!({ "id": "ip-1", "address": a.to_string(), "dynamic": true }));
    let volumes: serde_json::Map<String, Value> = s
        .volume_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                i.to_string(),
                json!({ "id": id, "volume_type": "sbs_volume", "zone": s.zone }),
            )
        })
        .collect();
    json!({
        "id": s.id, "name": s.name, "project": s.project, "commercial_type": s.commercial_type,
        "state": s.state, "zone": s.zone, "tags": s.tags, "public_ip": ip,
        "public_ips": ip.iter().collect::<Vec<_>>(), "volumes": volumes,
        "security_group": s.security_group.as_ref().map(|id| json!({ "id": id, "name": id })),
        "creation_date": s.creation_date, "modification_date": s.changed_at,
    })
}

pub(super) fn volume_json(v: &FakeVolume) -> Value {
    let references: Vec<Value> = v
        .server_id
        .iter()
        .map(|s| json!({ "id": Uuid::new_v4(), "product_resource_type": "instance_server", "product_resource_id": s, "type": "exclusive", "status": "attached" }))
        .collect();
    json!({
        "id": v.id, "name": v.name, "type": "sbs_5k", "size": v.size, "project_id": v.project,
        "zone": v.zone, "tags": v.tags, "references": references, "status": if v.server_id.is_some() { "in_use" } else { "available" },
        "created_at": v.created_at, "updated_at": v.created_at,
    })
}

/// `page` and the page size (`per_page` or `page_size`) of a list call.
pub(super) fn paging(q: &HashMap<String, String>, size_key: &str) -> (usize, usize) {
    let page = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let size = q
        .get(size_key)
        .and_then(|p| p.parse().ok())
        .unwrap_or(50usize)
        .clamp(1, 100);
    (page, size)
}

pub(super) fn tag_filter(q: &HashMap<String, String>) -> Vec<String> {
    q.get("tags")
        .map(|t| t.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

pub(super) async fn list_servers(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    settle(&mut w);
    let project = project(&w, &headers);
    let tags = tag_filter(&q);
    let matching: Vec<Value> = w
        .servers
        .values()
        .filter(|s| {
            s.zone == zone && s.project == project && tags.iter().all(|t| s.tags.contains(t))
        })
        .map(|s| server_json(&w, s))
        .collect();
    let (page, size) = paging(&q, "per_page");
    let total = matching.len();
    let slice: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    (
        [("x-total-count", total.to_string())],
        Json(json!({ "servers": slice, "total_count": total })),
    )
        .into_response()
}

pub(super) async fn create_server(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    let project = project(&w, &headers);
    let (Some(name), Some(kind), Some(_image)) = (
        body["name"].as_str(),
        body["commercial_type"].as_str(),
        body["image"].as_str(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_arguments",
            "name, commercial_type and image are required",
        );
    };
    if body["project"].as_str() != Some(project.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            "permissions_denied",
            "project not allowed",
        );
    }
    let tags: Vec<String> = body["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let id = Uuid::new_v4().to_string();
    let now = Utc::now();
    let volume = Uuid::new_v4().to_string();
    w.volumes.insert(
        volume.clone(),
        FakeVolume {
            id: volume.clone(),
            project: project.clone(),
            zone: zone.clone(),
            name: format!("{name}-root"),
            size: 20 * GB,
            tags: Vec::new(),
            server_id: Some(id.clone()),
            created_at: now,
        },
    );
    let server = FakeServer {
        id: id.clone(),
        project,
        zone,
        name: name.to_owned(),
        commercial_type: kind.to_owned(),
        state: "stopped".into(),
        changed_at: now,
        tags,
        volume_ids: vec![volume],
        creation_date: now,
        security_group: None,
    };
    let answer = json!({ "server": server_json(&w, &server) });
    w.created.push(server.tags.clone());
    w.servers.insert(id, server);
    if w.faults.fail_after_create > 0 {
        w.faults.fail_after_create -= 1;
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "created, but the answer was lost",
        );
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

pub(super) fn owned_server<'a>(
    w: &'a mut World,
    headers: &HeaderMap,
    zone: &str,
    id: &str,
) -> Option<&'a mut FakeServer> {
    let project = project(w, headers);
    w.servers
        .get_mut(id)
        .filter(|s| s.project == project && s.zone == zone)
}

pub(super) fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_resource",
        &format!("{what} not found"),
    )
}

pub(super) async fn get_server(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    settle(&mut w);
    match owned_server(&mut w, &headers, &zone, &id).cloned() {
        Some(s) => Json(json!({ "server": server_json(&w, &s) })).into_response(),
        None => not_found("server"),
    }
}

pub(super) async fn server_action(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    settle(&mut w);
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("server");
    };
    let next = match (body["action"].as_str(), s.state.as_str()) {
        (Some("poweron"), "stopped") => "starting",
        (Some("poweroff"), "running") => "stopping",
        (Some(action), state) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("{action} not allowed while {state}"),
            )
        }
        (None, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_arguments",
                "action is required",
            )
        }
    };
    s.state = next.into();
    s.changed_at = Utc::now();
    (
        StatusCode::ACCEPTED,
        Json(json!({ "task": { "id": Uuid::new_v4(), "status": "pending" } })),
    )
        .into_response()
}

pub(super) async fn delete_server(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    settle(&mut w);
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("server");
    };
    if s.state != "stopped" {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "server must be stopped to be deleted",
        );
    }
    w.servers.remove(&id);
    for v in w.volumes.values_mut() {
        if v.server_id.as_deref() == Some(id.as_str()) {
            v.server_id = None;
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn list_volumes(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = world.lock().unwrap();
    let project = project(&w, &headers);
    let tags = tag_filter(&q);
    let matching: Vec<Value> = w
        .volumes
        .values()
        .filter(|v| {
            v.zone == zone
                && v.project == project
                && (tags.is_empty() || tags.iter().any(|t| v.tags.contains(t)))
        })
        .map(volume_json)
        .collect();
    let (page, size) = paging(&q, "page_size");
    let total = matching.len();
    let slice: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    Json(json!({ "volumes": slice, "total_count": total })).into_response()
}

pub(super) fn owned_volume<'a>(
    w: &'a mut World,
    headers: &HeaderMap,
    zone: &str,
    id: &str,
) -> Option<&'a mut FakeVolume> {
    let project = project(w, headers);
    w.volumes
        .get_mut(id)
        .filter(|v| v.project == project && v.zone == zone)
}

pub(super) async fn get_volume(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    match owned_volume(&mut w, &headers, &zone, &id) {
        Some(v) => Json(volume_json(v)).into_response(),
        None => not_found("volume"),
    }
}

pub(super) async fn update_volume(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    let Some(v) = owned_volume(&mut w, &headers, &zone, &id) else {
        return not_found("volume");
    };
    if let Some(size) = body["size"].as_u64() {
        if size < v.size {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_arguments",
                "a volume cannot shrink",
            );
        }
        v.size = size;
    }
    if let Some(tags) = body["tags"].as_array() {
        v.tags = tags
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
    }
    Json(volume_json(v)).into_response()
}

pub(super) async fn delete_volume(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    let Some(v) = owned_volume(&mut w, &headers, &zone, &id) else {
        return not_found("volume");
    };
    if v.server_id.is_some() {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "volume is in use",
        );
    }
    w.volumes.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn group_json(g: &FakeGroup) -> Value {
    json!({ "id": g.id, "name": format!("group-{}", g.id), "project": g.project, "zone": g.zone, "tags": g.tags,
            "stateful": true, "inbound_default_policy": g.inbound_default_policy, "outbound_default_policy": "accept" })
}

pub(super) async fn update_server(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    settle(&mut w);
    let group = body["security_group"]["id"].as_str().map(str::to_owned);
    if let Some(g) = &group {
        let project = project(&w, &headers);
        if !w
            .groups
            .get(g)
            .is_some_and(|g| g.project == project && g.zone == zone)
        {
            return not_found("security group");
        }
    }
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("server");
    };
    if group.is_some() {
        s.security_group = group;
    }
    let s = s.clone();
    Json(json!({ "server": server_json(&w, &s) })).into_response()
}

pub(super) async fn list_groups(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = world.lock().unwrap();
    let project = project(&w, &headers);
    let tags = tag_filter(&q);
    let groups: Vec<Value> = w
        .groups
        .values()
        .filter(|g| {
            g.zone == zone && g.project == project && tags.iter().all(|t| g.tags.contains(t))
        })
        .map(group_json)
        .collect();
    let total = groups.len();
    Json(json!({ "security_groups": groups, "total_count": total })).into_response()
}

pub(super) async fn create_group(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    let project = project(&w, &headers);
    if body["project"].as_str() != Some(project.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            "permissions_denied",
            "project not allowed",
        );
    }
    let group = FakeGroup {
        id: Uuid::new_v4().to_string(),
        project,
        zone,
        tags: strings(&body["tags"]),
        inbound_default_policy: body["inbound_default_policy"]
            .as_str()
            .unwrap_or("accept")
            .to_owned(),
        rules: Vec::new(),
    };
    let answer = json!({ "security_group": group_json(&group) });
    w.groups.insert(group.id.clone(), group);
    (StatusCode::CREATED, Json(answer)).into_response()
}

pub(super) async fn set_rules(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    let project = project(&w, &headers);
    let Some(g) = w
        .groups
        .get_mut(&id)
        .filter(|g| g.project == project && g.zone == zone)
    else {
        return not_found("security group");
    };
    g.rules = body["rules"].as_array().cloned().unwrap_or_default();
    Json(json!({ "rules": g.rules })).into_response()
}

pub(super) async fn delete_group(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    let project = project(&w, &headers);
    if !w
        .groups
        .get(&id)
        .is_some_and(|g| g.project == project && g.zone == zone)
    {
        return not_found("security group");
    }
    if w.servers
        .values()
        .any(|s| s.security_group.as_deref() == Some(id.as_str()))
    {
        return error(StatusCode::CONFLICT, "conflict", "group in use");
    }
    w.groups.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn products(
    State(world): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = world.lock().unwrap();
    let (page, size) = paging(&q, "per_page");
    let total = w.offers.len();
    let servers: serde_json::Map<String, Value> = w
        .offers
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|o| {
            let price: Value = serde_json::from_str(&o.hourly_price).unwrap();
            let product = json!({
                "hourly_price": price, "monthly_price": 0, "ncpus": o.ncpus, "ram": o.ram_gib * GIB,
                "gpu": o.gpu, "gpu_info": { "gpu_manufacturer": "NVIDIA", "gpu_name": "GPU", "gpu_memory": o.gpu_memory_gib * GIB },
                "arch": "x86_64", "baremetal": false,
            });
            (o.code.clone(), product)
        })
        .collect();
    Json(json!({ "servers": servers, "total_count": total })).into_response()
}

pub(super) async fn availability(State(world): State<Shared>) -> Response {
    let w = world.lock().unwrap();
    let servers: serde_json::Map<String, Value> = w
        .offers
        .iter()
        .map(|o| (o.code.clone(), json!({ "availability": o.availability })))
        .collect();
    let total = servers.len();
    Json(json!({ "servers": servers, "total_count": total })).into_response()
}
