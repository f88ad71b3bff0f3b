//! A VM's SSH endpoint: a real OpenSSH server bound to the VM's address,
//! with the VM's own host key, configuration, pid file and log in the VM
//! directory, and the orchestrator's key authorized for root.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::reaper;
use super::vm::VmRecord;
use crate::error::ProviderError;

const HOST_KEY: &str = "ssh_host_ed25519_key";
const CONFIG: &str = "sshd_config";
const PID_FILE: &str = "sshd.pid";
const AUTHORIZED_KEYS: &str = "authorized_keys";
const LOG: &str = "sshd.log";

/// Generates the VM's host key (once, at creation).
pub(crate) async fn generate_host_key(dir: &Path) -> Result<(), ProviderError> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "mock-vm", "-f"])
        .arg(dir.join(HOST_KEY))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ProviderError::io("run ssh-keygen (Debian: openssh-client)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ProviderError::Internal(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Writes the authorized keys and the configuration, then starts sshd in
/// its own process group (an orchestrator's Ctrl-C must not take the VMs
/// down). Returns once it is spawned; it listens a few ms later.
pub(crate) fn launch(
    sshd: &Path,
    dir: &Path,
    record: &VmRecord,
    authorized_key: &str,
) -> Result<(), ProviderError> {
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| ProviderError::io(format!("write {name}"), e))
    };
    write(AUTHORIZED_KEYS, format!("{}\n", authorized_key.trim()))?;
    write(CONFIG, config(dir, record))?;
    // sshd insists on its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").map_err(|e| ProviderError::io("create /run/sshd", e))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG))
        .map_err(|e| ProviderError::io("open sshd.log", e))?;
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join(CONFIG))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| ProviderError::io(format!("start {}", sshd.display()), e))?;
    // Dropping the handle leaves sshd running; tokio reaps it when it exits.
    tracing::debug!(pid = child.id(), dir = %dir.display(), "mock VM sshd started");
    Ok(())
}

fn config(dir: &Path, record: &VmRecord) -> String {
    let d = dir.display();
    format!(
        "# Written by the mock provider for VM {id}.\n\
         ListenAddress {addr}:{port}\n\
         HostKey {d}/{HOST_KEY}\n\
         PidFile {d}/{PID_FILE}\n\
         AuthorizedKeysFile {d}/{AUTHORIZED_KEYS}\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         SetEnv {env}={id}\n\
         Subsystem sftp internal-sftp\n\
         LogLevel INFO\n",
        id = record.provider_id,
        addr = record.address,
        port = record.ssh_port,
        env = reaper::VM_ENV,
    )
}

/// The pid of the VM's listening sshd when it runs.
pub(crate) fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The pid may have been reused: it must still be our sshd.
    let config = dir.join(CONFIG).to_string_lossy().into_owned();
    (reaper::is_alive(pid) && reaper::cmdline(pid).contains(&config)).then_some(pid)
}

/// Whether an SSH server greets us on `addr:port`.
pub(crate) async fn answers(addr: Ipv4Addr, port: u16) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((addr, port)).await.ok()?;
        let mut banner = [0_u8; 4];
        stream.read_exact(&mut banner).await.ok()?;
        Some(&banner == b"SSH-")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), probe).await,
        Ok(Some(true))
    )
}

/// Whether nothing listens on `addr:port` (we could bind it).
pub(crate) fn port_free(addr: Ipv4Addr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((addr, port))).is_ok()
}

/// The port to use on `addr`: `preferred` when free, else `fallback` when
/// free, else `preferred` (sshd will say why it cannot bind in its log).
pub(crate) fn pick_port(addr: Ipv4Addr, preferred: u16, fallback: u16) -> u16 {
    if !port_free(addr, preferred) && port_free(addr, fallback) {
        fallback
    } else {
        preferred
    }
}

/// Where sshd logs, for error messages.
pub(crate) fn log_path(dir: &Path) -> PathBuf {
    dir.join(LOG)
}
