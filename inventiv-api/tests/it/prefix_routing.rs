//! Prefix-cache-aware routing (issue 19) over three real mock engines:
//! requests sharing a long prompt prefix land on the worker that saw it
//! (and the engine serves it from its prefix cache), while a different
//! prefix may go elsewhere; and a worker loaded past the imbalance cap is
//! avoided even when it holds the prefix.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::engines::{engine, serve};
use crate::support::{rows_at_least, TestApp};

/// A long system prompt of its own for `group` (300 words: about 2 kB,
/// dozens of the router's blocks and of the engine's).
fn prefix(group: &str) -> String {
    (0..300)
        .map(|i| format!("{group}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn chat(group: &str, question: &str, stream: bool) -> Value {
    json!({
        "model": "mock/model",
        "messages": [
            { "role": "system", "content": prefix(group) },
            { "role": "user", "content": question },
        ],
        // A stream lasts ten seconds (the overload phase), an answer 0.4 s.
        "max_tokens": if stream { 100 } else { 4 },
        "stream": stream,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_prefix_sticks_to_its_worker_unless_it_is_overloaded() {
    let app = TestApp::spawn().await;
    // Slow decoding: 10 tokens a second.
    let flags = [
        "--enable-prompt-tokens-details",
        "--tokens-per-second",
        "10",
        "--output-len",
        "100",
    ];
    let engines = [
        engine(&flags).await,
        engine(&flags).await,
        engine(&flags).await,
    ];
    let mut a = app.org("a").await;
    let mut instances = Vec::new();
    for e in &engines {
        serve(&app, &mut a, e).await;
        instances.push(a.instance_id);
    }
    let key = a.api_key.clone();

    // Six questions per group, one at a time (no load to weigh): each
    // group's requests all go to one worker, and from the second on the
    // engine serves the prefix from its cache.
    let groups = ["alpha", "beta", "gamma"];
    for round in 0..6 {
        for group in groups {
            let res = app
                .post_response(
                    "/v1/chat/completions",
                    &key,
                    &chat(group, &format!("question {round} of {group}"), false),
                )
                .await;
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            let cached = body["usage"]["prompt_tokens_details"]["cached_tokens"].as_i64();
            if round > 0 {
                // 300 words: 18 whole blocks of 16 tokens in the cache.
                assert_eq!(cached, Some(288), "{group} round {round}: {body}");
            }
        }
    }
    let rows: Vec<(Uuid, i32)> = rows_at_least(
        &app,
        18,
        "SELECT instance_id, cached_prompt_tokens FROM usage_records ORDER BY id",
        None,
    )
    .await;
    let mut by_group: HashMap<&str, HashSet<Uuid>> = HashMap::new();
    for (i, (instance, _)) in rows.iter().enumerate() {
        by_group.entry(groups[i % 3]).or_default().insert(*instance);
    }
    for group in groups {
        assert_eq!(
            by_group[group].len(),
            1,
            "{group} went to one worker: {rows:?}"
        );
    }
    let alpha = *by_group["alpha"].iter().next().unwrap();

    // Overload alpha's worker: alpha streams, each under way before the
    // next. The first 9 stay on it (a full hit outweighs up to 8 requests
    // more than the least loaded worker: the cap); the next ones go
    // elsewhere.
    let mut streams = Vec::new();
    for n in 0..12 {
        let res = app
            .post_response(
                "/v1/chat/completions",
                &key,
                &chat("alpha", &format!("stream {n}"), true),
            )
            .await;
        assert_eq!(res.status(), 200);
        let mut body = res.bytes_stream();
        body.next().await.unwrap().unwrap();
        streams.push(body);
    }
    let outstanding: HashMap<Uuid, u32> = app
        .state
        .routing
        .outstanding()
        .into_iter()
        .map(|(_, instance, n)| (instance, n))
        .collect();
    assert_eq!(outstanding.values().sum::<u32>(), 12, "{outstanding:?}");
    assert_eq!(outstanding[&alpha], 9, "the cap held: {outstanding:?}");
    assert!(
        instances
            .iter()
            .filter(|i| **i != alpha)
            .any(|i| outstanding[i] > 0),
        "the overflow went to another worker: {outstanding:?}"
    );
    drop(streams);
}
