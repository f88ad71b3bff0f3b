//! What this API replica counts for Prometheus (rendered by
//! `routes::metrics` on the metrics listener): HTTP requests per route
//! template, the `/v1` series per (organization, model), SSE events, API
//! key cache lookups, usage write latency and the autoscaler's signals
//! published. Label values are bounded:
//! route templates, methods, status classes, error kinds from a fixed
//! list, and organization and model ids that routing knows (never request
//! ids, users or a model name a caller made up).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use inventiv_common::metrics::{
    Counter, Histogram, Kind, Text, LATENCY_BUCKETS, TOKEN_GAP_BUCKETS,
};
use uuid::Uuid;

use crate::state::AppState;

/// The `/v1` error kinds: the OpenAI error codes the proxy answers with,
/// then failures the client does not see as an error code: the engine's
/// own error status passed through, and a stream the client left.
pub const ERROR_KINDS: [&str; 19] = [
    "invalid_api_key",
    "invalid_request",
    "payload_too_large",
    "unsupported_media_type",
    "model_not_found",
    "share_paused",
    "price_above_maximum",
    "rate_limit_exceeded",
    "insufficient_quota",
    "no_capacity",
    "cold_start_queue_full",
    "cold_start_timeout",
    "metering_unavailable",
    "upstream_error",
    "upstream_redirect",
    "internal_error",
    "engine_error",
    "client_closed",
    "other",
];

fn kind_index(code: &str) -> usize {
    ERROR_KINDS
        .iter()
        .position(|k| *k == code)
        .unwrap_or(ERROR_KINDS.len() - 1)
}

/// Errors by kind.
#[derive(Debug)]
pub struct Errors([Counter; ERROR_KINDS.len()]);

impl Default for Errors {
    fn default() -> Errors {
        Errors(std::array::from_fn(|_| Counter::new()))
    }
}

impl Errors {
    pub fn count(&self, code: &str) {
        if let Some(c) = self.0.get(kind_index(code)) {
            c.inc();
        }
    }
}

/// The `/v1` series of one (organization, model): held by the routing
/// table, so a request reaches them without a lookup of its own.
#[derive(Debug)]
pub struct ModelSeries {
    pub organization_id: Uuid,
    pub model: Box<str>,
    pub requests: Counter,
    pub errors: Errors,
    /// From the request's arrival to its answer's end.
    pub duration: Histogram,
    /// Streams: from the request's arrival to its first content event.
    pub ttft: Histogram,
    /// Streams: between two content events.
    pub inter_token: Histogram,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub cached_tokens: Counter,
    /// Attempts on another worker after one failed.
    pub retries: Counter,
    /// Workers taken out of rotation after repeated failures.
    pub ejections: Counter,
    /// What this organization's own workers of the model served, whoever
    /// called (a shared model's load counts on its provider's series): the
    /// autoscaler's signals ([`crate::proxy::signals`]).
    pub serving: crate::proxy::signals::Serving,
}

impl ModelSeries {
    pub fn new(organization_id: Uuid, model: &str) -> ModelSeries {
        ModelSeries {
            organization_id,
            model: model.into(),
            requests: Counter::new(),
            errors: Errors::default(),
            duration: Histogram::new(LATENCY_BUCKETS),
            ttft: Histogram::new(LATENCY_BUCKETS),
            inter_token: Histogram::new(TOKEN_GAP_BUCKETS),
            prompt_tokens: Counter::new(),
            completion_tokens: Counter::new(),
            cached_tokens: Counter::new(),
            retries: Counter::new(),
            ejections: Counter::new(),
            serving: crate::proxy::signals::Serving::default(),
        }
    }
}

/// The methods told apart; any other is `OTHER`.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        _ => 5,
    }
}

#[derive(Debug)]
struct MethodSeries {
    classes: [Counter; CLASSES.len()],
    duration: Histogram,
}

/// One route template's series, per method.
#[derive(Debug)]
struct RouteSeries([MethodSeries; METHODS.len()]);

impl RouteSeries {
    fn new() -> RouteSeries {
        RouteSeries(std::array::from_fn(|_| MethodSeries {
            classes: std::array::from_fn(|_| Counter::new()),
            duration: Histogram::new(LATENCY_BUCKETS),
        }))
    }
}

/// Requests that matched no route (the dashboard's files, 404s) share this
/// template.
const UNMATCHED: &str = "none";

