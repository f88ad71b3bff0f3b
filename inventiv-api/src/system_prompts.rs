//! System prompts on the hot path: which one applies to a chat completion
//! (the API key's, else the organization's, else — for a shared model —
//! its offering's, set by the provider, else the catalog model's; see the
//! `system_prompts` migrations) and the request body with it.
//!
//! The effective prompt of a (key, organization, model) is cached for
//! [`TTL`]: one query per replica per TTL for each combination in use, none
//! per request. A change clears the cache of the replica that made it at
//! once; other replicas see it within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::proxy::error::OpenAiError;
use crate::state::AppState;

/// How long an effective prompt is trusted without looking at the database.
pub const TTL: Duration = Duration::from_secs(10);
/// Entries kept at most; past it, expired ones are dropped first and, if
/// none is, everything (a lookup costs one query).
const MAX_ENTRIES: usize = 10_000;
/// Longest prompt, in characters (the database CHECKs the same).
pub const MAX_CHARS: usize = 4000;

/// How a prompt is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Added as the first message when the request has no system message.
    IfAbsent,
    /// Put before the request's own messages, whatever they are.
    Always,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::IfAbsent => "if_absent",
            Mode::Always => "always",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "if_absent" => Some(Mode::IfAbsent),
            "always" => Some(Mode::Always),
            _ => None,
        }
    }
}

/// A prompt to apply.
#[derive(Debug, PartialEq, Eq)]
pub struct Prompt {
    pub content: String,
    pub mode: Mode,
}

/// What a lookup is cached under: (API key, organization, model).
type Target = (Option<Uuid>, Uuid, String);

/// An effective prompt (or the knowledge that there is none) and when it was read.
type Cached = (Option<Arc<Prompt>>, Instant);

/// The cache of effective prompts.
#[derive(Clone, Default)]
pub struct PromptCache(Arc<RwLock<HashMap<Target, Cached>>>);

impl PromptCache {
    /// Forgets everything (after a change on this replica).
    pub fn clear(&self) {
        if let Ok(mut map) = self.0.write() {
            map.clear();
        }
    }

    fn get(&self, target: &Target) -> Option<Option<Arc<Prompt>>> {
        let map = self.0.read().ok()?;
        let (prompt, at) = map.get(target)?;
        (at.elapsed() < TTL).then(|| prompt.clone())
    }

    fn put(&self, target: Target, prompt: Option<Arc<Prompt>>) {
        let Ok(mut map) = self.0.write() else {
            return;
        };
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(target, (prompt, Instant::now()));
    }
}

/// The prompt that applies to a request of `org` (through `key`, if any)
/// for `model` (a Hugging Face id, or `provider_slug/model_code` for a
/// shared one): the key's, else the organization's, else the offering's,
/// else the catalog model's.
pub async fn effective(
    state: &AppState,
    key: Option<Uuid>,
    org: Uuid,
    model: &str,
) -> Result<Option<Arc<Prompt>>, sqlx::Error> {
    let target = (key, org, model.to_owned());
    if let Some(hit) = state.system_prompts.get(&target) {
        return Ok(hit);
    }
    // A shared model is called `provider_slug/model_code`: its offering's
    // prompt (the provider's) comes after the caller's own ones.
    // Boxed: a miss is rare, its query's state large.
    let row = Box::pin(sqlx::query!(
        r#"SELECT p.content, p.mode FROM system_prompts p
            WHERE (p.scope = 'api_key' AND p.api_key_id = $1)
               OR (p.scope = 'organization' AND p.organization_id = $2)
               OR (p.scope = 'offering' AND p.offering_id IN (
                   SELECT o.id FROM offerings o JOIN organizations g ON g.id = o.organization_id
                    WHERE g.slug || '/' || o.model_code = $3 AND o.organization_id <> $2))
               OR (p.scope = 'model' AND p.model_id IN (SELECT m.id FROM models m WHERE m.hf_id = $3))
            ORDER BY CASE p.scope WHEN 'api_key' THEN 0 WHEN 'organization' THEN 1 WHEN 'offering' THEN 2 ELSE 3 END
            LIMIT 1"#,
        key,
        org,
        model,
    )
    .fetch_optional(&state.db))
    .await?;
    let prompt = row.and_then(|r| {
        Some(Arc::new(Prompt {
            mode: Mode::parse(&r.mode)?,
            content: r.content,
        }))
    });
    state.system_prompts.put(target, prompt.clone());
    Ok(prompt)
}

/// Whether a message is the system's (or, in OpenAI's newer naming, the developer's).
fn is_system(message: &Value) -> bool {
    matches!(
        message.get("role").and_then(Value::as_str),
        Some("system" | "developer")
    )
}

/// A chat completion's body with `prompt` applied; the body unchanged when
/// the prompt is `if_absent` and the request has a system message. A body
/// whose `messages` is not a list is left for the engine to refuse.
pub fn apply(body: Bytes, prompt: &Prompt) -> Result<Bytes, OpenAiError> {
    let mut request: Map<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::bad_request(format!("invalid JSON body: {e}")))?;
    let Some(Value::Array(messages)) = request.get_mut("messages") else {
        return Ok(body);
    };
    if prompt.mode == Mode::IfAbsent && messages.iter().any(is_system) {
        return Ok(body);
    }
    messages.insert(
        0,
        serde_json::json!({ "role": "system", "content": prompt.content }),
    );
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|e| OpenAiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn prompt(mode: Mode) -> Prompt {
        Prompt {
            content: "Answer in French.".into(),
            mode,
        }
    }

    fn applied(body: Value, mode: Mode) -> Value {
        let out = apply(Bytes::from(body.to_string()), &prompt(mode)).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn if_absent_adds_the_prompt_only_without_a_system_message() {
        let user = json!({ "role": "user", "content": "hi" });
        let out = applied(
            json!({ "model": "m", "messages": [user], "max_tokens": 3 }),
            Mode::IfAbsent,
        );
        assert_eq!(
            out,
            json!({ "model": "m", "max_tokens": 3,
                    "messages": [{ "role": "system", "content": "Answer in French." }, user] })
        );
        for role in ["system", "developer"] {
            let own =
                json!({ "model": "m", "messages": [{ "role": role, "content": "mine" }, user] });
            assert_eq!(applied(own.clone(), Mode::IfAbsent), own, "{role}");
        }
    }

    #[test]
    fn always_puts_the_prompt_before_the_request_s_own_messages() {
        let own = json!({ "role": "system", "content": "mine" });
        let out = applied(json!({ "model": "m", "messages": [own] }), Mode::Always);
        assert_eq!(
            out["messages"],
            json!([{ "role": "system", "content": "Answer in French." }, own])
        );
    }

    #[test]
    fn a_body_without_a_message_list_goes_unchanged_for_the_engine_to_refuse() {
        let body = json!({ "model": "m", "messages": "not a list" });
        assert_eq!(applied(body.clone(), Mode::Always), body);
        assert!(apply(Bytes::from_static(b"{not json"), &prompt(Mode::Always)).is_err());
    }
}
