//! Chat and text completions against the real app, streamed or not: usage
//! agreeing with the content, vLLM's chunk shapes, length limits,
//! determinism and pacing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{
    assert_usage, chat_body, config, spawn, words, CHAT, CHAT_PROMPT_TOKENS, COMPLETIONS,
};

#[tokio::test]
async fn chat_without_stream_counts_what_it_answers() {
    let engine = spawn(config()).await;
    let (status, body) = engine.post(CHAT, &chat_body(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock/model");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(words(content), 32, "the natural length: {content}");
    assert_usage(&body["usage"], CHAT_PROMPT_TOKENS, 32);
}

#[tokio::test]
async fn chat_stream_with_usage_matches_vllm_shape() {
    let engine = spawn(config()).await;
    let sse = engine
        .stream(
            CHAT,
            &chat_body(
                json!({"stream": true, "max_tokens": 7, "stream_options": {"include_usage": true}}),
            ),
        )
        .await;
    assert!(sse.done, "ends with [DONE]");
    let (last, content_events) = sse.events.split_last().unwrap();
    // Opening chunk: the role, no text yet.
    let first = &content_events[0]["choices"][0];
    assert_eq!(first["delta"]["role"], "assistant");
    assert_eq!(first["delta"]["content"], "");
    // One token per chunk after that, finish_reason on the last one only.
    assert_eq!(content_events.len(), 1 + 7);
    for (i, event) in content_events.iter().enumerate() {
        assert_eq!(event["object"], "chat.completion.chunk");
        assert!(event.get("usage").is_none(), "usage only at the end");
        let choice = &event["choices"][0];
        let want = if i == 7 { json!("length") } else { Value::Null };
        assert_eq!(choice["finish_reason"], want, "event {i}");
        if i > 0 {
            assert!(choice["delta"].get("role").is_none());
            assert_eq!(words(choice["delta"]["content"].as_str().unwrap()), 1);
        }
    }
    // The usage chunk: no choices, and counts that match the text.
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["id"], content_events[0]["id"]);
    let text = sse.text(0);
    assert_eq!(words(&text), 7);
    assert_usage(&last["usage"], CHAT_PROMPT_TOKENS, words(&text));
}

#[tokio::test]
async fn continuous_usage_stats_put_the_usage_so_far_on_every_chunk() {
    let engine = spawn(config()).await;
    let options = json!({"include_usage": true, "continuous_usage_stats": true});
    let sse = engine
        .stream(
            CHAT,
            &chat_body(json!({"stream": true, "max_tokens": 4, "stream_options": options})),
        )
        .await;
    assert!(sse.done);
    // vLLM's shape: the opening chunk has 0 completion tokens, each token
    // chunk the count so far, then the final usage chunk.
    let (last, chunks) = sse.events.split_last().unwrap();
    assert_eq!(chunks.len(), 1 + 4);
    for (i, chunk) in chunks.iter().enumerate() {
        assert_usage(&chunk["usage"], CHAT_PROMPT_TOKENS, i as u64);
    }
    assert_eq!(last["choices"], json!([]));
    assert_usage(&last["usage"], CHAT_PROMPT_TOKENS, 4);
    // Without include_usage, continuous_usage_stats alone sends nothing.
    let sse = engine
        .stream(
            CHAT,
            &chat_body(json!({"stream": true, "stream_options": {"continuous_usage_stats": true}})),
        )
        .await;
    assert!(sse.usages().is_empty(), "{:?}", sse.events);
}

#[tokio::test]
async fn chat_stream_without_usage_sends_none_and_equals_the_plain_answer() {
    let engine = spawn(config()).await;
    let sse = engine
        .stream(CHAT, &chat_body(json!({"stream": true})))
        .await;
    assert!(sse.done);
    assert!(sse.usages().is_empty(), "{:?}", sse.events);
    let streamed = sse.text(0);
    assert_eq!(words(&streamed), 32);
    assert_eq!(
        sse.events.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    let (_, body) = engine.post(CHAT, &chat_body(json!({}))).await;
    assert_eq!(body["choices"][0]["message"]["content"], streamed.as_str());
}

#[tokio::test]
async fn max_tokens_cuts_with_finish_reason_length() {
    let engine = spawn(config()).await;
    // (extra fields, expected tokens, expected finish_reason)
    let cases = [
        (json!({"max_tokens": 3}), 3, "length"),
        (json!({"max_tokens": 32}), 32, "stop"),
        (json!({"max_tokens": 100}), 32, "stop"),
        (
            json!({"max_tokens": 100, "max_completion_tokens": 4}),
            4,
            "length",
        ),
        (json!({"max_tokens": 40, "ignore_eos": true}), 40, "length"),
    ];
    for (extra, tokens, finish) in cases {
        let (status, body) = engine.post(CHAT, &chat_body(extra.clone())).await;
        assert_eq!(status, 200, "{extra}: {body}");
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(words(content), tokens, "{extra}");
        assert_eq!(body["choices"][0]["finish_reason"], finish, "{extra}");
        assert_usage(&body["usage"], CHAT_PROMPT_TOKENS, tokens);
    }
}

#[tokio::test]
async fn completions_plain_and_streamed_for_one_and_many_prompts() {
    let engine = spawn(config()).await;
    let (status, body) = engine
        .post(
            COMPLETIONS,
            &json!({"model": "mock/model", "prompt": "Once upon a time", "max_tokens": 5}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    let text = body["choices"][0]["text"].as_str().unwrap();
    assert_eq!(words(text), 5);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_usage(&body["usage"], 4, 5);

    let request = json!({"prompt": ["a b", "c"], "max_tokens": 2, "stream": true,
                         "stream_options": {"include_usage": true}});
    let sse = engine.stream(COMPLETIONS, &request).await;
    assert!(sse.done);
    assert_eq!(words(&sse.text(0)), 2);
    assert_eq!(words(&sse.text(1)), 2);
    assert_ne!(
        sse.text(0),
        sse.text(1),
        "different prompts, different answers"
    );
    let usages = sse.usages();
    assert_eq!(usages.len(), 1);
    assert_usage(usages[0], 3, 4);
    let finishes: Vec<&Value> = sse
        .events
        .iter()
        .flat_map(|e| e["choices"].as_array().unwrap())
        .filter(|c| !c["finish_reason"].is_null())
        .map(|c| &c["index"])
        .collect();
    assert_eq!(finishes, [&json!(0), &json!(1)], "one finish per choice");

    let (_, plain) = engine
        .post(
            COMPLETIONS,
            &json!({"prompt": ["a b", "c"], "max_tokens": 2}),
        )
        .await;
    assert_eq!(plain["choices"][1]["text"], sse.text(1).as_str());
    assert_usage(&plain["usage"], 3, 4);
}

#[tokio::test]
async fn output_depends_only_on_seed_and_prompt() {
    let a = spawn(config()).await;
    let b = spawn(config()).await;
    let c = spawn(inventiv_mock_engine::Config {
        seed: 1,
        ..config()
    })
    .await;
    let body = chat_body(json!({"max_tokens": 12}));
    let text = |v: Value| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = text(a.post(CHAT, &body).await.1);
    assert_eq!(
        first,
        text(a.post(CHAT, &body).await.1),
        "same engine, same text"
    );
    assert_eq!(
        first,
        text(b.post(CHAT, &body).await.1),
        "same seed, same text"
    );
    assert_ne!(
        first,
        text(c.post(CHAT, &body).await.1),
        "another seed, another text"
    );
    let reseeded = chat_body(json!({"max_tokens": 12, "seed": 1}));
    assert_eq!(
        text(a.post(CHAT, &reseeded).await.1),
        text(c.post(CHAT, &body).await.1)
    );
    let other =
        chat_body(json!({"max_tokens": 12, "messages": [{"role": "user", "content": "x"}]}));
    assert_ne!(
        first,
        text(a.post(CHAT, &other).await.1),
        "another prompt, another text"
    );
}

#[tokio::test]
async fn ttft_and_decode_speed_are_honoured() {
    let engine = spawn(inventiv_mock_engine::Config {
        ttft: Duration::from_millis(150),
        inter_token: Duration::from_millis(10),
        ..config()
    })
    .await;
    // Non-streaming: TTFT + 10 tokens x 10 ms at least.
    let start = Instant::now();
    let (status, _) = engine
        .post(CHAT, &chat_body(json!({"max_tokens": 10})))
        .await;
    assert_eq!(status, 200);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    // Streaming: the headers come at once, the first event after TTFT.
    let start = Instant::now();
    let mut response = engine
        .client
        .post(engine.url(CHAT))
        .json(&chat_body(json!({"max_tokens": 10, "stream": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    while response.chunk().await.unwrap().is_some() {}
    assert!(
        start.elapsed() >= Duration::from_millis(240),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn shutdown_finishes_paced_answers_at_full_speed() {
    // 100 tokens at 10/s would take 10 s.
    let mut engine = spawn(inventiv_mock_engine::Config {
        inter_token: Duration::from_millis(100),
        ..config()
    })
    .await;
    let mut response = engine
        .client
        .post(engine.url(CHAT))
        .json(&chat_body(
            json!({"max_tokens": 100, "ignore_eos": true, "stream": true}),
        ))
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    let start = Instant::now();
    engine.shutdown.cancel();
    let mut body = String::from_utf8(first.to_vec()).unwrap();
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let sse = support::Sse::parse(&body);
    assert!(sse.done, "the stream is complete");
    assert_eq!(words(&sse.text(0)), 100);
    let server = engine.server.take().unwrap();
    server.await.unwrap().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}
