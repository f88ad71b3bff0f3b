//! Fault injection: which `/v1/*` request fails, hangs, or ends the
//! process, so that the proxy, the orchestrator's health checks and retries
//! can be tested against a misbehaving engine. Pure decisions over one
//! atomic request counter; `app` carries them out.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;

/// A 5xx status to answer failed requests with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultStatus(StatusCode);

impl FaultStatus {
    pub fn parse(text: &str) -> Result<Self, String> {
        let code: u16 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an HTTP status"))?;
        match StatusCode::from_u16(code) {
            Ok(status) if status.is_server_error() => Ok(Self(status)),
            _ => Err(format!("{code} is not a 5xx status")),
        }
    }

    pub fn status(self) -> StatusCode {
        self.0
    }
}

impl Default for FaultStatus {
    fn default() -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_u16())
    }
}

/// How `exit_after` ends the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitMode {
    /// Answer the Nth request, shut down gracefully, exit with code 0.
    #[default]
    Clean,
    /// Exit with code 1 as soon as the Nth request arrives, unanswered.
    Crash,
}

impl ExitMode {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "clean" => Ok(Self::Clean),
            "crash" => Ok(Self::Crash),
            other => Err(format!("{other:?} is not `clean` or `crash`")),
        }
    }
}

/// The faults asked for; all off by default.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Requests 1..=N answer `status`.
    pub fail_first: u64,
    /// Every request answers `status`.
    pub fail_always: bool,
    pub status: FaultStatus,
    /// Requests after the first N are accepted and never answered.
    pub hang_after: Option<u64>,
    /// The process ends after request N (see [`ExitMode`]).
    pub exit_after: Option<u64>,
    pub exit_mode: ExitMode,
}

impl FaultConfig {
    fn any(&self) -> bool {
        self.fail_first > 0
            || self.fail_always
            || self.hang_after.is_some()
            || self.exit_after.is_some()
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Serve,
    Fail(StatusCode),
    Hang,
    Crash,
}

/// The decision for one request: the action, and whether the process is to
/// end once this request's response has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub exit_when_done: bool,
}

const SERVE: Verdict = Verdict {
    action: Action::Serve,
    exit_when_done: false,
};

/// The fault plan plus the count of requests seen so far.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    active: bool,
    seen: AtomicU64,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self {
            active: config.any(),
            config,
            seen: AtomicU64::new(0),
        }
    }

    /// Counts one request and decides its fate. Without faults configured
    /// this touches no shared counter.
    pub fn admit(&self) -> Verdict {
        if !self.active {
            return SERVE;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        let c = &self.config;
        let last = c.exit_after == Some(n);
        let action = if last && c.exit_mode == ExitMode::Crash {
            Action::Crash
        } else if c.hang_after.is_some_and(|after| n > after) {
            Action::Hang
        } else if c.fail_always || n <= c.fail_first {
            Action::Fail(c.status.status())
        } else {
            Action::Serve
        };
        Verdict {
            action,
            exit_when_done: last,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn actions(config: FaultConfig, n: usize) -> Vec<Verdict> {
        let faults = Faults::new(config);
        (0..n).map(|_| faults.admit()).collect()
    }

    #[test]
    fn verdict_table() {
        use Action::{Crash, Fail, Hang, Serve};
        let s503 = FaultStatus::parse("503").unwrap();
        let v = |action, exit_when_done| Verdict {
            action,
            exit_when_done,
        };
        let cases: Vec<(FaultConfig, Vec<Verdict>)> = vec![
            (FaultConfig::default(), vec![v(Serve, false); 3]),
            (
                FaultConfig {
                    fail_first: 2,
                    status: s503,
                    ..Default::default()
                },
                vec![
                    v(Fail(StatusCode::SERVICE_UNAVAILABLE), false),
                    v(Fail(StatusCode::SERVICE_UNAVAILABLE), false),
                    v(Serve, false),
                ],
            ),
            (
                FaultConfig {
                    fail_always: true,
                    ..Default::default()
                },
                vec![v(Fail(StatusCode::INTERNAL_SERVER_ERROR), false); 3],
            ),
            (
                FaultConfig {
                    hang_after: Some(1),
                    ..Default::default()
                },
                vec![v(Serve, false), v(Hang, false), v(Hang, false)],
            ),
            (
                FaultConfig {
                    exit_after: Some(2),
                    ..Default::default()
                },
                vec![v(Serve, false), v(Serve, true), v(Serve, false)],
            ),
            (
                FaultConfig {
                    exit_after: Some(2),
                    exit_mode: ExitMode::Crash,
                    ..Default::default()
                },
                vec![v(Serve, false), v(Crash, true), v(Serve, false)],
            ),
        ];
        for (config, want) in cases {
            assert_eq!(actions(config.clone(), want.len()), want, "{config:?}");
        }
    }

    #[test]
    fn status_must_be_5xx() {
        assert!(FaultStatus::parse("502").is_ok());
        for bad in ["404", "200", "600", "abc", ""] {
            assert!(FaultStatus::parse(bad).is_err(), "{bad}");
        }
    }
}
