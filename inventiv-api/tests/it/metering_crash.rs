//! Acceptance: metering survives `kill -9`. Two API replica processes (the
//! real binary) on one database and Redis serve a model (the mock engine
//! behind its relay) under steady load, streamed and not, while one of
//! them is killed with SIGKILL every second or so, several times, and
//! started again on its state dir. Afterwards:
//!
//! - every request whose complete answer the client received (not
//!   streamed: 200 with its usage; streamed: `[DONE]` read) has exactly one
//!   usage row, found by the `x-request-id` the client sent (kept as the
//!   row's `request_id`), status 200 and the very token counts the engine
//!   put in that answer; so Σ tokens of these rows equal the tokens
//!   the engine counted for these requests;
//! - against the engine's counters (`vllm:prompt_tokens_total`,
//!   `vllm:generation_tokens_total`): the counters minus that Σ are the
//!   tokens of the requests cut by a kill, which may or may not have a row
//!   (with partial counts: what the proxy saw before the cut), and which
//!   is between 0 and what those requests could have used at most; and all
//!   rows together (cut requests included) never exceed the counters;
//! - no request has two rows.
//!
//! It cannot pass by accident: every kill lands while requests are in
//! flight on the victim (they are cut) and within the in-memory writer's
//! flush interval (0.5 s) of an answer the victim completed, so a meter
//! that keeps records in memory before writing them loses that answer's
//! row (against main's writer, tens of rows go missing per run); each
//! life of each replica completes requests; both kinds of requests
//! complete (by the hundreds on an idle machine, at least 20 each).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::engines::serving;
use crate::support::replica::Replica;
use crate::support::{engine_metric, eventually, TestApp};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const REPLICAS: usize = 2;
const CLIENTS_PER_REPLICA: usize = 6;
const KILLS: usize = 6;
const MAX_TOKENS: i64 = 16;
/// What the in-memory writer may hold before writing (its flush tick).
const WRITER_WINDOW: Duration = Duration::from_millis(500);
/// A kill waits for an answer completed on the victim this recently.
const KILL_AFTER: Duration = Duration::from_millis(150);
/// Answers each life of a replica completes before it may be killed.
const ANSWERS_PER_LIFE: usize = 10;
/// A kill every so often (at least), alternating the replicas: each life
/// serves a few seconds.
const KILL_EVERY: Duration = Duration::from_millis(1500);

/// One request as its client saw it.
struct Outcome {
    request_id: String,
    replica: usize,
    life: usize,
    stream: bool,
    /// The usage of the complete answer (prompt, completion); None when
    /// there was none.
    answer: Option<(i64, i64)>,
    /// No complete answer, and no error answer either: the connection
    /// broke (a kill cut the request, or it was sent as the replica died).
    cut: bool,
    finished: Instant,
}

/// How a request ended for its client.
enum Ended {
    Complete(i64, i64),
    /// An error status (e.g. from a replica that just started and does
    /// not route the model yet).
    Refused,
    Cut,
}

/// What the clients share with the test.
struct Load {
    /// Each replica's address and life, None while it is down.
    addrs: Mutex<Vec<Option<(SocketAddr, usize)>>>,
    outcomes: Mutex<Vec<Outcome>>,
    in_flight: [AtomicUsize; REPLICAS],
    key: String,
    stop: CancellationToken,
}

impl Load {
    fn set(&self, replica: usize, at: Option<(SocketAddr, usize)>) {
        self.addrs.lock().unwrap()[replica] = at;
    }

    /// Answers completed by `replica` in `life`, and when the last one was.
    fn completed(&self, replica: usize, life: usize) -> (usize, Option<Instant>) {
        let outcomes = self.outcomes.lock().unwrap();
        let done = outcomes
            .iter()
            .filter(|o| o.replica == replica && o.life == life && o.answer.is_some());
        done.fold((0, None), |(n, last), o| {
            (n + 1, last.max(Some(o.finished)))
        })
    }
}

