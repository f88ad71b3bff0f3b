//! A mock VM on disk: its directory `<state_dir>/mock-vms/<provider_id>/`
//! and the `vm.json` record in it, which is the VM's whole state (so a new
//! provider on the same directory picks every VM up), plus the choice of a
//! loopback address nobody else uses.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ProviderError;

const RECORD: &str = "vm.json";
const STAGING_PREFIX: &str = ".new-";

/// Power state kept in `vm.json` under `"state"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum Power {
    /// Created, never started.
    Stopped,
    /// Powered on; sshd starts at `boot_at`.
    Starting { boot_at: DateTime<Utc> },
    /// sshd answered once.
    Running,
}

/// Everything known about one VM.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VmRecord {
    pub provider_id: String,
    pub instance_id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub zone: String,
    pub instance_type: String,
    pub image: Option<String>,
    pub tags: Vec<String>,
    pub address: Ipv4Addr,
    pub ssh_port: u16,
    /// Ids of its volumes, the root one first.
    pub volumes: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub power: Power,
}

/// The VM directory of a provider id, or `None` for an id the mock never
/// hands out (which keeps `..` and friends out of paths).
pub(crate) fn dir_of(vms_dir: &Path, provider_id: &str) -> Option<PathBuf> {
    let id = Uuid::parse_str(provider_id).ok()?;
    Some(vms_dir.join(id.hyphenated().to_string()))
}

/// Where a VM is assembled before it appears under its id (not a VM
/// directory for [`list`]; left over only by a crash during a create).
pub(crate) fn staging_dir(vms_dir: &Path, provider_id: &str) -> PathBuf {
    vms_dir.join(format!("{STAGING_PREFIX}{provider_id}"))
}

/// Removes what crashed creates left in `vms_dir`.
pub(crate) fn remove_staging(vms_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(vms_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Reads a VM's record; `None` when the VM (or its record) is gone.
pub(crate) fn load(dir: &Path) -> Result<Option<VmRecord>, ProviderError> {
    let path = dir.join(RECORD);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ProviderError::Internal(format!("corrupt VM record {}: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProviderError::io(format!("read {}", path.display()), e)),
    }
}

/// Writes a VM's record atomically (a reader never sees half of it).
pub(crate) fn save(dir: &Path, record: &VmRecord) -> Result<(), ProviderError> {
    let path = dir.join(RECORD);
    let tmp = dir.join(format!("{RECORD}.tmp"));
    let bytes = serde_json::to_vec_pretty(record)
        .map_err(|e| ProviderError::Internal(format!("encode VM record: {e}")))?;
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| ProviderError::io(format!("write {}", path.display()), e))
}

/// Every VM directory under `vms_dir` with its record, if readable. A
/// directory without a readable record still counts: it must be cleaned.
pub(crate) fn list(vms_dir: &Path) -> Result<Vec<(PathBuf, Option<VmRecord>)>, ProviderError> {
    let entries = match std::fs::read_dir(vms_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ProviderError::io(format!("list {}", vms_dir.display()), e)),
    };
    let mut vms = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ProviderError::io("list mock VMs", e))?;
        let name = entry.file_name();
        let is_vm = name.to_str().is_some_and(|n| Uuid::parse_str(n).is_ok());
        if !is_vm || !entry.path().is_dir() {
            continue;
        }
        let dir = entry.path();
        let record = match load(&dir) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "unreadable mock VM record");
                None
            }
        };
        vms.push((dir, record));
    }
    vms.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vms)
}

/// The first address from `first` on (`127.0.x.y`, x and y in 1..=254)
/// that no VM of `used` has and that `usable` accepts.
pub(crate) fn allocate(
    first: Ipv4Addr,
    used: &HashSet<Ipv4Addr>,
    usable: impl Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    let [_, _, x0, y0] = first.octets();
    let x0 = x0.max(1);
    (x0..=254)
        .flat_map(|x| {
            let y_from = if x == x0 { y0.max(1) } else { 1 };
            (y_from..=254).map(move |y| Ipv4Addr::new(127, 0, x, y))
        })
        .find(|a| !used.contains(a) && usable(*a))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn allocation_skips_used_reserved_and_unusable_addresses() {
        let first = Ipv4Addr::new(127, 0, 10, 253);
        let used: HashSet<_> = [Ipv4Addr::new(127, 0, 10, 253)].into();
        let busy = Ipv4Addr::new(127, 0, 10, 254);
        let got = allocate(first, &used, |a| a != busy);
        assert_eq!(got, Some(Ipv4Addr::new(127, 0, 11, 1)));
        assert_eq!(
            allocate(Ipv4Addr::new(127, 0, 0, 0), &used, |_| true),
            Some(Ipv4Addr::new(127, 0, 1, 1))
        );
        assert_eq!(
            allocate(
                Ipv4Addr::new(127, 0, 254, 254),
                &[Ipv4Addr::new(127, 0, 254, 254)].into(),
                |_| true
            ),
            None
        );
    }

    #[test]
    fn only_uuid_ids_map_to_directories() {
        let root = Path::new("/state/mock-vms");
        assert!(dir_of(root, "../../etc").is_none());
        let id = Uuid::new_v4().to_string();
        assert_eq!(dir_of(root, &id).unwrap(), root.join(&id));
    }

    #[test]
    fn record_keeps_the_power_state_under_state() {
        let rec = VmRecord {
            provider_id: "p".into(),
            instance_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            name: "n".into(),
            zone: "z".into(),
            instance_type: "t".into(),
            image: None,
            tags: vec![],
            address: Ipv4Addr::new(127, 0, 10, 1),
            ssh_port: 22,
            volumes: vec![],
            created_at: Utc::now(),
            power: Power::Starting {
                boot_at: Utc::now(),
            },
        };
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["state"], "starting");
        let back: VmRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back.power, rec.power);
    }
}
