//! Traces across processes, as an OTLP collector receives them: the API and
//! the orchestrator run as their binaries with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at a sink in this test (`POST /v1/traces`, protobuf). A
//! deployment is one trace: every orchestrator step's span leads up,
//! parent by parent, to the API's `POST /deployments` span (through the
//! command on Redis, or the trace context stored with the instance), with
//! the SSH install and the worker's first heartbeat in it. A streamed
//! `/v1` request is one trace: auth, routing (the worker chosen), upstream,
//! first byte and metering under the request's span.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use serde_json::json;

use crate::support::{poll, Opts, Stack, MODEL};

/// A span as the sink received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

impl Received {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn text(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(d) => d.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut received = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .map(|r| text(&r.attributes))
            .and_then(|mut a| a.remove("service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes: text(&span.attributes),
                });
            }
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

/// An OTLP/HTTP receiver on a port the kernel chooses; returns its base
/// URL (the exporters' `OTEL_EXPORTER_OTLP_ENDPOINT`) and what it received.
async fn sink() -> (String, Spans) {
    let spans = Spans::default();
    #[expect(
        clippy::disallowed_methods,
        reason = "a collector's endpoint in a test, not an API route"
    )]
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

/// The spans from `span` up to its root, following parent ids within its
/// trace (as far as the received spans go).
fn ancestry<'a>(spans: &'a [Received], span: &'a Received) -> Vec<&'a Received> {
    let mut chain = vec![span];
    let mut current = span;
    while !current.parent_span_id.is_empty() {
        let Some(parent) = spans
            .iter()
            .find(|s| s.trace_id == current.trace_id && s.span_id == current.parent_span_id)
        else {
            break;
        };
        chain.push(parent);
        current = parent;
    }
    chain
}

/// The first span `is_root` accepts, and every span of its trace.
fn trace_of(
    spans: &[Received],
    is_root: impl Fn(&Received) -> bool,
) -> Option<(Received, Vec<Received>)> {
    let root = spans.iter().find(|s| is_root(s))?;
    let trace = spans
        .iter()
        .filter(|s| s.trace_id == root.trace_id)
        .cloned()
        .collect();
    Some((root.clone(), trace))
}

