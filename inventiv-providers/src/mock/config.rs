//! Settings of the mock provider and its fault injection, from code or
//! from `INVENTIV_MOCK_*` environment variables.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::ProviderError;

/// How the mock provider runs its VMs.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// VMs live in `<state_dir>/mock-vms/<provider_id>/`, volumes in
    /// `<state_dir>/mock-volumes/`. Another provider on the same directory
    /// sees the same VMs.
    pub state_dir: PathBuf,
    /// The OpenSSH public key line (the orchestrator's) authorized to log in
    /// as root on every VM.
    pub authorized_key: String,
    /// Port each VM's sshd listens on, on the VM's own address.
    pub ssh_port: u16,
    /// Used instead when `ssh_port` is taken on that address.
    pub fallback_ssh_port: u16,
    /// First address handed out; the next ones follow (`127.0.x.y`, x and y
    /// in 1..=254). Give parallel test suites distinct ranges.
    pub first_address: Ipv4Addr,
    /// Time between power-on and sshd starting.
    pub boot_delay: Duration,
    /// How long `create_server` takes (a slow cloud API).
    pub create_delay: Duration,
    /// Size of the root volume a new server gets.
    pub root_volume_gb: u64,
    /// The OpenSSH server binary (Debian: openssh-server).
    pub sshd_path: PathBuf,
    /// Faults to inject from the start.
    pub faults: MockFaults,
}

impl MockConfig {
    /// Defaults: port 22 (2222 as fallback), addresses from 127.0.10.1,
    /// a 1 s boot, 20 GB root volumes, `/usr/sbin/sshd`, no faults.
    pub fn new(state_dir: impl Into<PathBuf>, authorized_key: impl Into<String>) -> MockConfig {
        MockConfig {
            state_dir: state_dir.into(),
            authorized_key: authorized_key.into(),
            ssh_port: 22,
            fallback_ssh_port: 2222,
            first_address: Ipv4Addr::new(127, 0, 10, 1),
            boot_delay: Duration::from_secs(1),
            create_delay: Duration::ZERO,
            root_volume_gb: 20,
            sshd_path: PathBuf::from("/usr/sbin/sshd"),
            faults: MockFaults::default(),
        }
    }

    /// Applies the `INVENTIV_MOCK_*` variables of the process environment
    /// (see [`MockConfig::with_vars`]).
    pub fn with_env(self) -> Result<MockConfig, ProviderError> {
        self.with_vars(|name| std::env::var(name).ok())
    }

    /// Applies the variables `lookup` knows, each overriding one setting:
    /// `INVENTIV_MOCK_BOOT_DELAY_MS`, `INVENTIV_MOCK_CREATE_DELAY_MS`, `INVENTIV_MOCK_SSH_PORT`,
    /// `INVENTIV_MOCK_FIRST_ADDRESS`, `INVENTIV_MOCK_FAIL_CREATE` (the next N
    /// creates fail, transient), `INVENTIV_MOCK_OUT_OF_STOCK_ZONES` (comma-separated
    /// zones where every create fails out of stock, as a cloud without
    /// capacity answers), `INVENTIV_MOCK_REFUSE_DELETE` (the next N
    /// deletes fail, transient), `INVENTIV_MOCK_VANISH` (the next N VMs to
    /// boot disappear, dir and processes, `INVENTIV_MOCK_VANISH_AFTER_MS`
    /// after they came up; default 0).
    pub fn with_vars(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<MockConfig, ProviderError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("INVENTIV_MOCK_BOOT_DELAY_MS") {
            self.boot_delay = Duration::from_millis(parse("INVENTIV_MOCK_BOOT_DELAY_MS", &v)?);
        }
        if let Some(v) = get("INVENTIV_MOCK_CREATE_DELAY_MS") {
            self.create_delay = Duration::from_millis(parse("INVENTIV_MOCK_CREATE_DELAY_MS", &v)?);
        }
        if let Some(v) = get("INVENTIV_MOCK_SSH_PORT") {
            self.ssh_port = parse("INVENTIV_MOCK_SSH_PORT", &v)?;
        }
        if let Some(v) = get("INVENTIV_MOCK_FIRST_ADDRESS") {
            self.first_address = parse("INVENTIV_MOCK_FIRST_ADDRESS", &v)?;
        }
        if let Some(v) = get("INVENTIV_MOCK_FAIL_CREATE") {
            self.faults.fail_create = parse("INVENTIV_MOCK_FAIL_CREATE", &v)?;
        }
        if let Some(v) = get("INVENTIV_MOCK_OUT_OF_STOCK_ZONES") {
            self.faults.out_of_stock_zones = v
                .split(',')
                .map(str::trim)
                .filter(|z| !z.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = get("INVENTIV_MOCK_REFUSE_DELETE") {
            self.faults.refuse_delete = parse("INVENTIV_MOCK_REFUSE_DELETE", &v)?;
        }
        if let Some(v) = get("INVENTIV_MOCK_VANISH") {
            self.faults.vanish = parse("INVENTIV_MOCK_VANISH", &v)?;
        }
        if let Some(v) = get("INVENTIV_MOCK_VANISH_AFTER_MS") {
            self.faults.vanish_after =
                Duration::from_millis(parse("INVENTIV_MOCK_VANISH_AFTER_MS", &v)?);
        }
        Ok(self)
    }
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ProviderError> {
    value
        .trim()
        .parse()
        .map_err(|_| ProviderError::InvalidRequest(format!("{name}={value:?} is not valid")))
}

/// Faults the mock injects, counted down as they fire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockFaults {
    /// The next N `create_server` calls fail with `Transient`.
    pub fail_create: u32,
    /// Every `create_server` in these zones fails with `OutOfStock` (no
    /// capacity there), until [`crate::mock::MockProvider::restock`].
    pub out_of_stock_zones: Vec<String>,
    /// The next N `delete_server` calls fail with `Transient`, doing nothing.
    pub refuse_delete: u32,
    /// The next N VMs to finish booting vanish `vanish_after` later.
    pub vanish: u32,
    pub vanish_after: Duration,
}

/// The live fault counters of one provider.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    fail_create: AtomicU32,
    out_of_stock: Mutex<BTreeSet<String>>,
    refuse_delete: AtomicU32,
    vanish: AtomicU32,
    vanish_after_ms: AtomicU64,
}

impl Faults {
    /// Adds the counts of `f` to the pending ones; its delay replaces the
    /// current one.
    pub(crate) fn add(&self, f: &MockFaults) {
        self.fail_create.fetch_add(f.fail_create, Ordering::SeqCst);
        self.out_of_stock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(f.out_of_stock_zones.iter().cloned());
        self.refuse_delete
            .fetch_add(f.refuse_delete, Ordering::SeqCst);
        self.vanish.fetch_add(f.vanish, Ordering::SeqCst);
        let ms = u64::try_from(f.vanish_after.as_millis()).unwrap_or(u64::MAX);
        self.vanish_after_ms.store(ms, Ordering::SeqCst);
    }