/// Everything the replica counts outside the database.
pub struct Metrics {
    /// Route template → series; grows only with the router's own routes.
    http: RwLock<HashMap<Box<str>, Arc<RouteSeries>>>,
    /// `/v1` errors before an (organization, model) was resolved.
    pub unresolved: Errors,
    pub sse_events: Counter,
    pub key_cache_hits: Counter,
    pub key_cache_misses: Counter,
    /// From handing a usage record to the journal to its being durable.
    pub usage_write: Histogram,
    /// The budgets' levels of the watcher's last round.
    pub budgets: crate::budget_levels::Levels,
    /// Each organization's cost of the month, from the cost job's last pass.
    pub costs: crate::finops::month_costs::MonthCosts,
    /// Load snapshots published for the autoscaler, and those that failed.
    pub signals_published: Counter,
    pub signals_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            http: RwLock::new(HashMap::new()),
            unresolved: Errors::default(),
            sse_events: Counter::new(),
            key_cache_hits: Counter::new(),
            key_cache_misses: Counter::new(),
            usage_write: Histogram::new(LATENCY_BUCKETS),
            budgets: crate::budget_levels::Levels::default(),
            costs: crate::finops::month_costs::MonthCosts::default(),
            signals_published: Counter::new(),
            signals_failures: Counter::new(),
        }
    }
}

/// One route template's HTTP series, to count its requests in.
#[derive(Clone, Debug)]
pub struct HttpRoute(Arc<RouteSeries>);

impl HttpRoute {
    /// Counts a request answered with `status` after `elapsed`.
    pub fn count(&self, method: &Method, status: StatusCode, elapsed: Duration) {
        if let Some(m) = self.0 .0.get(method_index(method)) {
            let class = usize::from(status.as_u16() / 100).saturating_sub(1);
            if let Some(c) = m.classes.get(class) {
                c.inc();
            }
            m.duration.observe(elapsed);
        }
    }
}

impl Metrics {
    /// The series of a route template (made on its first request).
    pub fn http_route(&self, template: &str) -> HttpRoute {
        HttpRoute(self.route(template))
    }

    fn route(&self, template: &str) -> Arc<RouteSeries> {
        if let Some(s) = self.http.read().ok().and_then(|m| m.get(template).cloned()) {
            return s;
        }
        match self.http.write() {
            Ok(mut m) => m
                .entry(template.into())
                .or_insert_with(|| Arc::new(RouteSeries::new()))
                .clone(),
            Err(_) => Arc::new(RouteSeries::new()),
        }
    }

    /// Times a usage record's way to disk.
    pub async fn usage_write<T>(&self, durable: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = durable.await;
        self.usage_write.observe(started.elapsed());
        out
    }

    /// Renders the HTTP, SSE, key cache, usage write, budget and cost families.
    pub fn render(&self, t: &mut Text) {
        let routes: Vec<(Box<str>, Arc<RouteSeries>)> = self
            .http
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut routes = routes;
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        t.family(
            "inventiv_http_requests_total",
            Kind::Counter,
            "HTTP requests on the public port, by route template, method and status class.",
        );
        for (route, series) in &routes {
            for (method, m) in METHODS.iter().zip(&series.0) {
                for (class, c) in CLASSES.iter().zip(&m.classes) {
                    if c.get() > 0 {
                        let labels = [
                            ("route", &**route),
                            ("method", method),
                            ("status_class", class),
                        ];
                        t.sample("inventiv_http_requests_total", &labels, c.get());
                    }
                }
            }
        }
        t.family(
            "inventiv_http_request_duration_seconds",
            Kind::Histogram,
            "Time to the response's headers (a stream's first byte), by route template and method.",
        );
        for (route, series) in &routes {
            for (method, m) in METHODS.iter().zip(&series.0) {
                if m.duration.count() > 0 {
                    let labels = [("route", &**route), ("method", *method)];
                    t.histogram(
                        "inventiv_http_request_duration_seconds",
                        &labels,
                        &m.duration,
                    );
                }
            }
        }
        t.single(
            "inventiv_sse_events_total",
            Kind::Counter,
            "Live events sent to this replica's SSE clients.",
            self.sse_events.get(),
        );
        t.family(
            "inventiv_api_key_cache_lookups_total",
            Kind::Counter,
            "API key lookups on /v1, by whether the replica's cache answered.",
        );
        let lookups = "inventiv_api_key_cache_lookups_total";
        t.sample(lookups, &[("result", "hit")], self.key_cache_hits.get());
        t.sample(lookups, &[("result", "miss")], self.key_cache_misses.get());
        t.family(
            "inventiv_usage_write_seconds",
            Kind::Histogram,
            "Time from a /v1 answer's end to its usage record being durable (the journal's sync).",
        );
        t.histogram("inventiv_usage_write_seconds", &[], &self.usage_write);
        t.single(
            "inventiv_signals_published_total",
            Kind::Counter,
            "Load snapshots this replica published to Redis for the autoscaler.",
            self.signals_published.get(),
        );
        t.single(
            "inventiv_signals_publish_failures_total",
            Kind::Counter,
            "Load snapshots that could not be published (their counts join the next one).",
            self.signals_failures.get(),
        );
        self.budgets.render(t);
        self.costs.render(t);
    }
}

