//! The routing table: for each (organization, model), the ready workers
//! with fresh heartbeats, and for each consumer organization the shared
//! models it may call (`provider_slug/model_code` → the provider's workers).
//! Rebuilt from the database every second and at once when any event
//! arrives (instance, key or `offering.changed`), so a paused or revoked
//! share stops within one second on every replica (at once with Redis);
//! read lock-free-ish on the hot path (an `Arc` swap under a short read
//! lock). Per-worker outstanding-request counters survive rebuilds. Each
//! worker has its own client, pinned to its relay's certificate and
//! carrying its relay key ([`EngineClient`]); a worker without both is
//! never routed to. Each (organization, model) route carries its metric
//! series ([`ModelSeries`]), kept across rebuilds, so a request counts
//! without a lookup of its own. Models of active services (a replica
//! count that may be zero) are known too: with no usable worker such a
//! model is cold ([`Lookup::Cold`]) and its requests are held
//! ([`super::held`]) until a rebuild finds a worker and releases them.
//! A request without a session goes where its prompt's prefix was sent
//! before, unless that worker is too loaded ([`super::prefix`]); each route
//! keeps its record of what it sent where across rebuilds.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::Uri;
use inventiv_store::relay::StoredRelay;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::engine::EngineClient;
use super::prefix::{self, Candidate, PrefixIndex, PrefixSettings, PromptBlocks, PromptText};
use crate::metrics::ModelSeries;
use crate::state::AppState;

/// A worker failing this many times in a row is ejected for a cool-down.
const EJECT_AFTER: u32 = 3;
const COOL_DOWN_MS: i64 = 10_000;

/// The engine paths the proxy forwards to.
pub const ENGINE_PATHS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

/// What a worker's client was built from: rebuilt when the key (a fresh
/// nonce per seal) or the pin changes.
type Generation = (Option<Vec<u8>>, Option<Vec<u8>>);

