//! The stop signal of every binary: Ctrl-C or SIGTERM cancels the one
//! token that the server's graceful shutdown and every loop watch.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Waits for Ctrl-C or SIGTERM and cancels `token`; returns without a word
/// if something else cancels it first (a fault, a test).
pub async fn cancel_on_signal(token: CancellationToken) {
    tokio::select! {
        () = requested() => {
            // Cancel before logging: with a broken stderr the log line may fail.
            token.cancel();
            tracing::info!("shutting down");
        }
        () = token.cancelled() => {}
    }
}

/// Completes on the first Ctrl-C or SIGTERM. A signal that cannot be
/// listened for is logged and the other one still stops the process.
pub async fn requested() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
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
        let mut waiter = std::pin::pin!(cancel_on_signal(token.clone()));
        // One poll registers the listeners, so the signal below is not sent
        // before anyone listens (the default action would end the tests).
        let early = tokio::time::timeout(Duration::from_millis(20), &mut waiter).await;
        assert!(early.is_err(), "nothing to stop for yet");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("SIGTERM ends the wait within 5 s");
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
