//! The least time between two accepted heartbeats of one worker
//! (`INVENTIV_HEARTBEAT_MIN_INTERVAL_MS`): one sooner than that after the
//! last accepted one is a 429 `HEARTBEAT_TOO_FREQUENT` with `Retry-After`,
//! and nothing of it is stored; refused ones do not move the clock, other
//! workers are not held back, and once the interval has passed the next
//! heartbeat is accepted.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{error_code, eventually, TestApp};
use crate::workers::{flushed, heartbeat_v2, instance};

const INTERVAL: Duration = Duration::from_millis(1500);

/// A heartbeat of `id` that says `running` requests are running.
fn beat(id: Uuid, running: u32) -> Value {
    let mut body = heartbeat_v2(id);
    body["engine"]["requests_running"] = json!(running);
    body
}

/// What the database holds of `id`'s heartbeats: its requests running
/// (the latest state) and its GPU samples.
async fn stored(app: &TestApp, id: Uuid) -> (Option<i32>, i64) {
    sqlx::query_as(
        "SELECT worker_requests_running, (SELECT count(*) FROM gpu_samples WHERE instance_id = $1)
           FROM instances WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.state.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_heartbeat_sooner_than_the_interval_is_refused_and_not_stored() {
    let ms = INTERVAL.as_millis().to_string();
    let app = TestApp::spawn_with(&[("INVENTIV_HEARTBEAT_MIN_INTERVAL_MS", &ms)]).await;
    let a = app.org("a").await;
    let (id, token) = instance(&app, a.id).await;
    let (other, other_token) = instance(&app, a.id).await;
    let path = "/internal/workers/heartbeat";

    // Before the API stamps it: the interval ends after `sent` + INTERVAL.
    let sent = Instant::now();
    let (status, ack) = app.post(path, Some(&token), beat(id, 1)).await;
    assert_eq!(status, 200, "{ack}");
    let (status, headers, refused) = app
        .call(Method::POST, path, Some(&token), Some(&beat(id, 2)))
        .await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(error_code(&refused), "HEARTBEAT_TOO_FREQUENT");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    // Another worker is not held back by this one.
    let (status, ack) = app.post(path, Some(&other_token), beat(other, 5)).await;
    assert_eq!(status, 200, "{ack}");
    flushed(&app).await;
    assert_eq!(
        stored(&app, id).await,
        (Some(1), 2),
        "the first heartbeat only"
    );
    assert_eq!(stored(&app, other).await, (Some(5), 2));

    // Refused until the interval has passed since the accepted one, then
    // accepted: the refusals on the way (every 20 ms) do not move it.
    eventually(
        "a heartbeat accepted after the interval",
        Duration::from_secs(10),
        || async {
            let (status, body) = app.post(path, Some(&token), beat(id, 3)).await;
            if status == 429 {
                return None;
            }
            assert_eq!(status, 200, "{body}");
            Some(())
        },
    )
    .await;
    assert!(
        sent.elapsed() >= INTERVAL,
        "accepted after {:?}",
        sent.elapsed()
    );
    flushed(&app).await;
    assert_eq!(
        stored(&app, id).await,
        (Some(3), 4),
        "the first and the last"
    );
}
