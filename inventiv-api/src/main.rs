//! `inventiv-api`: serve the API, or `inventiv-api migrate` to apply
//! migrations and exit, or `inventiv-api replay-usage-journal <dir>` to
//! commit a gone replica's usage journal.

use inventiv_api::config::Config;
use inventiv_api::{startup, telemetry};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("migrate") => {
            let db = startup::connect_db(&config).await?;
            startup::migrate(&db).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Some("replay-usage-journal") => {
            let dir = std::env::args().nth(2).ok_or_else(|| {
                anyhow::anyhow!("usage: inventiv-api replay-usage-journal <journal directory>")
            })?;
            let db = startup::connect_db(&config).await?;
            let dir = std::path::PathBuf::from(dir);
            inventiv_api::proxy::journal::shipper::replay_dir(&db, config.price_notice, &dir)
                .await?;
            tracing::info!(dir = %dir.display(), "usage journal committed and removed");
            return Ok(());
        }
        Some(other) => {
            anyhow::bail!(
                "unknown command {other:?}; use `serve` (default), `migrate` or `replay-usage-journal <dir>`"
            )
        }
    }
    let app = startup::Application::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal(shutdown.clone()));
    app.serve(shutdown).await
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
    }
    // Cancel before logging: with a broken stderr the log line may fail.
    shutdown.cancel();
    tracing::info!("shutting down");
}
