//! `inventiv-orchestrator`: read config, start telemetry, connect, serve the
//! probes and run the orchestrator until Ctrl-C or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use inventiv_orchestrator::config::Config;
use inventiv_orchestrator::engine::{self, Orchestrator};
use inventiv_orchestrator::{probes, MIGRATOR};
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .log_internal_errors(false);
    if std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    let config = Config::from_env()?;
    if config.production && config.control_plane_address.is_none() {
        tracing::warn!(
            alert = true,
            code = "CONTROL_PLANE_ADDRESS_REQUIRED",
            "INVENTIV_CONTROL_PLANE_ADDRESS is not set: cloud deployments will fail until it is"
        );
    }
    let db = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
    MIGRATOR
        .run(&db)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed, start-up stopped: {e}"))?;
    let redis = redis::aio::ConnectionManager::new(redis::Client::open(config.redis_url.as_str())?)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to redis: {e}"))?;
    let bundle =
        engine::bundle(config.agent_bundle.clone(), config.bootstrap_script.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr))?;
    tracing::info!(addr = %config.addr, bundle = %bundle.sha256, "inventiv-orchestrator listening");
    let shutdown = CancellationToken::new();
    tokio::spawn(signal(shutdown.clone()));
    let running = Arc::new(std::sync::OnceLock::new());
    let probes = probes::router(db.clone(), redis.clone(), running.clone());
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, probes)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    let orchestrator = Arc::new(Orchestrator::build(config, db, redis, bundle).await?);
    let _ = running.set(orchestrator.clone());
    inventiv_orchestrator::run(orchestrator, shutdown).await;
    server.await??;
    tracing::info!("inventiv-orchestrator stopped");
    Ok(())
}

async fn signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    shutdown.cancel();
}
