//! Providers per organization. The mock provider is one for the whole
//! platform; a cloud provider is built per (provider, organization) from
//! that organization's decrypted credentials, so every call carries the
//! instance's organization's token and never another's. Built providers
//! are cached and rebuilt when the stored credentials change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use inventiv_providers::scaleway::{self, ScalewayProvider};
use inventiv_providers::CloudProvider;
use inventiv_store::crypto::Keyring;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

/// Why no provider can be used for an organization.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("the organization has no {0} credentials")]
    NotConfigured(String),
    #[error("provider {0} is not available here")]
    Unknown(String),
    #[error("the stored {0} credentials cannot be read: {1}")]
    Unreadable(String, String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl CloudError {
    /// The stable code recorded on the instance.
    pub fn code(&self) -> &'static str {
        match self {
            CloudError::NotConfigured(_) => "PROVIDER_NOT_CONFIGURED",
            CloudError::Unknown(_) => "PROVIDER_UNKNOWN",
            CloudError::Unreadable(..) => "PROVIDER_CREDENTIALS_UNREADABLE",
            CloudError::Db(_) => "DATABASE",
        }
    }
}

type Cached = (DateTime<Utc>, Arc<dyn CloudProvider>);

/// Builds and caches cloud providers per organization.
pub struct Clouds {
    pub keyring: Arc<Keyring>,
    pub scaleway: scaleway::Settings,
    pub http: reqwest::Client,
    cache: Mutex<HashMap<(String, Uuid), Cached>>,
}

impl Clouds {
    pub fn new(
        keyring: Arc<Keyring>,
        scaleway: scaleway::Settings,
        http: reqwest::Client,
    ) -> Clouds {
        Clouds {
            keyring,
            scaleway,
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The provider `code` with `org`'s credentials.
    pub async fn get(
        &self,
        db: &PgPool,
        code: &str,
        org: Uuid,
    ) -> Result<Arc<dyn CloudProvider>, CloudError> {
        if code != "scaleway" {
            return Err(CloudError::Unknown(code.to_owned()));
        }
        let key = (code.to_owned(), org);
        let current = inventiv_store::credentials::updated_at(db, org, code).await?;
        let Some(current) = current else {
            self.forget(&key);
            return Err(CloudError::NotConfigured(code.to_owned()));
        };
        if let Some((at, provider)) = self.cached(&key) {
            if at == current {
                return Ok(provider);
            }
        }
        let (updated_at, creds) = self.scaleway_credentials(db, org).await?;
        let provider: Arc<dyn CloudProvider> = Arc::new(ScalewayProvider::new(
            self.http.clone(),
            self.scaleway.clone(),
            creds,
        ));
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (updated_at, provider.clone()));
        }
        Ok(provider)
    }

    /// `org`'s decrypted Scaleway credentials and when they were written.
    pub async fn scaleway_credentials(
        &self,
        db: &PgPool,
        org: Uuid,
    ) -> Result<(DateTime<Utc>, scaleway::Credentials), CloudError> {
        const CODE: &str = "scaleway";
        let unreadable = |e: String| CloudError::Unreadable(CODE.to_owned(), e);
        let stored = inventiv_store::credentials::load(db, &self.keyring, org, CODE)
            .await
            .map_err(|e| unreadable(e.to_string()))?
            .ok_or_else(|| CloudError::NotConfigured(CODE.to_owned()))?;
        let creds = serde_json::from_str(stored.document.expose_secret())
            .map_err(|_| unreadable("not a Scaleway credentials document".into()))?;
        Ok((stored.updated_at, creds))
    }

    fn cached(&self, key: &(String, Uuid)) -> Option<Cached> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    fn forget(&self, key: &(String, Uuid)) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
    }
}
