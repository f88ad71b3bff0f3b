//! Durable metering against a real database that refuses usage rows (a
//! trigger raising on every insert): the answered requests' usage waits in
//! the replica's journal on disk, past the journal's limit `/v1` answers
//! 503 `metering_unavailable` without forwarding anything, and when the
//! database accepts again every answered request has exactly one row, in
//! the order they were answered. A replica that is gone leaves its journal
//! to another, which commits it.

use std::time::Duration;

use crate::support::engines::serving;
use crate::support::{engine_metric, eventually, TestApp};
use inventiv_api::proxy::journal;
use inventiv_api::proxy::usage::UsageRecord;
use serde_json::{json, Value};

const REFUSE: [&str; 2] = [
    "CREATE FUNCTION refuse_usage() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN RAISE EXCEPTION 'usage writes refused by the test'; END $$",
    "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_records
       FOR EACH ROW EXECUTE FUNCTION refuse_usage()",
];
const ACCEPT: &str = "DROP TRIGGER refuse_usage ON usage_records";

async fn sql(app: &TestApp, statements: &[&str]) {
    for s in statements {
        sqlx::query(s).execute(&app.state.db).await.unwrap();
    }
}

/// One request with its own request id: the status, the answer's body and
/// whether it ended as a complete answer (`[DONE]` for a stream).
async fn call(app: &TestApp, key: &str, id: &str, stream: bool) -> (u16, Value, bool) {
    let body = json!({ "model": "mock/model", "messages": [{ "role": "user", "content": "tell me about GPUs" }],
                       "max_tokens": 8, "stream": stream });
    let res = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    if stream && status == 200 {
        return (
            status,
            Value::Null,
            text.trim_end().ends_with("data: [DONE]"),
        );
    }
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let complete = status == 200 && json["usage"]["completion_tokens"].as_i64() > Some(0);
    (status, json, complete)
}

/// The usage rows' request ids in row order, once there are `want`.
async fn rows(app: &TestApp, want: usize) -> Vec<String> {
    eventually(
        &format!("{want} usage rows"),
        Duration::from_secs(20),
        || async {
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT request_id FROM usage_records ORDER BY id")
                    .fetch_all(&app.state.db)
                    .await
                    .unwrap();
            (ids.len() >= want).then_some(ids)
        },
    )
    .await
}

fn journal_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_database_refusing_usage_fills_the_journal_then_v1_refuses_and_metering_resumes_in_order()
{
    let app = TestApp::spawn_with(&[
        ("INVENTIV_REPLICA_ID", "api-1"),
        ("INVENTIV_USAGE_JOURNAL_MAX_BYTES", "8192"),
    ])
    .await;
    let (engine, a) = serving(&app, "a", &[]).await;
    let key = a.api_key.clone();
    let journal = app.state_dir.join("usage-journal").join("api-1");
    sql(&app, &REFUSE).await;

    // Answers keep coming (streamed or not) while their usage goes to the
    // journal, until the journal holds its limit.
    let mut answered = Vec::new();
    let refusal = loop {
        assert!(answered.len() < 200, "the journal limit never refused");
        let id = format!("req-{:03}", answered.len());
        let (status, body, complete) = call(&app, &key, &id, answered.len() % 3 == 0).await;
        match status {
            200 => {
                assert!(complete, "{id}: a complete answer");
                answered.push(id);
            }
            503 => break body,
            other => panic!("{id}: {other} {body}"),
        }
    };
    assert!(answered.len() >= 10, "{} answered", answered.len());
    assert!(journal_bytes(&journal) > 8192, "the journal holds them");
    assert_eq!(
        refusal["error"]["code"], "metering_unavailable",
        "{refusal}"
    );
    assert_eq!(refusal["error"]["type"], "server_error");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("metering")),
        "{refusal}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "the database refused every row");

    // Refused before anything is forwarded, streams too; readiness says why.
    let served = engine_metric(engine.port, "vllm:request_success_total").await;
    for (n, stream) in [(0, false), (1, true)] {
        let (status, body, _) = call(&app, &key, &format!("refused-{n}"), stream).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "metering_unavailable");
    }
    assert_eq!(
        engine_metric(engine.port, "vllm:request_success_total").await,
        served,
        "nothing reached the engine"
    );
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, 503, "{ready}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("inventiv_usage_journal_limit_bytes 8192"),
        "{metrics}"
    );
    let pending: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("inventiv_usage_journal_pending_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(pending > 8192, "{metrics}");
    assert!(
        ready["checks"]["usage_journal"]
            .as_str()
            .is_some_and(|j| j.starts_with("full")),
        "{ready}"
    );

    // The database accepts again: every answered request has one row, in
    // the order answered, and /v1 serves again.
    sql(&app, &[ACCEPT]).await;
    let ids = rows(&app, answered.len()).await;
    assert_eq!(ids, answered, "one row per answered request, in order");
    eventually("/v1 serving again", Duration::from_secs(20), || async {
        let (status, _, complete) = call(&app, &key, "after", false).await;
        (status == 200 && complete).then_some(())
    })
    .await;
    let mut all = answered.clone();
    all.push("after".into());
    assert_eq!(rows(&app, all.len()).await, all);
    eventually("the journal committed", Duration::from_secs(10), || async {
        (app.state.usage.fill().unwrap().pending_bytes == 0).then_some(())
    })
    .await;
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["usage_journal"], "ok");
}

