//! Typed configuration from command-line flags and `INVENTIV_MOCK_*`
//! environment variables (a flag wins over its variable; an empty variable
//! counts as unset). One table, [`OPTIONS`], is both the parser and the
//! `--help` text.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

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
    /// Blocks the prefix cache keeps at most (its memory bound).
    pub prefix_cache_blocks: usize,
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
            prompt_tokens_details: false,
            workers: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            faults: FaultConfig::default(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help(String),
}

/// A flag or variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

type Setter = fn(&mut Config, &str) -> Result<(), String>;

/// One option: its flag, its variable, how its value reads, and its help.
pub struct Opt {
    pub flag: &'static str,
    pub env: &'static str,
    /// Placeholder for the value; empty for a switch (`--flag` = true).
    pub value: &'static str,
    pub default: &'static str,
    pub help: &'static str,
    set: Setter,
}

fn num<T: FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a valid number"))
}

fn positive<T: FromStr + PartialOrd + Default>(text: &str) -> Result<T, String> {
    let n: T = num(text)?;
    if n > T::default() {
        Ok(n)
    } else {
        Err(format!("{text:?} must be at least 1"))
    }
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

/// `off`/`none` or a count.
fn optional_count(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "off" | "none" => Ok(None),
        _ => num(text).map(Some),
    }
}

fn set_model(c: &mut Config, v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        return Err("the model name is empty".to_owned());
    }
    c.model = v.trim().to_owned();
    Ok(())
}

fn set_tokens_per_second(c: &mut Config, v: &str) -> Result<(), String> {
    let tps: f64 = num(v)?;
    if !tps.is_finite() || tps < 0.0 {
        return Err(format!("{v:?} must be a number >= 0"));
    }
    c.inter_token = if tps == 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(1.0 / tps).map_err(|e| e.to_string())?
    };
    Ok(())
}

