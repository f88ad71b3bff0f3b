//! Typed configuration from command-line flags and `INVENTIV_MOCK_*`
//! environment variables (a flag wins over its variable; an empty variable
//! counts as unset), parsed by `clap`: one declaration, [`Args`], is both
//! the parser and the `--help` text.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

use crate::faults::{ExitMode, FaultConfig, FaultStatus};

/// Everything the engine needs to know, valid once built.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// The served model name (`--model`, `--served-model-name`).
    pub model: String,
    /// Context length: prompt plus answer tokens.
    pub max_model_len: u32,
    /// Listening starts at once; `/health` and `/v1/*` answer 503 until then.
    pub load_delay: Duration,
    /// Time to first token.
    pub ttft: Duration,
    /// Time between two tokens; zero means as fast as possible.
    pub inter_token: Duration,
    /// Length of an answer when nothing cuts it.
    pub output_len: u32,
    pub seed: u64,
    pub embedding_dim: usize,
    /// Automatic prefix caching (vLLM's `--enable-prefix-caching`, on by
    /// default as in vLLM V1).
    pub prefix_caching: bool,
    /// Blocks the KV cache holds (vLLM's `num_gpu_blocks`): the prefix
    /// cache keeps at most that many, and `vllm:kv_cache_usage_perc` is the
    /// share running requests hold.
    pub prefix_cache_blocks: usize,
    /// Tokens per KV-cache block (vLLM's `--block-size`).
    pub block_size: u32,
    /// Prefill speed in prompt tokens per second, for the tokens not found
    /// in the prefix cache; prefills queue one after the other (the
    /// engine's compute is shared). Zero: prefill takes no time.
    pub prefill_rate: f64,
    /// `usage.prompt_tokens_details.cached_tokens` in answers (vLLM's
    /// `--enable-prompt-tokens-details`, off by default as in vLLM).
    pub prompt_tokens_details: bool,
    /// Tokio worker threads; 1 runs a current-thread runtime.
    pub workers: NonZeroUsize,
    pub faults: FaultConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            model: "mock/model".to_owned(),
            max_model_len: 4096,
            load_delay: Duration::ZERO,
            ttft: Duration::ZERO,
            inter_token: Duration::ZERO,
            output_len: 32,
            seed: 0,
            embedding_dim: 384,
            prefix_caching: true,
            prefix_cache_blocks: 65_536,
            block_size: crate::prefix_cache::BLOCK_SIZE,
            prefill_rate: 0.0,
            prompt_tokens_details: false,
            workers: Self::default_workers(),
            faults: FaultConfig::default(),
        }
    }
}