#[tokio::test]
async fn a_replica_that_is_gone_leaves_its_journal_to_another() {
    let shared = std::env::temp_dir().join(format!(
        "inventiv-test-shared-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let shared_dir = shared.display().to_string();
    let app = TestApp::spawn_with(&[
        ("INVENTIV_STATE_DIR", &shared_dir),
        ("INVENTIV_REPLICA_ID", "gone"),
    ])
    .await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let key = a.api_key.clone();
    let other = app
        .replica_with(&[
            ("INVENTIV_STATE_DIR", &shared_dir),
            ("INVENTIV_REPLICA_ID", "survivor"),
        ])
        .await;
    sql(&app, &REFUSE).await;

    let mut answered = Vec::new();
    for n in 0..6 {
        let id = format!("gone-{n}");
        let (status, body, complete) = call(&app, &key, &id, n % 2 == 0).await;
        assert!(status == 200 && complete, "{status} {body}");
        answered.push(id);
    }
    // The replica goes away with its usage still only in its journal.
    let journal = shared.join("usage-journal").join("gone");
    app.stop().await;
    assert!(journal_bytes(&journal) > 0);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_records")
        .fetch_one(&other.state.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    // The survivor adopts the orphaned journal once the database accepts.
    sql(&other, &[ACCEPT]).await;
    let ids = rows(&other, answered.len()).await;
    assert_eq!(ids, answered);
    eventually(
        "the adopted journal removed",
        Duration::from_secs(10),
        || async { (!journal.exists()).then_some(()) },
    )
    .await;
    other.stop().await;
    let _ = std::fs::remove_dir_all(&shared);
}

#[tokio::test]
async fn a_restart_replays_its_journal_and_a_replay_adds_no_row() {
    let shared = std::env::temp_dir().join(format!(
        "inventiv-test-shared-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let shared_dir = shared.display().to_string();
    let own = [
        ("INVENTIV_STATE_DIR", shared_dir.as_str()),
        ("INVENTIV_REPLICA_ID", "api-r"),
    ];
    let app = TestApp::spawn_with(&own).await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    let key = a.api_key.clone();
    let mut answered = Vec::new();
    for n in 0..4 {
        let id = format!("kept-{n}");
        let (status, body, complete) = call(&app, &key, &id, n % 2 == 1).await;
        assert!(status == 200 && complete, "{status} {body}");
        answered.push(id);
    }
    assert_eq!(rows(&app, answered.len()).await, answered);
    let anchor = app.replica().await;
    app.stop().await;

    // A crash between the commit and the checkpoint: the next start replays
    // what is still in the journal; the database keeps one row per request.
    let journal = shared.join("usage-journal").join("api-r");
    std::fs::write(journal.join("checkpoint"), "0 0\n").unwrap();
    assert!(journal_bytes(&journal) > 0, "the last segment is kept");
    let again = anchor.replica_with(&own).await;
    eventually("the replay committed", Duration::from_secs(20), || async {
        let left = again.state.usage.fill().unwrap().pending_bytes;
        let checkpoint = std::fs::read_to_string(journal.join("checkpoint")).unwrap_or_default();
        (left == 0 && checkpoint != "0 0\n").then_some(())
    })
    .await;
    let ids: Vec<String> = sqlx::query_scalar("SELECT request_id FROM usage_records ORDER BY id")
        .fetch_all(&again.state.db)
        .await
        .unwrap();
    assert_eq!(ids, answered, "no row added by the replay");
    again.stop().await;
    let _ = std::fs::remove_dir_all(&shared);
}

#[tokio::test]
async fn an_operator_replays_a_journal_directory() {
    let app = TestApp::spawn().await;
    let root = app.state_dir.join("elsewhere");
    let (metering, background) =
        journal::open(&root, "dead", 1 << 20, journal::writer::GATHER_WAIT)
            .await
            .unwrap();
    let org = uuid::Uuid::new_v4();
    let mut ids = Vec::new();
    for n in 0..3 {
        let record = UsageRecord {
            usage_id: uuid::Uuid::new_v4(),
            request_id: format!("dead-{n}"),
            at: chrono::Utc::now(),
            organization_id: org,
            model: "mock/model".into(),
            endpoint: "/v1/chat/completions",
            prompt_tokens: 3,
            completion_tokens: 5,
            status: 200,
            ..UsageRecord::default()
        };
        ids.push(record.request_id.clone());
        metering.record(record).wait().await.unwrap();
    }
    let dir = root.join("dead");
    // Live: refused.
    assert!(
        journal::shipper::replay_dir(&app.state.db, Duration::ZERO, &dir)
            .await
            .is_err()
    );
    let journal::Background::Journal(mut shipper) = background else {
        panic!("a journal")
    };
    shipper.stop_writer().await;
    drop(shipper);
    journal::shipper::replay_dir(&app.state.db, Duration::ZERO, &dir)
        .await
        .unwrap();
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT request_id FROM usage_records WHERE organization_id = $1 ORDER BY id",
    )
    .bind(org)
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    assert_eq!(stored, ids);
    assert!(!dir.exists());
}

#[tokio::test]
async fn the_benchmark_baseline_meters_in_memory_without_a_journal() {
    let app = TestApp::spawn_with(&[
        ("INVENTIV_USAGE_JOURNAL", "off"),
        ("INVENTIV_INSECURE_DEVELOPMENT", "1"),
    ])
    .await;
    let (_engine, a) = serving(&app, "a", &[]).await;
    for (n, stream) in [(0, false), (1, true)] {
        let (status, body, complete) = call(&app, &a.api_key, &format!("mem-{n}"), stream).await;
        assert!(status == 200 && complete, "{status} {body}");
    }
    assert_eq!(rows(&app, 2).await, ["mem-0", "mem-1"]);
    assert!(app.state.usage.fill().is_none());
    assert!(!app.state_dir.join("usage-journal").exists());
    let (status, ready) = app.get("/readyz", None).await;
    assert_eq!(status, 200);
    assert!(ready["checks"].get("usage_journal").is_none(), "{ready}");
}
