//! Server-sent events the way vLLM streams them: one token per
//! `data: {...}\n\n` event (chat opens with a `delta.role` event), the
//! `finish_reason` on each answer's last token, then with
//! `stream_options.include_usage` a `choices: []` event carrying `usage`,
//! then `data: [DONE]`. With vLLM's `continuous_usage_stats` as well, every
//! chunk also carries the usage so far (what a client leaving early used). Paced by the configured TTFT and decode speed.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::app::{self, InFlight};
use crate::generate::{FinishReason, Plan, Tokens, Words};
use crate::openai::{
    ChatChunk, ChatChunkChoice, CompletionChunk, CompletionChunkChoice, Delta, Generation, Head,
    ResponseId, Usage, UsageChunk,
};

/// One choice's planned answer.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub words: Words,
    pub plan: Plan,
}

/// `Length` if any answer was cut, else `Stop`.
pub fn overall(answers: &[Answer]) -> FinishReason {
    if answers
        .iter()
        .any(|a| a.plan.finish == FinishReason::Length)
    {
        FinishReason::Length
    } else {
        FinishReason::Stop
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

impl Kind {
    fn object(self) -> &'static str {
        match self {
            Self::Chat => "chat.completion.chunk",
            Self::Completion => "text_completion",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Role,
    Tokens,
    Usage,
    Done,
    End,
}

/// The state of one stream, advanced one event at a time.
struct Events {
    inflight: InFlight,
    kind: Kind,
    id: ResponseId,
    created: u64,
    answers: Vec<Answer>,
    /// Index of the answer being streamed, and its remaining tokens.
    current: usize,
    tokens: Option<Tokens>,
    /// Tokens sent so far, all answers together (drives the pacing).
    sent: u32,
    prompt_tokens: u32,
    /// Cached prompt tokens to report in the final usage chunk (vLLM puts
    /// them there only, not in the continuous usage).
    cached: Option<u32>,
    include_usage: bool,
    /// Usage so far on every chunk (vLLM's `continuous_usage_stats`).
    continuous_usage: bool,
    phase: Phase,
}

/// `data: <json>\n\n` as one buffer.
fn event<T: Serialize>(value: &T) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    if let Err(e) = serde_json::to_writer(&mut buf, value) {
        tracing::error!(error = %e, "cannot serialize a stream event");
    }
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

impl Events {
    fn head(&self) -> Head<'_> {
        Head {
            id: self.id,
            object: self.kind.object(),
            created: self.created,
            model: &self.inflight.state.config.model,
        }
    }

    async fn next(&mut self) -> Option<Bytes> {
        match self.phase {
            Phase::Role => {
                self.inflight.until_token(0).await;
                self.inflight.first_token();
                self.phase = Phase::Tokens;
                Some(self.chat_event(true, None, ""))
            }
            Phase::Tokens => Some(self.token_event().await),
            Phase::Usage => {
                self.phase = Phase::Done;
                let usage = UsageChunk {
                    head: self.head(),
                    choices: [],
                    usage: Usage::new(self.prompt_tokens, self.sent).cached(self.cached),
                };
                Some(event(&usage))
            }
            Phase::Done => {
                self.phase = Phase::End;
                Some(Bytes::from_static(b"data: [DONE]\n\n"))
            }
            Phase::End => None,
        }
    }

    async fn token_event(&mut self) -> Bytes {
        self.inflight.until_token(self.sent).await;
        if self.sent == 0 && self.kind == Kind::Completion {
            self.inflight.first_token();
        }
        let answer = self.answers.get(self.current).copied();
        let tokens = self
            .tokens
            .get_or_insert_with(|| answer.map_or(Words::new(0, 0, 0), |a| a.words).tokens());
        let token = tokens.next().unwrap_or("");
        let last = tokens.remaining() == 0;
        let finish = answer.map(|a| a.plan.finish).filter(|_| last);
        if !token.is_empty() {
            self.sent = self.sent.saturating_add(1);
            self.inflight.sent(1);
        }
        let index = u32::try_from(self.current).unwrap_or(u32::MAX);
        let bytes = match self.kind {
            Kind::Chat => self.chat_event(false, finish, token),
            Kind::Completion => event(&CompletionChunk {
                head: self.head(),
                choices: [CompletionChunkChoice {
                    index,
                    text: token,
                    logprobs: (),
                    finish_reason: finish,
                    stop_reason: (),
                }],
                usage: self.usage_so_far(),
            }),
        };
        if last {
            self.current += 1;
            self.tokens = None;
            if self.current >= self.answers.len() {
                self.inflight.finish(overall(&self.answers));
                self.phase = if self.include_usage {
                    Phase::Usage
                } else {
                    Phase::Done
                };
            }
        }
        bytes
    }

    /// A chat chunk: the opening one (`role`, empty content), or a token.
    fn chat_event(&self, opening: bool, finish: Option<FinishReason>, token: &str) -> Bytes {
        event(&ChatChunk {
            head: self.head(),
            choices: [ChatChunkChoice {
                index: 0,
                delta: Delta {
                    role: opening.then_some("assistant"),
                    content: token,
                },
                logprobs: (),
                finish_reason: finish,
                stop_reason: finish.map(|_| ()),
            }],
            usage: self.usage_so_far(),
        })
    }

    /// The usage counted so far, on every chunk when asked for.
    fn usage_so_far(&self) -> Option<Usage> {
        self.continuous_usage
            .then(|| Usage::new(self.prompt_tokens, self.sent))
    }
}

/// The streaming response; `inflight` lives as long as the stream, so the
/// request counts as running until its last event (or the client leaves).
pub fn respond(
    kind: Kind,
    id: ResponseId,
    inflight: InFlight,
    answers: Vec<Answer>,
    generation: &Generation,
    prompt_tokens: u32,
    cached: Option<u32>,
) -> Response {
    let events = Events {
        inflight,
        kind,
        id,
        created: app::unix_now(),
        answers,
        current: 0,
        tokens: None,
        sent: 0,
        prompt_tokens,
        cached,
        include_usage: generation.include_usage,
        continuous_usage: generation.continuous_usage,
        phase: match kind {
            Kind::Chat => Phase::Role,
            Kind::Completion => Phase::Tokens,
        },
    };
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let bytes = events.next().await?;
        Some((Ok::<_, Infallible>(bytes), events))
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        )],
        Body::from_stream(stream),
    )
        .into_response()
}