fn describe(spans: &[Received]) -> String {
    spans
        .iter()
        .map(|s| format!("{}:{} {:?}", s.service, s.name, s.attributes))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_and_a_streamed_request_are_each_one_trace_across_processes() {
    let (endpoint, received) = sink().await;
    let traced = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Batches every 100 ms instead of 5 s: the test waits less.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let mut h = Stack::start().await;
    let api = h.spawn_api("api-traced", &traced).await;
    // Everything goes to the traced API from here on, the worker's
    // registration and heartbeats included (the orchestrator gives it
    // this control plane).
    h.api = format!("http://{}", api.addr());
    let mut opts = Opts::new("orch-traced", Ipv4Addr::new(127, 0, 161, 1));
    opts.extra = traced
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let _orchestrator = h.spawn_up(&opts).await;
    let token = h.team().await;
    let id = h.deploy(&token, Some("rid-traced-deploy")).await;
    h.wait_status(id, "ready", Duration::from_secs(120)).await;

    // The deployment: one trace from the API's request to the steps, every
    // orchestrator span leading up to the request (waited for: a parent is
    // exported when it closes, after its children).
    let deployment = poll(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let spans = received.lock().unwrap().clone();
            let (root, trace) = trace_of(&spans, |s| {
                s.service == "inventiv-api"
                    && s.name == "request"
                    && s.attr("route") == Some("/deployments")
                    && s.attr("method") == Some("POST")
                    && s.attr("request_id") == Some("rid-traced-deploy")
            })?;
            let has = |service: &str, name: &str| {
                trace.iter().any(|s| s.service == service && s.name == name)
            };
            let complete = has("inventiv-orchestrator", "command")
                && has("inventiv-orchestrator", "ssh_install")
                && has("inventiv-api", "first_heartbeat")
                && ["provisioning", "booting", "installing", "starting"]
                    .iter()
                    .all(|status| {
                        trace
                            .iter()
                            .any(|s| s.name == "step" && s.attr("status") == Some(status))
                    })
                && trace
                    .iter()
                    .filter(|s| s.service == "inventiv-orchestrator")
                    .all(|s| {
                        ancestry(&trace, s).last().map(|top| &top.span_id) == Some(&root.span_id)
                    });
            complete.then_some((root, trace))
        },
    )
    .await;
    let Some((root, trace)) = deployment else {
        let spans = received.lock().unwrap().clone();
        panic!(
            "no complete deployment trace after 30 s; received:\n{}\n{}",
            describe(&spans),
            h.logs()
        );
    };
    assert!(root.parent_span_id.is_empty(), "the request is the root");
    assert!(trace
        .iter()
        .any(|s| s.name == "outbox_publish" || s.name == "command"));
    // Step spans hang under drives that carry the request id (as the
    // orchestrator's log lines do).
    for step in trace.iter().filter(|s| s.name == "step") {
        let chain = ancestry(&trace, step);
        let drive = chain.get(1).unwrap();
        assert_eq!(drive.name, "drive", "{}", describe(&trace));
        assert_eq!(drive.attr("request_id"), Some("rid-traced-deploy"));
        assert_eq!(drive.attr("instance_id"), Some(id.to_string().as_str()));
    }
    let install = trace.iter().find(|s| s.name == "ssh_install").unwrap();
    assert!(
        ancestry(&trace, install)
            .iter()
            .any(|s| s.name == "step" && s.attr("status") == Some("installing")),
        "the install is part of the installing step"
    );

    // A streamed `/v1` request, once the API routes the model.
    h.until("the model routed", Duration::from_secs(30), || async {
        let (_, models) = h
            .call(reqwest::Method::GET, "/v1/models", &token, None)
            .await;
        models["data"]
            .as_array()?
            .iter()
            .any(|m| m["id"] == MODEL)
            .then_some(())
    })
    .await;
    let res = h
        .http
        .post(format!("{}/v1/chat/completions", h.api))
        .bearer_auth(&token)
        .header("x-request-id", "rid-traced-stream")
        .json(&json!({ "model": MODEL, "stream": true,
                       "messages": [{ "role": "user", "content": "hello" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");
    let parts = ["auth", "routing", "upstream", "first_byte", "metering"];
    let streamed = poll(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let spans = received.lock().unwrap().clone();
            let (root, trace) = trace_of(&spans, |s| {
                s.name == "request" && s.attr("request_id") == Some("rid-traced-stream")
            })?;
            parts
                .iter()
                .all(|p| trace.iter().any(|s| s.name == *p))
                .then_some((root, trace))
        },
    )
    .await;
    let Some((root, trace)) = streamed else {
        let spans = received.lock().unwrap().clone();
        panic!(
            "no complete /v1 trace after 30 s; received:\n{}",
            describe(&spans)
        );
    };
    assert!(root.parent_span_id.is_empty(), "the request is the root");
    assert_eq!(root.attr("route"), Some("/v1/chat/completions"));
    for part in parts {
        let span = trace.iter().find(|s| s.name == part).unwrap();
        assert_eq!(
            span.parent_span_id,
            root.span_id,
            "{part} is not under the request\n{}",
            describe(&trace)
        );
    }
    let instance = id.to_string();
    for part in ["routing", "upstream"] {
        let span = trace.iter().find(|s| s.name == part).unwrap();
        assert_eq!(span.attr("instance_id"), Some(instance.as_str()), "{part}");
    }
    let upstream = trace.iter().find(|s| s.name == "upstream").unwrap();
    assert_eq!(upstream.attr("status"), Some("200"));
}
