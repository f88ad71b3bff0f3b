//! The fake's Instance API security groups: list (paged, headers), create,
//! rules set as a whole (the answer lists Scaleway's own outbound rules
//! first, as recorded), delete (refused while a server uses the group).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::shapes::{
    default_rules, error, group_json, instance_list, no_content, not_found, page_of, paging,
};
use super::world::FakeGroup;
use super::{project, strings, Shared};

pub(super) async fn list(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = world.lock().unwrap();
    let paged = match paging(&q, "per_page") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let project = project(&w, &headers);
    let tags: Vec<String> = q
        .get("tags")
        .map(|t| t.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let groups: Vec<Value> = w
        .groups
        .values()
        .filter(|g| g.zone == zone && g.project == project)
        .filter(|g| tags.iter().all(|t| g.tags.contains(t)))
        .map(|g| group_json(&w, g))
        .collect();
    let total = groups.len();
    let items = Value::from(page_of(groups, paged.0, paged.1));
    instance_list(
        "security_groups",
        items,
        "/security_groups",
        &q,
        paged,
        total,
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
    if body["project"].as_str() != Some(project.as_str()) {
        return error(
            StatusCode::FORBIDDEN,
            json!({ "type": "permissions_denied", "message": "insufficient permissions", "details": [{ "resource": "instance_security_group", "action": "write" }] }),
        );
    }
    let group = FakeGroup {
        id: Uuid::new_v4().to_string(),
        project,
        zone,
        name: body["name"].as_str().unwrap_or("security-group").to_owned(),
        tags: strings(&body["tags"]),
        inbound_default_policy: body["inbound_default_policy"]
            .as_str()
            .unwrap_or("accept")
            .to_owned(),
        rules: Vec::new(),
        creation_date: Utc::now(),
    };
    let answer = json!({ "security_group": group_json(&w, &group) });
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
        return not_found("instance_security_group", &id);
    };
    g.rules = body["rules"].as_array().cloned().unwrap_or_default();
    let mut listed = default_rules(&zone);
    for (i, r) in g.rules.iter().enumerate() {
        listed.push(json!({
            "id": Uuid::new_v4(), "protocol": r["protocol"], "direction": r["direction"],
            "ip_range": r["ip_range"], "dest_ip_range": null, "dest_port_from": r["dest_port_from"],
            "dest_port_to": r["dest_port_to"], "position": i + 1, "editable": true,
            "action": r["action"], "zone": zone,
        }));
    }
    Json(json!({ "rules": listed })).into_response()
}

pub(super) async fn delete(
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
        return not_found("instance_security_group", &id);
    }
    if w.servers
        .values()
        .any(|s| s.security_group.as_deref() == Some(id.as_str()))
    {
        return error(
            StatusCode::CONFLICT,
            json!({ "type": "conflict", "message": "Group is in use. You cannot delete it." }),
        );
    }
    w.groups.remove(&id);
    no_content("application/json")
}
