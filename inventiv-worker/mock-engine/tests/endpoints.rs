//! The other routes against the real app: embeddings, models, metrics, and
//! vLLM's error shapes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use inventiv_testkit::wait::eventually;
use serde_json::{json, Value};
use support::{
    assert_usage, chat_body, config, spawn, words, CHAT, CHAT_PROMPT_TOKENS, COMPLETIONS,
};

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
    eventually("a running request", Duration::from_secs(5), || async {
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
