//! A fake Scaleway for tests: an axum server speaking the documented JSON
//! of the Instance API v1 (servers, power actions) and the Block Storage
//! API v1alpha1 (volumes) that `ScalewayProvider` uses, and the Instance
//! API's security groups. It keeps servers
//! and volumes per project, moves power states with time (starting →
//! running), auto-creates the 20 GB root volume of a new server, records
//! the `X-Auth-Token` of every call, and injects faults (5xx after a
//! create, 429, 5xx, slowness, refused deletes).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use uuid::Uuid;

const GB: u64 = 1_000_000_000;

/// One call as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
}

/// Faults to inject; each counter is consumed one call at a time.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N server creations happen but answer 500.
    pub fail_after_create: u32,
    /// The next N calls answer 429 without doing anything.
    pub rate_limited: u32,
    /// The next N calls answer 503 without doing anything.
    pub unavailable: u32,
    /// The next N deletions (servers or volumes) answer 409 (locked).
    pub refuse_deletes: u32,
    /// Added to every answer.
    pub latency: Duration,
}

#[derive(Debug, Clone)]
pub struct FakeServer {
    pub id: String,
    pub project: String,
    pub zone: String,
    pub name: String,
    pub commercial_type: String,
    pub state: String,
    /// When the current transition (starting, stopping) began.
    changed_at: DateTime<Utc>,
    pub tags: Vec<String>,
    pub volume_ids: Vec<String>,
    pub creation_date: DateTime<Utc>,
    pub security_group: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FakeVolume {
    pub id: String,
    pub project: String,
    pub zone: String,
    pub name: String,
    pub size: u64,
    pub tags: Vec<String>,
    pub server_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub id: String,
    pub project: String,
    pub zone: String,
    pub tags: Vec<String>,
    pub inbound_default_policy: String,
    pub rules: Vec<Value>,
}

#[derive(Default)]
struct World {
    groups: BTreeMap<String, FakeGroup>,
    /// Tags of every server created through the API, deleted or not.
    created: Vec<Vec<String>>,
    /// Secret key → project it may act on.
    tokens: HashMap<String, String>,
    servers: BTreeMap<String, FakeServer>,
    volumes: BTreeMap<String, FakeVolume>,
    calls: Vec<Call>,
    faults: Faults,
    public_ip: Option<IpAddr>,
    transition: Duration,
}

type Shared = Arc<Mutex<World>>;

/// A running fake; stops when dropped.
pub struct FakeScaleway {
    pub url: String,
    world: Shared,
    task: JoinHandle<()>,
}

impl Drop for FakeScaleway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeScaleway {
    /// Starts on a free port of 127.0.0.1. Power transitions take
    /// `transition`; running servers get `public_ip`.
    #[expect(
        clippy::disallowed_methods,
        reason = "a fake of someone else's API, not one of ours to document"
    )]
    pub async fn start(public_ip: IpAddr, transition: Duration) -> FakeScaleway {
        let world: Shared = Arc::new(Mutex::new(World {
            public_ip: Some(public_ip),
            transition,
            ..World::default()
        }));
        let app = Router::new()
            .route(
                "/instance/v1/zones/{zone}/servers",
                get(list_servers).post(create_server),
            )
            .route(
                "/instance/v1/zones/{zone}/servers/{id}",
                get(get_server).delete(delete_server).patch(update_server),
            )
            .route(
                "/instance/v1/zones/{zone}/servers/{id}/action",
                post(server_action),
            )
            .route(
                "/instance/v1/zones/{zone}/security_groups",
                get(list_groups).post(create_group),
            )
            .route(
                "/instance/v1/zones/{zone}/security_groups/{id}",
                axum::routing::delete(delete_group),
            )
            .route(
                "/instance/v1/zones/{zone}/security_groups/{id}/rules",
                axum::routing::put(set_rules),
            )
            .route("/block/v1alpha1/zones/{zone}/volumes", get(list_volumes))
            .route(
                "/block/v1alpha1/zones/{zone}/volumes/{id}",
                get(get_volume).patch(update_volume).delete(delete_volume),
            )
            .layer(axum::middleware::from_fn_with_state(world.clone(), gate))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeScaleway {
            url: format!("http://{addr}"),
            world,
            task,
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// Accepts `secret_key` for `project`.
    pub fn accept(&self, secret_key: &str, project: &str) {
        self.world()
            .tokens
            .insert(secret_key.to_owned(), project.to_owned());
    }

    pub fn set_faults(&self, faults: Faults) {
        self.world().faults = faults;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    pub fn servers(&self) -> Vec<FakeServer> {
        self.world().servers.values().cloned().collect()
    }

    pub fn volumes(&self) -> Vec<FakeVolume> {
        self.world().volumes.values().cloned().collect()
    }

    /// How many servers carrying `tag` were ever created through the API
    /// (a call cut off before the fake read its body created nothing).
    pub fn servers_created_with(&self, tag: &str) -> usize {
        self.world()
            .created
            .iter()
            .filter(|tags| tags.iter().any(|t| t == tag))
            .count()
    }

    pub fn security_groups(&self) -> Vec<FakeGroup> {
        self.world().groups.values().cloned().collect()
    }

    /// Puts a server (and a detached-or-attached root volume with the same
    /// tags) in the account, as if created `age` ago by someone.
    pub fn insert_server(
        &self,
        project: &str,
        zone: &str,
        tags: &[String],
        age: Duration,
    ) -> String {
        let created = Utc::now() - chrono::Duration::from_std(age).unwrap();
        let mut w = self.world();
        let id = Uuid::new_v4().to_string();
        let volume = self.new_volume(&mut w, project, zone, tags, Some(id.clone()), created);
        w.servers.insert(
            id.clone(),
            FakeServer {
                id: id.clone(),
                project: project.to_owned(),
                zone: zone.to_owned(),
                name: "inserted".into(),
                commercial_type: "L4-1-24G".into(),
                state: "running".into(),
                changed_at: created,
                tags: tags.to_vec(),
                volume_ids: vec![volume],
                creation_date: created,
                security_group: None,
            },
        );
        id
    }

    /// Puts a detached volume in the account, created `age` ago.
    pub fn insert_volume(
        &self,
        project: &str,
        zone: &str,
        tags: &[String],
        age: Duration,
    ) -> String {
        let created = Utc::now() - chrono::Duration::from_std(age).unwrap();
        let mut w = self.world();
        self.new_volume(&mut w, project, zone, tags, None, created)
    }

    fn new_volume(
        &self,
        w: &mut World,
        project: &str,
        zone: &str,
        tags: &[String],
        server_id: Option<String>,
        created_at: DateTime<Utc>,
    ) -> String {
        let id = Uuid::new_v4().to_string();
        w.volumes.insert(
            id.clone(),
            FakeVolume {
                id: id.clone(),
                project: project.to_owned(),
                zone: zone.to_owned(),
                name: "volume".into(),
                size: 20 * GB,
                tags: tags.to_vec(),
                server_id,
                created_at,
            },
        );
        id
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({ "type": kind, "message": message }))).into_response()
}

/// Records the call, authenticates it, and applies the call-level faults.
async fn gate(
    State(world): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (latency, verdict) = {
        let mut w = world.lock().unwrap();
        w.calls.push(Call {
            method: method.to_string(),
            path: uri.path().to_owned(),
            token: token.clone(),
        });
        let latency = w.faults.latency;
        let verdict = if token.as_ref().is_none_or(|t| !w.tokens.contains_key(t)) {
            Some(error(
                StatusCode::UNAUTHORIZED,
                "denied_authentication",
                "authentication is denied",
            ))
        } else if w.faults.rate_limited > 0 {
            w.faults.rate_limited -= 1;
            Some(error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "rate limited",
            ))
        } else if w.faults.unavailable > 0 {
            w.faults.unavailable -= 1;
            Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try again",
            ))
        } else if method == Method::DELETE && w.faults.refuse_deletes > 0 {
            w.faults.refuse_deletes -= 1;
            Some(error(
                StatusCode::CONFLICT,
                "resource_locked",
                "delete refused: the resource is locked",
            ))
        } else {
            None
        };
        (latency, verdict)
    };
    tokio::time::sleep(latency).await;
    match verdict {
        Some(answer) => answer,
        None => next.run(request).await,
    }
}

