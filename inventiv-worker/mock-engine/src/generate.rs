//! Deterministic "model output": token counting, the answer-length plan
//! (`max_tokens`, context length, natural length) and the words themselves,
//! drawn from a fixed vocabulary by a SplitMix64 stream seeded from
//! (seed, prompt). One token is one whitespace-separated word, for prompts
//! and answers alike, so the usage a client is billed always matches the
//! text it received.

use std::fmt;

use serde::{Serialize, Serializer};

macro_rules! vocabulary {
    ($($word:literal),* $(,)?) => {
        /// The words answers are made of; none contains whitespace.
        pub const WORDS: [&str; 64] = [$($word),*];
        /// The same words preceded by the space that separates them from the
        /// previous token (what a streamed delta carries after the first).
        const SPACED: [&str; 64] = [$(concat!(" ", $word)),*];
    };
}

vocabulary!(
    "the",
    "model",
    "answers",
    "with",
    "a",
    "steady",
    "stream",
    "of",
    "plain",
    "words",
    "and",
    "every",
    "token",
    "is",
    "one",
    "word",
    "so",
    "counting",
    "stays",
    "simple",
    "for",
    "tests",
    "clients",
    "proxies",
    "bench",
    "marks",
    "alike",
    "while",
    "latency",
    "throughput",
    "cache",
    "batch",
    "prompt",
    "context",
    "engine",
    "kernel",
    "tensor",
    "layer",
    "weight",
    "vector",
    "cloud",
    "node",
    "queue",
    "request",
    "reply",
    "signal",
    "metric",
    "budget",
    "graph",
    "shard",
    "replica",
    "worker",
    "router",
    "gateway",
    "session",
    "window",
    "sample",
    "decode",
    "prefill",
    "schedule",
    "memory",
    "compute",
    "result",
    "done",
);

/// Number of tokens in `text`: its whitespace-separated words.
pub fn count_tokens(text: &str) -> u32 {
    saturating_u32(text.split_whitespace().count())
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Token count and hash of a prompt, fed piece by piece (message contents,
/// prompt strings) without building the whole text.
#[derive(Debug, Clone, Copy)]
pub struct PromptDigest {
    pub tokens: u32,
    pub hash: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for PromptDigest {
    fn default() -> Self {
        Self {
            tokens: 0,
            hash: FNV_OFFSET,
        }
    }
}

impl PromptDigest {
    /// Adds one piece of prompt text. Pieces are separated in the hash, so
    /// `["ab"]` and `["a", "b"]` are different prompts.
    pub fn add(&mut self, text: &str) {
        let mut hash = self.hash;
        for &byte in text.as_bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
        self.hash = (hash ^ 0xff).wrapping_mul(FNV_PRIME);
        self.tokens = self.tokens.saturating_add(count_tokens(text));
    }

    /// The digest of a single piece of text.
    pub fn of(text: &str) -> Self {
        let mut digest = Self::default();
        digest.add(text);
        digest
    }
}

/// Why generation stopped, as the OpenAI API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The answer reached its natural end.
    Stop,
    /// The answer was cut by `max_tokens` or the context length.
    Length,
}

/// How many tokens to answer and why it ends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub tokens: u32,
    pub finish: FinishReason,
}

/// A request whose lengths the model cannot honour (vLLM answers 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    ZeroMaxTokens,
    ContextTooLong {
        max_model_len: u32,
        prompt: u32,
        completion: u32,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroMaxTokens => f.write_str("max_tokens must be at least 1, got 0."),
            Self::ContextTooLong {
                max_model_len,
                prompt,
                completion,
            } => write!(
                f,
                "This model's maximum context length is {max_model_len} tokens. However, you \
                 requested {} tokens ({prompt} in the messages, {completion} in the completion). \
                 Please reduce the length of the messages or completion.",
                u64::from(*prompt) + u64::from(*completion)
            ),
        }
    }
}

/// The length rules. The model "wants" to say `natural_len` words (or
/// unlimited with `ignore_eos`); `max_tokens` (default: what is left of the
/// context) cuts it.
pub fn plan(
    prompt_tokens: u32,
    max_tokens: Option<u32>,
    ignore_eos: bool,
    natural_len: u32,
    max_model_len: u32,
) -> Result<Plan, PlanError> {
    let room = max_model_len.saturating_sub(prompt_tokens);
    let cap = match max_tokens {
        Some(0) => return Err(PlanError::ZeroMaxTokens),
        Some(n) if n > room => Err(n),
        Some(n) => Ok(n),
        None if room == 0 => Err(0),
        None => Ok(room),
    }
    .map_err(|completion| PlanError::ContextTooLong {
        max_model_len,
        prompt: prompt_tokens,
        completion,
    })?;
    let natural = if ignore_eos { u32::MAX } else { natural_len };
    Ok(if natural <= cap {
        Plan {
            tokens: natural,
            finish: FinishReason::Stop,
        }
    } else {
        Plan {
            tokens: cap,
            finish: FinishReason::Length,
        }
    })
}

