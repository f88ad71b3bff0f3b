//! Structured logs with `tracing` for every binary: human-readable by
//! default, JSON with `LOG_FORMAT=json`, filtered by `RUST_LOG` (default
//! `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) keeps the first.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // A closed stderr (the terminal went away) must not turn logging into a panic.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .log_internal_errors(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
