//! The database at start-up: the schema migrations (embedded once, here,
//! for every process and test harness) and the pool both services open.

use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The schema migrations of `sqlx-migrations/`, embedded at build time;
/// whichever process starts first applies them.
pub static MIGRATOR: Migrator = sqlx::migrate!("../sqlx-migrations");

/// Why a service could not get its database ready.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed, start-up stopped: {0}")]
    Migrate(#[source] MigrateError),
}

/// Opens the pool with the settings the API and the orchestrator share.
pub async fn connect(url: &str) -> Result<PgPool, StartError> {
    PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(StartError::Connect)
}

/// Applies pending migrations; the error names the migration that failed.
pub async fn migrate(db: &PgPool) -> Result<(), StartError> {
    MIGRATOR.run(db).await.map_err(StartError::Migrate)
}