/// The options, in `--help` order.
#[rustfmt::skip]
pub static OPTIONS: &[Opt] = &[
    Opt { flag: "host", env: "INVENTIV_MOCK_HOST", value: "IP", default: "127.0.0.1",
        help: "IP address to listen on",
        set: |c, v| { c.host = v.trim().parse().map_err(|_| format!("{v:?} is not an IP address"))?; Ok(()) } },
    Opt { flag: "port", env: "INVENTIV_MOCK_PORT", value: "PORT", default: "8000",
        help: "TCP port; 0 picks a free one (logged as `listening`)",
        set: |c, v| { c.port = num(v)?; Ok(()) } },
    Opt { flag: "model", env: "INVENTIV_MOCK_MODEL", value: "NAME", default: "mock/model",
        help: "Served model name; requests for another model get 404",
        set: set_model },
    Opt { flag: "served-model-name", env: "", value: "NAME", default: "",
        help: "Same as --model (vLLM's spelling)",
        set: set_model },
    Opt { flag: "max-model-len", env: "INVENTIV_MOCK_MAX_MODEL_LEN", value: "TOKENS", default: "4096",
        help: "Context length (prompt + answer), reported by /v1/models",
        set: |c, v| { c.max_model_len = positive(v)?; Ok(()) } },
    Opt { flag: "load-delay-ms", env: "INVENTIV_MOCK_LOAD_DELAY_MS", value: "MS", default: "0",
        help: "Model load time: /health and /v1/* answer 503 until it has passed",
        set: |c, v| { c.load_delay = millis(v)?; Ok(()) } },
    Opt { flag: "ttft-ms", env: "INVENTIV_MOCK_TTFT_MS", value: "MS", default: "0",
        help: "Time to first token",
        set: |c, v| { c.ttft = millis(v)?; Ok(()) } },
    Opt { flag: "tokens-per-second", env: "INVENTIV_MOCK_TOKENS_PER_SECOND", value: "RATE", default: "0",
        help: "Decode speed after the first token; 0 = as fast as possible",
        set: set_tokens_per_second },
    Opt { flag: "tokens-per-sec", env: "", value: "RATE", default: "",
        help: "Same as --tokens-per-second",
        set: set_tokens_per_second },
    Opt { flag: "output-len", env: "INVENTIV_MOCK_OUTPUT_LEN", value: "TOKENS", default: "32",
        help: "Natural answer length; max_tokens below it cuts the answer (finish_reason length)",
        set: |c, v| { c.output_len = positive(v)?; Ok(()) } },
    Opt { flag: "seed", env: "INVENTIV_MOCK_SEED", value: "N", default: "0",
        help: "Seed of the generated text and embeddings (a request's `seed` overrides it)",
        set: |c, v| { c.seed = num(v)?; Ok(()) } },
    Opt { flag: "embedding-dim", env: "INVENTIV_MOCK_EMBEDDING_DIM", value: "N", default: "384",
        help: "Dimension of /v1/embeddings vectors",
        set: |c, v| { c.embedding_dim = positive(v)?; Ok(()) } },
    Opt { flag: "enable-prefix-caching", env: "INVENTIV_MOCK_ENABLE_PREFIX_CACHING", value: "", default: "true",
        help: "Automatic prefix caching: a repeated prompt prefix is served from cache (whole blocks of 16 tokens)",
        set: |c, v| { c.prefix_caching = switch(v)?; Ok(()) } },
    Opt { flag: "no-enable-prefix-caching", env: "", value: "", default: "",
        help: "Turns prefix caching off (vLLM's spelling)",
        set: |c, v| { c.prefix_caching = !switch(v)?; Ok(()) } },
    Opt { flag: "prefix-cache-blocks", env: "INVENTIV_MOCK_PREFIX_CACHE_BLOCKS", value: "N", default: "65536",
        help: "Blocks the prefix cache holds at most; the least recently used go first",
        set: |c, v| { c.prefix_cache_blocks = positive(v)?; Ok(()) } },
    Opt { flag: "enable-prompt-tokens-details", env: "INVENTIV_MOCK_ENABLE_PROMPT_TOKENS_DETAILS", value: "", default: "false",
        help: "Report usage.prompt_tokens_details.cached_tokens (when some are cached)",
        set: |c, v| { c.prompt_tokens_details = switch(v)?; Ok(()) } },
    Opt { flag: "workers", env: "INVENTIV_MOCK_WORKERS", value: "N", default: "number of cores",
        help: "Runtime worker threads; 1 = a single-threaded runtime",
        set: |c, v| { c.workers = NonZeroUsize::new(positive(v)?).ok_or("must be at least 1")?; Ok(()) } },
    Opt { flag: "fail-first", env: "INVENTIV_MOCK_FAIL_FIRST", value: "N", default: "0",
        help: "Fault: the first N /v1/* requests answer --fail-status",
        set: |c, v| { c.faults.fail_first = num(v)?; Ok(()) } },
    Opt { flag: "fail-always", env: "INVENTIV_MOCK_FAIL_ALWAYS", value: "", default: "false",
        help: "Fault: every /v1/* request answers --fail-status",
        set: |c, v| { c.faults.fail_always = switch(v)?; Ok(()) } },
    Opt { flag: "fail-status", env: "INVENTIV_MOCK_FAIL_STATUS", value: "5XX", default: "500",
        help: "Status of the failures above",
        set: |c, v| { c.faults.status = FaultStatus::parse(v)?; Ok(()) } },
    Opt { flag: "hang-after", env: "INVENTIV_MOCK_HANG_AFTER", value: "N", default: "off",
        help: "Fault: /v1/* requests after the first N are accepted and never answered",
        set: |c, v| { c.faults.hang_after = optional_count(v)?; Ok(()) } },
    Opt { flag: "exit-after", env: "INVENTIV_MOCK_EXIT_AFTER", value: "N", default: "off",
        help: "Fault: the process ends after the Nth /v1/* request (see --exit-mode)",
        set: |c, v| { c.faults.exit_after = optional_count(v)?.filter(|n| *n > 0); Ok(()) } },
    Opt { flag: "exit-mode", env: "INVENTIV_MOCK_EXIT_MODE", value: "clean|crash", default: "clean",
        help: "clean: answer it, shut down, exit 0; crash: exit 1 at once, unanswered",
        set: |c, v| { c.faults.exit_mode = ExitMode::parse(v)?; Ok(()) } },
];

