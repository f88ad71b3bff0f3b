//! Request bodies. Strings are borrowed from the body (no copy unless a
//! string has escapes); unknown fields are ignored, as vLLM does.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A JSON string, borrowed from the request body when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

struct TextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor(PhantomData))
    }
}

/// A string or an array of strings (`prompt`, `input`).
#[derive(Debug)]
pub enum Texts<'a> {
    One(Text<'a>),
    Many(Vec<Text<'a>>),
}

impl<'a> Texts<'a> {
    pub fn as_slice(&self) -> &[Text<'a>] {
        match self {
            Self::One(text) => std::slice::from_ref(text),
            Self::Many(texts) => texts,
        }
    }
}

struct TextsVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextsVisitor<'a> {
    type Value = Texts<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Texts<'a>, E> {
        TextVisitor(PhantomData)
            .visit_borrowed_str(v)
            .map(Texts::One)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Texts<'a>, E> {
        TextVisitor(PhantomData).visit_str(v).map(Texts::One)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Texts<'a>, A::Error> {
        let mut texts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        while let Some(text) = seq.next_element()? {
            texts.push(text);
        }
        if texts.is_empty() {
            return Err(de::Error::invalid_length(0, &"at least one string"));
        }
        Ok(Texts::Many(texts))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Texts<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextsVisitor(PhantomData))
    }
}

/// A message's `content`: a string, an array of parts (only `text` parts
/// count), or null.
#[derive(Debug, Default)]
pub enum Content<'a> {
    #[default]
    Empty,
    Text(Text<'a>),
    Parts(Vec<Part<'a>>),
}

#[derive(Debug, Deserialize)]
pub struct Part<'a> {
    #[serde(borrow, default)]
    pub text: Option<Text<'a>>,
}

impl Content<'_> {
    /// Calls `f` on each piece of text.
    pub fn for_each_text(&self, mut f: impl FnMut(&str)) {
        match self {
            Self::Empty => {}
            Self::Text(text) => f(text),
            Self::Parts(parts) => parts.iter().filter_map(|p| p.text.as_deref()).for_each(f),
        }
    }
}

struct ContentVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
    type Value = Content<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an array of content parts, or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Content<'a>, E> {
        Ok(Content::Empty)
    }
    fn visit_none<E: de::Error>(self) -> Result<Content<'a>, E> {
        Ok(Content::Empty)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Content<'a>, E> {
        TextVisitor(PhantomData)
            .visit_borrowed_str(v)
            .map(Content::Text)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Content<'a>, E> {
        TextVisitor(PhantomData).visit_str(v).map(Content::Text)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'a>, A::Error> {
        let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        while let Some(part) = seq.next_element()? {
            parts.push(part);
        }
        Ok(Content::Parts(parts))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ContentVisitor(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage<'a> {
    #[serde(borrow, default)]
    pub content: Content<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
    /// vLLM's extension: with `include_usage`, every chunk carries the usage so far.
    #[serde(default)]
    pub continuous_usage_stats: Option<bool>,
}

/// What a generation request asks for, once read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generation {
    pub stream: bool,
    pub include_usage: bool,
    /// Usage on every chunk (`include_usage` and `continuous_usage_stats`).
    pub continuous_usage: bool,
    pub max_tokens: Option<u32>,
    pub seed: Option<u64>,
    pub ignore_eos: bool,
}

fn generation(
    stream: Option<bool>,
    options: Option<&StreamOptions>,
    max_tokens: Option<u32>,
    seed: Option<i64>,
    ignore_eos: Option<bool>,
) -> Generation {
    Generation {
        stream: stream.unwrap_or(false),
        include_usage: options.and_then(|o| o.include_usage).unwrap_or(false),
        continuous_usage: options.is_some_and(|o| {
            o.include_usage == Some(true) && o.continuous_usage_stats == Some(true)
        }),
        max_tokens,
        // A negative seed is as good a seed as any.
        seed: seed.map(|s| s as u64),
        ignore_eos: ignore_eos.unwrap_or(false),
    }
}

// The fields of a generation request the mock acts on; the rest (sampling
// parameters, tools, ...) are accepted and ignored, as vLLM ignores unknown
// fields. No `#[serde(flatten)]` here: it would buffer the whole body.

#[derive(Debug, Deserialize)]
pub struct ChatRequest<'a> {
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    #[serde(borrow)]
    pub messages: Vec<ChatMessage<'a>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub ignore_eos: Option<bool>,
}

impl ChatRequest<'_> {
    pub fn generation(&self) -> Generation {
        generation(
            self.stream,
            self.stream_options.as_ref(),
            self.max_completion_tokens.or(self.max_tokens),
            self.seed,
            self.ignore_eos,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest<'a> {
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    #[serde(borrow)]
    pub prompt: Texts<'a>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub ignore_eos: Option<bool>,
}

impl CompletionRequest<'_> {
    pub fn generation(&self) -> Generation {
        generation(
            self.stream,
            self.stream_options.as_ref(),
            self.max_tokens,
            self.seed,
            self.ignore_eos,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest<'a> {
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    #[serde(borrow)]
    pub input: Texts<'a>,
    #[serde(borrow, default)]
    pub encoding_format: Option<Text<'a>>,
}
