//! Response bodies and stream chunks in vLLM's shapes, serialized straight
//! to bytes without building intermediate strings.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::generate::{FinishReason, Words};

/// A response id such as `chatcmpl-<32 hex digits>`, written without
/// allocating.
#[derive(Debug, Clone, Copy)]
pub struct ResponseId {
    pub prefix: &'static str,
    pub high: u64,
    pub low: u64,
}

impl fmt::Display for ResponseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:016x}{:016x}", self.prefix, self.high, self.low)
    }
}

impl Serialize for ResponseId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
    pub completion_tokens: u32,
    /// `null` unless prompt tokens details are on and some were cached,
    /// as vLLM has it.
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// vLLM's `PromptTokenUsageInfo`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            completion_tokens,
            prompt_tokens_details: None,
        }
    }

    /// The same with the cached prompt tokens to report, if any.
    pub fn cached(self, cached_tokens: Option<u32>) -> Self {
        Self {
            prompt_tokens_details: cached_tokens
                .map(|cached_tokens| PromptTokensDetails { cached_tokens }),
            ..self
        }
    }
}

/// Fields every completion-like response starts with.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Head<'a> {
    pub id: ResponseId,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
}

#[derive(Serialize)]
pub struct ChatCompletion<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub choices: [ChatChoice; 1],
    pub usage: Usage,
    pub prompt_logprobs: (),
}

#[derive(Serialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: (),
    pub finish_reason: FinishReason,
    pub stop_reason: (),
}

#[derive(Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: Words,
    pub tool_calls: [(); 0],
}

#[derive(Serialize)]
pub struct Completion<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub choices: &'a [CompletionChoice],
    pub usage: Usage,
}

#[derive(Serialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: Words,
    pub logprobs: (),
    pub finish_reason: FinishReason,
    pub stop_reason: (),
    pub prompt_logprobs: (),
}

/// One streamed chunk of a chat completion (`chat.completion.chunk`).
#[derive(Serialize)]
pub struct ChatChunk<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub choices: [ChatChunkChoice<'a>; 1],
    /// The usage so far, with `continuous_usage_stats` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
pub struct ChatChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub logprobs: (),
    pub finish_reason: Option<FinishReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<()>,
}

#[derive(Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    pub content: &'a str,
}

/// One streamed chunk of a text completion.
#[derive(Serialize)]
pub struct CompletionChunk<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub choices: [CompletionChunkChoice<'a>; 1],
    /// The usage so far, with `continuous_usage_stats` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
pub struct CompletionChunkChoice<'a> {
    pub index: u32,
    pub text: &'a str,
    pub logprobs: (),
    pub finish_reason: Option<FinishReason>,
    pub stop_reason: (),
}

/// The last chunk with `stream_options.include_usage`: no choices, usage.
#[derive(Serialize)]
pub struct UsageChunk<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub choices: [(); 0],
    pub usage: Usage,
}

#[derive(Serialize)]
pub struct EmbeddingList<'a> {
    #[serde(flatten)]
    pub head: Head<'a>,
    pub data: Vec<EmbeddingData>,
    pub usage: Usage,
}

#[derive(Serialize)]
pub struct EmbeddingData {
    pub index: u32,
    pub object: &'static str,
    pub embedding: EmbeddingValue,
}

/// `encoding_format`: floats, or base64 of the little-endian f32 bytes.
#[derive(Serialize)]
#[serde(untagged)]
pub enum EmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
pub struct ModelList<'a> {
    pub object: &'static str,
    pub data: [ModelCard<'a>; 1],
}

#[derive(Serialize)]
pub struct ModelCard<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    pub root: &'a str,
    pub parent: (),
    pub max_model_len: u32,
}
