//! `inventiv-mock-engine`: a fast, deterministic stand-in for vLLM's
//! OpenAI-compatible server, for development, tests and benchmarks where
//! there is no GPU. [`build_app`] builds exactly what the binary serves.

pub mod app;
pub mod completions;
pub mod config;
pub mod embeddings;
pub mod error;
pub mod faults;
pub mod generate;
pub mod metrics;
pub mod openai;
pub mod prefill;
pub mod prefix_cache;
pub mod stream;

pub use app::{build_app, Application};
pub use config::Config;
