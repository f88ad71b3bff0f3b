//! The shipped Prometheus configuration against a running stack: a real
//! Prometheus (Debian's `prometheus`) configured from
//! deploy/prometheus/prometheus.yml (see `support::prometheus`) scrapes the
//! API's and the orchestrator's metrics listeners, which want a bearer
//! token, after a deployment on the mock provider and a streamed `/v1`
//! request. Its HTTP API then has both targets up, the request's time to
//! first token, the deployment's steps and the usage writer's backlog, and
//! the shipped rule groups loaded and evaluating without error. A change to
//! the shipped files that stops a scrape (a path, the token, a relabelling)
//! fails here.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{poll, shipped_rule_groups, Opts, Prometheus, Stack, MODEL};

const API: &str = "inventiv-api";
const ORCHESTRATOR: &str = "inventiv-orchestrator";

/// What Prometheus' targets page says of the jobs' targets, for failures.
async fn targets(p: &Prometheus) -> String {
    let data = p.api("/api/v1/targets", &[]).await;
    data["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            format!(
                "{} {}: {} {}",
                t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastError"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `promql` has a sample whose value passes `ok`; returns the
/// samples' labels.
async fn until_sample(
    s: &Stack,
    p: &Prometheus,
    promql: &str,
    ok: fn(f64) -> bool,
) -> Vec<serde_json::Map<String, Value>> {
    let found = poll(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async move {
            let samples = p.query(promql).await;
            samples
                .iter()
                .any(|(_, v)| ok(*v))
                .then(|| samples.into_iter().map(|(labels, _)| labels).collect())
        },
    )
    .await;
    match found {
        Some(labels) => labels,
        None => panic!(
            "no sample of {promql} as wanted after 60 s: {:?}\ntargets:\n{}\n{}",
            p.query(promql).await,
            targets(p).await,
            s.logs()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_the_stack_with_the_shipped_configuration() {
    let token = Uuid::new_v4().simple().to_string();
    let s = Stack::start_with_env(&[("INVENTIV_METRICS_TOKEN", token.as_str())]).await;
    let mut opts = Opts::new("orch-prometheus", Ipv4Addr::new(127, 0, 191, 1));
    opts.extra
        .push(("INVENTIV_METRICS_TOKEN".into(), token.clone()));
    let orchestrator = s.spawn_up(&opts).await;
    let api_metrics = s.api_metrics.strip_prefix("http://").unwrap();
    // The token is in force: without the shipped authorization, no scrape.
    for url in [
        s.api_metrics.clone(),
        format!("http://{}", orchestrator.metrics_addr()),
    ] {
        let res = s.http.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 401, "{url}");
    }
    let p = Prometheus::start(
        &s,
        &[
            (API, api_metrics.parse().unwrap()),
            (ORCHESTRATOR, orchestrator.metrics_addr()),
        ],
        &token,
    )
    .await;
    for job in [API, ORCHESTRATOR] {
        until_sample(&s, &p, &format!("up{{job=\"{job}\"}}"), |v| v == 1.0).await;
    }

    let session = s.team().await;
    let id = s.deploy(&session, None).await;
    s.wait_status(id, "ready", Duration::from_secs(120)).await;
    let key = s.routed_key(&session, "prometheus").await;
    let res = s
        .http
        .post(format!("{}/v1/chat/completions", s.api))
        .bearer_auth(&key)
        .json(&json!({ "model": MODEL, "stream": true, "max_tokens": 8,
                       "messages": [{ "role": "user", "content": "hello" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");

    // The request's time to first token: the histogram's count and its
    // +Inf bucket, for the model.
    let ttft = "inventiv_v1_time_to_first_token_seconds";
    let model = format!("job=\"{API}\",model=\"{MODEL}\"");
    until_sample(&s, &p, &format!("{ttft}_count{{{model}}}"), |v| v >= 1.0).await;
    until_sample(
        &s,
        &p,
        &format!("{ttft}_bucket{{{model},le=\"+Inf\"}}"),
        |v| v >= 1.0,
    )
    .await;

    // The deployment's steps, each run at least once and timed. The step
    // metrics' own `job` label (the instance status whose step ran) is
    // `exported_job` in Prometheus, the scrape job's `job` winning: what
    // the shipped dashboards (deploy/grafana) read.
    for step in ["provisioning", "booting", "installing", "starting"] {
        let labels = format!("job=\"{ORCHESTRATOR}\",exported_job=\"{step}\"");
        for series in [
            "inventiv_orchestrator_job_runs_total",
            "inventiv_orchestrator_job_seconds_count",
        ] {
            until_sample(&s, &p, &format!("{series}{{{labels}}}"), |v| v >= 1.0).await;
        }
        let failures = format!("inventiv_orchestrator_job_failures_total{{{labels}}}");
        until_sample(&s, &p, &failures, |v| v >= 0.0).await;
    }
    until_sample(
        &s,
        &p,
        &format!("inventiv_instances{{job=\"{ORCHESTRATOR}\",status=\"ready\"}}"),
        |v| v == 1.0,
    )
    .await;

    // The usage writer's backlog (committed by now: empty) and its limit.
    let backlog = format!("inventiv_usage_journal_pending_bytes{{job=\"{API}\"}}");
    until_sample(&s, &p, &backlog, |v| v >= 0.0).await;
    let limit = format!("inventiv_usage_journal_limit_bytes{{job=\"{API}\"}}");
    until_sample(&s, &p, &limit, |v| v > 0.0).await;

    // The shipped rule groups, loaded, every rule evaluated without error.
    let shipped = shipped_rule_groups();
    assert!(!shipped.is_empty(), "prometheus.yml names no rules");
    let wanted: BTreeSet<(String, usize)> = shipped.into_iter().collect();
    let rules = s
        .until("every rule evaluated", Duration::from_secs(60), || async {
            let data = p.api("/api/v1/rules", &[]).await;
            let groups = data["groups"].as_array().cloned().unwrap_or_default();
            let all: Vec<&Value> = groups
                .iter()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            let broken: Vec<&&Value> = all.iter().filter(|r| r["health"] == "err").collect();
            assert!(broken.is_empty(), "rules in error: {broken:?}");
            all.iter()
                .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
                .then_some(groups.clone())
        })
        .await;
    let loaded: BTreeSet<(String, usize)> = rules
        .iter()
        .map(|g| {
            let name = g["name"].as_str().unwrap().to_owned();
            (name, g["rules"].as_array().map_or(0, Vec::len))
        })
        .collect();
    assert_eq!(loaded, wanted, "the rule groups Prometheus loaded");

    s.terminate_and_check(&session, id).await;
}
