//! Test harness for the mock provider: a temporary state directory, a
//! client key authorized on the VMs, the system ssh client, a deadline
//! helper, and a guard that destroys every VM even when a test fails.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use inventiv_providers::mock::{purge, MockConfig, MockFaults, MockProvider};
use inventiv_providers::{CloudProvider, CreateServer, Server, ServerState};
use uuid::Uuid;

/// A state directory with its provider; destroys every VM when dropped.
pub struct Lab {
    pub provider: MockProvider,
    pub root: PathBuf,
    pub client_key: PathBuf,
    pub config: MockConfig,
}

impl Lab {
    /// `first_address` must differ between tests (they run in parallel).
    pub fn new(first_address: Ipv4Addr, boot_delay: Duration, faults: MockFaults) -> Lab {
        let root = std::env::temp_dir().join(format!("inventiv-mock-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let client_key = root.join("client_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&client_key)
            .status()
            .expect("ssh-keygen (Debian: openssh-client)");
        assert!(status.success());
        let public = std::fs::read_to_string(root.join("client_key.pub")).unwrap();
        let mut config = MockConfig::new(root.join("state"), public);
        config.first_address = first_address;
        config.boot_delay = boot_delay;
        config.faults = faults;
        let provider = MockProvider::new(config.clone()).unwrap();
        Lab {
            provider,
            root,
            client_key,
            config,
        }
    }

    /// Another provider on the same state directory (an orchestrator restart).
    pub fn second_provider(&self) -> MockProvider {
        let mut config = self.config.clone();
        config.faults = MockFaults::default();
        MockProvider::new(config).unwrap()
    }

    /// Runs `remote` on the VM over the system ssh client.
    pub fn ssh(&self, server: &Server, remote: &str) -> std::process::Output {
        let ip = server.ip.unwrap();
        Command::new("ssh")
            .arg("-i")
            .arg(&self.client_key)
            .arg("-p")
            .arg(server.ssh_port.to_string())
            .args(["-o", "StrictHostKeyChecking=accept-new"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.root.join("known_hosts").display()
            ))
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{}@{ip}", server.ssh_user))
            .arg(remote)
            .output()
            .unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let purged = self.provider.purge_blocking();
        // A second provider or a failed test may have left VMs: purge by path.
        let again = purge(&self.root.join("state"));
        let _ = std::fs::remove_dir_all(&self.root);
        if !std::thread::panicking() {
            purged.unwrap();
            again.unwrap();
        }
    }
}

/// A create request with fresh ids.
pub fn request(name: &str) -> CreateServer {
    CreateServer {
        instance_id: Uuid::new_v4(),
        organization_id: Uuid::new_v4(),
        zone: "mock-zone-1".into(),
        instance_type: "MOCK-GPU".into(),
        name: name.into(),
        image: None,
        tags: vec!["test".into()],
        root_volume_gb: None,
        ssh_public_key: None,
    }
}

pub use inventiv_testkit::wait::eventually;

/// Waits until the server reports `Running` and returns it.
pub async fn running(provider: &dyn CloudProvider, server: &Server) -> Server {
    eventually("the VM to run", Duration::from_secs(20), || async {
        let s = provider.get_server(server.reference()).await.unwrap()?;
        (s.state == ServerState::Running).then_some(s)
    })
    .await
}

/// Whether a process is alive (a zombie is dead).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// Reads a pid file the VM wrote, waiting for it to appear.
pub async fn pid_in(path: &Path) -> u32 {
    eventually("a pid file", Duration::from_secs(10), || async {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
    .await
}

/// The VM's address is its own 127.0.x.y.
pub fn assert_own_loopback(server: &Server) {
    match server.ip {
        Some(IpAddr::V4(a)) => {
            let [a0, a1, _, y] = a.octets();
            assert_eq!((a0, a1), (127, 0), "{a}");
            assert!(y != 0 && y != 255, "{a}");
        }
        other => panic!("unexpected address {other:?}"),
    }
}
