//! A fake Scaleway for tests: an axum server answering in the shapes
//! recorded from the real API (`fixtures/scaleway-recordings/`, checked by
//! `inventiv-providers/tests/fake_vs_recordings.rs`): the Instance API v1
//! (servers, power actions, user data, security groups, products), the
//! Block Storage API v1 (volumes) and the marketplace's local images. It
//! keeps servers and volumes per project, moves power states with time
//! (`starting` → `running`, `stopping` → `stopped` or `stopped in place`),
//! keeps a resized volume `updating` for a while, gives a running server
//! the loopback address its test chose (never a recorded one), records the
//! `X-Auth-Token` of every call and the user data each server got (and
//! when), and injects faults (5xx after a create, 429, 5xx, slowness,
//! refused deletes, quota, out of stock).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use uuid::Uuid;

mod groups;
mod products;
mod servers;
mod shapes;
mod storage;
mod world;

pub use world::{
    Call, FakeGroup, FakeImage, FakeOffer, FakeServer, FakeVolume, Faults, UserDataSet,
    DEFAULT_IMAGE_ID,
};
use world::{World, GB};

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
    /// Starts on a free port of 127.0.0.1. Power transitions and volume
    /// resizes take `transition`; running servers get `public_ip`.
    #[expect(
        clippy::disallowed_methods,
        reason = "a fake of someone else's API, not one of ours to document"
    )]
    pub async fn start(public_ip: IpAddr, transition: Duration) -> FakeScaleway {
        let world: Shared = Arc::new(Mutex::new(World {
            public_ip: Some(public_ip),
            transition,
            resize_time: transition,
            images: FakeImage::defaults(),
            default_group: Uuid::new_v4().to_string(),
            ..World::default()
        }));
        let zoned = "/instance/v1/zones/{zone}";
        let app = Router::new()
            .route(
                &format!("{zoned}/servers"),
                get(servers::list).post(servers::create),
            )
            .route(
                &format!("{zoned}/servers/{{id}}"),
                get(servers::get)
                    .delete(servers::delete)
                    .patch(servers::update),
            )
            .route(
                &format!("{zoned}/servers/{{id}}/action"),
                post(servers::action),
            )
            .route(
                &format!("{zoned}/servers/{{id}}/user_data"),
                get(servers::user_data_keys),
            )
            .route(
                &format!("{zoned}/servers/{{id}}/user_data/{{key}}"),
                get(servers::get_user_data)
                    .patch(servers::set_user_data)
                    .delete(servers::delete_user_data),
            )
            .route(
                &format!("{zoned}/security_groups"),
                get(groups::list).post(groups::create),
            )
            .route(
                &format!("{zoned}/security_groups/{{id}}"),
                axum::routing::delete(groups::delete),
            )
            .route(
                &format!("{zoned}/security_groups/{{id}}/rules"),
                put(groups::set_rules),
            )
            .route(
                &format!("{zoned}/products/servers"),
                get(products::products),
            )
            .route(
                &format!("{zoned}/products/servers/availability"),
                get(products::availability),
            )
            .route("/marketplace/v2/local-images", get(products::local_images))
            .route("/block/v1/zones/{zone}/volumes", get(storage::list))
            .route(
                "/block/v1/zones/{zone}/volumes/{id}",
                get(storage::get)
                    .patch(storage::update)
                    .delete(storage::delete),
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

    /// What `/products/servers` (and its availability) lists in every zone.
    pub fn set_offers(&self, offers: Vec<FakeOffer>) {
        self.world().offers = offers;
    }

    /// The marketplace's local images (replacing the default one).
    pub fn set_images(&self, images: Vec<FakeImage>) {
        self.world().images = images;
    }

    /// How long a volume stays `updating` after a resize.
    pub fn set_resize_time(&self, time: Duration) {
        self.world().resize_time = time;
    }

    /// How long a volume stays `detaching` after its server is deleted.
    pub fn set_detach_time(&self, time: Duration) {
        self.world().detach_time = time;
    }

    pub fn set_faults(&self, faults: Faults) {
        self.world().faults = faults;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.world().calls.clone()
    }

    /// The servers, their timed transitions moved forward to now.
    pub fn servers(&self) -> Vec<FakeServer> {
        let mut w = self.world();
        w.settle();
        w.servers.values().cloned().collect()
    }

    /// The volumes, their timed transitions moved forward to now.
    pub fn volumes(&self) -> Vec<FakeVolume> {
        let mut w = self.world();
        w.settle();
        w.volumes.values().cloned().collect()
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

    /// Puts a running server (and its attached 20 GB root volume with the
    /// same tags) in the account, as if created `age` ago by someone.
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
        let volume = w.new_volume(project, zone, 20 * GB, tags, Some(id.clone()), created);
        w.servers.insert(
            id.clone(),
            FakeServer {
                id: id.clone(),
                project: project.to_owned(),
                zone: zone.to_owned(),
                name: "inserted".into(),
                commercial_type: "L4-1-24G".into(),
                image: DEFAULT_IMAGE_ID.into(),
                state: "running".into(),
                next_state: None,
                changed_at: created,
                tags: tags.to_vec(),
                volume_ids: vec![volume],
                creation_date: created,
                security_group: None,
                root_volume_requested: None,
                user_data: Default::default(),
                user_data_log: Vec::new(),
                ip_id: Uuid::new_v4().to_string(),
            },
        );
        id
    }

    /// Puts a detached 20 GB volume in the account, created `age` ago.
    pub fn insert_volume(
        &self,
        project: &str,
        zone: &str,
        tags: &[String],
        age: Duration,
    ) -> String {
        let created = Utc::now() - chrono::Duration::from_std(age).unwrap();
        self.world()
            .new_volume(project, zone, 20 * GB, tags, None, created)
    }

    /// Puts a security group in the account, created `age` ago.
    pub fn insert_security_group(
        &self,
        project: &str,
        zone: &str,
        tags: &[String],
        age: Duration,
    ) -> String {
        let created = Utc::now() - chrono::Duration::from_std(age).unwrap();
        let id = Uuid::new_v4().to_string();
        self.world().groups.insert(
            id.clone(),
            FakeGroup {
                id: id.clone(),
                project: project.to_owned(),
                zone: zone.to_owned(),
                name: "inserted".into(),
                tags: tags.to_vec(),
                inbound_default_policy: "drop".into(),
                rules: Vec::new(),
                creation_date: created,
            },
        );
        id
    }
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
            Some(shapes::error(
                StatusCode::UNAUTHORIZED,
                json!({ "type": "denied_authentication", "message": "authentication is denied", "method": "api_key", "reason": "not_found" }),
            ))
        } else if w.faults.rate_limited > 0 {
            w.faults.rate_limited -= 1;
            // As recorded: an empty body, no Retry-After.
            Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("x-envoy-ratelimited", "true")],
                )
                    .into_response(),
            )
        } else if w.faults.unavailable > 0 {
            w.faults.unavailable -= 1;
            Some(shapes::error(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "type": "service_unavailable", "message": "service is unavailable, try again later" }),
            ))
        } else if method == Method::DELETE && w.faults.refuse_deletes > 0 {
            w.faults.refuse_deletes -= 1;
            Some(shapes::error(
                StatusCode::CONFLICT,
                json!({ "type": "locked", "message": "resource is locked", "resource": "resource", "resource_id": uri.path().rsplit('/').next() }),
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
