//! `POST /v1/embeddings`: one deterministic unit vector per input, as floats
//! or, with `encoding_format: "base64"` (the OpenAI SDKs' default), as
//! base64 of the little-endian `f32` bytes.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;

use crate::app::{self, admit, AppState, InFlight};
use crate::error::ApiError;
use crate::generate::{self, FinishReason, PromptDigest};
use crate::openai::{EmbeddingData, EmbeddingList, EmbeddingRequest, EmbeddingValue, Head, Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Float,
    Base64,
}

impl Encoding {
    fn parse(format: Option<&str>) -> Result<Self, ApiError> {
        match format {
            None | Some("float") => Ok(Self::Float),
            Some("base64") => Ok(Self::Base64),
            Some(other) => Err(ApiError::BadRequest(
                StatusCode::BAD_REQUEST,
                format!("encoding_format must be `float` or `base64`, not `{other}`"),
            )),
        }
    }

    fn encode(self, vector: Vec<f32>) -> EmbeddingValue {
        match self {
            Self::Float => EmbeddingValue::Float(vector),
            Self::Base64 => {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                EmbeddingValue::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let admitted = admit(&state).await?;
    let body = body?;
    let request: EmbeddingRequest<'_> = serde_json::from_slice(&body)?;
    state.check_model(request.model.as_deref())?;
    let encoding = Encoding::parse(request.encoding_format.as_deref())?;
    let config = &state.config;
    let inputs = request.input.as_slice();
    let mut prompt_tokens = 0u32;
    for input in inputs {
        let tokens = PromptDigest::of(input).tokens;
        if tokens > config.max_model_len {
            return Err(ApiError::BadRequest(
                StatusCode::BAD_REQUEST,
                format!(
                    "This model's maximum context length is {} tokens. However, you requested \
                     {tokens} tokens in the input for embedding generation. Please reduce the \
                     length of the input.",
                    config.max_model_len
                ),
            ));
        }
        prompt_tokens = prompt_tokens.saturating_add(tokens);
    }
    // Embeddings answer at once: no prefill is simulated for them.
    let prefill = crate::app::Prefill::instant(start);
    let mut inflight =
        InFlight::start(Arc::clone(&state), admitted, start, prompt_tokens, &prefill);
    let data: Vec<EmbeddingData> = inputs
        .iter()
        .zip(0u32..)
        .map(|(input, index)| EmbeddingData {
            index,
            object: "embedding",
            embedding: encoding.encode(generate::embedding(
                config.seed,
                input,
                config.embedding_dim,
            )),
        })
        .collect();
    let list = EmbeddingList {
        head: Head {
            id: state.next_id("embd-"),
            object: "list",
            created: app::unix_now(),
            model: &config.model,
        },
        data,
        usage: Usage::new(prompt_tokens, 0),
    };
    let response = app::json(&list, 256 + inputs.len() * config.embedding_dim * 12);
    inflight.finish(FinishReason::Stop);
    Ok(response)
}