/// SplitMix64: tiny, fast, and good enough to pick words.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn start_state(seed: u64, prompt_hash: u64) -> u64 {
    let mut state = prompt_hash;
    seed ^ splitmix(&mut state)
}

/// The answer to one prompt: `count` words, a pure function of
/// (seed, prompt hash); a shorter answer is a prefix of a longer one.
/// Serializes as the space-joined text without building it.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    state: u64,
    count: u32,
}

impl Words {
    pub fn new(seed: u64, prompt_hash: u64, count: u32) -> Self {
        Self {
            state: start_state(seed, prompt_hash),
            count,
        }
    }

    /// The tokens as streamed: the first bare, the others with a leading
    /// space, so that concatenating them gives the full text.
    pub fn tokens(self) -> Tokens {
        Tokens {
            state: self.state,
            left: self.count,
            first: true,
        }
    }
}

impl fmt::Display for Words {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.tokens().try_for_each(|token| f.write_str(token))
    }
}

impl Serialize for Words {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Iterator over the streamed pieces of a [`Words`].
#[derive(Debug, Clone)]
pub struct Tokens {
    state: u64,
    left: u32,
    first: bool,
}

impl Tokens {
    /// Tokens not yet produced.
    pub fn remaining(&self) -> u32 {
        self.left
    }
}

impl Iterator for Tokens {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The top six bits index the 64 words.
        let index = usize::try_from(splitmix(&mut self.state) >> 58).unwrap_or(0);
        let table = if self.first { &WORDS } else { &SPACED };
        self.first = false;
        table.get(index).copied()
    }
}

/// A unit-length embedding of `dim` components, a pure function of
/// (seed, text).
pub fn embedding(seed: u64, text: &str, dim: usize) -> Vec<f32> {
    let mut state = start_state(seed, PromptDigest::of(text).hash);
    // Uniform in [-1, 1) from the top 53 bits.
    let scale = 1.0 / f64::from(1u32 << 26) / f64::from(1u32 << 27);
    let raw: Vec<f64> = (0..dim)
        .map(|_| (splitmix(&mut state) >> 11) as f64 * scale * 2.0 - 1.0)
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        let mut unit = vec![0.0; dim];
        if let Some(first) = unit.first_mut() {
            *first = 1.0;
        }
        return unit;
    }
    raw.iter().map(|x| (x / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn counting_is_whitespace_words() {
        for (text, n) in [
            ("", 0),
            ("  ", 0),
            ("one", 1),
            (" a  b\tc\n", 3),
            ("héllo wörld", 2),
        ] {
            assert_eq!(count_tokens(text), n, "{text:?}");
        }
    }

    #[test]
    fn plan_table() {
        use FinishReason::{Length, Stop};
        // (prompt, max_tokens, ignore_eos, natural, max_model_len) -> plan
        let ok = |tokens, finish| Ok(Plan { tokens, finish });
        let cases = [
            ((5, None, false, 32, 100), ok(32, Stop)),
            ((5, Some(10), false, 32, 100), ok(10, Length)),
            ((5, Some(32), false, 32, 100), ok(32, Stop)),
            ((5, Some(50), false, 32, 100), ok(32, Stop)),
            ((5, Some(50), true, 32, 100), ok(50, Length)),
            ((90, None, false, 32, 100), ok(10, Length)),
            ((5, None, true, 32, 100), ok(95, Length)),
        ];
        for ((p, m, e, n, l), want) in cases {
            assert_eq!(plan(p, m, e, n, l), want, "{p} {m:?} {e} {n} {l}");
        }
        assert_eq!(
            plan(5, Some(0), false, 32, 100),
            Err(PlanError::ZeroMaxTokens)
        );
        assert!(matches!(
            plan(5, Some(96), false, 32, 100),
            Err(PlanError::ContextTooLong { completion: 96, .. })
        ));
        assert!(plan(100, None, false, 32, 100).is_err());
    }

    #[test]
    fn words_are_deterministic_prefixes_and_counted_right() {
        let long = Words::new(7, 42, 50).to_string();
        let short = Words::new(7, 42, 10).to_string();
        assert!(long.starts_with(&short));
        assert_eq!(count_tokens(&long), 50);
        assert_eq!(Words::new(7, 42, 50).tokens().collect::<String>(), long);
        assert_ne!(Words::new(8, 42, 50).to_string(), long);
        assert_ne!(Words::new(7, 43, 50).to_string(), long);
    }

    #[test]
    fn prompt_pieces_are_separated_in_the_hash() {
        let mut split = PromptDigest::default();
        split.add("a");
        split.add("b");
        assert_ne!(split.hash, PromptDigest::of("ab").hash);
        assert_eq!(split.tokens, 2);
    }

    #[test]
    fn embeddings_are_unit_and_deterministic() {
        let a = embedding(1, "hello", 384);
        assert_eq!(a.len(), 384);
        let norm: f64 = a.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(a, embedding(1, "hello", 384));
        assert_ne!(a, embedding(2, "hello", 384));
        assert_ne!(a, embedding(1, "hello!", 384));
    }
}