/// The project the call's token acts on (the gate let it through).
fn project(world: &World, headers: &HeaderMap) -> String {
    headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| world.tokens.get(t))
        .cloned()
        .unwrap_or_default()
}

/// Moves timed transitions forward.
fn settle(world: &mut World) {
    let now = Utc::now();
    let transition = chrono::Duration::from_std(world.transition).unwrap();
    for s in world.servers.values_mut() {
        if now - s.changed_at >= transition {
            match s.state.as_str() {
                "starting" => s.state = "running".into(),
                "stopping" => s.state = "stopped".into(),
                _ => {}
            }
        }
    }
}

fn server_json(world: &World, s: &FakeServer) -> Value {
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

fn volume_json(v: &FakeVolume) -> Value {
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
fn paging(q: &HashMap<String, String>, size_key: &str) -> (usize, usize) {
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

fn tag_filter(q: &HashMap<String, String>) -> Vec<String> {
    q.get("tags")
        .map(|t| t.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

async fn list_servers(
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

async fn create_server(
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

fn owned_server<'a>(
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

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_resource",
        &format!("{what} not found"),
    )
}

async fn get_server(
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

async fn server_action(
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

async fn delete_server(
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

async fn list_volumes(
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

fn owned_volume<'a>(
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

async fn get_volume(
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

async fn update_volume(
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

async fn delete_volume(
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

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn group_json(g: &FakeGroup) -> Value {
    json!({ "id": g.id, "name": format!("group-{}", g.id), "project": g.project, "zone": g.zone, "tags": g.tags,
            "stateful": true, "inbound_default_policy": g.inbound_default_policy, "outbound_default_policy": "accept" })
}

async fn update_server(
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

async fn list_groups(
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

async fn create_group(
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

async fn set_rules(
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

async fn delete_group(
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
