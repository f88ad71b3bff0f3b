//! API keys on the hot path: an in-memory cache by public id (entries live
//! `TTL`), so a key costs one query per replica per TTL, not per request.
//! Revocation is published on Redis and drops the entry on every replica at
//! once; without Redis, the TTL bounds how long a revoked key still works.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use inventiv_common::KeyPriority;
use uuid::Uuid;

use crate::auth::api_key;
use crate::state::AppState;

/// How long a cached key is trusted without looking at the database.
pub const TTL: Duration = Duration::from_secs(10);

/// Entries kept at most: past it, expired ones are dropped, and unknown
/// keys (made up by a client) are no longer remembered, so a flood of
/// random keys cannot grow the cache without bound.
pub const MAX_ENTRIES: usize = 20_000;

/// What the proxy needs to know about a key (shared, not copied, per request).
#[derive(Debug)]
pub struct KeyInfo {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub created_by: Uuid,
    pub hash: Vec<u8>,
    pub models: Option<Vec<String>>,
    pub rpm_limit: Option<i32>,
    pub tpm_limit: Option<i32>,
    pub usable: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// Its requests' band on a saturated deployment.
    pub priority: KeyPriority,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    organization_id: Uuid,
    created_by: Uuid,
    secret_hash: Vec<u8>,
    models: Option<Vec<String>>,
    rpm_limit: Option<i32>,
    tpm_limit: Option<i32>,
    usable: bool,
    expires_at: Option<DateTime<Utc>>,
    priority: KeyPriority,
}

/// The cache: public id → (key or known-missing, fetched at).
#[derive(Clone, Default)]
pub struct KeyCache(Arc<RwLock<HashMap<String, Cached>>>);

/// A key (or the knowledge that there is none) and when it was fetched.
type Cached = (Option<Arc<KeyInfo>>, Instant);

impl KeyCache {
    /// Forgets a key (after revocation or a change).
    pub fn forget(&self, public_id: &str) {
        if let Ok(mut map) = self.0.write() {
            map.remove(public_id);
        }
    }

    /// Remembers what the database said about a key, within [`MAX_ENTRIES`].
    fn remember(&self, public_id: &str, info: Option<Arc<KeyInfo>>) {
        let Ok(mut map) = self.0.write() else {
            return;
        };
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        if map.len() < MAX_ENTRIES || info.is_some() {
            map.insert(public_id.to_owned(), (info, Instant::now()));
        }
    }

    /// How many entries the cache holds (`inventiv_api_key_cache_entries`).
    pub fn entries(&self) -> usize {
        self.0.read().map_or(0, |m| m.len())
    }

    fn cached(&self, public_id: &str) -> Option<Option<Arc<KeyInfo>>> {
        let map = self.0.read().ok()?;
        let (info, at) = map.get(public_id)?;
        (at.elapsed() < TTL).then(|| info.clone())
    }
}

/// Resolves a presented key to a usable key of an organization whose creator
/// is still a member; None for anything else.
pub async fn authenticate(state: &AppState, presented: &str) -> sqlx::Result<Option<Arc<KeyInfo>>> {
    let Some(public_id) = api_key::public_id(presented) else {
        return Ok(None);
    };
    let info = match state.keys.cached(public_id) {
        Some(info) => {
            state.metrics.key_cache_hits.inc();
            info
        }
        None => {
            state.metrics.key_cache_misses.inc();
            // Boxed: a miss is rare, its query's state large.
            let row: Option<Row> = Box::pin(
                sqlx::query_as(
                "SELECT k.id, k.organization_id, k.created_by, k.secret_hash, k.models, k.rpm_limit, k.tpm_limit,
                        (k.revoked_at IS NULL AND k.technical_active AND k.economic_active
                         AND EXISTS (SELECT 1 FROM organization_memberships m WHERE m.organization_id = k.organization_id AND m.user_id = k.created_by)) AS usable,
                        k.expires_at, k.priority
                   FROM api_keys k WHERE k.public_id = $1",
            )
            .bind(public_id)
                .fetch_optional(&state.db),
            )
            .await?;
            let info = row.map(|r| {
                Arc::new(KeyInfo {
                    id: r.id,
                    organization_id: r.organization_id,
                    created_by: r.created_by,
                    hash: r.secret_hash,
                    models: r.models,
                    rpm_limit: r.rpm_limit,
                    tpm_limit: r.tpm_limit,
                    usable: r.usable,
                    expires_at: r.expires_at,
                    priority: r.priority,
                })
            });
            state.keys.remember(public_id, info.clone());
            info
        }
    };
    Ok(info.filter(|k| {
        k.usable
            && api_key::matches(presented, &k.hash)
            && k.expires_at.is_none_or(|t| t > Utc::now())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unknown keys were cached without bound: a client sending random keys
    /// grew the API's memory for ever.
    #[test]
    fn unknown_keys_cannot_grow_the_cache_without_bound() {
        let cache = KeyCache::default();
        for n in 0..MAX_ENTRIES + 500 {
            cache.remember(&format!("made-up-{n}"), None);
        }
        assert_eq!(cache.entries(), MAX_ENTRIES);
        // A real key is still remembered.
        let real = Arc::new(KeyInfo {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            created_by: Uuid::nil(),
            hash: Vec::new(),
            models: None,
            rpm_limit: None,
            tpm_limit: None,
            usable: true,
            expires_at: None,
            priority: KeyPriority::Interactive,
        });
        cache.remember("real", Some(real));
        assert!(matches!(cache.cached("real"), Some(Some(_))));
    }
}
