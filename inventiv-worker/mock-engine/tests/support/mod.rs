//! Test helpers: spawn the real app on 127.0.0.1:0, talk to it over HTTP,
//! read SSE streams, wait on conditions with a deadline.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use inventiv_mock_engine::{build_app, Config};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running engine; dropping it shuts the server down.
pub struct Engine {
    pub base: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The default configuration on a free loopback port.
pub fn config() -> Config {
    Config {
        port: 0,
        ..Config::default()
    }
}

pub async fn spawn(config: Config) -> Engine {
    let app = build_app(config).await.expect("bind");
    let base = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.serve());
    Engine {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        shutdown,
        server: Some(server),
    }
}

impl Engine {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST `body`; the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// POST a raw body.
    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    /// POST a streaming request; the status, content type and events.
    pub async fn stream(&self, path: &str, body: &Value) -> Sse {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Sse::parse(&response.text().await.expect("body"))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The value of the first `/metrics` sample whose line starts with
    /// `series` (name and labels).
    pub async fn metric(&self, series: &str) -> f64 {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }
}

/// A parsed event stream: the JSON events, and whether `[DONE]` ended it.
#[derive(Debug)]
pub struct Sse {
    pub events: Vec<Value>,
    pub done: bool,
}

impl Sse {
    pub fn parse(body: &str) -> Self {
        assert!(
            body.ends_with("\n\n"),
            "events end with a blank line: {body:?}"
        );
        let mut events = Vec::new();
        let mut done = false;
        for block in body.split("\n\n").filter(|b| !b.is_empty()) {
            assert!(!done, "nothing may follow [DONE]");
            let data = block.strip_prefix("data: ").expect("a data line");
            if data == "[DONE]" {
                done = true;
            } else {
                events.push(serde_json::from_str(data).expect("JSON event"));
            }
        }
        Self { events, done }
    }

    /// The concatenated text of choice `index` (chat `delta.content` or
    /// completion `text`).
    pub fn text(&self, index: u64) -> String {
        self.events
            .iter()
            .flat_map(|e| e["choices"].as_array().into_iter().flatten())
            .filter(|c| c["index"] == index)
            .filter_map(|c| c["delta"]["content"].as_str().or(c["text"].as_str()))
            .collect()
    }

    /// Events that carry `usage`.
    pub fn usages(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e.get("usage").is_some())
            .map(|e| &e["usage"])
            .collect()
    }
}

/// Whitespace-separated words: the engine's token.
pub fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

pub const CHAT: &str = "/v1/chat/completions";
pub const COMPLETIONS: &str = "/v1/completions";

/// A chat request with every kind of content and some fields the engine
/// ignores, plus `extra`.
pub fn chat_body(extra: Value) -> Value {
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
pub const CHAT_PROMPT_TOKENS: u64 = 5;

pub fn assert_usage(usage: &Value, prompt: u64, completion: u64) {
    assert_eq!(usage["prompt_tokens"], prompt, "{usage}");
    assert_eq!(usage["completion_tokens"], completion, "{usage}");
    assert_eq!(usage["total_tokens"], prompt + completion, "{usage}");
}