/// The command line as `clap` reads it; [`Config`] is what it means.
#[derive(Debug, Parser)]
#[command(
    name = "inventiv-mock-engine",
    about = "inventiv-mock-engine: a fast, deterministic vLLM-compatible mock inference engine.",
    after_help = "Every option can also be set by its environment variable; a flag wins.",
    // As vLLM's argparse: a flag given twice takes its last value (the
    // agent's tests append overrides to a base command).
    args_override_self = true
)]
pub struct Args {
    /// IP address to listen on
    #[arg(
        long,
        env = "INVENTIV_MOCK_HOST",
        value_name = "IP",
        default_value = "127.0.0.1"
    )]
    host: IpAddr,
    /// TCP port; 0 picks a free one (logged as `listening`)
    #[arg(long, env = "INVENTIV_MOCK_PORT", default_value = "8000", value_parser = num::<u16>)]
    port: u16,
    /// Served model name; requests for another model get 404
    #[arg(long, visible_alias = "served-model-name", env = "INVENTIV_MOCK_MODEL", value_name = "NAME",
        default_value = "mock/model", value_parser = model_name)]
    model: String,
    /// Context length (prompt + answer), reported by /v1/models
    #[arg(long, env = "INVENTIV_MOCK_MAX_MODEL_LEN", value_name = "TOKENS", default_value = "4096",
        value_parser = positive::<u32>)]
    max_model_len: u32,
    /// Model load time: /health and /v1/* answer 503 until it has passed
    #[arg(long = "load-delay-ms", env = "INVENTIV_MOCK_LOAD_DELAY_MS", value_name = "MS", default_value = "0",
        value_parser = millis)]
    load_delay: Duration,
    /// Time to first token
    #[arg(long = "ttft-ms", env = "INVENTIV_MOCK_TTFT_MS", value_name = "MS", default_value = "0",
        value_parser = millis)]
    ttft: Duration,
    /// Decode speed after the first token; 0 = as fast as possible
    #[arg(long = "tokens-per-second", visible_alias = "tokens-per-sec", env = "INVENTIV_MOCK_TOKENS_PER_SECOND",
        value_name = "RATE", default_value = "0", allow_negative_numbers = true,
        value_parser = inter_token)]
    inter_token: Duration,
    /// Natural answer length; max_tokens below it cuts the answer (finish_reason length)
    #[arg(long, env = "INVENTIV_MOCK_OUTPUT_LEN", value_name = "TOKENS", default_value = "32",
        value_parser = positive::<u32>)]
    output_len: u32,
    /// Seed of the generated text and embeddings (a request's `seed` overrides it)
    #[arg(long, env = "INVENTIV_MOCK_SEED", value_name = "N", default_value = "0", value_parser = num::<u64>)]
    seed: u64,
    /// Dimension of /v1/embeddings vectors
    #[arg(long, env = "INVENTIV_MOCK_EMBEDDING_DIM", value_name = "N", default_value = "384",
        value_parser = positive::<usize>)]
    embedding_dim: usize,
    /// Automatic prefix caching: a repeated prompt prefix is served from cache (whole blocks of 16 tokens)
    #[arg(long = "enable-prefix-caching", env = "INVENTIV_MOCK_ENABLE_PREFIX_CACHING", value_name = "BOOL",
        num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true",
        value_parser = switch, overrides_with = "no_prefix_caching")]
    prefix_caching: bool,
    /// Turns prefix caching off (vLLM's spelling)
    #[arg(long = "no-enable-prefix-caching", overrides_with = "prefix_caching")]
    no_prefix_caching: bool,
    /// KV-cache size in blocks: the prefix cache holds at most that many (least recently used out first)
    #[arg(long, visible_alias = "num-gpu-blocks-override", env = "INVENTIV_MOCK_PREFIX_CACHE_BLOCKS",
        value_name = "N", default_value = "65536", value_parser = positive::<usize>)]
    prefix_cache_blocks: usize,
    /// Tokens per KV-cache block (the unit of a prefix cache hit)
    #[arg(long, env = "INVENTIV_MOCK_BLOCK_SIZE", value_name = "TOKENS", default_value = "16",
        value_parser = positive::<u32>)]
    block_size: u32,
    /// Prefill speed for uncached prompt tokens; prefills queue one at a time. 0 = instant
    #[arg(long = "prefill-tokens-per-second", env = "INVENTIV_MOCK_PREFILL_TOKENS_PER_SECOND",
        value_name = "RATE", default_value = "0", allow_negative_numbers = true, value_parser = rate)]
    prefill_rate: f64,
    /// Report usage.prompt_tokens_details.cached_tokens (when some are cached)
    #[arg(long = "enable-prompt-tokens-details", env = "INVENTIV_MOCK_ENABLE_PROMPT_TOKENS_DETAILS",
        value_name = "BOOL", num_args = 0..=1, require_equals = true, default_value = "false",
        default_missing_value = "true", value_parser = switch)]
    prompt_tokens_details: bool,
    /// Runtime worker threads; 1 = a single-threaded runtime [default: number of cores]
    #[arg(long, env = "INVENTIV_MOCK_WORKERS", value_name = "N", value_parser = workers)]
    workers: Option<NonZeroUsize>,
    /// Fault: the first N /v1/* requests answer --fail-status
    #[arg(long, env = "INVENTIV_MOCK_FAIL_FIRST", value_name = "N", default_value = "0", value_parser = num::<u64>)]
    fail_first: u64,
    /// Fault: every /v1/* request answers --fail-status
    #[arg(long, env = "INVENTIV_MOCK_FAIL_ALWAYS", value_name = "BOOL", num_args = 0..=1, require_equals = true,
        default_value = "false", default_missing_value = "true", value_parser = switch)]
    fail_always: bool,
    /// Status of the failures above
    #[arg(long, env = "INVENTIV_MOCK_FAIL_STATUS", value_name = "5XX", default_value = "500",
        value_parser = FaultStatus::parse)]
    fail_status: FaultStatus,
    /// Fault: /v1/* requests after the first N are accepted and never answered
    #[arg(long, env = "INVENTIV_MOCK_HANG_AFTER", value_name = "N", default_value = "off",
        value_parser = optional_count)]
    hang_after: Count,
    /// Fault: the process ends after the Nth /v1/* request (see --exit-mode)
    #[arg(long, env = "INVENTIV_MOCK_EXIT_AFTER", value_name = "N", default_value = "off",
        value_parser = optional_count)]
    exit_after: Count,
    /// clean: answer it, shut down, exit 0; crash: exit 1 at once, unanswered
    #[arg(long, env = "INVENTIV_MOCK_EXIT_MODE", value_name = "clean|crash", default_value = "clean",
        value_parser = ExitMode::parse)]
    exit_mode: ExitMode,
}

