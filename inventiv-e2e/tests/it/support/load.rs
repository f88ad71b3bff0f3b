//! Real load for the scaling tests: closed-loop clients of the model
//! through the API's `/v1` with an API key, every answer checked and
//! counted; and the load the API replicas publish for the autoscaler, as
//! it reads it. With a slow mock engine (`Stack::mock_engine_args`) each
//! client keeps about one request outstanding all the time.

use inventiv_common::signals::{self, Snapshot};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Stack, MODEL};

/// What a group of clients got: answers complete and well formed, and a
/// description of each one that was not.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: Vec<String>,
}

/// Clients running until [`Clients::stop`].
pub struct Clients {
    stop: CancellationToken,
    tasks: JoinSet<Tally>,
}

impl Clients {
    /// Stops them (each one finishes the request it is on first: none is
    /// cut) and adds up what they got.
    pub async fn stop(self) -> Tally {
        self.stop.cancel();
        let mut total = Tally::default();
        for t in self.tasks.join_all().await {
            total.ok += t.ok;
            total.failed.extend(t.failed);
        }
        total
    }
}

impl Stack {
    /// Stops `clients` and fails the test, with the logs, when any of
    /// their requests failed; returns how many were answered.
    pub async fn all_answered(&self, clients: Clients) -> u64 {
        let tally = clients.stop().await;
        assert!(
            tally.failed.is_empty(),
            "{} of {} requests failed: {:?}\n{}",
            tally.failed.len(),
            tally.ok + tally.failed.len() as u64,
            tally.failed,
            self.logs()
        );
        tally.ok
    }

    /// Waits until `n` requests were metered (all of them, or those served
    /// by `instance`).
    pub async fn until_metered(&self, n: i64, instance: Option<Uuid>) {
        self.until(
            "requests metered",
            std::time::Duration::from_secs(20),
            || async {
                let metered: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM usage_records WHERE $1::uuid IS NULL OR instance_id = $1",
                )
                .bind(instance)
                .fetch_one(&self.db)
                .await
                .unwrap();
                (metered >= n).then_some(())
            },
        )
        .await;
    }

    /// `n` clients, each sending a chat completion of `MODEL` with `key`
    /// as soon as its previous one ended, streamed and whole in turn.
    pub fn clients(&self, key: &str, n: usize) -> Clients {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for first_streamed in (0..n).map(|i| i % 2 == 0) {
            let (http, key, stop) = (self.http.clone(), key.to_owned(), stop.clone());
            let url = format!("{}/v1/chat/completions", self.api);
            tasks.spawn(async move {
                let mut tally = Tally::default();
                let mut stream = first_streamed;
                while !stop.is_cancelled() {
                    match chat(&http, &url, &key, stream).await {
                        Ok(()) => tally.ok += 1,
                        Err(e) => tally.failed.push(e),
                    }
                    stream = !stream;
                }
                tally
            });
        }
        Clients { stop, tasks }
    }

    /// The requests of (`org`, `MODEL`) outstanding in the API replicas'
    /// latest snapshots, and when the newest of those was taken (ms since
    /// the epoch); None before any.
    pub async fn published_outstanding(&self, org: Uuid) -> Option<(i64, u64)> {
        let mut redis = self.redis.clone();
        let replicas: Vec<String> = redis::cmd("ZRANGE")
            .arg(signals::index_key(&self.prefix))
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await
            .unwrap();
        let mut newest = None;
        let mut outstanding = 0;
        for r in replicas {
            let text: Option<String> = redis::cmd("GET")
                .arg(signals::replica_key(&self.prefix, &r))
                .query_async(&mut redis)
                .await
                .unwrap();
            let Some(snapshot) = text.and_then(|t| serde_json::from_str::<Snapshot>(&t).ok())
            else {
                continue;
            };
            newest = newest.max(Some(snapshot.at_ms));
            outstanding += snapshot
                .models
                .iter()
                .filter(|m| m.organization_id == org && m.model == MODEL)
                .map(|m| m.outstanding)
                .sum::<u64>();
        }
        newest.map(|at| (at, outstanding))
    }
}

/// One chat completion; what was wrong with its answer, if anything.
async fn chat(http: &reqwest::Client, url: &str, key: &str, stream: bool) -> Result<(), String> {
    let res = http
        .post(url)
        .bearer_auth(key)
        .json(&json!({ "model": MODEL, "stream": stream, "max_tokens": 8,
                       "messages": [{ "role": "user", "content": "under load" }] }))
        .send()
        .await
        .map_err(|e| format!("stream {stream}: not sent: {e}"))?;
    let status = res.status().as_u16();
    let text = res
        .text()
        .await
        .map_err(|e| format!("stream {stream}: {status}, body cut: {e}"))?;
    let complete = if stream {
        text.contains("data: [DONE]") && !text.contains("\"error\"")
    } else {
        serde_json::from_str::<Value>(&text).is_ok_and(|a| a["choices"][0]["message"].is_object())
    };
    if status == 200 && complete {
        Ok(())
    } else {
        let head: String = text.chars().take(300).collect();
        Err(format!("stream {stream}: {status}: {head}"))
    }
}
