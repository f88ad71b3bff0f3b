//! The stop signal of every binary: Ctrl-C or SIGTERM cancels the one
//! token that the server's graceful shutdown and every loop watch.

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Listens from now on for Ctrl-C and SIGTERM, then cancels `token`; the
/// returned future ends without a word if something else cancels it first
/// (a fault, a test). Call it before the service announces its port.
pub fn cancel_on_signal(token: CancellationToken) -> impl Future<Output = ()> {
    StopSignal::listen().cancel(token)
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for since [`StopSignal::listen`].
pub struct StopSignal {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl StopSignal {
    /// Starts listening now. A signal that cannot be listened for is
    /// logged; the other one still stops the process.
    pub fn listen() -> Self {
        let open = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        Self {
            interrupt: open(SignalKind::interrupt(), "Ctrl-C (SIGINT)"),
            terminate: open(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// Completes on the first Ctrl-C or SIGTERM.
    pub async fn received(self) {
        async fn next(signal: Option<Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = next(self.interrupt) => {}
            () = next(self.terminate) => {}
        }
    }

    /// Waits for a signal and cancels `token`, or for `token` to be
    /// cancelled by something else.
    pub async fn cancel(self, token: CancellationToken) {
        tokio::select! {
            () = self.received() => {
                // Cancel before logging: with a broken stderr the log line may fail.
                token.cancel();
                tracing::info!("shutting down");
            }
            () = token.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = CancellationToken::new();
        // Listening starts at the call, so the signal below cannot meet the
        // default action (which would end the tests).
        let waiter = tokio::spawn(cancel_on_signal(token.clone()));
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("SIGTERM ends the wait within 5 s")
            .unwrap();
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn an_outside_cancel_ends_the_wait() {
        let token = CancellationToken::new();
        let waiter = tokio::spawn(cancel_on_signal(token.clone()));
        token.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the wait ends within 5 s")
            .unwrap();
    }
}