/// `off`/`none`, or a count.
#[derive(Debug, Clone, Copy)]
struct Count(Option<u64>);

fn num<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a valid number"))
}

fn positive<T: FromStr + TryFrom<u8> + PartialOrd>(text: &str) -> Result<T, String> {
    let n: T = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a valid number of at least 1"))?;
    match T::try_from(1) {
        Ok(one) if n >= one => Ok(n),
        _ => Err(format!("{text:?} must be at least 1")),
    }
}

fn workers(text: &str) -> Result<NonZeroUsize, String> {
    NonZeroUsize::try_from(positive::<usize>(text)?).map_err(|e| e.to_string())
}

fn millis(text: &str) -> Result<Duration, String> {
    num(text).map(Duration::from_millis)
}

fn switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not true or false")),
    }
}

fn optional_count(text: &str) -> Result<Count, String> {
    match text.trim() {
        "off" | "none" => Ok(Count(None)),
        _ => num(text).map(|n| Count(Some(n))),
    }
}

fn model_name(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("the model name is empty".to_owned()),
        name => Ok(name.to_owned()),
    }
}

/// A speed in tokens per second, 0 or more.
fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = num(text)?;
    if !rate.is_finite() || rate < 0.0 {
        return Err(format!("{text:?} must be a number >= 0"));
    }
    Ok(rate)
}

/// The time between two tokens at `text` tokens per second (0: none).
fn inter_token(text: &str) -> Result<Duration, String> {
    let tps: f64 = num(text)?;
    if !tps.is_finite() || tps < 0.0 {
        return Err(format!("{text:?} must be a number >= 0"));
    }
    if tps == 0.0 {
        return Ok(Duration::ZERO);
    }
    Duration::try_from_secs_f64(1.0 / tps).map_err(|e| e.to_string())
}

impl From<Args> for Config {
    fn from(a: Args) -> Self {
        Self {
            host: a.host,
            port: a.port,
            model: a.model,
            max_model_len: a.max_model_len,
            load_delay: a.load_delay,
            ttft: a.ttft,
            inter_token: a.inter_token,
            output_len: a.output_len,
            seed: a.seed,
            embedding_dim: a.embedding_dim,
            prefix_caching: a.prefix_caching && !a.no_prefix_caching,
            prefix_cache_blocks: a.prefix_cache_blocks,
            block_size: a.block_size,
            prefill_rate: a.prefill_rate,
            prompt_tokens_details: a.prompt_tokens_details,
            workers: a.workers.unwrap_or_else(Config::default_workers),
            faults: FaultConfig {
                fail_first: a.fail_first,
                fail_always: a.fail_always,
                status: a.fail_status,
                hang_after: a.hang_after.0,
                // `--exit-after 0` is off, like no value.
                exit_after: a.exit_after.0.filter(|n| *n > 0),
                exit_mode: a.exit_mode,
            },
        }
    }
}

