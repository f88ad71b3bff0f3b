//! `inventiv-mock-engine`: read the configuration (flags, then
//! `INVENTIV_MOCK_*` variables), start logging, serve until SIGTERM, Ctrl-C
//! or an `--exit-after` fault.

use std::io::Write as _;

use anyhow::Context as _;
use inventiv_mock_engine::config::{Command, Config};
use inventiv_mock_engine::{build_app, telemetry};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|a| anyhow::anyhow!("argument {a:?} is not UTF-8"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let config = match Config::parse(args, |key| std::env::var(key).ok())? {
        Command::Help(text) => {
            std::io::stdout().write_all(text.as_bytes())?;
            return Ok(());
        }
        Command::Run(config) => *config,
    };
    telemetry::init();
    // One worker runs a current-thread runtime: the cheapest for a
    // one-core benchmark.
    let runtime = if config.workers.get() == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers.get())
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    runtime.block_on(async {
        let app = build_app(config).await.context("cannot listen")?;
        tokio::spawn(signal(app.shutdown_token()));
        app.serve().await.context("server error")
    })
}

/// Cancels on Ctrl-C or SIGTERM.
async fn signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = ctrl_c.await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
        () = shutdown.cancelled() => return,
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
