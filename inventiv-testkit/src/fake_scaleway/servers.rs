//! The fake's Instance API servers: list (paged, headers), create (image
//! id checked, root volume sized as asked, quota and stock faults), read,
//! update (security group), power actions moving through `starting`,
//! `stopping`, `stopped in place`, delete (stopped servers only), and the
//! `text/plain` user data routes.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::shapes::{
    error, instance_list, invalid_argument, invalid_arguments, invalid_request, no_content,
    not_found, page_of, paging, server_json,
};
use super::world::{FakeServer, UserDataSet, World, GB};
use super::{project, strings, Shared};

pub(super) async fn list(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    let paged = match paging(&q, "per_page") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let project = project(&w, &headers);
    let tags: Vec<String> = q
        .get("tags")
        .map(|t| t.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let matching: Vec<Value> = w
        .servers
        .values()
        .filter(|s| s.zone == zone && s.project == project)
        .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
        .map(|s| server_json(&w, s))
        .collect();
    let total = matching.len();
    let items = Value::from(page_of(matching, paged.0, paged.1));
    instance_list("servers", items, "/servers", &q, paged, total)
}

/// The quota refusal of Scaleway's SDK tests (`scw/errors_test.go`).
fn quota_exceeded(commercial_type: &str) -> Response {
    let resource = format!("instances_{}_count", commercial_type.to_ascii_lowercase());
    error(
        StatusCode::FORBIDDEN,
        json!({ "type": "invalid_request_error", "message": "Quota exceeded for this resource.", "resource": resource }),
    )
}

fn out_of_stock(commercial_type: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({ "type": "out_of_stock", "message": format!("{commercial_type} is out of stock in this zone"), "resource": commercial_type }),
    )
}

pub(super) async fn create(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    let project = project(&w, &headers);
    let missing: Vec<Value> = ["commercial_type", "image", "name", "project"]
        .iter()
        .filter(|k| body[**k].as_str().is_none())
        .map(|k| json!({ "argument_name": k, "reason": "required", "help_message": "required key not provided" }))
        .collect();
    if !missing.is_empty() {
        return invalid_arguments(missing);
    }
    let (name, kind, image) = (
        body["name"].as_str().unwrap_or_default().to_owned(),
        body["commercial_type"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["image"].as_str().unwrap_or_default().to_owned(),
    );
    if body["project"].as_str() != Some(project.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            json!({ "type": "permissions_denied", "message": "insufficient permissions", "details": [{ "resource": "instance_server", "action": "write" }] }),
        );
    }
    let Some(found) = w.images.iter().find(|i| i.id == image) else {
        return not_found("instance_image", &image);
    };
    if found.zone.as_deref().is_some_and(|z| z != zone)
        || !found.compatible_commercial_types.contains(&kind)
    {
        return invalid_argument(
            "image",
            "constraint",
            &format!("image is not compatible with {kind} in {zone}"),
        );
    }
    let root = &body["volumes"]["0"];
    let requested = root["size"].as_u64();
    if requested.is_some() && root["volume_type"].as_str() != Some("sbs_volume") {
        return invalid_argument("volumes.0.volume_type", "constraint", "sbs_volume expected");
    }
    if w.faults.quota_exceeded > 0 {
        w.faults.quota_exceeded -= 1;
        return quota_exceeded(&kind);
    }
    if w.faults.out_of_stock > 0 {
        w.faults.out_of_stock -= 1;
        return out_of_stock(&kind);
    }
    let tags = strings(&body["tags"]);
    let id = Uuid::new_v4().to_string();
    let now = Utc::now();
    let size = requested.unwrap_or(20 * GB);
    let volume = w.new_volume(&project, &zone, size, &[], Some(id.clone()), now);
    let server = FakeServer {
        id: id.clone(),
        project,
        zone,
        name,
        commercial_type: kind,
        image,
        state: "stopped".into(),
        next_state: None,
        changed_at: now,
        tags,
        volume_ids: vec![volume],
        creation_date: now,
        security_group: None,
        root_volume_requested: requested,
        user_data: BTreeMap::new(),
        user_data_log: Vec::new(),
        ip_id: Uuid::new_v4().to_string(),
    };
    let answer = json!({ "server": server_json(&w, &server) });
    w.created.push(server.tags.clone());
    w.servers.insert(id, server);
    if w.faults.fail_after_create > 0 {
        w.faults.fail_after_create -= 1;
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "type": "internal_error", "message": "created, but the answer was lost" }),
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

