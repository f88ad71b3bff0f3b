//! Automatic prefix caching as vLLM reports it: with
//! `--enable-prompt-tokens-details`, a repeated prompt prefix shows
//! `usage.prompt_tokens_details.cached_tokens` (whole 16-token blocks,
//! never the last token) in whole answers and in the stream's final usage
//! chunk; without it, `prompt_tokens_details` stays `null`. The prefix
//! cache counters follow.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use serde_json::{json, Value};
use support::{config, spawn, CHAT, COMPLETIONS};

/// `n` distinct words: `n` prompt tokens for the engine.
fn prompt(n: usize) -> String {
    (0..n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn chat(system: &str, user: &str, extra: Value) -> Value {
    let mut body = json!({
        "model": "mock/model",
        "max_tokens": 4,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn details_on() -> inventiv_mock_engine::Config {
    inventiv_mock_engine::Config {
        prompt_tokens_details: true,
        ..config()
    }
}

#[tokio::test]
async fn a_repeated_prefix_reports_whole_cached_blocks() {
    let engine = spawn(details_on()).await;
    let system = prompt(40);
    let (status, first) = engine
        .post(CHAT, &chat(&system, "first question", json!({})))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["usage"]["prompt_tokens"], 42);
    assert_eq!(
        first["usage"]["prompt_tokens_details"],
        Value::Null,
        "nothing cached the first time"
    );
    // Same system prompt, another question: the system prompt's two whole
    // blocks (32 of its 40 tokens) are cached.
    let (_, second) = engine
        .post(CHAT, &chat(&system, "another one please", json!({})))
        .await;
    assert_eq!(second["usage"]["prompt_tokens"], 43);
    assert_eq!(
        second["usage"]["prompt_tokens_details"]["cached_tokens"],
        32
    );
    assert_eq!(second["usage"]["total_tokens"], 47);

    // Streamed: the final usage chunk carries the details; the continuous
    // usage on content chunks does not (as vLLM).
    let options = json!({"include_usage": true, "continuous_usage_stats": true});
    let sse = engine
        .stream(
            CHAT,
            &chat(
                &system,
                "first question",
                json!({"stream": true, "stream_options": options}),
            ),
        )
        .await;
    let usages = sse.usages();
    let (last, running) = usages.split_last().unwrap();
    assert_eq!(last["prompt_tokens_details"]["cached_tokens"], 32);
    assert!(running
        .iter()
        .all(|u| u["prompt_tokens_details"] == Value::Null));

    // Deterministic: the same sequence on a fresh engine, same counts.
    let fresh = spawn(details_on()).await;
    fresh
        .post(CHAT, &chat(&system, "first question", json!({})))
        .await;
    let (_, again) = fresh
        .post(CHAT, &chat(&system, "another one please", json!({})))
        .await;
    assert_eq!(again["usage"], second["usage"]);

    assert_eq!(
        engine
            .metric("vllm:prefix_cache_queries_total{model_name=\"mock/model\"}")
            .await,
        42.0 + 43.0 + 42.0
    );
    assert_eq!(
        engine
            .metric("vllm:prefix_cache_hits_total{model_name=\"mock/model\"}")
            .await,
        64.0
    );
}

#[tokio::test]
async fn completions_sum_the_cached_tokens_of_their_prompts() {
    let engine = spawn(details_on()).await;
    let text = prompt(33);
    let body = json!({"model": "mock/model", "prompt": [text, text], "max_tokens": 2});
    let (status, answer) = engine.post(COMPLETIONS, &body).await;
    assert_eq!(status, 200, "{answer}");
    // The second prompt of the batch finds the first one's blocks.
    assert_eq!(answer["usage"]["prompt_tokens"], 66);
    assert_eq!(
        answer["usage"]["prompt_tokens_details"]["cached_tokens"],
        32
    );
}

#[tokio::test]
async fn without_the_flags_there_are_no_details() {
    // Caching on (the default) but details off: vLLM's default.
    let engine = spawn(config()).await;
    let system = prompt(64);
    for _ in 0..2 {
        let (_, body) = engine.post(CHAT, &chat(&system, "q", json!({}))).await;
        assert_eq!(body["usage"]["prompt_tokens_details"], Value::Null);
    }
    assert_eq!(
        engine
            .metric("vllm:prefix_cache_hits_total{model_name=\"mock/model\"}")
            .await,
        64.0,
        "the cache still works, it is only not reported"
    );
    // Details on, caching off: nothing is ever cached.
    let engine = spawn(inventiv_mock_engine::Config {
        prefix_caching: false,
        ..details_on()
    })
    .await;
    for _ in 0..2 {
        let (_, body) = engine.post(CHAT, &chat(&system, "q", json!({}))).await;
        assert_eq!(body["usage"]["prompt_tokens_details"], Value::Null);
    }
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let engine = spawn(inventiv_mock_engine::Config {
        prefix_cache_blocks: 2,
        ..details_on()
    })
    .await;
    let a = prompt(49);
    engine.post(CHAT, &chat(&a, "q", json!({}))).await;
    // Another prompt of three blocks pushes `a` out entirely.
    let b: String = (0..49).map(|i| format!("x{i} ")).collect();
    engine.post(CHAT, &chat(&b, "q", json!({}))).await;
    let (_, body) = engine.post(CHAT, &chat(&a, "q", json!({}))).await;
    assert_eq!(body["usage"]["prompt_tokens_details"], Value::Null);
}

/// Prefill time follows the uncached tokens: at 4,000 tokens/s a 2,000-token
/// prompt seen for the first time takes 0.5 s to its first token, the same
/// prefix again (its 2,000 tokens cached: 125 whole blocks) well under that (queueing behind other
/// prefills: `prefill.rs`'s unit tests). `POST /reset_prefix_cache` empties
/// the cache.
#[tokio::test]
async fn prefill_time_is_proportional_to_uncached_tokens() {
    use std::time::{Duration, Instant};
    let engine = spawn(inventiv_mock_engine::Config {
        prefill_rate: 4000.0,
        ..details_on()
    })
    .await;
    let system = prompt(2000);
    let timed = |user: &'static str| {
        let (engine, body) = (&engine, chat(&system, user, json!({})));
        async move {
            let start = Instant::now();
            let (status, answer) = engine.post(CHAT, &body).await;
            assert_eq!(status, 200, "{answer}");
            (start.elapsed(), answer)
        }
    };
    let (cold, first) = timed("one").await;
    assert!(cold >= Duration::from_millis(500), "{cold:?}");
    assert_eq!(first["usage"]["prompt_tokens"], 2001);
    let (warm, again) = timed("two").await;
    assert_eq!(
        again["usage"]["prompt_tokens_details"]["cached_tokens"],
        2000
    );
    assert!(warm < cold / 4, "warm {warm:?} vs cold {cold:?}");
    let reset = engine
        .client
        .post(engine.url("/reset_prefix_cache"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let (cold_again, after) = timed("three").await;
    assert_eq!(after["usage"]["prompt_tokens_details"], Value::Null);
    assert!(cold_again >= Duration::from_millis(500), "{cold_again:?}");
}