fn body(stream: bool) -> Value {
    let mut body = json!({
        "model": "mock/model",
        "messages": [{ "role": "user", "content": "tell me about metering" }],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

fn usage_of(v: &Value) -> Option<(i64, i64)> {
    Some((
        v["usage"]["prompt_tokens"].as_i64()?,
        v["usage"]["completion_tokens"].as_i64()?,
    ))
}

/// One request, and how it ended.
async fn call(
    http: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
    id: &str,
    stream: bool,
) -> Ended {
    let sent = http
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&body(stream))
        .send()
        .await;
    let res = match sent {
        Ok(res) if res.status() == reqwest::StatusCode::OK => res,
        Ok(_) => return Ended::Refused,
        Err(_) => return Ended::Cut,
    };
    let usage = if stream {
        read_stream(res).await
    } else {
        res.json::<Value>().await.ok().and_then(|v| usage_of(&v))
    };
    usage.map_or(Ended::Cut, |(p, c)| Ended::Complete(p, c))
}

/// The usage of a stream that ended with `[DONE]`.
async fn read_stream(res: reqwest::Response) -> Option<(i64, i64)> {
    let mut events = res.bytes_stream();
    let mut text = String::new();
    let mut usage = None;
    while let Some(Ok(bytes)) = events.next().await {
        text.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let data = event.trim().strip_prefix("data:").map(str::trim);
            match data {
                Some("[DONE]") => return usage,
                Some(json) => {
                    if let Some(u) = serde_json::from_str::<Value>(json)
                        .ok()
                        .and_then(|v| usage_of(&v))
                    {
                        usage = Some(u);
                    }
                }
                None => {}
            }
        }
    }
    None
}

/// A client sending one request after the other to `replica` until the
/// load stops, alternating streamed and not.
async fn client(load: Arc<Load>, replica: usize, n: usize) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut sent = 0usize;
    while !load.stop.is_cancelled() {
        let Some((addr, life)) = load.addrs.lock().unwrap()[replica] else {
            // Down for a restart: back as soon as it listens again.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = load.stop.cancelled() => {}
            }
            continue;
        };
        let stream = (sent + n) % 2 == 1;
        let request_id = format!("crash-{}", uuid::Uuid::new_v4().simple());
        load.in_flight[replica].fetch_add(1, Ordering::SeqCst);
        let ended = call(&http, addr, &load.key, &request_id, stream).await;
        load.in_flight[replica].fetch_sub(1, Ordering::SeqCst);
        load.outcomes.lock().unwrap().push(Outcome {
            request_id,
            replica,
            life,
            stream,
            answer: match ended {
                Ended::Complete(p, c) => Some((p, c)),
                _ => None,
            },
            cut: matches!(ended, Ended::Cut),
            finished: Instant::now(),
        });
        sent += 1;
    }
}

/// The engine's token counters (prompt, generation).
async fn engine_tokens(port: u16) -> (i64, i64) {
    (
        engine_metric(port, "vllm:prompt_tokens_total").await,
        engine_metric(port, "vllm:generation_tokens_total").await,
    )
}

