//! The fake's Block Storage API v1 volumes: list (paged, `total_count` in
//! the body), read, update (a resize leaves the volume `updating` for the
//! configured while, the old size showing until then; tags), delete
//! (refused while attached or detaching).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::shapes::{error, invalid_argument, no_content, not_found, page_of, paging, volume_json};
use super::world::World;
use super::{project, strings, Shared};

pub(super) async fn list(
    State(world): State<Shared>,
    Path(zone): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    let (page, size) = match paging(&q, "page_size") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let project = project(&w, &headers);
    let tags: Vec<String> = q
        .get("tags")
        .map(|t| t.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let matching: Vec<Value> = w
        .volumes
        .values()
        .filter(|v| v.zone == zone && v.project == project)
        .filter(|v| tags.is_empty() || tags.iter().any(|t| v.tags.contains(t)))
        .map(volume_json)
        .collect();
    let total = matching.len();
    Json(json!({ "total_count": total, "volumes": page_of(matching, page, size) })).into_response()
}

fn owned(w: &World, headers: &HeaderMap, zone: &str, id: &str) -> bool {
    let project = project(w, headers);
    w.volumes
        .get(id)
        .is_some_and(|v| v.project == project && v.zone == zone)
}

pub(super) async fn get(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    match w
        .volumes
        .get(&id)
        .filter(|_| owned(&w, &headers, &zone, &id))
    {
        Some(v) => Json(volume_json(v)).into_response(),
        None => not_found("volume", &id),
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
    if !owned(&w, &headers, &zone, &id) {
        return not_found("volume", &id);
    }
    if let Some(size) = body["size"].as_u64() {
        let current = w.volumes.get(&id).map_or(0, |v| v.size);
        if size < current {
            return invalid_argument("size", "constraint", "a volume cannot shrink");
        }
        if size > current {
            w.start_resize(&id, size);
        }
    }
    let Some(v) = w.volumes.get_mut(&id) else {
        return not_found("volume", &id);
    };
    if body["tags"].is_array() {
        v.tags = strings(&body["tags"]);
    }
    Json(volume_json(v)).into_response()
}

pub(super) async fn delete(
    State(world): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut w = world.lock().unwrap();
    w.settle();
    let Some(v) = w
        .volumes
        .get(&id)
        .filter(|_| owned(&w, &headers, &zone, &id))
    else {
        return not_found("volume", &id);
    };
    if v.server_id.is_some() {
        return error(
            StatusCode::PRECONDITION_FAILED,
            json!({ "type": "precondition_failed", "message": "precondition failed", "precondition": "resource_still_in_use", "help_message": format!("volume is {}", v.status()) }),
        );
    }
    w.volumes.remove(&id);
    no_content("application/json")
}
