//! The load signals a replica publishes for the autoscaler, read back from
//! Redis as the orchestrator reads them: requests in flight while a stream
//! runs, completed requests, tokens and first tokens once they end,
//! refusals for lack of a ready worker, all under the organization that
//! owns the serving instance (a shared model's provider, not its caller).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventiv_common::signals::{self, ModelLoad, Snapshot};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::engines::serving;
use crate::support::{eventually, TestApp};

/// Publishing every 300 ms while the test reads every 20 ms: no snapshot
/// is missed.
async fn app() -> TestApp {
    TestApp::spawn_with(&[("INVENTIV_SIGNALS_INTERVAL_MS", "300")]).await
}

type Seen = Arc<Mutex<BTreeMap<i64, Snapshot>>>;

/// Every snapshot the replica publishes, each kept once (by its time),
/// read in the background as the autoscaler would.
struct Watch {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch {
    fn start(app: &TestApp) -> Watch {
        let seen = Seen::default();
        let (state, into) = (app.state.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let key = signals::replica_key(&state.config.redis_prefix, &state.config.replica_id);
            let mut redis = state.redis.clone();
            loop {
                let text: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .unwrap();
                if let Some(s) = text.map(|t| serde_json::from_str::<Snapshot>(&t).unwrap()) {
                    into.lock().unwrap().insert(s.at_ms, s);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Watch { seen, task }
    }

    /// The load of (`org`, mock/model) in the latest snapshot seen.
    fn latest(&self, org: Uuid) -> Option<ModelLoad> {
        let seen = self.seen.lock().unwrap();
        let (_, s) = seen.last_key_value()?;
        s.models
            .iter()
            .find(|m| m.organization_id == org && m.model == "mock/model")
            .cloned()
    }

    /// Whether the latest snapshot seen has no model at all.
    fn latest_idle(&self) -> bool {
        let seen = self.seen.lock().unwrap();
        seen.last_key_value()
            .is_some_and(|(_, s)| s.models.is_empty())
    }

    /// The sum of every snapshot seen of (`org`, mock/model).
    fn total(&self, org: Uuid) -> ModelLoad {
        let mut sum = ModelLoad::default();
        let seen = self.seen.lock().unwrap();
        for m in seen
            .values()
            .flat_map(|s| &s.models)
            .filter(|m| m.organization_id == org)
        {
            sum.refused += m.refused;
            sum.completed += m.completed;
            sum.tokens += m.tokens;
            signals::add_buckets(&mut sum.ttft, &m.ttft);
        }
        sum
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "count" }], "max_tokens": 20, "stream": stream })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_publishes_its_load_per_owner_and_model() {
    let app = app().await;
    // 20 tokens at 10 a second: a stream that lasts about two seconds.
    let slow = ["--tokens-per-second", "10", "--output-len", "20"];
    let (_engine, a) = serving(&app, "a", &slow).await;
    let watch = Watch::start(&app);

    // Its headers are in: the stream is in flight until its body is read.
    let stream = app
        .post_response(
            "/v1/chat/completions",
            &a.api_key,
            &chat("mock/model", true),
        )
        .await;
    let load = eventually("the stream in flight", Duration::from_secs(10), || async {
        watch.latest(a.id).filter(|m| m.outstanding == 1)
    })
    .await;
    assert_eq!(load.outstanding, 1);
    let text = stream.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    let (status, answer) = app
        .post(
            "/v1/chat/completions",
            Some(&a.api_key),
            chat("mock/model", false),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    let total = eventually("both requests counted", Duration::from_secs(10), || async {
        let t = watch.total(a.id);
        (t.completed == 2).then_some(t)
    })
    .await;
    assert_eq!(
        total.ttft.iter().sum::<u64>(),
        1,
        "one stream, one first token"
    );
    assert!(total.tokens >= 20, "{total:?}");
    assert_eq!(total.refused, 0);
    // Once done, nothing in flight: the idle model leaves the snapshot.
    eventually("the model idle again", Duration::from_secs(10), || async {
        watch.latest_idle().then_some(())
    })
    .await;

    let metrics = app.metrics().await;
    let published = metrics
        .lines()
        .find_map(|l| l.strip_prefix("inventiv_signals_published_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(published.is_some_and(|n| n >= 2), "{metrics}");
    assert!(metrics.contains("inventiv_signals_publish_failures_total 0"));

    // A replica that stops takes its snapshot back at once.
    let (prefix, replica) = (
        app.state.config.redis_prefix.clone(),
        app.state.config.replica_id.clone(),
    );
    let mut redis = app.state.redis.clone();
    drop(watch);
    app.stop().await;
    let listed: Option<f64> = redis::cmd("ZSCORE")
        .arg(signals::index_key(&prefix))
        .arg(&replica)
        .query_async(&mut redis)
        .await
        .unwrap();
    let kept: Option<String> = redis::cmd("GET")
        .arg(signals::replica_key(&prefix, &replica))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!((listed, kept), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_model_counts_for_its_provider_and_refusals_count_too() {
    let app = app().await;
    let (_engine, provider) = serving(&app, "p", &[]).await;
    let consumer = app.org("c").await;
    let (_, share) = app.offer(&provider, &consumer).await;
    app.accept_share(share, &consumer).await;
    let mut cold = app.org("cold").await;
    app.add_instance(&mut cold).await;
    app.state.routing.refresh(&app.state).await.unwrap();
    let watch = Watch::start(&app);

    let address = format!("{}/mock/model", provider.slug);
    let (status, answer) = app
        .post(
            "/v1/chat/completions",
            Some(&consumer.api_key),
            chat(&address, false),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // An instance that is not ready yet: its model refuses, for no capacity.
    let (status, answer) = app
        .post(
            "/v1/chat/completions",
            Some(&cold.api_key),
            chat("mock/model", false),
        )
        .await;
    assert_eq!(status, 503, "{answer}");

    let (provider_load, cold_load) =
        eventually("both counted", Duration::from_secs(10), || async {
            let (p, c) = (watch.total(provider.id), watch.total(cold.id));
            (p.completed == 1 && c.refused == 1).then_some((p, c))
        })
        .await;
    assert!(provider_load.tokens > 0);
    assert_eq!(cold_load.completed, 0);
    assert_eq!(
        watch.total(consumer.id),
        ModelLoad::default(),
        "the caller carries no load"
    );
}
