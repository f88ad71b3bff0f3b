//! `POST /v1/chat/completions` and `POST /v1/completions`: read the
//! request, plan the answer, then either stream it (see `stream`) or wait
//! the simulated time and answer in one JSON body with `usage`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::Response;

use crate::app::{self, admit, AppState, InFlight};
use crate::error::ApiError;
use crate::generate::{PromptDigest, Words};
use crate::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatRequest, Completion, CompletionChoice,
    CompletionRequest, Head, Usage,
};
use crate::prefix_cache::BlockHashes;
use crate::stream::{self, Answer, Kind};

/// Room for the fixed part of a response, plus per-token room.
const BASE_CAPACITY: usize = 384;
const PER_TOKEN: usize = 10;

fn capacity(tokens: u32) -> usize {
    BASE_CAPACITY + PER_TOKEN * usize::try_from(tokens).unwrap_or(0)
}

/// Waits as long as a real engine would take for the whole answer:
/// TTFT, then one inter-token delay per token.
async fn simulate(inflight: &InFlight, tokens: u32) {
    inflight.until_token(0).await;
    inflight.first_token();
    inflight.until_token(tokens).await;
}

pub async fn chat(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let admitted = admit(&state).await?;
    let body = body?;
    let request: ChatRequest<'_> = serde_json::from_slice(&body)?;
    state.check_model(request.model.as_deref())?;
    let mut digest = PromptDigest::default();
    let mut blocks = state.blocks();
    for message in &request.messages {
        message.content.for_each_text(|text| {
            digest.add(text);
            blocks.add(text);
        });
    }
    let generation = request.generation();
    let plan = state.plan(digest.tokens, &generation)?;
    let prefill = state.prefill(start, [&blocks]);
    let cached = prefill.cached;
    let words = Words::new(state.seed(&generation), digest.hash, plan.tokens);
    let mut inflight =
        InFlight::start(Arc::clone(&state), admitted, start, digest.tokens, &prefill);
    let id = state.next_id("chatcmpl-");

    if generation.stream {
        let answers = vec![Answer { words, plan }];
        return Ok(stream::respond(
            Kind::Chat,
            id,
            inflight,
            answers,
            &generation,
            digest.tokens,
            cached,
        ));
    }

    simulate(&inflight, plan.tokens).await;
    let response = ChatCompletion {
        head: Head {
            id,
            object: "chat.completion",
            created: app::unix_now(),
            model: &state.config.model,
        },
        choices: [ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: words,
                tool_calls: [],
            },
            logprobs: (),
            finish_reason: plan.finish,
            stop_reason: (),
        }],
        usage: Usage::new(digest.tokens, plan.tokens).cached(cached),
        prompt_logprobs: (),
    };
    let response = app::json(&response, capacity(plan.tokens));
    inflight.sent(plan.tokens);
    inflight.finish(plan.finish);
    Ok(response)
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let admitted = admit(&state).await?;
    let body = body?;
    let request: CompletionRequest<'_> = serde_json::from_slice(&body)?;
    state.check_model(request.model.as_deref())?;
    let generation = request.generation();
    let seed = state.seed(&generation);
    // One answer per prompt, as vLLM does for a batch of prompts.
    let mut prompt_tokens = 0u32;
    let mut answers = Vec::with_capacity(request.prompt.as_slice().len());
    let mut blocks = Vec::with_capacity(answers.capacity());
    for prompt in request.prompt.as_slice() {
        let digest = PromptDigest::of(prompt);
        let plan = state.plan(digest.tokens, &generation)?;
        blocks.push(BlockHashes::of(prompt, state.config.block_size));
        prompt_tokens = prompt_tokens.saturating_add(digest.tokens);
        answers.push(Answer {
            words: Words::new(seed, digest.hash, plan.tokens),
            plan,
        });
    }
    let prefill = state.prefill(start, &blocks);
    let cached = prefill.cached;
    let mut inflight =
        InFlight::start(Arc::clone(&state), admitted, start, prompt_tokens, &prefill);
    let id = state.next_id("cmpl-");

    if generation.stream {
        return Ok(stream::respond(
            Kind::Completion,
            id,
            inflight,
            answers,
            &generation,
            prompt_tokens,
            cached,
        ));
    }

    let tokens = answers
        .iter()
        .fold(0u32, |n, a| n.saturating_add(a.plan.tokens));
    simulate(&inflight, tokens).await;
    let choices: Vec<CompletionChoice> = answers
        .iter()
        .zip(0u32..)
        .map(|(answer, index)| CompletionChoice {
            index,
            text: answer.words,
            logprobs: (),
            finish_reason: answer.plan.finish,
            stop_reason: (),
            prompt_logprobs: (),
        })
        .collect();
    let response = Completion {
        head: Head {
            id,
            object: "text_completion",
            created: app::unix_now(),
            model: &state.config.model,
        },
        choices: &choices,
        usage: Usage::new(prompt_tokens, tokens).cached(cached),
    };
    let response = app::json(&response, capacity(tokens));
    inflight.sent(tokens);
    inflight.finish(stream::overall(&answers));
    Ok(response)
}
