//! A node's relay for `make bench`: the proxy speaks only TLS to a worker's
//! relay, with the instance's relay key and the certificate pinned for it,
//! so the bench's engine is put behind the tests' stand-in relay
//! (`inventiv_testkit::relay`) and its instance made routable as the
//! orchestrator does at bootstrap: a relay key issued (sealed with the
//! API's encryption key), the relay's certificate pinned, the instance's
//! address pointed at the relay.
//!
//! `bench_relay <engine port on 127.0.0.1> <instance id>` with
//! `DATABASE_URL` and `INVENTIV_ENCRYPTION_KEY` (and
//! `INVENTIV_ENCRYPTION_KEY_VERSION`, default 1) as the API has them;
//! prints `{"message":"listening","addr":"127.0.0.1:<port>"}` on stdout
//! once the instance points at it, then relays until it is stopped.

use std::io::Write;

use inventiv_testkit::relay::{self, Certificate};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || anyhow::anyhow!("usage: bench_relay <engine port> <instance id>");
    let engine: u16 = args.next().ok_or_else(usage)?.parse()?;
    let instance: uuid::Uuid = args.next().ok_or_else(usage)?.parse()?;
    let key = std::env::var("INVENTIV_ENCRYPTION_KEY")?;
    let version = std::env::var("INVENTIV_ENCRYPTION_KEY_VERSION")
        .ok()
        .map_or(Ok(1), |v| v.parse())?;
    let keyring = inventiv_store::crypto::Keyring::from_hex(&key, version, None)
        .map_err(|e| anyhow::anyhow!("INVENTIV_ENCRYPTION_KEY: {e}"))?;
    let db = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;

    let relay = relay::start(engine, Certificate::generate()).await;
    let key_sha256 = inventiv_store::relay::issue_key(&db, &keyring, instance)
        .await
        .map_err(|e| anyhow::anyhow!("issuing the relay key: {e}"))?;
    relay.allow(&key_sha256);
    inventiv_store::relay::pin_certificate(&db, instance, relay.certificate.sha256).await?;
    sqlx::query(
        "UPDATE instances SET ip_address = '127.0.0.1', worker_engine_port = $2 WHERE id = $1",
    )
    .bind(instance)
    .bind(i32::from(relay.port))
    .execute(&db)
    .await?;
    db.close().await;
    writeln!(
        std::io::stdout(),
        r#"{{"message":"listening","addr":"127.0.0.1:{}"}}"#,
        relay.port
    )?;
    std::future::pending::<()>().await;
    Ok(())
}
