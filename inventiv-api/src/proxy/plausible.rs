//! What a worker may report as usage. The worker is tenant-controlled (and
//! through a share the provider bills another organization with it), so its
//! token counts are bounded by what the request makes possible:
//!
//! - never negative;
//! - prompt ≤ the request body's bytes + [`TEMPLATE_TOKENS`] (a token
//!   carries at least one byte of the text it encodes; the chat template
//!   adds a few of its own), and ≤ the model's context length;
//! - completion ≤ `max_tokens` (or `max_completion_tokens`) × the choices
//!   asked for (`n` or `best_of`, per prompt of a `/v1/completions` list)
//!   when the request sets them, ≤ the context length, and ≤ the bytes the
//!   worker actually sent back (each generated token adds at least one).
//!
//! A report above a bound is billed at the bound and recorded as a dispute.

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Prompt tokens a chat template may add beyond the request's own bytes.
pub const TEMPLATE_TOKENS: i64 = 256;

/// The request fields the completion bound reads.
#[derive(Deserialize, Default)]
pub struct Asked {
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    n: Option<i64>,
    best_of: Option<i64>,
    prompt: Option<Prompts>,
}

/// How many prompts a `/v1/completions` body holds: a list of strings or of
/// token lists is several, anything else (a string, one token list) one.
struct Prompts(i64);

impl<'de> Deserialize<'de> for Prompts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Prompts, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = Prompts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a prompt")
            }
            fn visit_str<E>(self, _: &str) -> Result<Prompts, E> {
                Ok(Prompts(1))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Prompts, A::Error> {
                // Elements are skipped, never kept; a list of numbers is
                // one prompt given as token ids.
                let mut n = 0i64;
                let mut numbers = true;
                while let Some(element) = seq.next_element::<Element>()? {
                    numbers &= element.0;
                    n += 1;
                }
                Ok(Prompts(if numbers { 1 } else { n.max(1) }))
            }
        }
        d.deserialize_any(Count)
    }
}

/// One element of a prompt list: whether it is a number.
struct Element(bool);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Element, D::Error> {
        struct Kind;
        impl<'de> Visitor<'de> for Kind {
            type Value = Element;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a prompt element")
            }
            fn visit_u64<E>(self, _: u64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_str<E>(self, _: &str) -> Result<Element, E> {
                Ok(Element(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Element(false))
            }
        }
        d.deserialize_any(Kind)
    }
}

/// The bounds of one request, known before it is forwarded.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    prompt: i64,
    completion: i64,
}

impl Bounds {
    pub fn new(body: &[u8], context_length: Option<i64>) -> Bounds {
        let asked: Asked = serde_json::from_slice(body).unwrap_or_default();
        let context = context_length.filter(|c| *c > 0).unwrap_or(i64::MAX);
        let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let per_choice = asked
            .max_completion_tokens
            .or(asked.max_tokens)
            .filter(|m| *m >= 0)
            .unwrap_or(i64::MAX);
        let per_prompt = asked
            .n
            .into_iter()
            .chain(asked.best_of)
            .filter(|n| *n >= 1)
            .max()
            .unwrap_or(1);
        let choices = per_prompt.saturating_mul(asked.prompt.map_or(1, |p| p.0));
        Bounds {
            prompt: bytes.saturating_add(TEMPLATE_TOKENS).min(context),
            completion: per_choice.saturating_mul(choices).min(context),
        }
    }

    /// The most this request can be billed, (prompt, completion): what a
    /// budget reserves at admission. A request that bounds neither its
    /// completion (`max_tokens`) nor has a known context length is counted
    /// at `default_completion`.
    pub fn worst_case(&self, default_completion: i64) -> (i64, i64) {
        let completion = if self.completion == i64::MAX {
            default_completion
        } else {
            self.completion
        };
        (self.prompt, completion)
    }

    /// The counts to bill for a report, given the bytes the worker sent
    /// back; `disputed` when the report was out of bounds.
    pub fn bill(&self, prompt: i64, completion: i64, answer_bytes: usize) -> Billed {
        let answer = i64::try_from(answer_bytes).unwrap_or(i64::MAX);
        let billed_prompt = prompt.clamp(0, self.prompt);
        let billed_completion = completion.clamp(0, self.completion.min(answer));
        Billed {
            prompt: billed_prompt,
            completion: billed_completion,
            disputed: billed_prompt != prompt || billed_completion != completion,
        }
    }
}

/// What is billed for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billed {
    pub prompt: i64,
    pub completion: i64,
    pub disputed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_bounded_by_the_request_and_the_answer() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}"#;
        let b = Bounds::new(body, Some(4096));
        let plausible = b.bill(20, 10, 500);
        assert_eq!(
            (plausible.prompt, plausible.completion, plausible.disputed),
            (20, 10, false)
        );
        let forged = b.bill(1_000_000, 1_000_000, 500);
        let prompt_bound = i64::try_from(body.len()).unwrap_or(0) + TEMPLATE_TOKENS;
        assert_eq!(
            (forged.prompt, forged.completion, forged.disputed),
            (prompt_bound, 10, true)
        );
        let negative = b.bill(-5, -1, 500);
        assert_eq!(
            (negative.prompt, negative.completion, negative.disputed),
            (0, 0, true)
        );
        // Fewer bytes back than tokens claimed.
        assert_eq!(b.bill(5, 10, 4).completion, 4);
        // The context length caps both, and n multiplies max_tokens.
        let n = Bounds::new(br#"{"prompt":"x","max_tokens":8,"n":3}"#, Some(16));
        assert_eq!(n.bill(100, 100, 10_000).completion, 16);
        assert_eq!(n.bill(100, 20, 10_000).completion, 16);
        assert_eq!(
            Bounds::new(br#"{"max_tokens":8,"n":2}"#, None)
                .bill(0, 16, 99)
                .completion,
            16
        );
        // A list of prompts is one completion each; a token list is one prompt.
        let list = Bounds::new(br#"{"prompt":["a","b","c"],"max_tokens":2}"#, None);
        assert_eq!(list.bill(0, 9, 99).completion, 6);
        let ids = Bounds::new(br#"{"prompt":[1,2,3],"max_tokens":2}"#, None);
        assert_eq!(ids.bill(0, 9, 99).completion, 2);
        let lists = Bounds::new(
            br#"{"prompt":[[1,2],[3]],"max_tokens":2,"best_of":3}"#,
            None,
        );
        assert_eq!(lists.bill(0, 99, 99).completion, 12);
    }
}