/// (rows, prompt, completion, lowest status) per request id of `org`.
async fn rows(app: &TestApp, org: uuid::Uuid) -> HashMap<String, (i64, i64, i64, i32)> {
    let rows: Vec<(String, i64, i64, i64, i32)> = sqlx::query_as(
        "SELECT request_id, count(*), sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, min(status)
           FROM usage_records WHERE organization_id = $1 GROUP BY request_id",
    )
    .bind(org)
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, n, p, c, s)| (id, (n, p, c, s)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_request_is_metered_once_across_kill_9s() {
    let app = TestApp::spawn().await;
    // Streams long enough to be cut: 16 tokens at 100/s after 20 ms.
    let (engine, org) = serving(
        &app,
        "crash",
        &["--ttft-ms", "20", "--tokens-per-second", "100"],
    )
    .await;
    // The worker stays fresh for the replicas' routing all test long (no
    // agent heartbeats here).
    sqlx::query("UPDATE instances SET last_heartbeat_at = now() + interval '1 hour' WHERE id = $1")
        .bind(org.instance_id)
        .execute(&app.state.db)
        .await
        .unwrap();

    let mut replicas = Vec::new();
    for name in ["replica-a", "replica-b"] {
        replicas.push(Replica::start(&app, name, &[]).await);
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for r in &replicas {
        let addr = r.addr.unwrap();
        eventually(
            &format!("{} to route mock/model", r.name),
            Duration::from_secs(20),
            || async {
                let res = http
                    .get(format!("http://{addr}/v1/models"))
                    .bearer_auth(&org.api_key)
                    .send()
                    .await
                    .ok()?;
                res.text()
                    .await
                    .ok()
                    .filter(|t| t.contains("mock/model"))
                    .map(|_| ())
            },
        )
        .await;
    }
    let engine_before = engine_tokens(engine.port).await;

    let load = Arc::new(Load {
        addrs: Mutex::new(
            replicas
                .iter()
                .map(|r| Some((r.addr.unwrap(), 0)))
                .collect(),
        ),
        outcomes: Mutex::default(),
        in_flight: std::array::from_fn(|_| AtomicUsize::new(0)),
        key: org.api_key.clone(),
        stop: CancellationToken::new(),
    });
    let clients: Vec<_> = (0..REPLICAS * CLIENTS_PER_REPLICA)
        .map(|n| tokio::spawn(client(load.clone(), n % REPLICAS, n)))
        .collect();

    // kill -9 the replicas in turn, each time just after it completed an
    // answer and while it has requests in flight, then start it again.
    let mut kills: Vec<(usize, usize, Instant)> = Vec::new();
    let mut last_kill = Instant::now();
    for k in 0..KILLS {
        let victim = k % REPLICAS;
        let life = replicas[victim].lives - 1;
        eventually(
            &format!(
                "{} (life {life}) busy, just after an answer",
                replicas[victim].name
            ),
            Duration::from_secs(60),
            || {
                let load = load.clone();
                let due = last_kill.elapsed() >= KILL_EVERY;
                async move {
                    let (done, last) = load.completed(victim, life);
                    let busy = load.in_flight[victim].load(Ordering::SeqCst) > 0;
                    let recent = last.is_some_and(|t| t.elapsed() < KILL_AFTER);
                    (due && done >= ANSWERS_PER_LIFE && busy && recent).then_some(())
                }
            },
        )
        .await;
        replicas[victim].kill();
        last_kill = Instant::now();
        kills.push((victim, life, last_kill));
        load.set(victim, None);
        replicas[victim].restart().await;
        load.set(victim, Some((replicas[victim].addr.unwrap(), life + 1)));
    }
    // Every last life serves too before the load stops.
    for (r, replica) in replicas.iter().enumerate() {
        let life = replica.lives - 1;
        eventually(
            &format!("{} (life {life}) answers", replica.name),
            Duration::from_secs(60),
            || {
                let load = load.clone();
                async move { (load.completed(r, life).0 >= ANSWERS_PER_LIFE).then_some(()) }
            },
        )
        .await;
    }
    load.stop.cancel();
    for c in clients {
        c.await.unwrap();
    }

    let outcomes = std::mem::take(&mut *load.outcomes.lock().unwrap());
    let completed: Vec<&Outcome> = outcomes.iter().filter(|o| o.answer.is_some()).collect();

    // Not by accident: each kill cut requests, and came within the
    // in-memory writer's window of an answer the victim completed.
    for (victim, life, at) in &kills {
        let of_life = |o: &Outcome| o.replica == *victim && o.life == *life;
        let cut = outcomes.iter().filter(|o| of_life(o) && o.cut).count();
        assert!(
            cut > 0,
            "the kill of replica {victim} life {life} cut no request"
        );
        let fresh = completed
            .iter()
            .filter(|o| of_life(o))
            .filter(|o| o.finished <= *at && at.duration_since(o.finished) < WRITER_WINDOW)
            .count();
        assert!(
            fresh > 0,
            "no answer within {WRITER_WINDOW:?} before the kill of replica {victim} life {life}"
        );
    }
    for (r, replica) in replicas.iter().enumerate() {
        for life in 0..replica.lives {
            let answered = completed
                .iter()
                .filter(|o| o.replica == r && o.life == life)
                .count();
            assert!(
                answered > 0,
                "{} life {life} answered nothing",
                replica.name
            );
        }
    }
    let streamed = completed.iter().filter(|o| o.stream).count();
    assert!(
        streamed >= 20 && completed.len() - streamed >= 20,
        "too few complete answers: {streamed} streamed, {} not",
        completed.len() - streamed
    );

    // The journals drain: every complete answer gets its row.
    let wanted: HashSet<&str> = completed.iter().map(|o| o.request_id.as_str()).collect();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let metered = loop {
        let metered = rows(&app, org.id).await;
        let missing = wanted
            .iter()
            .filter(|id| !metered.contains_key(**id))
            .count();
        if missing == 0 || tokio::time::Instant::now() >= until {
            break metered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let missing: Vec<&Outcome> = completed
        .iter()
        .copied()
        .filter(|o| !metered.contains_key(&o.request_id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} complete answers have no usage row after 30 s (lost by a kill -9), e.g. {:?}",
        missing.len(),
        completed.len(),
        missing
            .iter()
            .take(5)
            .map(|o| format!(
                "{} (replica {} life {}, stream {})",
                o.request_id, o.replica, o.life, o.stream
            ))
            .collect::<Vec<_>>()
    );

    // Exactly one row each, with the engine's counts of that answer.
    let (mut prompt, mut completion) = (0i64, 0i64);
    for o in &completed {
        let (n, p, c, status) = metered[&o.request_id];
        assert_eq!(n, 1, "{} has {n} usage rows", o.request_id);
        assert_eq!(status, 200, "{}: a complete answer", o.request_id);
        assert_eq!(
            Some((p, c)),
            o.answer,
            "{}: row counts vs the answer's usage",
            o.request_id
        );
        prompt += p;
        completion += c;
    }
    let sent: HashSet<&str> = outcomes.iter().map(|o| o.request_id.as_str()).collect();
    for (id, (n, ..)) in &metered {
        assert!(sent.contains(id.as_str()), "a row for {id}, never sent");
        assert_eq!(*n, 1, "{id} (cut by a kill) has {n} usage rows");
    }

    // The engine's counters, once it finished what the kills cut.
    eventually("the engine idle", Duration::from_secs(20), || async {
        (engine_metric(engine.port, "vllm:num_requests_running").await == 0).then_some(())
    })
    .await;
    let engine_after = engine_tokens(engine.port).await;
    let engine_prompt = engine_after.0 - engine_before.0;
    let engine_generation = engine_after.1 - engine_before.1;
    // One prompt for all: each request the engine saw counted it once.
    let per_request_prompt = completed[0].answer.map_or(0, |a| a.0);
    assert!(completed.iter().all(|o| o
        .answer
        .is_some_and(|a| a.0 == per_request_prompt && a.1 == MAX_TOKENS)));
    // What the engine counted beyond the complete answers is what the
    // other requests used: at most a prompt and MAX_TOKENS each.
    let incomplete = i64::try_from(outcomes.len() - completed.len()).unwrap();
    let (rest_prompt, rest_generation) = (engine_prompt - prompt, engine_generation - completion);
    assert!(
        (0..=per_request_prompt * incomplete).contains(&rest_prompt),
        "engine prompt tokens {engine_prompt} vs {prompt} metered for complete answers ({incomplete} incomplete requests)"
    );
    assert!(
        (0..=MAX_TOKENS * incomplete).contains(&rest_generation),
        "engine generation tokens {engine_generation} vs {completion} metered for complete answers ({incomplete} incomplete requests)"
    );
    let all_prompt: i64 = metered.values().map(|r| r.1).sum();
    let all_completion: i64 = metered.values().map(|r| r.2).sum();
    assert!(
        all_prompt <= engine_prompt && all_completion <= engine_generation,
        "metered ({all_prompt}, {all_completion}) beyond the engine's counters ({engine_prompt}, {engine_generation})"
    );
}