pub(super) async fn get(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    match owned_server(&mut w, &headers, &zone, &id).cloned() {
        Some(s) => Json(json!({ "server": server_json(&w, &s) })).into_response(),
        None => not_found("instance_server", &id),
    }
}

pub(super) async fn update(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    let group = body["security_group"]["id"].as_str().map(str::to_owned);
    if let Some(g) = &group {
        let project = project(&w, &headers);
        if !w
            .groups
            .get(g)
            .is_some_and(|g| g.project == project && g.zone == zone)
        {
            return not_found("instance_security_group", g);
        }
    }
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("instance_server", &id);
    };
    if group.is_some() {
        s.security_group = group;
    }
    let s = s.clone();
    Json(json!({ "server": server_json(&w, &s) })).into_response()
}

pub(super) async fn action(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    let Some(s) = owned_server(&mut w, &headers, &zone, &id).cloned() else {
        return not_found("instance_server", &id);
    };
    let Some(action) = body["action"].as_str() else {
        return invalid_argument("action", "required", "required key not provided");
    };
    let (now, next) = match (action, s.state.as_str()) {
        ("poweron", "stopped" | "stopped in place") => ("starting", Some("running")),
        ("poweroff", "running" | "stopped in place") => ("stopping", Some("stopped")),
        ("stop_in_place", "running") => ("stopping", Some("stopped in place")),
        ("terminate", "running" | "stopped in place" | "stopped") => ("stopping", None),
        (_, state) => {
            return invalid_request(&format!(
                "{action} is not allowed while the server is {state}"
            ))
        }
    };
    if action == "poweron" {
        let moving = s
            .volume_ids
            .iter()
            .filter_map(|v| w.volumes.get(v))
            .find(|v| v.status() == "updating");
        if let Some(v) = moving {
            return error(
                StatusCode::BAD_REQUEST,
                json!({ "type": "transient_state", "message": "resource is in a transient state", "resource": "volume", "resource_id": v.id, "current_state": "updating" }),
            );
        }
        if w.faults.out_of_stock_on_poweron > 0 {
            w.faults.out_of_stock_on_poweron -= 1;
            return out_of_stock(&s.commercial_type);
        }
        if w.faults.out_of_stock > 0 {
            w.faults.out_of_stock -= 1;
            return out_of_stock(&s.commercial_type);
        }
    }
    if let Some(server) = w.servers.get_mut(&id) {
        server.state = now.into();
        server.next_state = next.map(str::to_owned);
        server.changed_at = Utc::now();
    }
    let task = json!({
        "id": Uuid::new_v4(), "description": action, "status": "pending",
        "href_from": format!("/servers/{id}/action"), "href_result": format!("/servers/{id}"),
        "started_at": super::shapes::instance_date(&Utc::now()), "terminated_at": null,
        "progress": 0, "zone": zone,
    });
    (StatusCode::ACCEPTED, Json(json!({ "task": task }))).into_response()
}

pub(super) async fn delete(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("instance_server", &id);
    };
    if s.state != "stopped" {
        return invalid_request("server should be stopped");
    }
    w.remove_server(&id);
    no_content("application/json")
}

pub(super) async fn user_data_keys(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    match owned_server(&mut w, &headers, &zone, &id) {
        Some(s) => {
            Json(json!({ "user_data": s.user_data.keys().collect::<Vec<_>>() })).into_response()
        }
        None => not_found("instance_server", &id),
    }
}

pub(super) async fn get_user_data(
    State(world): State<Shared>,
    Path((zone, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("instance_server", &id);
    };
    match s.user_data.get(&key) {
        Some(value) => ([(header::CONTENT_TYPE, "text/plain")], value.clone()).into_response(),
        None => not_found("instance_user_data", &key),
    }
}

pub(super) async fn set_user_data(
    State(world): State<Shared>,
    Path((zone, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    let text_plain = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !text_plain {
        return invalid_argument("content_type", "constraint", "text/plain expected");
    }
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("instance_server", &id);
    };
    let value = String::from_utf8_lossy(&body).into_owned();
    s.user_data_log.push(UserDataSet {
        key: key.clone(),
        value: value.clone(),
        state: s.state.clone(),
    });
    s.user_data.insert(key, value);
    no_content("text/plain")
}

pub(super) async fn delete_user_data(
    State(world): State<Shared>,
    Path((zone, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    let Some(s) = owned_server(&mut w, &headers, &zone, &id) else {
        return not_found("instance_server", &id);
    };
    s.user_data.remove(&key);
    no_content("application/json")
}
