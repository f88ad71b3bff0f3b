//! The OpenAI surface against the real app: chat and completions, streamed
//! or not, usage agreeing with the content, determinism, embeddings,
//! metrics, and vLLM's error shapes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use support::{config, eventually, spawn, words};

const CHAT: &str = "/v1/chat/completions";
const COMPLETIONS: &str = "/v1/completions";

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "mock/model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "two words"},
                {"type": "image_url", "image_url": {"url": "http://x"}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": []},
        ],
        "temperature": 0.7,
        "some_unknown_field": {"nested": [1, 2]},
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// 3 words in the system message, 2 in the text part.
const CHAT_PROMPT_TOKENS: u64 = 5;

fn assert_usage(usage: &Value, prompt: u64, completion: u64) {
    assert_eq!(usage["prompt_tokens"], prompt, "{usage}");
    assert_eq!(usage["completion_tokens"], completion, "{usage}");
    assert_eq!(usage["total_tokens"], prompt + completion, "{usage}");
}

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
async fn embeddings_are_deterministic_unit_vectors() {
    let engine = spawn(inventiv_mock_engine::Config {
        embedding_dim: 64,
        ..config()
    })
    .await;
    let (status, body) = engine
        .post(
            "/v1/embeddings",
            &json!({"model": "mock/model", "input": ["hello world", "bye"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_usage(&body["usage"], 3, 0);
    let vectors: Vec<Vec<f64>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(vectors.len(), 2);
    for v in &vectors {
        assert_eq!(v.len(), 64);
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert_ne!(vectors[0], vectors[1]);
    let (_, again) = engine
        .post("/v1/embeddings", &json!({"input": "hello world"}))
        .await;
    assert_eq!(again["data"][0]["embedding"], body["data"][0]["embedding"]);
    // base64: the same floats, little-endian f32.
    let (_, b64) = engine
        .post(
            "/v1/embeddings",
            &json!({"input": "hello world", "encoding_format": "base64"}),
        )
        .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
        .collect();
    assert_eq!(decoded.len(), 64);
    for (x, y) in decoded.iter().zip(&vectors[0]) {
        assert!((x - y).abs() < 1e-6);
    }
}

#[tokio::test]
async fn models_lists_the_served_model() {
    let engine = spawn(inventiv_mock_engine::Config {
        model: "org/m-7b".into(),
        ..config()
    })
    .await;
    let (status, text) = engine.get("/v1/models").await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["object"], "list");
    let card = &body["data"][0];
    assert_eq!(card["id"], "org/m-7b");
    assert_eq!(card["object"], "model");
    assert_eq!(card["owned_by"], "vllm");
    assert_eq!(card["max_model_len"], 4096);
    assert_eq!(engine.get("/health").await.0, 200);
}

#[tokio::test]
async fn errors_have_the_openai_shape() {
    let engine = spawn(config()).await;
    let (status, body) = engine
        .post(
            CHAT,
            &json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "NotFoundError");
    assert_eq!(body["error"]["code"], 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("other"));

    // (path, raw body): each is a 400 BadRequestError.
    let bad = [
        (CHAT, r#"{"messages": [{"role": "user", "content": "hi"}"#),
        (CHAT, "not json"),
        (CHAT, r#"{"model": "mock/model"}"#),
        (CHAT, r#"{"messages": [], "max_tokens": -1}"#),
        (CHAT, r#"{"messages": [], "max_tokens": 0}"#),
        (CHAT, r#"{"messages": [], "max_tokens": 5000}"#),
        (COMPLETIONS, r#"{"prompt": 12}"#),
        (
            "/v1/embeddings",
            r#"{"input": "x", "encoding_format": "hex"}"#,
        ),
    ];
    for (path, raw) in bad {
        let (status, body) = engine.post_raw(path, raw).await;
        assert_eq!(status, 400, "{path} {raw}: {body}");
        assert_eq!(body["error"]["type"], "BadRequestError", "{raw}");
        assert_eq!(body["error"]["code"], 400, "{raw}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, body) = engine.post_raw("/v1/nothing", "{}").await;
    assert_eq!(
        (status, &body["error"]["type"]),
        (404, &json!("NotFoundError"))
    );
}

#[tokio::test]
async fn metrics_follow_requests_and_running_returns_to_zero() {
    // Paced so that a stream is observably running.
    let engine = spawn(inventiv_mock_engine::Config {
        inter_token: Duration::from_millis(20),
        ..config()
    })
    .await;
    let label = r#"{model_name="mock/model"}"#;
    let prompt = format!("vllm:prompt_tokens_total{label}");
    let generated = format!("vllm:generation_tokens_total{label}");
    let success = r#"vllm:request_success_total{finished_reason="length",model_name="mock/model"}"#;
    let ttft = format!("vllm:time_to_first_token_seconds_count{label}");
    let running = format!("vllm:num_requests_running{label}");
    assert_eq!(engine.metric(&generated).await, 0.0);

    let (status, _) = engine
        .post(CHAT, &chat_body(json!({"max_tokens": 3})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(engine.metric(&prompt).await, CHAT_PROMPT_TOKENS as f64);
    assert_eq!(engine.metric(&generated).await, 3.0);
    assert_eq!(engine.metric(success).await, 1.0);
    assert_eq!(engine.metric(&ttft).await, 1.0);
    assert_eq!(engine.metric(&running).await, 0.0);

    // A stream of 50 tokens at 50/s is running for about a second.
    let streaming = tokio::spawn({
        let client = engine.client.clone();
        let url = engine.url(CHAT);
        let body = chat_body(json!({"max_tokens": 50, "ignore_eos": true, "stream": true}));
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    eventually(Duration::from_secs(5), "a running request", || async {
        (engine.metric(&running).await == 1.0).then_some(())
    })
    .await;
    let sse = support::Sse::parse(&streaming.await.unwrap());
    assert_eq!(words(&sse.text(0)), 50);
    assert_eq!(engine.metric(&running).await, 0.0);
    assert_eq!(engine.metric(&generated).await, 53.0);
    assert_eq!(engine.metric(success).await, 2.0);
    let (_, text) = engine.get("/metrics").await;
    for family in [
        "# TYPE vllm:num_requests_running gauge",
        "# TYPE vllm:num_requests_waiting gauge",
        "# TYPE vllm:gpu_cache_usage_perc gauge",
        "# TYPE vllm:prompt_tokens_total counter",
        "# TYPE vllm:generation_tokens_total counter",
        "# TYPE vllm:request_success_total counter",
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ] {
        assert!(text.contains(family), "missing {family}");
    }
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
