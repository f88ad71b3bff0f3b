//! `inventiv-orchestrator`: the background process that will drive instances
//! through their lifecycle. For now it holds its connections and answers
//! liveness and readiness probes, so `make run` supervises the whole system.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Probes {
    db: PgPool,
    redis: redis::aio::ConnectionManager,
}

fn env(key: &str) -> anyhow::Result<String> {
    std::env::var(key).map_err(|_| anyhow::anyhow!("{key} is required (make run sets it up)"))
}

#[tokio::main]
#[expect(
    clippy::disallowed_methods,
    reason = "the orchestrator's probes are not API routes"
)]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    let addr: SocketAddr = std::env::var("INVENTIV_ORCHESTRATOR_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8001".into())
        .parse()
        .map_err(|e| anyhow::anyhow!("INVENTIV_ORCHESTRATOR_ADDR: {e}"))?;
    let db = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&env("DATABASE_URL")?)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
    let redis = redis::aio::ConnectionManager::new(redis::Client::open(env("REDIS_URL")?)?)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to redis: {e}"))?;
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .with_state(Probes { db, redis });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal(shutdown.clone()));
    tracing::info!(%addr, "inventiv-orchestrator listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("inventiv-orchestrator stopped");
    Ok(())
}

async fn readyz(State(p): State<Probes>) -> (StatusCode, Json<serde_json::Value>) {
    let limit = Duration::from_secs(2);
    let pg = matches!(
        tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(&p.db)).await,
        Ok(Ok(_))
    );
    let mut conn = p.redis.clone();
    let ping =
        tokio::time::timeout(limit, redis::cmd("PING").query_async::<String>(&mut conn)).await;
    let rd = matches!(ping, Ok(Ok(_)));
    let status = if pg && rd {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    (
        status,
        Json(
            serde_json::json!({ "status": word(pg && rd), "checks": { "postgres": word(pg), "redis": word(rd) } }),
        ),
    )
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