impl Config {
    /// Reads the arguments (without the program name) and the environment,
    /// through `env` so that tests need not touch the process environment.
    pub fn parse<I, E>(args: I, env: E) -> Result<Command, ConfigError>
    where
        I: IntoIterator<Item = String>,
        E: Fn(&str) -> Option<String>,
    {
        let mut config = Config::default();
        for opt in OPTIONS.iter().filter(|o| !o.env.is_empty()) {
            if let Some(value) = env(opt.env).filter(|v| !v.trim().is_empty()) {
                (opt.set)(&mut config, &value)
                    .map_err(|e| ConfigError(format!("{}: {e}", opt.env)))?;
            }
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(Command::Help(help()));
            }
            let Some(body) = arg.strip_prefix("--") else {
                return Err(ConfigError(format!(
                    "unexpected argument {arg:?}; see --help"
                )));
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (body, None),
            };
            let opt = OPTIONS
                .iter()
                .find(|o| o.flag == name)
                .ok_or_else(|| ConfigError(format!("unknown option --{name}; see --help")))?;
            let value = match inline {
                Some(value) => value,
                None if opt.value.is_empty() => "true".to_owned(),
                None => args
                    .next()
                    .ok_or_else(|| ConfigError(format!("--{name} needs a value")))?,
            };
            (opt.set)(&mut config, &value).map_err(|e| ConfigError(format!("--{name}: {e}")))?;
        }
        Ok(Command::Run(Box::new(config)))
    }
}

/// The `--help` text, generated from [`OPTIONS`].
pub fn help() -> String {
    let mut out = String::from(
        "inventiv-mock-engine: a fast, deterministic vLLM-compatible mock inference engine.\n\n\
         Usage: inventiv-mock-engine [OPTIONS]\n\n\
         Every option can also be set by its environment variable; a flag wins.\n\n\
         Options:\n",
    );
    for opt in OPTIONS {
        let head = if opt.value.is_empty() {
            format!("--{}", opt.flag)
        } else {
            format!("--{} <{}>", opt.flag, opt.value)
        };
        let _ = writeln!(out, "  {head:<28} {}", opt.help);
        let mut notes = String::new();
        if !opt.env.is_empty() {
            let _ = write!(notes, "[env: {}] ", opt.env);
        }
        if !opt.default.is_empty() {
            let _ = write!(notes, "[default: {}]", opt.default);
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "  {:<28} {}", "", notes.trim_end());
        }
    }
    let _ = writeln!(out, "  {:<28} Print this help", "-h, --help");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        match Config::parse(args.iter().map(|s| (*s).to_owned()), lookup)? {
            Command::Run(config) => Ok(*config),
            Command::Help(_) => panic!("unexpected help"),
        }
    }

    #[test]
    fn flag_wins_over_env_and_env_over_default() {
        let c = run(
            &["--port", "9000"],
            &[("INVENTIV_MOCK_PORT", "7000"), ("INVENTIV_MOCK_SEED", "5")],
        )
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.seed, 5);
        assert_eq!(c.model, "mock/model");
        let c = run(&[], &[("INVENTIV_MOCK_PORT", "")]).unwrap();
        assert_eq!(c.port, 8000, "an empty variable is unset");
    }

    #[test]
    fn forms_and_values() {
        let c = run(
            &[
                "--model=org/m",
                "--fail-always",
                "--tokens-per-second",
                "4",
                "--hang-after",
                "3",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.model, "org/m");
        assert!(c.faults.fail_always);
        assert_eq!(c.inter_token, Duration::from_millis(250));
        assert_eq!(c.faults.hang_after, Some(3));
        let c = run(&["--served-model-name", "x", "--fail-always=false"], &[]).unwrap();
        assert_eq!(c.model, "x");
        assert!(!c.faults.fail_always);
        assert!(
            c.prefix_caching && !c.prompt_tokens_details,
            "vLLM's defaults"
        );
        let c = run(
            &[
                "--enable-prompt-tokens-details",
                "--no-enable-prefix-caching",
            ],
            &[],
        )
        .unwrap();
        assert!(!c.prefix_caching && c.prompt_tokens_details);
    }

    #[test]
    fn bad_input_is_refused() {
        for args in [
            &["--nope"][..],
            &["--port"],
            &["--port", "70000"],
            &["--fail-status", "404"],
            &["--workers", "0"],
            &["--embedding-dim", "0"],
            &["--prefix-cache-blocks", "0"],
            &["--enable-prompt-tokens-details=maybe"],
            &["--tokens-per-second", "-1"],
            &["--host", "localhost:1"],
            &["stray"],
        ] {
            assert!(run(args, &[]).is_err(), "{args:?}");
        }
        assert!(run(&[], &[("INVENTIV_MOCK_TTFT_MS", "soon")]).is_err());
    }

    #[test]
    fn help_lists_every_flag_and_variable() {
        let text = help();
        for opt in OPTIONS {
            assert!(text.contains(&format!("--{}", opt.flag)));
            assert!(text.contains(opt.env));
        }
    }
}