/// One engine endpoint serving a model.
#[derive(Debug)]
pub struct Worker {
    pub instance_id: Uuid,
    pub base_url: String,
    /// The model's context length from the catalog, when it is listed.
    pub context_length: Option<i64>,
    /// Talks to this worker's relay only.
    pub client: EngineClient,
    generation: Generation,
    /// [`ENGINE_PATHS`] on this worker, parsed once rather than per request.
    urls: Vec<(&'static str, Uri)>,
    pub outstanding: AtomicU32,
    pub queue_depth: AtomicU32,
    failures: AtomicU32,
    ejected_until_ms: AtomicI64,
}

impl Worker {
    fn new(
        instance_id: Uuid,
        base_url: String,
        context_length: Option<i64>,
        client: EngineClient,
        generation: Generation,
    ) -> Worker {
        let urls = ENGINE_PATHS
            .iter()
            .filter_map(|p| Some((*p, format!("{base_url}{p}").parse().ok()?)))
            .collect();
        Worker {
            instance_id,
            base_url,
            context_length,
            client,
            generation,
            urls,
            outstanding: AtomicU32::new(0),
            queue_depth: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicI64::new(0),
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// The URL of `path` on this worker; None when the address is not one.
    pub fn url(&self, path: &str) -> Option<Uri> {
        match self.urls.iter().find(|(p, _)| *p == path) {
            Some((_, url)) => Some(url.clone()),
            None => format!("{}{path}", self.base_url).parse().ok(),
        }
    }

    /// Whether it is out for a cool-down after repeated failures.
    pub fn ejected(&self) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > Worker::now_ms()
    }

    /// Counts a failure; ejects after several in a row (then true).
    pub fn failed(&self) -> bool {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= EJECT_AFTER {
            self.ejected_until_ms
                .store(Worker::now_ms() + COOL_DOWN_MS, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
            tracing::warn!(instance_id = %self.instance_id, "worker ejected after repeated failures");
            return true;
        }
        false
    }

    /// Resets the failure streak.
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }
}

/// Decrements a worker's outstanding counter when dropped.
pub struct InFlight(pub Arc<Worker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A model another organization shares with the consumer (accepted, not
/// revoked, its offering on both technically and economically).
#[derive(Debug, Clone)]
pub struct SharedRoute {
    pub share_id: Uuid,
    pub offering_id: Uuid,
    pub provider_org: Uuid,
    /// The model id on the provider's instances.
    pub model_code: String,
    pub paused: bool,
    /// The price in force is above the maximum the consumer set.
    pub over_max: bool,
    /// The consumer's weight on the provider's deployment (see
    /// [`super::admission`]).
    pub weight: u32,
    /// The consumer's series for this model (as the consumer calls it).
    pub series: Arc<ModelSeries>,
}

/// The ready workers of one (organization, model) and its series.
struct Pool {
    workers: Vec<Arc<Worker>>,
    series: Arc<ModelSeries>,
    /// What this route sent where (prefix-aware choice).
    prefix: Arc<PrefixIndex>,
}

#[derive(Default)]
struct Table {
    ready: HashMap<(Uuid, String), Pool>,
    /// Models an organization has instances for, ready or not (503 vs 404).
    deployed: HashMap<Uuid, Vec<(String, Arc<ModelSeries>)>>,
    /// (consumer organization, `provider_slug/model_code`) → the share.
    shares: HashMap<(Uuid, String), SharedRoute>,
    /// (organization, model) of each active service: available, if cold.
    services: HashMap<(Uuid, String), Arc<ModelSeries>>,
}

/// The replica's routing state.
#[derive(Clone, Default)]
pub struct Routing {
    table: Arc<RwLock<Arc<Table>>>,
    workers: Arc<RwLock<HashMap<Uuid, Arc<Worker>>>>,
    /// Every (organization, model) series seen since start-up: counters
    /// must not restart when a model is briefly not deployed.
    series: Arc<RwLock<SeriesMap>>,
    /// Requests waiting for a cold model's first worker.
    pub held: Arc<super::held::Held>,
    /// Each ready route's record of the prompts it sent where.
    prefixes: Arc<RwLock<PrefixMap>>,
    prefix: PrefixSettings,
}

type SeriesMap = HashMap<(Uuid, String), Arc<ModelSeries>>;
type PrefixMap = HashMap<(Uuid, String), Arc<PrefixIndex>>;

/// What a lookup found.
pub enum Lookup {
    Workers(Vec<Arc<Worker>>, Arc<ModelSeries>),
    /// Deployed but nothing ready: 503.
    NoCapacity(Arc<ModelSeries>),
    /// An active service's model with no usable worker: held.
    Cold(Arc<ModelSeries>),
    /// Not a model of the organization: 404.
    Unknown,
}

fn rendezvous(session: &str, instance: Uuid) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    session.hash(&mut h);
    instance.hash(&mut h);
    h.finish()
}

impl Routing {
    /// An empty table whose worker choice weighs prefixes as `prefix` says.
    pub fn new(prefix: PrefixSettings) -> Routing {
        Routing {
            prefix,
            ..Routing::default()
        }
    }

    /// A request's prompt as the prefix-aware choice reads it; None when
    /// prefix scoring is off or the prompt is shorter than one block.
    pub fn prompt_blocks(&self, text: Option<&PromptText<'_>>) -> Option<PromptBlocks> {
        if !self.prefix.enabled() {
            return None;
        }
        let blocks = PromptBlocks::of(
            text?.pieces(),
            self.prefix.block_bytes,
            self.prefix.max_blocks,
        );
        (!blocks.is_empty()).then_some(blocks)
    }

    /// The route's record, kept from the last rebuild, else a new one.
    fn prefix_of(&self, key: &(Uuid, String)) -> Arc<PrefixIndex> {
        self.prefixes
            .read()
            .ok()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Arc<Table> {
        self.table.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// The models an organization can call, with whether they are cold
    /// (an active service's with no ready worker): its own, and the active
    /// shares whose provider has ready workers or a service.
    pub fn models(&self, org: Uuid) -> Vec<(String, bool)> {
        let t = self.snapshot();
        let state = |owner: Uuid, model: &str| {
            let key = (owner, model.to_owned());
            match (t.ready.contains_key(&key), t.services.contains_key(&key)) {
                (true, _) => Some(false),
                (false, true) => Some(true),
                (false, false) => None,
            }
        };
        let own = t
            .ready
            .keys()
            .chain(t.services.keys())
            .filter(|(o, _)| *o == org)
            .filter_map(|(_, m)| Some((m.clone(), state(org, m)?)));
        let shared = t
            .shares
            .iter()
            .filter(|((consumer, _), s)| *consumer == org && !s.paused)
            .filter_map(|((_, address), s)| {
                Some((address.clone(), state(s.provider_org, &s.model_code)?))
            });
        let mut models: Vec<(String, bool)> = own.chain(shared).collect();
        models.sort();
        models.dedup();
        models
    }

    /// The share through which `org` may call `address`, if any.
    pub fn share_for(&self, org: Uuid, address: &str) -> Option<SharedRoute> {
        self.snapshot()
            .shares
            .get(&(org, address.to_owned()))
            .cloned()
    }

    /// The candidates for a request, best first: the session's sticky worker
    /// (rendezvous hashing, stable when the pool changes: the client asked
    /// for affinity), else the worker its prompt's prefix was sent to if
    /// its load allows ([`prefix::order`]), else the least outstanding
    /// requests, ties broken by the reported queue depth. A prompt routed
    /// on its prefix is recorded as sent to the first candidate.
    pub fn lookup(
        &self,
        org: Uuid,
        model: &str,
        session: Option<&str>,
        prompt: Option<&PromptBlocks>,
    ) -> Lookup {
        let t = self.snapshot();
        match t.ready.get(&(org, model.to_owned())) {
            Some(pool) => {
                let mut list: Vec<Arc<Worker>> = pool
                    .workers
                    .iter()
                    .filter(|w| !w.ejected())
                    .cloned()
                    .collect();
                if list.is_empty() {
                    return match t.services.get(&(org, model.to_owned())) {
                        Some(series) => Lookup::Cold(series.clone()),
                        None => Lookup::NoCapacity(pool.series.clone()),
                    };
                }
                match (session, prompt) {
                    (Some(s), _) => {
                        list.sort_by_key(|w| std::cmp::Reverse(rendezvous(s, w.instance_id)))
                    }
                    (None, Some(prompt)) => list = self.by_prefix(&pool.prefix, list, prompt),
                    (None, None) => list.sort_by_key(|w| {
                        (
                            w.outstanding.load(Ordering::Relaxed),
                            w.queue_depth.load(Ordering::Relaxed),
                        )
                    }),
                }
                Lookup::Workers(list, pool.series.clone())
            }
            None => match (
                t.services.get(&(org, model.to_owned())),
                t.deployed
                    .get(&org)
                    .and_then(|m| m.iter().find(|(x, _)| x == model)),
            ) {
                (Some(series), _) => Lookup::Cold(series.clone()),
                (None, Some((_, series))) => Lookup::NoCapacity(series.clone()),
                (None, None) => Lookup::Unknown,
            },
        }
    }

    /// The candidates in [`prefix::order`], the prompt recorded as sent to
    /// the first.
    fn by_prefix(
        &self,
        index: &PrefixIndex,
        list: Vec<Arc<Worker>>,
        prompt: &PromptBlocks,
    ) -> Vec<Arc<Worker>> {
        let ids: Vec<Uuid> = list.iter().map(|w| w.instance_id).collect();
        let matched = index.matched(prompt, &ids);
        let candidates: Vec<Candidate> = list
            .iter()
            .zip(matched)
            .map(|(w, matched)| Candidate {
                outstanding: w.outstanding.load(Ordering::Relaxed),
                queue_depth: w.queue_depth.load(Ordering::Relaxed),
                matched,
                tie: prompt.tie(w.instance_id),
            })
            .collect();
        let order = prefix::order(&candidates, prompt.len(), &self.prefix);
        let mut slots: Vec<Option<Arc<Worker>>> = list.into_iter().map(Some).collect();
        let ordered: Vec<Arc<Worker>> = order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .collect();
        if let Some(first) = ordered.first() {
            index.record(prompt, first.instance_id, self.prefix.capacity);
        }
        ordered
    }

    /// The series of (`org`, `model`), made on first sight.
    fn series_of(&self, org: Uuid, model: &str) -> Arc<ModelSeries> {
        let key = (org, model.to_owned());
        if let Some(s) = self.series.read().ok().and_then(|m| m.get(&key).cloned()) {
            return s;
        }
        match self.series.write() {
            Ok(mut m) => m
                .entry(key)
                .or_insert_with(|| Arc::new(ModelSeries::new(org, model)))
                .clone(),
            Err(_) => Arc::new(ModelSeries::new(org, model)),
        }
    }

    /// Every series seen since start-up, by organization and model.
    pub fn series(&self) -> Vec<Arc<ModelSeries>> {
        let mut all: Vec<Arc<ModelSeries>> = self
            .series
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| (a.organization_id, &a.model).cmp(&(b.organization_id, &b.model)));
        all
    }

    /// Requests in flight per routed worker, with the route's series.
    pub fn outstanding(&self) -> Vec<(Arc<ModelSeries>, Uuid, u32)> {
        let t = self.snapshot();
        let mut out: Vec<(Arc<ModelSeries>, Uuid, u32)> = t
            .ready
            .values()
            .flat_map(|pool| {
                pool.workers.iter().map(|w| {
                    let n = w.outstanding.load(Ordering::Relaxed);
                    (pool.series.clone(), w.instance_id, n)
                })
            })
            .collect();
        out.sort_by_key(|(_, id, _)| *id);
        out
    }

    /// Rebuilds the table from the database.
    pub async fn refresh(&self, state: &AppState) -> sqlx::Result<()> {
        let rows: Vec<InstanceRow> = sqlx::query_as(
            "SELECT i.id, i.organization_id, i.model_id, i.ip_address, i.worker_engine_port,
                    i.status = 'ready' AND i.worker_status = 'ready' AND COALESCE(i.worker_engine_ready, false)
                      AND i.last_heartbeat_at > now() - interval '30 seconds' AS serving,
                    i.worker_requests_waiting, m.context_length,
                    i.relay_key_version, i.relay_key_nonce, i.relay_key_ciphertext, i.relay_cert_sha256
               FROM instances i LEFT JOIN models m ON m.hf_id = i.model_id
              WHERE i.status NOT IN ('terminated', 'archived', 'terminating')",
        )
        .fetch_all(&state.db)
        .await?;
        let mut table = Table::default();
        let mut workers = self.workers.write().map(|w| w.clone()).unwrap_or_default();
        let mut seen = Vec::new();
        for row in rows {
            let (id, org, model) = (row.id, row.organization_id, row.model_id);
            let series = self.series_of(org, &model);
            table
                .deployed
                .entry(org)
                .or_default()
                .push((model.clone(), series.clone()));
            let port = row.worker_engine_port.and_then(|p| u16::try_from(p).ok());
            let (Some(ip), Some(port), true) = (row.ip_address, port, row.serving) else {
                continue;
            };
            let base_url = inventiv_store::relay::base_url(&ip, port);
            let context = row.context_length.map(i64::from);
            let generation = {
                let (nonce, cert) = row.relay.generation();
                (nonce.map(<[u8]>::to_vec), cert.map(<[u8]>::to_vec))
            };
            let current = workers
                .get(&id)
                .filter(|w| {
                    w.base_url == base_url
                        && w.generation == generation
                        && w.context_length == context
                })
                .cloned();
            let worker = match current {
                Some(w) => w,
                None => match connect(state, id, base_url, context, generation, row.relay) {
                    Some(w) => {
                        let w = Arc::new(w);
                        workers.insert(id, w.clone());
                        w
                    }
                    None => continue,
                },
            };
            worker.queue_depth.store(
                u32::try_from(row.worker_requests_waiting.unwrap_or(0)).unwrap_or(0),
                Ordering::Relaxed,
            );
            seen.push(id);
            let key = (org, model);
            let prefix = self.prefix_of(&key);
            table
                .ready
                .entry(key)
                .or_insert_with(|| Pool {
                    workers: Vec::new(),
                    series,
                    prefix,
                })
                .workers
                .push(worker);
        }
        workers.retain(|id, _| seen.contains(id));
        // A route's record lives as long as the route has ready workers,
        // and forgets the workers it lost.
        let prefixes: PrefixMap = table
            .ready
            .iter()
            .map(|(key, pool)| {
                let ids: Vec<Uuid> = pool.workers.iter().map(|w| w.instance_id).collect();
                pool.prefix.retain(&ids);
                (key.clone(), pool.prefix.clone())
            })
            .collect();
        if let Ok(mut p) = self.prefixes.write() {
            *p = prefixes;
        }
        table.shares = load_shares(state, self).await?;
        let services: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT organization_id, model_id FROM services WHERE state = 'active' AND max_replicas > 0",
        )
        .fetch_all(&state.db)
        .await?;
        table.services = services
            .into_iter()
            .map(|(org, model)| {
                let series = self.series_of(org, &model);
                ((org, model), series)
            })
            .collect();
        if let Ok(mut w) = self.workers.write() {
            *w = workers;
        }
        if let Ok(mut t) = self.table.write() {
            *t = Arc::new(table);
        }
        // Held requests go on once their model has a worker, or is no
        // longer a service's (they then get the answer any request gets).
        self.held
            .release(|org, model| !matches!(self.lookup(org, model, None, None), Lookup::Cold(_)));
        Ok(())
    }
}

/// An instance as routing sees it.
#[derive(sqlx::FromRow)]
struct InstanceRow {
    id: Uuid,
    organization_id: Uuid,
    model_id: String,
    ip_address: Option<String>,
    worker_engine_port: Option<i32>,
    serving: bool,
    worker_requests_waiting: Option<i32>,
    context_length: Option<i32>,
    #[sqlx(flatten)]
    relay: StoredRelay,
}

/// A worker with its pinned client; None (not routed to) until the
/// instance has a relay key and a pinned certificate, or when they cannot
/// be used.
fn connect(
    state: &AppState,
    id: Uuid,
    base_url: String,
    context_length: Option<i64>,
    generation: Generation,
    relay: StoredRelay,
) -> Option<Worker> {
    let access = match relay.open(&state.config.keyring, id) {
        Ok(Some(access)) => access,
        Ok(None) => {
            tracing::warn!(instance_id = %id, "ready worker without a relay key or pinned certificate; not routed to");
            return None;
        }
        Err(e) => {
            tracing::warn!(instance_id = %id, error = %e, "the worker's relay key does not decrypt; not routed to");
            return None;
        }
    };
    match EngineClient::new(&access, state.config.upstream.read_timeout) {
        Ok(client) => Some(Worker::new(
            id,
            base_url,
            context_length,
            client,
            generation,
        )),
        Err(e) => {
            tracing::warn!(instance_id = %id, error = %e, "no client for the worker's relay; not routed to");
            None
        }
    }
}

/// The accepted, unrevoked shares of offerings that are on.
async fn load_shares(
    state: &AppState,
    routing: &Routing,
) -> sqlx::Result<HashMap<(Uuid, String), SharedRoute>> {
    type Row = (Uuid, String, Uuid, Uuid, Uuid, String, bool, bool, i32);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.consumer_organization_id, p.slug || '/' || o.model_code, s.id, o.id, o.organization_id, o.model_code,
                s.status = 'paused',
                COALESCE(v.input_eur_per_1k > s.max_input_eur_per_1k OR v.output_eur_per_1k > s.max_output_eur_per_1k, false),
                s.weight
           FROM offering_shares s
           JOIN offerings o ON o.id = s.offering_id
           JOIN organizations p ON p.id = o.organization_id
           LEFT JOIN LATERAL share_price(s.id, now(), make_interval(secs => $1)) v ON true
          WHERE s.status <> 'revoked' AND s.accepted_at IS NOT NULL AND o.technical_active AND o.economic_active
            AND p.deleted_at IS NULL",
    )
    .bind(state.config.price_notice.as_secs_f64())
    .fetch_all(&state.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                consumer,
                address,
                share_id,
                offering_id,
                provider_org,
                model_code,
                paused,
                over_max,
                weight,
            )| {
                let route = SharedRoute {
                    series: routing.series_of(consumer, &address),
                    share_id,
                    offering_id,
                    provider_org,
                    model_code,
                    paused,
                    over_max,
                    weight: u32::try_from(weight).unwrap_or(1).max(1),
                };
                ((consumer, address), route)
            },
        )
        .collect())
}

