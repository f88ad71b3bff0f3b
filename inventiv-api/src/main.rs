//! `inventiv-api`: serve the API, or `inventiv-api migrate` to apply
//! migrations and exit, or `inventiv-api replay-usage-journal <dir>` to
//! commit a gone replica's usage journal.

use inventiv_api::config::Config;
use inventiv_api::startup;
use inventiv_common::shutdown::cancel_on_signal;
use inventiv_common::telemetry;
use inventiv_store::db;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init_traced("inventiv-api");
    let outcome = run().await;
    // The spans still buffered go out whatever the outcome.
    telemetry.shutdown().await;
    outcome
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("migrate") => {
            let pool = db::connect(config.database_url()).await?;
            db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Some("replay-usage-journal") => {
            let dir = std::env::args().nth(2).ok_or_else(|| {
                anyhow::anyhow!("usage: inventiv-api replay-usage-journal <journal directory>")
            })?;
            let pool = db::connect(config.database_url()).await?;
            let dir = std::path::PathBuf::from(dir);
            inventiv_api::proxy::journal::shipper::replay_dir(&pool, config.price_notice, &dir)
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
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.serve(shutdown).await
}
