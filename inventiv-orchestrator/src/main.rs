//! `inventiv-orchestrator`: read config, start telemetry, connect, serve the
//! probes and the metrics (each on its own listener) and run the
//! orchestrator until Ctrl-C or SIGTERM, then flush the traces.

use std::sync::Arc;

use inventiv_common::shutdown::cancel_on_signal;
use inventiv_common::telemetry;
use inventiv_orchestrator::config::Config;
use inventiv_orchestrator::context::{self, Orchestrator};
use inventiv_orchestrator::{probes, scrape};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init_traced("inventiv-orchestrator");
    let outcome = run().await;
    // The spans still buffered go out whatever the outcome.
    telemetry.shutdown().await;
    outcome
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    if config.production && config.control_plane_address.is_none() {
        tracing::warn!(
            alert = true,
            code = "CONTROL_PLANE_ADDRESS_REQUIRED",
            "INVENTIV_CONTROL_PLANE_ADDRESS is not set: cloud deployments will fail until it is"
        );
    }
    let db = inventiv_store::db::connect(&config.database_url).await?;
    inventiv_store::db::migrate(&db).await?;
    let redis = redis::aio::ConnectionManager::new(redis::Client::open(config.redis_url.as_str())?)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to redis: {e}"))?;
    let bundle =
        context::bundle(config.agent_bundle.clone(), config.bootstrap_script.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr))?;
    // The bound address, not the configured one: with port 0 the kernel
    // chooses it, and this line is how a supervisor (or a test) learns it.
    let addr = listener.local_addr()?;
    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (INVENTIV_ORCHESTRATOR_METRICS_ADDR): {e}",
                config.metrics_addr
            )
        })?;
    let metrics_addr = metrics_listener.local_addr()?;
    tracing::info!(addr = %metrics_addr, "metrics listening");
    tracing::info!(%addr, bundle = %bundle.sha256, "inventiv-orchestrator listening");
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let running = Arc::new(std::sync::OnceLock::new());
    let probes = probes::router(db.clone(), redis.clone());
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, probes)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let metrics = scrape::router(
        db.clone(),
        redis.clone(),
        running.clone(),
        config.metrics_token.clone(),
    );
    let stop = shutdown.clone();
    let metrics_server = tokio::spawn(async move {
        axum::serve(metrics_listener, metrics)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let orchestrator = Arc::new(Orchestrator::build(config, db, redis, bundle).await?);
    let _ = running.set(orchestrator.clone());
    inventiv_orchestrator::run(orchestrator, shutdown).await;
    server.await??;
    metrics_server.await??;
    tracing::info!("inventiv-orchestrator stopped");
    Ok(())
}
