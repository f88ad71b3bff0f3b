//! The worker contract: register and heartbeats with the per-instance token,
//! the current and previous heartbeat schema, refusal of malformed payloads
//! and wrong or replaced tokens with a 4xx that leaves the instance
//! untouched, samples kept as time series and pruned past retention; the
//! batched writes: state and series within the batch interval,
//! `last_heartbeat_at` the arrival time and never moved back, the
//! watchdog's view of a live worker.

use std::time::Duration;

use crate::support::{error_code, eventually, TestApp};
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

const SCHEMA_V2: &str = include_str!("../../../inventiv-worker/schema/heartbeat.v2.json");
const REGISTER: &str = include_str!("../../../inventiv-worker/schema/register.v2.json");

/// An instance of `org` with a worker token; returns (instance id, token).
pub(crate) async fn instance(app: &TestApp, org: Uuid) -> (Uuid, String) {
    let id = Uuid::new_v4();
    let (token, hash) = inventiv_api::auth::tokens::generate();
    sqlx::query(
        "INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status, worker_token_hash)
         VALUES ($1, $2, 'i', 'mock', 'mock-zone-1', 'mock-1gpu-24g', 'Qwen/Qwen2.5-0.5B-Instruct', 'installing', $3)",
    )
    .bind(id)
    .bind(org)
    .bind(hash)
    .execute(&app.state.db)
    .await
    .unwrap();
    (id, token)
}

fn register_body(id: Uuid) -> Value {
    json!({
        "schema_version": 2, "instance_id": id, "boot_id": "boot-1",
        "agent": { "version": "0.1.0", "bundle_sha256": "ab".repeat(32) },
        "model_id": "Qwen/Qwen2.5-0.5B-Instruct", "mode": "mono", "gpu_count": 1,
        "agent_port": 8090, "engine_port": 8000
    })
}

pub(crate) fn heartbeat_v2(id: Uuid) -> Value {
    json!({
        "schema_version": 2, "instance_id": id, "boot_id": "boot-1",
        "agent": { "version": "0.1.0", "bundle_sha256": "ab".repeat(32) },
        "status": "ready", "model_id": "Qwen/Qwen2.5-0.5B-Instruct",
        "engine": { "ready": true, "requests_running": 3, "requests_waiting": 1, "restarts": 0, "last_exit_code": null,
                    "backends": [{ "port": 8001, "gpu_index": 0, "ready": true }],
                    "tokens": { "prompt_total": 1200, "generation_total": 300 } },
        "gpus": [
            { "index": 0, "name": "L4", "utilization_pct": 71.5, "memory_used_mib": 20000, "memory_total_mib": 23034, "temperature_c": 61, "power_w": 70.2 },
            { "index": 1, "utilization_pct": 0, "memory_used_mib": 0, "memory_total_mib": 23034 }
        ],
        "system": { "cpu_pct": 12.5, "load1": 0.5, "load5": 0.4, "load15": 0.3, "memory_used_mib": 1024, "memory_total_mib": 4096,
                    "disk_used_gib": 10, "disk_total_gib": 200, "net_rx_bytes_per_s": 1000, "net_tx_bytes_per_s": 2000 },
        "sent_at": "2026-11-23T10:00:00Z"
    })
}

fn heartbeat_v1(id: Uuid) -> Value {
    let mut v = heartbeat_v2(id);
    v["schema_version"] = json!(1);
    v.as_object_mut().unwrap().remove("system");
    v["engine"].as_object_mut().unwrap().remove("tokens");
    v
}

/// A change that makes a heartbeat invalid.
type Edit = fn(&mut Value);

/// Writes the heartbeats the API queued (what its timer does every
/// `INVENTIV_HEARTBEAT_FLUSH_MS`), so a test reads them at once.
pub(crate) async fn flushed(app: &TestApp) {
    app.state.heartbeats.flush(&app.state.db).await.unwrap();
}

