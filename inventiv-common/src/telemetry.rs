//! Structured logs with `tracing` for every binary: human-readable by
//! default, JSON with `LOG_FORMAT=json`, filtered by `RUST_LOG` (default
//! `info`). With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`)
//! set, the spans that filter lets through are also exported as
//! OpenTelemetry traces over OTLP/HTTP (protobuf), under `OTEL_SERVICE_NAME`
//! (default: the binary's name); the W3C `traceparent` of a span
//! ([`traceparent`]) carries a trace across processes and into the
//! database ([`set_parent`]). Without the variable no exporter and no extra
//! layer exist, and both helpers return at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Whether this process exports traces (set once by [`init`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The trace export of a process, flushed by [`Telemetry::shutdown`].
#[must_use = "flush the traces with `shutdown` before the process exits"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter (nothing to
    /// do when traces are off).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The exporter's thread waits for requests this runtime carries:
        // blocking a worker of it here could starve them.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "flushing the traces failed");
        }
    }
}

/// Installs the global subscriber, logs only; a second call (tests) keeps
/// the first.
pub fn init() {
    let _ = if json() {
        logs().json().flatten_event(true).try_init()
    } else {
        logs().try_init()
    };
}

/// An INFO span while traces are exported, else `Span::none()`: nothing
/// is created, entered or recorded. For spans that only traces read (the
/// `/v1` hot path's steps), which cost every request even when no layer
/// wants them.
#[macro_export]
macro_rules! trace_span {
    ($($arg:tt)*) => {
        if $crate::telemetry::enabled() {
            ::tracing::info_span!($($arg)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// `LOG_FORMAT=json`.
fn json() -> bool {
    std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
}

/// The log subscriber's builder: filter, format, no panic on a closed stderr.
fn logs() -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format,
    EnvFilter,
> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .log_internal_errors(false)
}

/// [`init`], and with `OTEL_EXPORTER_OTLP_ENDPOINT` set the trace export:
/// `service` names the process in traces unless `OTEL_SERVICE_NAME` does.
/// Call it on the Tokio runtime: the exporter sends through it.
pub fn init_traced(service: &str) -> Telemetry {
    let endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find_map(|name| std::env::var(name).ok().filter(|e| !e.trim().is_empty()));
    let Some(endpoint) = endpoint else {
        init();
        return Telemetry { provider: None };
    };
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    let provider = match provider(&service) {
        Ok(p) => p,
        Err(e) => {
            init();
            tracing::error!(error = %e, %endpoint, "traces cannot be exported; logs only");
            return Telemetry { provider: None };
        }
    };
    let tracer = provider.tracer("inventiv");
    let installed = if json() {
        let subscriber = logs().json().flatten_event(true).finish();
        subscriber.with(traces(tracer)).try_init()
    } else {
        logs().finish().with(traces(tracer)).try_init()
    };
    if installed.is_err() {
        let _ = provider.shutdown();
        return Telemetry { provider: None };
    }
    ENABLED.store(true, Ordering::Relaxed);
    tracing::info!(%endpoint, %service, "exporting traces over OTLP");
    Telemetry {
        provider: Some(provider),
    }
}

/// The layer that turns spans into OpenTelemetry spans: no timing or
/// thread attributes of its own, only the spans' fields.
fn traces<S>(
    tracer: opentelemetry_sdk::trace::SdkTracer,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
}

/// The tracer provider: a batch of spans at a time, over OTLP/HTTP to the
/// endpoint of the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._HEADERS`, `..._TIMEOUT`).
fn provider(service: &str) -> Result<SdkTracerProvider, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "telemetry::init_traced runs outside the Tokio runtime".to_owned())?;
    // The exporter leaves the timeout to its client: the standard
    // variables' (milliseconds), else their default of 10 s.
    let timeout = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
    .map_or(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis,
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Sender { client, runtime })
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build())
}

/// The exporter's HTTP client: the workspace's reqwest, driven on the
/// process's runtime (the batch exporter runs on a thread of its own,
/// outside it).
#[derive(Debug)]
struct Sender {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Sender {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let answer = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let (status, headers, body) = answer;
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Whether this process exports traces.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The W3C `traceparent` of `span`, to carry its trace to another process
/// or to a later step; `None` when traces are off or the span is disabled.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span `traceparent` names (call it before the
/// span is entered or has children). A missing or malformed value, or
/// traces off, leave it as it is.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent.filter(|_| enabled()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), value.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn off_by_default_nothing_is_carried() {
        let span = tracing::info_span!("s");
        assert!(!super::enabled());
        assert_eq!(super::traceparent(&span), None);
        super::set_parent(
            &span,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
    }
}