    pub(crate) fn take_fail_create(&self) -> bool {
        take(&self.fail_create)
    }

    /// Whether creates in `zone` are refused for lack of capacity.
    pub(crate) fn out_of_stock(&self, zone: &str) -> bool {
        self.out_of_stock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(zone)
    }

    /// Gives `zone` its capacity back.
    pub(crate) fn restock(&self, zone: &str) {
        self.out_of_stock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(zone);
    }

    pub(crate) fn take_refuse_delete(&self) -> bool {
        take(&self.refuse_delete)
    }

    /// `Some(delay)` when the VM that just booted must vanish.
    pub(crate) fn take_vanish(&self) -> Option<Duration> {
        take(&self.vanish)
            .then(|| Duration::from_millis(self.vanish_after_ms.load(Ordering::SeqCst)))
    }
}

/// Decrements a counter that is above zero; says whether it was.
fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn env_variables_override_the_defaults() {
        let cfg = MockConfig::new("/tmp/x", "key")
            .with_vars(vars(&[
                ("INVENTIV_MOCK_BOOT_DELAY_MS", "250"),
                ("INVENTIV_MOCK_CREATE_DELAY_MS", "1500"),
                ("INVENTIV_MOCK_SSH_PORT", "2200"),
                ("INVENTIV_MOCK_FIRST_ADDRESS", "127.0.50.1"),
                ("INVENTIV_MOCK_FAIL_CREATE", "2"),
                (
                    "INVENTIV_MOCK_OUT_OF_STOCK_ZONES",
                    "mock-zone-1, ,mock-zone-3",
                ),
                ("INVENTIV_MOCK_REFUSE_DELETE", "3"),
                ("INVENTIV_MOCK_VANISH", "1"),
                ("INVENTIV_MOCK_VANISH_AFTER_MS", "40"),
            ]))
            .unwrap();
        assert_eq!(cfg.boot_delay, Duration::from_millis(250));
        assert_eq!(cfg.create_delay, Duration::from_millis(1500));
        assert_eq!(cfg.ssh_port, 2200);
        assert_eq!(cfg.first_address, Ipv4Addr::new(127, 0, 50, 1));
        assert_eq!(
            cfg.faults,
            MockFaults {
                fail_create: 2,
                out_of_stock_zones: vec!["mock-zone-1".into(), "mock-zone-3".into()],
                refuse_delete: 3,
                vanish: 1,
                vanish_after: Duration::from_millis(40),
            }
        );
    }

    #[test]
    fn absent_or_empty_variables_keep_the_defaults_and_junk_is_refused() {
        let cfg = MockConfig::new("/tmp/x", "key")
            .with_vars(vars(&[("INVENTIV_MOCK_FAIL_CREATE", "")]))
            .unwrap();
        assert_eq!(cfg.faults, MockFaults::default());
        assert_eq!(cfg.ssh_port, 22);
        let err = MockConfig::new("/tmp/x", "key")
            .with_vars(vars(&[("INVENTIV_MOCK_FAIL_CREATE", "many")]))
            .unwrap_err();
        assert!(!err.retryable());
    }

    #[test]
    fn counters_fire_exactly_n_times() {
        let faults = Faults::default();
        faults.add(&MockFaults {
            fail_create: 2,
            ..MockFaults::default()
        });
        assert!(faults.take_fail_create());
        assert!(faults.take_fail_create());
        assert!(!faults.take_fail_create());
        assert!(!faults.take_refuse_delete());
        assert_eq!(faults.take_vanish(), None);
    }

    #[test]
    fn out_of_stock_zones_refuse_until_restocked() {
        let faults = Faults::default();
        faults.add(&MockFaults {
            out_of_stock_zones: vec!["mock-zone-1".into()],
            ..MockFaults::default()
        });
        assert!(faults.out_of_stock("mock-zone-1"));
        assert!(faults.out_of_stock("mock-zone-1"), "not counted down");
        assert!(!faults.out_of_stock("mock-zone-2"));
        faults.restock("mock-zone-1");
        assert!(!faults.out_of_stock("mock-zone-1"));
    }
}
