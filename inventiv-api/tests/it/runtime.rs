//! `GET /runtime/models`: per model, the organization's alive instances with
//! their GPUs and VRAM (from the catalog), failed instances, and the
//! requests, failures and tokens of the window; nothing of another
//! organization.

use crate::support::{error_code, TestApp};
use serde_json::{json, Value};
use uuid::Uuid;

async fn instance(app: &TestApp, org: Uuid, model: &str, instance_type: &str, status: &str) {
    sqlx::query(
        "INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status)
         VALUES ($1, $2, 'runtime', 'mock', 'mock-zone-1', $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(org)
    .bind(instance_type)
    .bind(model)
    .bind(status)
    .execute(&app.state.db)
    .await
    .unwrap();
}

async fn request(app: &TestApp, org: Uuid, model: &str, status: i32, hours_ago: i32) {
    sqlx::query(
        "INSERT INTO usage_records (request_id, at, organization_id, model, endpoint, prompt_tokens, completion_tokens, latency_ms, status)
         VALUES ($1, now() - make_interval(hours => $2), $3, $4, '/v1/chat/completions', 10, 5, 20, $5)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(hours_ago)
    .bind(org)
    .bind(model)
    .bind(status)
    .execute(&app.state.db)
    .await
    .unwrap();
}

fn line<'a>(lines: &'a Value, model: &str) -> &'a Value {
    lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["model"] == model)
        .unwrap_or_else(|| panic!("no line for {model} in {lines}"))
}

#[tokio::test]
async fn counts_instances_gpus_vram_requests_and_failures_per_model() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let (gpu1, gpu2) = ("mock-1gpu-24g", "mock-4gpu-80g");
    instance(&app, a.id, "m/one", gpu1, "ready").await;
    instance(&app, a.id, "m/one", gpu2, "installing").await;
    instance(&app, a.id, "m/one", gpu1, "worker_dead").await;
    instance(&app, a.id, "m/one", gpu1, "terminated").await;
    instance(&app, a.id, "m/one", gpu1, "archived").await;
    request(&app, a.id, "m/one", 200, 1).await;
    request(&app, a.id, "m/one", 502, 2).await;
    // Traffic only, and an old request outside the default 24 h.
    request(&app, a.id, "m/two", 200, 3).await;
    request(&app, a.id, "m/two", 200, 48).await;
    // Another organization's fleet and traffic.
    instance(&app, b.id, "m/one", gpu1, "ready").await;
    request(&app, b.id, "m/one", 200, 1).await;
    instance(&app, b.id, "m/three", gpu1, "ready").await;

    let (s, lines) = app.get("/runtime/models", Some(&a.user.token)).await;
    assert_eq!(s, 200, "{lines}");
    assert_eq!(
        lines.as_array().unwrap().len(),
        2,
        "only a's models: {lines}"
    );
    let one = line(&lines, "m/one");
    // GPUs and VRAM of the two alive instances, from the catalog.
    let types: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT gpu_count, gpu_count * vram_per_gpu_gb FROM instance_types WHERE provider_code = 'mock' AND code = ANY($1) ORDER BY code",
    )
    .bind([gpu1, gpu2])
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    assert_eq!(types.len(), 2, "the mock catalog has {gpu1} and {gpu2}");
    let (gpus, vram) = types
        .iter()
        .fold((0, 0), |(g, v), (tg, tv)| (g + tg, v + tv));
    assert_eq!(
        (
            one["instances"].clone(),
            one["ready"].clone(),
            one["failed_instances"].clone(),
            one["gpus"].clone(),
            one["vram_gb"].clone()
        ),
        (json!(2), json!(1), json!(1), json!(gpus), json!(vram)),
        "{one}"
    );
    assert_eq!(
        (
            one["requests"].clone(),
            one["failed_requests"].clone(),
            one["tokens"].clone()
        ),
        (json!(2), json!(1), json!(30)),
        "{one}"
    );
    let two = line(&lines, "m/two");
    assert_eq!(
        (
            two["instances"].clone(),
            two["requests"].clone(),
            two["gpus"].clone()
        ),
        (json!(0), json!(1), json!(0)),
        "{two}"
    );

    // A wider window takes the old request in; a bad one is refused.
    let (_, lines) = app
        .get("/runtime/models?hours=72", Some(&a.user.token))
        .await;
    assert_eq!(line(&lines, "m/two")["requests"], 2, "{lines}");
    let (s, body) = app
        .get("/runtime/models?hours=lots", Some(&a.user.token))
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(!error_code(&body).is_empty(), "{body}");
}