impl Config {
    /// Reads the flags (`args` starts with the program name) and the
    /// `INVENTIV_MOCK_*` variables; `--help` comes back as an error that
    /// prints it.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        // An empty (or blank) variable counts as unset, as in a compose
        // file's `VAR=`; clap would read it as an empty value.
        let command = Args::command().mut_args(|arg| {
            let blank = arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.to_string_lossy().trim().is_empty());
            if blank {
                arg.env(None)
            } else {
                arg
            }
        });
        let matches = command.try_get_matches_from(args)?;
        Args::from_arg_matches(&matches).map(Self::from)
    }

    /// Reads the flags only (`args` starts with the program name), the
    /// `INVENTIV_MOCK_*` variables of this process ignored: how the
    /// orchestrator checks, at its start, the arguments it will give the
    /// engines of its nodes (`INVENTIV_MOCK_ENGINE_ARGS`).
    pub fn try_parse_flags<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Args::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(args)?;
        Args::from_arg_matches(&matches).map(Self::from)
    }

    fn default_workers() -> NonZeroUsize {
        std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    // The variables are read from the process environment, which tests do
    // not touch: tests/cli.rs runs the binary with them.
    fn run(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("inventiv-mock-engine").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_vllm_s() {
        let c = run(&[]).unwrap();
        assert_eq!(c.port, 8000);
        assert_eq!(c.model, "mock/model");
        assert_eq!(c.max_model_len, 4096);
        assert_eq!(c.output_len, 32);
        assert_eq!(c.embedding_dim, 384);
        assert_eq!(c.prefix_cache_blocks, 65_536);
        assert_eq!((c.block_size, c.prefill_rate), (16, 0.0));
        assert!(c.prefix_caching && !c.prompt_tokens_details);
        assert!(!c.faults.fail_always && c.faults.hang_after.is_none());
        assert!(c.faults.exit_after.is_none());
    }

    #[test]
    fn a_flag_given_twice_takes_its_last_value() {
        let c = run(&["--tokens-per-second", "0", "--tokens-per-second", "20"]).unwrap();
        assert_eq!(c.inter_token, Duration::from_millis(50));
    }

    #[test]
    fn forms_and_values() {
        let c = run(&[
            "--model=org/m",
            "--fail-always",
            "--tokens-per-second",
            "4",
            "--hang-after",
            "3",
            "--port",
            "0",
            "--workers",
            "1",
            "--ttft-ms",
            "7",
        ])
        .unwrap();
        assert_eq!(c.model, "org/m");
        assert!(c.faults.fail_always);
        assert_eq!(c.inter_token, Duration::from_millis(250));
        assert_eq!(c.faults.hang_after, Some(3));
        assert_eq!((c.port, c.workers.get()), (0, 1));
        assert_eq!(c.ttft, Duration::from_millis(7));
        let c = run(&[
            "--served-model-name",
            "x",
            "--fail-always=false",
            "--tokens-per-sec",
            "0",
        ])
        .unwrap();
        assert_eq!(c.model, "x");
        assert!(!c.faults.fail_always);
        assert_eq!(c.inter_token, Duration::ZERO);
        let c = run(&[
            "--enable-prompt-tokens-details",
            "--no-enable-prefix-caching",
            "--exit-after",
            "0",
            "--exit-mode",
            "crash",
        ])
        .unwrap();
        assert!(!c.prefix_caching && c.prompt_tokens_details);
        assert_eq!(c.faults.exit_after, None, "0 is off");
        assert_eq!(c.faults.exit_mode, ExitMode::Crash);
        let c = run(&[
            "--block-size",
            "32",
            "--num-gpu-blocks-override",
            "100",
            "--prefill-tokens-per-second",
            "2000.5",
        ])
        .unwrap();
        assert_eq!((c.block_size, c.prefix_cache_blocks), (32, 100));
        assert!((c.prefill_rate - 2000.5).abs() < 1e-9);
        let c = run(&["--no-enable-prefix-caching", "--enable-prefix-caching"]).unwrap();
        assert!(c.prefix_caching, "the last flag wins");
    }

    #[test]
    fn bad_input_is_refused_with_the_flag_named() {
        for args in [
            &["--nope"][..],
            &["--port"],
            &["--port", "70000"],
            &["--fail-status", "404"],
            &["--workers", "0"],
            &["--embedding-dim", "0"],
            &["--prefix-cache-blocks", "0"],
            &["--block-size", "0"],
            &["--prefill-tokens-per-second", "-5"],
            &["--enable-prompt-tokens-details=maybe"],
            &["--tokens-per-second", "-1"],
            &["--host", "localhost:1"],
            &["--model", " "],
            &["stray"],
        ] {
            let err = run(args).unwrap_err().to_string();
            let flag = args[0].split('=').next().unwrap();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn flags_alone_are_read_and_checked() {
        let c = Config::try_parse_flags(["inventiv-mock-engine", "--ttft-ms", "200"]).unwrap();
        assert_eq!(c.ttft, Duration::from_millis(200));
        let err = Config::try_parse_flags(["inventiv-mock-engine", "--ttft", "2"]).unwrap_err();
        assert!(err.to_string().contains("--ttft"), "{err}");
    }

    #[test]
    fn help_lists_every_flag_and_variable() {
        let help = Args::command().render_long_help().to_string();
        for arg in Args::command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(help.contains(&format!("--{long}")), "{long}");
            }
            if let Some(env) = arg.get_env() {
                assert!(help.contains(&*env.to_string_lossy()), "{env:?}");
            }
        }
        for alias in [
            "--served-model-name",
            "--tokens-per-sec",
            "INVENTIV_MOCK_PORT",
        ] {
            assert!(help.contains(alias), "{alias}");
        }
    }
}
