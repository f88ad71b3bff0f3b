//! Verifying a host: log in over SSH with the organization's key (the
//! shared client of [`crate::ssh`], host key pinned after the first
//! contact), and read its GPUs with `nvidia-smi` when the host has it. The
//! private key is on disk only in a private scratch directory for the
//! length of the connection.

use std::path::Path;
use std::time::Duration;

use inventiv_common::host::{Reach, MAX_GPUS, MAX_GPU_MODEL, VRAM_MIB};
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::hosts::{OrgKey, Scratch};
use crate::ssh::{Ssh, SshError, Target};

/// Lists the GPUs when nvidia-smi is there; succeeds either way. At most
/// one line more than a host may declare, so a host cannot flood us.
const GPU_PROBE: &str = "if command -v nvidia-smi >/dev/null 2>&1; then \
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null | head -n 17; fi; true";

/// The GPUs nvidia-smi reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedGpus {
    pub count: i32,
    /// The first GPU's name.
    pub model: String,
    /// The smallest GPU's memory, in MiB.
    pub vram_mib: i32,
}

/// What a verification found.
#[derive(Debug)]
pub struct Probe {
    pub reach: Reach,
    /// Says what happened, for the host's last check and its history.
    pub message: String,
    /// The host key line(s) recorded at a first contact that succeeded.
    pub recorded_known_hosts: Option<String>,
    /// None: no nvidia-smi, or nothing usable from it (the declared GPUs stay).
    pub gpus: Option<DetectedGpus>,
}

/// Where and how to connect.
pub struct Attempt<'a> {
    pub host_id: Uuid,
    pub target: Target,
    /// The pinned host key line(s); None before the first verification.
    pub known_hosts: Option<&'a str>,
    pub key: &'a OrgKey,
    /// Parent of the per-connection scratch directories.
    pub scratch: &'a Path,
    pub connect_timeout: Duration,
    /// For the whole exchange (login and GPU probe).
    pub timeout: Duration,
}

/// Connects once and says how it went; only a local failure (no ssh
/// client, no disk) is an error.
pub async fn probe(attempt: Attempt<'_>) -> std::io::Result<Probe> {
    let dir = Scratch::new(attempt.scratch).await?;
    let outcome = connect(&dir.0, &attempt).await;
    dir.remove().await?;
    outcome
}

async fn connect(dir: &Path, attempt: &Attempt<'_>) -> std::io::Result<Probe> {
    let key_file = dir.join("id_ed25519");
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_file)
        .await?;
    file.write_all(attempt.key.private.expose_secret().as_bytes())
        .await?;
    file.shutdown().await?;
    let ssh = Ssh {
        key: key_file,
        work_dir: dir.to_path_buf(),
        connect_timeout: attempt.connect_timeout,
    };
    let session = ssh
        .session(attempt.host_id, attempt.target.clone(), attempt.known_hosts)
        .await?;
    let ran = tokio::time::timeout(attempt.timeout, session.run(GPU_PROBE, b"")).await;
    let unreached = |message: String| Probe {
        reach: Reach::Unreached,
        message,
        recorded_known_hosts: None,
        gpus: None,
    };
    Ok(match ran {
        Err(_) => unreached(format!("no answer within {} s", attempt.timeout.as_secs())),
        Ok(Err(SshError::Local(e))) => return Err(e),
        Ok(Err(SshError::HostKeyChanged)) => Probe {
            reach: Reach::KeyChanged,
            message: "the host presented another SSH host key than the pinned one; refused"
                .to_owned(),
            recorded_known_hosts: None,
            gpus: None,
        },
        Ok(Err(SshError::Unreachable(why))) => unreached(format!("cannot log in: {why}")),
        Ok(Err(e @ (SshError::Failed { .. } | SshError::Oversized))) => {
            unreached(format!("the GPU probe failed: {e}"))
        }
        Ok(Ok(out)) => {
            let recorded = match attempt.known_hosts {
                None => Some(session.known_hosts().await?),
                Some(_) => None,
            };
            let gpus = parse_gpus(&String::from_utf8_lossy(&out));
            let message = match &gpus {
                Some(g) => format!(
                    "logged in; nvidia-smi: {} × {} ({} MiB)",
                    g.count, g.model, g.vram_mib
                ),
                None => {
                    "logged in; no GPU reported by nvidia-smi, the declared GPUs stay".to_owned()
                }
            };
            Probe {
                reach: Reach::Reached,
                message,
                recorded_known_hosts: recorded,
                gpus,
            }
        }
    })
}

/// Reads `name, memory.total` lines (MiB); None unless every line parses,
/// there are 1 to [`MAX_GPUS`] of them and the memory is within bounds.
pub fn parse_gpus(out: &str) -> Option<DetectedGpus> {
    let mut gpus = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let (name, mib) = line.rsplit_once(',')?;
        let name = name.trim();
        let mib: i32 = mib.trim().parse().ok()?;
        if name.is_empty() || !VRAM_MIB.contains(&mib) {
            return None;
        }
        gpus.push((name, mib));
    }
    let count = i32::try_from(gpus.len()).ok()?;
    if !(1..=MAX_GPUS).contains(&count) {
        return None;
    }
    let model: String = gpus[0].0.chars().take(MAX_GPU_MODEL).collect();
    let vram_mib = gpus.iter().map(|g| g.1).min()?;
    Some(DetectedGpus {
        count,
        model,
        vram_mib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines() {
        assert_eq!(
            parse_gpus("NVIDIA L4, 23034\nNVIDIA L4, 23034\n"),
            Some(DetectedGpus {
                count: 2,
                model: "NVIDIA L4".into(),
                vram_mib: 23034
            })
        );
        assert_eq!(
            parse_gpus("NVIDIA H100 80GB HBM3, 81559\nNVIDIA H100 80GB HBM3, 81000"),
            Some(DetectedGpus {
                count: 2,
                model: "NVIDIA H100 80GB HBM3".into(),
                vram_mib: 81000
            })
        );
        assert_eq!(parse_gpus(""), None);
        assert_eq!(parse_gpus("NVIDIA L4, [N/A]"), None);
        assert_eq!(parse_gpus("NVIDIA L4, 12"), None);
        assert_eq!(parse_gpus(&"NVIDIA L4, 23034\n".repeat(17)), None);
    }
}
