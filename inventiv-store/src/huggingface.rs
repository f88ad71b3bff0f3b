//! An organization's Hugging Face token, stored only encrypted (see
//! [`crate::crypto`]): the API writes it, the orchestrator reads it to hand
//! it to the nodes of gated models, and a key rotation re-encrypts every
//! row with the current key.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::credentials::CredentialsError;
use crate::crypto::{CryptoError, Keyring, Sealed};

/// What may be shown about a stored token: never the token itself.
#[derive(Debug, Clone)]
pub struct TokenStatus {
    /// `hf_…` and the last 4 characters.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Encrypts and stores (or replaces) an organization's token, with a
/// non-secret hint to show.
pub async fn save(
    db: impl PgExecutor<'_>,
    keys: &Keyring,
    organization_id: Uuid,
    token: &SecretString,
    hint: &str,
) -> Result<(), CredentialsError> {
    let sealed = keys.seal_huggingface_token(organization_id, token.expose_secret().as_bytes())?;
    sqlx::query!(
        "INSERT INTO huggingface_tokens (organization_id, key_version, nonce, ciphertext, hint)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (organization_id) DO UPDATE
            SET key_version = EXCLUDED.key_version, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
                hint = EXCLUDED.hint, updated_at = now()",
        organization_id,
        sealed.key_version,
        sealed.nonce,
        sealed.ciphertext,
        hint,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The hint and timestamps of an organization's token, if one is set.
pub async fn status(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
) -> Result<Option<TokenStatus>, sqlx::Error> {
    sqlx::query_as!(
        TokenStatus,
        "SELECT hint, created_at, updated_at FROM huggingface_tokens WHERE organization_id = $1",
        organization_id,
    )
    .fetch_optional(db)
    .await
}

struct SealedRow {
    key_version: i32,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl From<SealedRow> for Sealed {
    fn from(row: SealedRow) -> Sealed {
        Sealed {
            key_version: row.key_version,
            nonce: row.nonce,
            ciphertext: row.ciphertext,
        }
    }
}

/// The decrypted token of an organization, if one is set.
pub async fn load(
    db: impl PgExecutor<'_>,
    keys: &Keyring,
    organization_id: Uuid,
) -> Result<Option<SecretString>, CredentialsError> {
    let row = sqlx::query_as!(
        SealedRow,
        "SELECT key_version, nonce, ciphertext FROM huggingface_tokens WHERE organization_id = $1",
        organization_id,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let plain = keys.open_huggingface_token(organization_id, &row.into())?;
    let token = String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)?;
    Ok(Some(token.into()))
}

/// Removes an organization's token; whether there was one.
pub async fn delete(db: impl PgExecutor<'_>, organization_id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM huggingface_tokens WHERE organization_id = $1",
        organization_id,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(deleted > 0)
}

/// Re-encrypts with the current key every token written with another key
/// version; returns how many rows changed. Each row is rewritten under a
/// row lock, so two processes rotating at once do no harm.
pub async fn rotate(db: &PgPool, keys: &Keyring) -> Result<u64, CredentialsError> {
    let stale = sqlx::query_scalar!(
        "SELECT organization_id FROM huggingface_tokens WHERE key_version <> $1",
        keys.current_version(),
    )
    .fetch_all(db)
    .await?;
    let mut changed = 0;
    for org in stale {
        let mut tx = db.begin().await?;
        let row = sqlx::query_as!(
            SealedRow,
            "SELECT key_version, nonce, ciphertext FROM huggingface_tokens
              WHERE organization_id = $1 AND key_version <> $2 FOR UPDATE",
            org,
            keys.current_version(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { continue };
        let plain = keys.open_huggingface_token(org, &row.into())?;
        let sealed = keys.seal_huggingface_token(org, &plain)?;
        sqlx::query!(
            "UPDATE huggingface_tokens SET key_version = $2, nonce = $3, ciphertext = $4
              WHERE organization_id = $1",
            org,
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
