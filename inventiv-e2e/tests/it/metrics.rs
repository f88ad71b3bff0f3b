//! `/metrics` as an operator scrapes it, after a deployment on the mock
//! provider (the orchestrator's binary) and `/v1` requests through the API,
//! streamed and not: each process serves it on its own listener only (the
//! public ports answer the JSON 404), `promtool check metrics` (Debian's
//! `prometheus` package) finds nothing to say, and the series agree with
//! what happened: the requests made, the usage rows' token sums, the
//! provider calls of the deployment.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{Opts, Stack, MODEL};

/// Runs `promtool check metrics` on `text`: it must exit 0 and say nothing.
fn promtool(what: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool on the {what}'s metrics: {said}\n{text}"
    );
}

/// The sum of the samples of `name` whose labels include `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, set) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let wanted = labels
                .iter()
                .all(|(k, want)| set.contains(&format!("{k}=\"{want}\"")));
            (n == name && wanted).then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

async fn scrape(s: &Stack, url: &str) -> String {
    let res = s.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    res.text().await.unwrap()
}

/// `/metrics` on a public port: the platform's JSON 404.
async fn not_served(s: &Stack, url: &str) {
    let res = s.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 404, "{url}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ROUTE_NOT_FOUND", "{url}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_process_serves_clean_metrics_on_its_own_listener() {
    let s = Stack::start().await;
    let token = s.team().await;
    let orchestrator = s
        .spawn_up(&Opts::new("orch-metrics", Ipv4Addr::new(127, 0, 181, 1)))
        .await;
    let id = s.deploy(&token, None).await;
    s.wait_status(id, "ready", Duration::from_secs(120)).await;
    let key = s.routed_key(&token, "metrics").await;

    let streams = [false, true, false, true, true];
    for stream in streams {
        let res = s
            .http
            .post(format!("{}/v1/chat/completions", s.api))
            .bearer_auth(&key)
            .json(&json!({ "model": MODEL, "stream": stream, "max_tokens": 8,
                           "messages": [{ "role": "user", "content": "hello" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        assert!(!stream || body.contains("[DONE]"), "{body}");
    }
    let made = streams.len() as f64;
    let streamed = streams.iter().filter(|s| **s).count() as f64;
    // One that fails: a model nobody deployed (never a label).
    let res = s
        .http
        .post(format!("{}/v1/chat/completions", s.api))
        .bearer_auth(&key)
        .json(&json!({ "model": "made/up", "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let (rows, prompt, completion, cached): (i64, i64, i64, i64) = s
        .until("the usage rows", Duration::from_secs(30), || async {
            let sums: (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT count(*), COALESCE(sum(prompt_tokens), 0)::bigint, COALESCE(sum(completion_tokens), 0)::bigint,
                        COALESCE(sum(cached_prompt_tokens), 0)::bigint
                   FROM usage_records WHERE model = $1",
            )
            .bind(MODEL)
            .fetch_one(&s.db)
            .await
            .ok()?;
            (sums.0 == streams.len() as i64).then_some(sums)
        })
        .await;
    assert_eq!(rows, 5);
    assert!(prompt > 0 && completion > 0);

    let (status, _) = s
        .call(Method::GET, &format!("/instances/{id}"), &token, None)
        .await;
    assert_eq!(status, 200);

    // The API.
    not_served(&s, &format!("{}/metrics", s.api)).await;
    let api = scrape(&s, &format!("{}/metrics", s.api_metrics)).await;
    promtool("API", &api);
    let model = [("model", MODEL)];
    let count = |name: &str, labels: &[(&str, &str)]| value(&api, name, labels);
    assert_eq!(count("inventiv_v1_requests_total", &model), made, "{api}");
    assert_eq!(
        count("inventiv_v1_time_to_first_token_seconds_count", &model),
        streamed
    );
    assert!(count("inventiv_v1_inter_token_seconds_count", &model) > 0.0);
    assert_eq!(
        count("inventiv_v1_request_duration_seconds_count", &model),
        made
    );
    assert_eq!(
        count("inventiv_v1_prompt_tokens_total", &model),
        prompt as f64
    );
    assert_eq!(
        count("inventiv_v1_completion_tokens_total", &model),
        completion as f64
    );
    assert_eq!(
        count("inventiv_v1_cached_prompt_tokens_total", &model),
        cached as f64
    );
    assert_eq!(count("inventiv_v1_errors_total", &model), 0.0, "{api}");
    assert_eq!(
        count(
            "inventiv_v1_errors_total",
            &[("model", ""), ("kind", "model_not_found")]
        ),
        1.0
    );
    assert!(!api.contains("made/up"), "a caller's model name as a label");
    let instance = id.to_string();
    let worker = [("model", MODEL), ("instance_id", instance.as_str())];
    assert!(api.contains("inventiv_v1_outstanding_requests{"), "{api}");
    assert_eq!(count("inventiv_v1_outstanding_requests", &worker), 0.0);
    let chat = [("route", "/v1/chat/completions"), ("method", "POST")];
    assert_eq!(
        count(
            "inventiv_http_requests_total",
            &[chat[0], chat[1], ("status_class", "2xx")]
        ),
        made
    );
    assert_eq!(
        count("inventiv_http_request_duration_seconds_count", &chat),
        made + 1.0
    );
    let one = [("route", "/instances/{instance_id}"), ("method", "GET")];
    assert!(count("inventiv_http_requests_total", &one) >= 1.0, "{api}");
    assert!(
        api.lines()
            .filter(|l| l.starts_with("inventiv_http_"))
            .all(|l| !l.contains(&id.to_string())),
        "a path rather than its template as a label"
    );
    let lookups = count("inventiv_api_key_cache_lookups_total", &[]);
    assert!(lookups >= made + 1.0, "{lookups}");
    assert_eq!(count("inventiv_usage_write_seconds_count", &[]), made);

    // The orchestrator.
    not_served(&s, &format!("http://{}/metrics", orchestrator.addr())).await;
    let orch = scrape(
        &s,
        &format!("http://{}/metrics", orchestrator.metrics_addr()),
    )
    .await;
    promtool("orchestrator", &orch);
    let create = [
        ("provider", "mock"),
        ("operation", "create_server"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        value(&orch, "inventiv_orchestrator_provider_calls_total", &create),
        1.0,
        "{orch}"
    );
    assert_eq!(
        value(
            &orch,
            "inventiv_orchestrator_provider_call_seconds_count",
            &create[..2]
        ),
        1.0
    );
    assert!(value(&orch, "inventiv_orchestrator_job_runs_total", &[]) > 0.0);
    for family in [
        "inventiv_orchestrator_leases_held",
        "inventiv_orchestrator_commands_dead_lettered_total",
        "inventiv_orchestrator_orphans_found_total",
        "inventiv_orchestrator_vanished_total",
        "inventiv_orchestrator_command_stream_lag",
    ] {
        assert!(orch.contains(&format!("\n{family}")), "{family}: {orch}");
    }
    s.terminate_and_check(&token, id).await;
}
