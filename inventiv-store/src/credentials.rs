//! Provider credentials of an organization, stored only encrypted (see
//! [`crate::crypto`]): the API writes them, the orchestrator reads them to
//! build that organization's provider, and a key rotation re-encrypts every
//! row with the current key. The plaintext is a provider-specific JSON
//! document that this module never inspects.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::crypto::{CryptoError, Keyring, Sealed};

/// Why credentials could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Decrypted credentials and when they were last written (a provider
/// built from them is stale once `updated_at` moves).
pub struct Credentials {
    pub document: SecretString,
    pub updated_at: DateTime<Utc>,
}

/// Encrypts and stores (or replaces) an organization's credentials for a
/// provider, with a non-secret hint to show; clears the last verification.
pub async fn save(
    db: impl PgExecutor<'_>,
    keys: &Keyring,
    organization_id: Uuid,
    provider: &str,
    document: &SecretString,
    hint: &str,
) -> Result<(), CredentialsError> {
    let sealed = keys.seal(
        organization_id,
        provider,
        document.expose_secret().as_bytes(),
    )?;
    sqlx::query!(
        "INSERT INTO provider_credentials (organization_id, provider_code, key_version, nonce, ciphertext, hint)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (organization_id, provider_code) DO UPDATE
            SET key_version = EXCLUDED.key_version, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
                hint = EXCLUDED.hint, verified_at = NULL, verified_ok = NULL, verify_message = NULL,
                updated_at = now()",
        organization_id,
        provider,
        sealed.key_version,
        sealed.nonce,
        sealed.ciphertext,
        hint,
    )
    .execute(db)
    .await?;
    Ok(())
}

struct SealedRow {
    key_version: i32,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    updated_at: DateTime<Utc>,
}

impl SealedRow {
    fn sealed(self) -> (Sealed, DateTime<Utc>) {
        (
            Sealed {
                key_version: self.key_version,
                nonce: self.nonce,
                ciphertext: self.ciphertext,
            },
            self.updated_at,
        )
    }
}

/// The decrypted credentials of an organization for a provider, if set.
pub async fn load(
    db: impl PgExecutor<'_>,
    keys: &Keyring,
    organization_id: Uuid,
    provider: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    let row = sqlx::query_as!(
        SealedRow,
        "SELECT key_version, nonce, ciphertext, updated_at FROM provider_credentials
          WHERE organization_id = $1 AND provider_code = $2",
        organization_id,
        provider,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (sealed, updated_at) = row.sealed();
    let plain = keys.open(organization_id, provider, &sealed)?;
    let document = String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)?;
    Ok(Some(Credentials {
        document: document.into(),
        updated_at,
    }))
}

/// When an organization's credentials for a provider were last written,
/// `None` when unset: a cheap staleness check for cached providers.
pub async fn updated_at(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    provider: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT updated_at FROM provider_credentials WHERE organization_id = $1 AND provider_code = $2",
        organization_id,
        provider,
    )
    .fetch_optional(db)
    .await
}

/// Records the outcome of a verification against the provider's API.
pub async fn record_verification(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    provider: &str,
    ok: bool,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE provider_credentials SET verified_at = now(), verified_ok = $3, verify_message = $4
          WHERE organization_id = $1 AND provider_code = $2",
        organization_id,
        provider,
        ok,
        message,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Re-encrypts with the current key every row written with another key
/// version; returns how many rows changed. Each row is rewritten under a
/// row lock, so two processes rotating at once do no harm.
pub async fn rotate(db: &PgPool, keys: &Keyring) -> Result<u64, CredentialsError> {
    let stale = sqlx::query!(
        "SELECT organization_id, provider_code FROM provider_credentials WHERE key_version <> $1",
        keys.current_version(),
    )
    .fetch_all(db)
    .await?;
    let mut changed = 0;
    for stale in stale {
        let (org, provider) = (stale.organization_id, stale.provider_code);
        let mut tx = db.begin().await?;
        let row = sqlx::query_as!(
            SealedRow,
            "SELECT key_version, nonce, ciphertext, updated_at FROM provider_credentials
              WHERE organization_id = $1 AND provider_code = $2 AND key_version <> $3 FOR UPDATE",
            org,
            &provider,
            keys.current_version(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { continue };
        let plain = keys.open(org, &provider, &row.sealed().0)?;
        let sealed = keys.seal(org, &provider, &plain)?;
        sqlx::query!(
            "UPDATE provider_credentials SET key_version = $3, nonce = $4, ciphertext = $5
              WHERE organization_id = $1 AND provider_code = $2",
            org,
            &provider,
            sealed.key_version,
            sealed.nonce,
            sealed.ciphertext,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        changed += 1;
    }
    Ok(changed)
}