/// Events arriving within this window after one end in a single refresh:
/// a large fleet's heartbeats must not each rebuild the table.
const COALESCE: Duration = Duration::from_millis(100);

/// Keeps the table current: every second, and soon after events (instance,
/// key, share changes), coalesced. Heartbeat events do not wake it: the
/// state they carry is written by the next heartbeat batch, which the
/// per-second refresh reads (at 10,000 workers they would rebuild the
/// table ten times a second for nothing).
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut events = state.events.subscribe_uncounted();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if let Err(e) = state.routing.refresh(&state).await {
            tracing::warn!(error = %e, "routing refresh failed");
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => break,
                e = events.recv() => {
                    if !wakes(&state, e) {
                        continue;
                    }
                    let window = tokio::time::sleep(COALESCE);
                    tokio::pin!(window);
                    loop {
                        tokio::select! {
                            _ = &mut window => break,
                            e = events.recv() => { wakes(&state, e); }
                        }
                    }
                    break;
                }
            }
        }
    }
}

/// Whether an event calls for a refresh; a changed or revoked key leaves
/// the key cache at once.
fn wakes(
    state: &AppState,
    event: Result<crate::events::Event, tokio::sync::broadcast::error::RecvError>,
) -> bool {
    use inventiv_common::messages::Event;
    match event.as_ref().map(|e| &*e.message) {
        Ok(Event::WorkerHeartbeat(_)) => false,
        Ok(Event::ApiKeyChanged { subject, .. }) => {
            state.keys.forget(subject);
            true
        }
        _ => true,
    }
}