async fn snapshot(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT row_to_json(i)::text FROM instances i WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn register_and_heartbeats_of_both_schema_versions_are_recorded() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let (id, token) = instance(&app, a.id).await;
    let (status, ack) = app
        .post(
            "/internal/workers/register",
            Some(&token),
            register_body(id),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        ack,
        json!({ "status": "accepted", "instance_status": "installing" })
    );
    let (status, ack) = app
        .post(
            "/internal/workers/heartbeat",
            Some(&token),
            heartbeat_v2(id),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    flushed(&app).await;
    let row: (String, bool, i32, i32, Option<Value>, Option<Value>, String) = sqlx::query_as(
        "SELECT worker_status, worker_engine_ready, worker_requests_running, worker_requests_waiting, worker_gpus, worker_system, worker_agent_version
           FROM instances WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((row.0.as_str(), row.1, row.2, row.3), ("ready", true, 3, 1));
    assert_eq!(row.4.unwrap()[0]["name"], "L4");
    assert_eq!(row.5.unwrap()["cpu_pct"], 12.5);
    assert_eq!(row.6, "0.1.0");
    let gpu: i64 = sqlx::query_scalar("SELECT count(*) FROM gpu_samples WHERE instance_id = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let sys: i64 = sqlx::query_scalar("SELECT count(*) FROM system_samples WHERE instance_id = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!((gpu, sys), (2, 1));

    // The previous schema (no system samples) is still accepted.
    let (status, body) = app
        .post(
            "/internal/workers/heartbeat",
            Some(&token),
            heartbeat_v1(id),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    flushed(&app).await;
    let sys: i64 = sqlx::query_scalar("SELECT count(*) FROM system_samples WHERE instance_id = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(sys, 1, "v1 adds no system sample");
    // Without a GPU the agent sends no `gpus`: nothing is invented.
    let mut no_gpu = heartbeat_v2(id);
    no_gpu.as_object_mut().unwrap().remove("gpus");
    assert_eq!(
        app.post("/internal/workers/heartbeat", Some(&token), no_gpu)
            .await
            .0,
        200
    );
    flushed(&app).await;
    let gpus: Option<Value> = sqlx::query_scalar("SELECT worker_gpus FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert!(gpus.is_none());
}

#[tokio::test]
async fn malformed_payloads_and_wrong_tokens_leave_the_instance_untouched() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let (id, token) = instance(&app, a.id).await;
    let (other, other_token) = instance(&app, b.id).await;
    let before = snapshot(&app, id).await;
    let before_other = snapshot(&app, other).await;

    let mut bad: Vec<(String, Value)> = Vec::new();
    let schema: Value = serde_json::from_str(SCHEMA_V2).unwrap();
    for field in schema["required"].as_array().unwrap() {
        let mut v = heartbeat_v2(id);
        v.as_object_mut().unwrap().remove(field.as_str().unwrap());
        bad.push((format!("without {field}"), v));
    }
    let edits: Vec<(&str, Edit)> = vec![
        ("v1 with system samples", |v| v["schema_version"] = json!(1)),
        ("unknown version", |v| v["schema_version"] = json!(7)),
        ("v1 with token counters", |v| {
            v["schema_version"] = json!(1);
            v.as_object_mut().unwrap().remove("system");
        }),
        ("negative token counter", |v| {
            v["engine"]["tokens"]["prompt_total"] = json!(-1)
        }),
        ("token counter past 2^53", |v| {
            v["engine"]["tokens"]["generation_total"] = json!(1u64 << 60)
        }),
        ("unknown status", |v| v["status"] = json!("sleeping")),
        ("negative queue", |v| {
            v["engine"]["requests_waiting"] = json!(-1)
        }),
        ("utilization over 100", |v| {
            v["gpus"][0]["utilization_pct"] = json!(150)
        }),
        ("cpu as text", |v| v["system"]["cpu_pct"] = json!("high")),
        ("bad checksum", |v| {
            v["agent"]["bundle_sha256"] = json!("not-hex")
        }),
        ("unknown field", |v| v["extra"] = json!(true)),
        ("huge model id", |v| v["model_id"] = json!("m".repeat(5000))),
        ("bad time", |v| v["sent_at"] = json!("yesterday")),
        ("instance id not a uuid", |v| {
            v["instance_id"] = json!("i-123")
        }),
    ];
    for (what, edit) in edits {
        let mut v = heartbeat_v2(id);
        edit(&mut v);
        bad.push((what.to_owned(), v));
    }
    for (what, body) in &bad {
        let (status, answer) = app
            .post("/internal/workers/heartbeat", Some(&token), body.clone())
            .await;
        assert_eq!(status, 400, "{what}: {answer}");
        error_code(&answer);
    }
    let mut bad_register = register_body(id);
    bad_register["mode"] = json!("cluster");
    assert_eq!(
        app.post("/internal/workers/register", Some(&token), bad_register)
            .await
            .0,
        400
    );

    // Tokens: none, unknown, a user's session, another instance's.
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("no token", None, 401),
        ("unknown token", Some("q".repeat(43)), 401),
        ("a user session", Some(a.owner.token.clone()), 401),
        ("another instance's token", Some(other_token.clone()), 403),
    ];
    for (what, t, expected) in cases {
        for path in ["/internal/workers/heartbeat", "/internal/workers/register"] {
            let body = if path.ends_with("heartbeat") {
                heartbeat_v2(id)
            } else {
                register_body(id)
            };
            let (status, answer) = app.post(path, t.as_deref(), body).await;
            assert_eq!(status.as_u16(), expected, "{what} on {path}: {answer}");
        }
    }
    flushed(&app).await;
    assert_eq!(
        snapshot(&app, id).await,
        before,
        "the instance is untouched"
    );
    assert_eq!(
        snapshot(&app, other).await,
        before_other,
        "and so is the other one"
    );
    let samples: i64 = sqlx::query_scalar("SELECT count(*) FROM gpu_samples")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(samples, 0);

    // A finished instance's agent is told to stop.
    sqlx::query("UPDATE instances SET status = 'terminated' WHERE id = $1")
        .bind(id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, answer) = app
        .post(
            "/internal/workers/heartbeat",
            Some(&token),
            heartbeat_v2(id),
        )
        .await;
    assert_eq!(
        (status.as_u16(), error_code(&answer)),
        (409, "INSTANCE_FINISHED")
    );
}

#[tokio::test]
async fn the_rust_types_and_the_json_schemas_agree() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let (id, token) = instance(&app, a.id).await;
    // Every property the schema allows is understood (a full example passes)...
    let schema: Value = serde_json::from_str(SCHEMA_V2).unwrap();
    let full = heartbeat_v2(id);
    for key in schema["properties"].as_object().unwrap().keys() {
        assert!(full.get(key).is_some(), "the full example lacks {key}");
    }
    for key in schema["$defs"]["engine"]["properties"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            full["engine"].get(key).is_some(),
            "the full example lacks engine.{key}"
        );
    }
    assert_eq!(
        app.post("/internal/workers/heartbeat", Some(&token), full)
            .await
            .0,
        200
    );
    // ...and every required registration field is required.
    let register: Value = serde_json::from_str(REGISTER).unwrap();
    for field in register["required"].as_array().unwrap() {
        let mut v = register_body(id);
        v.as_object_mut().unwrap().remove(field.as_str().unwrap());
        assert_eq!(
            app.post("/internal/workers/register", Some(&token), v)
                .await
                .0,
            400,
            "register without {field}"
        );
    }
}

#[tokio::test]
async fn samples_past_retention_are_pruned() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let (id, token) = instance(&app, a.id).await;
    for _ in 0..3 {
        assert_eq!(
            app.post(
                "/internal/workers/heartbeat",
                Some(&token),
                heartbeat_v2(id)
            )
            .await
            .0,
            200
        );
    }
    flushed(&app).await;
    sqlx::query("UPDATE gpu_samples SET sampled_at = now() - interval '4 days' WHERE ctid IN (SELECT ctid FROM gpu_samples LIMIT 2)")
        .execute(&app.state.db)
        .await
        .unwrap();
    sqlx::query("UPDATE system_samples SET sampled_at = now() - interval '4 days' WHERE ctid IN (SELECT ctid FROM system_samples LIMIT 1)")
        .execute(&app.state.db)
        .await
        .unwrap();
    // Token counters go after their own, shorter retention.
    sqlx::query("UPDATE instance_token_counters SET sampled_at = now() - interval '3 hours' WHERE ctid IN (SELECT ctid FROM instance_token_counters LIMIT 1)")
        .execute(&app.state.db)
        .await
        .unwrap();
    let pruned = inventiv_api::routes::workers::prune_samples(
        &app.state.db,
        std::time::Duration::from_secs(72 * 3600),
        std::time::Duration::from_secs(2 * 3600),
    )
    .await
    .unwrap();
    assert_eq!(pruned, 4);
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM gpu_samples) + (SELECT count(*) FROM system_samples)",
    )
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!(left, 6 + 3 - 3);
    let counters: i64 = sqlx::query_scalar("SELECT count(*) FROM instance_token_counters")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(counters, 3 - 1);
}

