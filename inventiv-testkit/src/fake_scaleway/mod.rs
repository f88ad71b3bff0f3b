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

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use uuid::Uuid;

mod handlers;

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

/// A server type the fake offers in every zone.
#[derive(Debug, Clone)]
pub struct FakeOffer {
    pub code: String,
    pub gpu: u32,
    pub gpu_memory_gib: u64,
    pub ncpus: u32,
    pub ram_gib: u64,
    /// The hourly price as the JSON number text Scaleway sends.
    pub hourly_price: String,
    /// `available`, `scarce` or `shortage`.
    pub availability: String,
}

#[derive(Default)]
struct World {
    offers: Vec<FakeOffer>,
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
                get(handlers::list_servers).post(handlers::create_server),
            )
            .route(
                "/instance/v1/zones/{zone}/servers/{id}",
                get(handlers::get_server)
                    .delete(handlers::delete_server)
                    .patch(handlers::update_server),
            )
            .route(
                "/instance/v1/zones/{zone}/servers/{id}/action",
                post(handlers::server_action),
            )
            .route(
                "/instance/v1/zones/{zone}/security_groups",
                get(handlers::list_groups).post(handlers::create_group),
            )
            .route(
                "/instance/v1/zones/{zone}/security_groups/{id}",
                axum::routing::delete(handlers::delete_group),
            )
            .route(
                "/instance/v1/zones/{zone}/security_groups/{id}/rules",
                axum::routing::put(handlers::set_rules),
            )
            .route(
                "/instance/v1/zones/{zone}/products/servers",
                get(handlers::products),
            )
            .route(
                "/instance/v1/zones/{zone}/products/servers/availability",
                get(handlers::availability),
            )
            .route(
                "/block/v1alpha1/zones/{zone}/volumes",
                get(handlers::list_volumes),
            )
            .route(
                "/block/v1alpha1/zones/{zone}/volumes/{id}",
                get(handlers::get_volume)
                    .patch(handlers::update_volume)
                    .delete(handlers::delete_volume),
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

    /// What `/products/servers` lists in every zone.
    pub fn set_offers(&self, offers: Vec<FakeOffer>) {
        self.world().offers = offers;
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