/// A `/v1` family: its name, its help and where a series keeps it.
type Family<T> = (&'static str, &'static str, fn(&ModelSeries) -> &T);

/// Renders the `/v1` families of every (organization, model) series.
pub fn render_v1(t: &mut Text, metrics: &Metrics, series: &[Arc<ModelSeries>]) {
    let ids: Vec<String> = series
        .iter()
        .map(|s| s.organization_id.to_string())
        .collect();
    let labels = |i: usize| -> [(&str, &str); 2] {
        [
            ("organization_id", ids.get(i).map_or("", String::as_str)),
            ("model", series.get(i).map_or("", |s| &*s.model)),
        ]
    };
    let counters: [Family<Counter>; 6] = [
        (
            "inventiv_v1_requests_total",
            "/v1 requests resolved to a model.",
            |s| &s.requests,
        ),
        (
            "inventiv_v1_prompt_tokens_total",
            "Prompt tokens billed.",
            |s| &s.prompt_tokens,
        ),
        (
            "inventiv_v1_completion_tokens_total",
            "Completion tokens billed.",
            |s| &s.completion_tokens,
        ),
        (
            "inventiv_v1_cached_prompt_tokens_total",
            "Of the prompt tokens billed, those the engine served from its prefix cache.",
            |s| &s.cached_tokens,
        ),
        (
            "inventiv_v1_retries_total",
            "Attempts on another worker after one failed.",
            |s| &s.retries,
        ),
        (
            "inventiv_v1_worker_ejections_total",
            "Workers taken out of rotation for a cool-down after repeated failures.",
            |s| &s.ejections,
        ),
    ];
    for (name, help, counter) in counters {
        t.family(name, Kind::Counter, help);
        for (i, s) in series.iter().enumerate() {
            t.sample(name, &labels(i), counter(s).get());
        }
    }
    let errors = "inventiv_v1_errors_total";
    t.family(
        errors,
        Kind::Counter,
        "/v1 requests that failed, by kind (the OpenAI error code, engine_error, client_closed); empty organization and model before they were resolved.",
    );
    let kinds = |t: &mut Text, org: &str, model: &str, e: &Errors| {
        for (kind, c) in ERROR_KINDS.iter().zip(&e.0) {
            if c.get() > 0 {
                let l = [("organization_id", org), ("model", model), ("kind", *kind)];
                t.sample(errors, &l, c.get());
            }
        }
    };
    kinds(t, "", "", &metrics.unresolved);
    for (i, s) in series.iter().enumerate() {
        let [(_, org), (_, model)] = labels(i);
        kinds(t, org, model, &s.errors);
    }
    let histograms: [Family<Histogram>; 3] = [
        (
            "inventiv_v1_request_duration_seconds",
            "From a /v1 request's arrival to its answer's end.",
            |s| &s.duration,
        ),
        (
            "inventiv_v1_time_to_first_token_seconds",
            "Streams: from the request's arrival to its first content event.",
            |s| &s.ttft,
        ),
        (
            "inventiv_v1_inter_token_seconds",
            "Streams: time between two content events.",
            |s| &s.inter_token,
        ),
    ];
    for (name, help, h) in histograms {
        t.family(name, Kind::Histogram, help);
        for (i, s) in series.iter().enumerate() {
            t.histogram(name, &labels(i), h(s));
        }
    }
    let held = "inventiv_v1_held_requests";
    t.family(
        held,
        Kind::Gauge,
        "Requests held now for a replica of a service at zero (per serving organization and model).",
    );
    for (i, s) in series.iter().enumerate() {
        t.sample(held, &labels(i), s.serving.held.waiting());
    }
    let outcomes = "inventiv_v1_held_total";
    t.family(
        outcomes,
        Kind::Counter,
        "Requests that stopped being held, by outcome: served (a replica was ready), timed_out, full (refused, the queue was full), abandoned (the client left).",
    );
    for (i, s) in series.iter().enumerate() {
        let [org, model] = labels(i);
        let h = &s.serving.held;
        for (outcome, c) in [
            ("served", &h.served),
            ("timed_out", &h.timed_out),
            ("full", &h.full),
            ("abandoned", &h.abandoned),
        ] {
            t.sample(outcomes, &[org, model, ("outcome", outcome)], c.get());
        }
    }
}

/// Counts every request on the public port by its route template (never
/// its path: ids stay out of the labels).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let series = state.metrics.http_route(
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str),
    );
    let method = request.method().clone();
    let response = next.run(request).await;
    series.count(&method, response.status(), started.elapsed());
    response
}