/// The path as it runs, no flush called: the API's timer writes the latest
/// state (seen in the API's instance answer) and the samples (seen in the
/// instance's GPU and system series, as the dashboard reads them).
#[tokio::test]
async fn heartbeats_reach_the_instance_and_its_series_after_the_batch_interval() {
    let app = TestApp::spawn_with(&[("INVENTIV_HEARTBEAT_FLUSH_MS", "300")]).await;
    let a = app.org("a").await;
    let (id, token) = instance(&app, a.id).await;
    let (status, ack) = app
        .post(
            "/internal/workers/heartbeat",
            Some(&token),
            heartbeat_v2(id),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let path = format!("/instances/{id}");
    let shown = eventually(
        "the heartbeat's state on the instance",
        Duration::from_secs(10),
        || async {
            let (status, body) = app.get(&path, Some(&a.owner.token)).await;
            assert_eq!(status, 200, "{body}");
            (body["worker_status"] == "ready").then_some(body)
        },
    )
    .await;
    assert!(shown["last_heartbeat_at"].is_string(), "{shown}");
    assert_eq!(shown["worker_agent_version"], "0.1.0");
    let series = format!("/instances/{id}/metrics?minutes=5");
    let metrics = eventually(
        "the heartbeat's samples in the series",
        Duration::from_secs(10),
        || async {
            let (status, body) = app.get(&series, Some(&a.owner.token)).await;
            assert_eq!(status, 200, "{body}");
            let gpus = body["gpu"].as_array().map_or(0, Vec::len);
            let systems = body["system"].as_array().map_or(0, Vec::len);
            (gpus == 2 && systems == 1).then_some(body)
        },
    )
    .await;
    assert_eq!(metrics["gpu"][0]["utilization_pct"], 71.5);
    assert_eq!(metrics["system"][0]["cpu_pct"], 12.5);
    let counters: i64 =
        sqlx::query_scalar("SELECT count(*) FROM instance_token_counters WHERE instance_id = $1")
            .bind(id)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!(counters, 1);
}

/// A token replaced by a reinstall (the orchestrator stores a new hash) is
/// refused from the next heartbeat on; what was accepted before is written.
#[tokio::test]
async fn a_replaced_worker_token_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let (id, old) = instance(&app, a.id).await;
    let beat = |token: String| {
        let app = &app;
        async move {
            app.post(
                "/internal/workers/heartbeat",
                Some(&token),
                heartbeat_v2(id),
            )
            .await
        }
    };
    assert_eq!(beat(old.clone()).await.0, 200);
    let (new, hash) = inventiv_api::auth::tokens::generate();
    sqlx::query("UPDATE instances SET worker_token_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, answer) = beat(old).await;
    assert_eq!(status, 401, "{answer}");
    error_code(&answer);
    assert_eq!(beat(new).await.0, 200);
    flushed(&app).await;
    let gpu: i64 = sqlx::query_scalar("SELECT count(*) FROM gpu_samples WHERE instance_id = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(gpu, 2 * 2, "two accepted heartbeats of two GPUs each");
}

/// What the watchdog reads: `last_heartbeat_at` is the heartbeat's arrival
/// (not the batch's write), and a batch never moves it back, nor the state
/// with it, past a later write (a registration, another replica's batch).
#[tokio::test]
async fn last_heartbeat_at_is_the_arrival_and_never_goes_back() {
    let app = TestApp::spawn_with(&[("INVENTIV_HEARTBEAT_FLUSH_MS", "5000")]).await;
    let a = app.org("a").await;
    let (id, token) = instance(&app, a.id).await;
    let before = Utc::now();
    let (status, _) = app
        .post(
            "/internal/workers/heartbeat",
            Some(&token),
            heartbeat_v2(id),
        )
        .await;
    assert_eq!(status, 200);
    let answered = Utc::now();
    flushed(&app).await;
    let last: DateTime<Utc> =
        sqlx::query_scalar("SELECT last_heartbeat_at FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert!(
        last >= before.trunc_subsecs(6) && last <= answered,
        "{before} ≤ {last} ≤ {answered}"
    );

    // A later write is there when the batch comes.
    sqlx::query("UPDATE instances SET last_heartbeat_at = now() + interval '1 hour', worker_status = 'starting' WHERE id = $1")
        .bind(id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let later: DateTime<Utc> =
        sqlx::query_scalar("SELECT last_heartbeat_at FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    let (status, _) = app
        .post(
            "/internal/workers/heartbeat",
            Some(&token),
            heartbeat_v2(id),
        )
        .await;
    assert_eq!(status, 200);
    flushed(&app).await;
    let (now_last, worker_status): (DateTime<Utc>, String) =
        sqlx::query_as("SELECT last_heartbeat_at, worker_status FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert_eq!((now_last, worker_status.as_str()), (later, "starting"));
    // Its samples are kept all the same (telemetry).
    let gpu: i64 = sqlx::query_scalar("SELECT count(*) FROM gpu_samples WHERE instance_id = $1")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(gpu, 4);
}

/// The watchdog is not fooled by the batching: while a worker heartbeats
/// every 100 ms, its stored last heartbeat is never older than the batch
/// interval plus the heartbeat interval (the watchdog's threshold, 30 s by
/// default, is far above), asked the way the watchdog asks.
#[tokio::test]
async fn the_watchdog_sees_a_live_worker_within_one_batch_interval() {
    let flush = Duration::from_millis(500);
    let app = TestApp::spawn_with(&[("INVENTIV_HEARTBEAT_FLUSH_MS", "500")]).await;
    let a = app.org("a").await;
    let (id, token) = instance(&app, a.id).await;
    sqlx::query("UPDATE instances SET status = 'ready', last_heartbeat_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let every = Duration::from_millis(100);
    let threshold = flush + every + Duration::from_millis(400);
    let mut tick = tokio::time::interval(every);
    for _ in 0..30 {
        tick.tick().await;
        let (status, _) = app
            .post(
                "/internal/workers/heartbeat",
                Some(&token),
                heartbeat_v2(id),
            )
            .await;
        assert_eq!(status, 200);
        let stale: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM instances WHERE status = 'ready'
                AND (last_heartbeat_at IS NULL OR last_heartbeat_at < now() - make_interval(secs => $1))",
        )
        .bind(threshold.as_secs_f64())
        .fetch_all(&app.state.db)
        .await
        .unwrap();
        assert!(stale.is_empty(), "seen as silent for {threshold:?}");
    }
}
