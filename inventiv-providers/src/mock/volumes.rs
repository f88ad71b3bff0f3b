//! Mock block volumes: one JSON file per volume in
//! `<state_dir>/mock-volumes/`. A server's root volume is created with it
//! and, as on Scaleway, outlives it (detached) until deleted.

use std::path::{Path, PathBuf};

use chrono::Utc;
use uuid::Uuid;

use crate::error::ProviderError;
use crate::types::{ListFilter, Volume};

/// The volume files of one state directory.
#[derive(Debug, Clone)]
pub(crate) struct VolumeStore {
    dir: PathBuf,
}

impl VolumeStore {
    pub(crate) fn new(dir: PathBuf) -> VolumeStore {
        VolumeStore { dir }
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        let id = Uuid::parse_str(id).ok()?;
        Some(self.dir.join(format!("{}.json", id.hyphenated())))
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<Volume>, ProviderError> {
        let Some(path) = self.path(id) else {
            return Ok(None);
        };
        read(&path)
    }

    fn save(&self, volume: &Volume) -> Result<(), ProviderError> {
        let path = self
            .path(&volume.provider_id)
            .ok_or_else(|| ProviderError::Internal("volume id is not a uuid".into()))?;
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(volume)
            .map_err(|e| ProviderError::Internal(format!("encode volume: {e}")))?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| ProviderError::io(format!("write {}", path.display()), e))
    }

    /// Creates the root volume of a new server.
    pub(crate) fn create(
        &self,
        id: &str,
        server: &super::vm::VmRecord,
        size_gb: u64,
    ) -> Result<Volume, ProviderError> {
        let volume = Volume {
            provider_id: id.to_owned(),
            zone: server.zone.clone(),
            name: format!("{}-root", server.name),
            size_gb,
            server_id: Some(server.provider_id.clone()),
            tags: server.tags.clone(),
            created_at: Utc::now(),
        };
        self.save(&volume)?;
        Ok(volume)
    }

    pub(crate) fn list(&self, filter: &ListFilter) -> Result<Vec<Volume>, ProviderError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ProviderError::io("list mock volumes", e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| ProviderError::io("list mock volumes", e))?
                .path();
            if path.extension().is_some_and(|x| x == "json") {
                if let Some(v) = read(&path)? {
                    if filter.matches(&v.zone, &v.tags) {
                        out.push(v);
                    }
                }
            }
        }
        out.sort_by_key(|v| v.created_at);
        Ok(out)
    }

    pub(crate) fn resize(&self, id: &str, size_gb: u64) -> Result<(), ProviderError> {
        let mut volume = self
            .get(id)?
            .ok_or_else(|| ProviderError::NotFound(format!("volume {id}")))?;
        if size_gb < volume.size_gb {
            return Err(ProviderError::InvalidRequest(format!(
                "volume {id} is {} GB; volumes only grow",
                volume.size_gb
            )));
        }
        if size_gb > volume.size_gb {
            volume.size_gb = size_gb;
            self.save(&volume)?;
        }
        Ok(())
    }

    pub(crate) fn delete(&self, id: &str) -> Result<(), ProviderError> {
        let Some(volume) = self.get(id)? else {
            return Ok(());
        };
        if let Some(server) = &volume.server_id {
            return Err(ProviderError::InvalidRequest(format!(
                "volume {id} is attached to server {server}; delete the server first"
            )));
        }
        let Some(path) = self.path(id) else {
            return Ok(());
        };
        remove(&path)
    }

    /// Detaches the given volumes from their server (the server is gone).
    pub(crate) fn detach(&self, ids: &[String]) -> Result<(), ProviderError> {
        for id in ids {
            if let Some(mut volume) = self.get(id)? {
                volume.server_id = None;
                self.save(&volume)?;
            }
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<Option<Volume>, ProviderError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ProviderError::Internal(format!("corrupt volume record {}: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProviderError::io(format!("read {}", path.display()), e)),
    }
}

fn remove(path: &Path) -> Result<(), ProviderError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ProviderError::io(format!("remove {}", path.display()), e))
        }
        _ => Ok(()),
    }
}
