//! Password hashing with argon2id (m=19456 KiB, t=2, p=1), off the async
//! threads and capped in concurrency so a login flood cannot exhaust the CPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

fn argon2() -> Result<Argon2<'static>, ApiError> {
    let params =
        Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes and verifies passwords with a bound on simultaneous work.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the account does
    /// not exist so both answers take the same time.
    dummy_hash: Arc<String>,
    /// Hashes computed or verified since start (`inventiv_password_hashes_total`).
    done: Arc<AtomicU64>,
}

impl Hasher {
    /// A hasher allowing `max_concurrent` hashes at once.
    pub fn new(max_concurrent: usize) -> Result<Hasher, ApiError> {
        let random = uuid::Uuid::new_v4().to_string();
        let dummy = hash_blocking(&random)?;
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            dummy_hash: Arc::new(dummy),
            done: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How many hashes were computed or verified since start.
    pub fn work_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| anyhow::anyhow!("hasher closed: {e}"))?;
        let password = password.to_owned();
        self.done.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|e| anyhow::anyhow!("hash task: {e}"))?
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when `stored` is None (unknown account), always returning false then.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| anyhow::anyhow!("hasher closed: {e}"))?;
        let known = stored.is_some();
        let hash = stored.map_or_else(|| self.dummy_hash.as_str().to_owned(), str::to_owned);
        let password = password.to_owned();
        self.done.fetch_add(1, Ordering::Relaxed);
        let ok = tokio::task::spawn_blocking(move || {
            let parsed =
                PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
            Ok::<_, ApiError>(
                argon2()?
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await
        .map_err(|e| anyhow::anyhow!("verify task: {e}"))??;
        Ok(ok && known)
    }
}

fn hash_blocking(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_and_unknown_account() -> Result<(), ApiError> {
        let hasher = Hasher::new(1)?;
        let hash = hasher.hash("correct horse battery").await?;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify("correct horse battery", Some(&hash)).await?);
        assert!(!hasher.verify("wrong horse battery", Some(&hash)).await?);
        assert!(!hasher.verify("correct horse battery", None).await?);
        Ok(())
    }
}
