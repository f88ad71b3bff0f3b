//! Verifying a host: log in over SSH with the organization's key (the
//! shared client of [`crate::ssh`], host key pinned after the first
//! contact), and read its GPUs with `nvidia-smi` when the host has it. The
//! private key is on disk only in a private scratch directory for the
//! length of the connection.

use std::path::Path;
use std::time::Duration;

use inventiv_common::host::{Reach, MAX_GPUS, MAX_GPU_MODEL, VRAM_MIB};
use inventiv_common::HostStatus;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::host_alloc::{offer, settle};
use crate::hosts::{fingerprint, record, Change, OrgKey, OrgSsh};
use crate::ssh::{Ssh, SshError, Target};

/// Says the user's home directory (where installs go), then lists the GPUs
/// when nvidia-smi is there; succeeds either way. At most one line more
/// than a host may declare, so a host cannot flood us.
const GPU_PROBE: &str = "printf '::home::%s\\n' \"$HOME\"; if command -v nvidia-smi >/dev/null 2>&1; then \
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
    /// The SSH user's home directory, when reached and it is a sane path.
    pub home_dir: Option<String>,
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
    let client = OrgSsh::open(attempt.scratch, attempt.key, attempt.connect_timeout).await?;
    let outcome = connect(&client.ssh, &attempt).await;
    client.close().await?;
    outcome
}

async fn connect(ssh: &Ssh, attempt: &Attempt<'_>) -> std::io::Result<Probe> {
    let session = ssh
        .session(attempt.host_id, attempt.target.clone(), attempt.known_hosts)
        .await?;
    let ran = tokio::time::timeout(attempt.timeout, session.run(GPU_PROBE, b"")).await;
    let unreached = |message: String| Probe {
        reach: Reach::Unreached,
        message,
        recorded_known_hosts: None,
        gpus: None,
        home_dir: None,
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
            home_dir: None,
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
            let out = String::from_utf8_lossy(&out);
            let (home_dir, gpu_lines) = split_home(&out);
            let gpus = parse_gpus(&gpu_lines);
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
                home_dir,
            }
        }
    })
}

/// What recording a verification did.
#[derive(Debug)]
pub enum Applied {
    /// No such host in the organization.
    NotFound,
    /// The host was removed meanwhile: nothing recorded.
    Removed,
    /// Recorded: the host's status now, how the verification ended (a
    /// key pinned meanwhile by another verification counts as changed),
    /// and what it says.
    Done {
        from: HostStatus,
        to: HostStatus,
        reach: Reach,
        message: String,
    },
}

/// Records a verification's outcome in the caller's transaction: the host
/// key at a first success (unless another verification pinned one
/// meanwhile, then compared with it), the GPUs detected, the home
/// directory, the last check, the status with its history row (also for a
/// refused key), the catalog rows the host offers, and `in_use` /
/// `verified` from the seats it holds.
pub async fn apply(
    tx: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    found: Probe,
    actor: Option<Uuid>,
    request_id: Option<String>,
) -> Result<Applied, sqlx::Error> {
    let Some(now) = sqlx::query!(
        r#"SELECT status AS "status: HostStatus", ssh_known_hosts FROM hosts
            WHERE id = $1 AND organization_id = $2 FOR UPDATE"#,
        id,
        org,
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Applied::NotFound);
    };
    let mut reach = found.reach;
    let mut message = found.message;
    if let Some(recorded) = &found.recorded_known_hosts {
        match &now.ssh_known_hosts {
            None => {
                sqlx::query!(
                    "UPDATE hosts SET ssh_known_hosts = $3 WHERE id = $1 AND organization_id = $2",
                    id,
                    org,
                    recorded,
                )
                .execute(&mut *tx)
                .await?;
                message = format!(
                    "{message}; host key {} pinned",
                    fingerprint(recorded).unwrap_or_default()
                );
            }
            Some(pinned) if fingerprint(pinned) != fingerprint(recorded) => {
                reach = Reach::KeyChanged;
                message = "the host presented another SSH host key than the one pinned meanwhile; refused".into();
            }
            Some(_) => {}
        }
    }
    let Some(to) = now.status.after_verification(reach) else {
        return Ok(Applied::Removed);
    };
    let reached = reach == Reach::Reached;
    let gpus = found.gpus.filter(|_| reached);
    sqlx::query!(
        "UPDATE hosts SET last_checked_at = now(), last_check_ok = $3, last_check_message = $4,
                gpu_count = COALESCE($5, gpu_count), gpu_model = COALESCE($6, gpu_model),
                gpu_vram_mib = COALESCE($7, gpu_vram_mib), gpus_detected = gpus_detected OR $8,
                home_dir = COALESCE($9, home_dir), updated_at = now()
          WHERE id = $1 AND organization_id = $2",
        id,
        org,
        reached,
        message,
        gpus.as_ref().map(|g| g.count),
        gpus.as_ref().map(|g| g.model.clone()),
        gpus.as_ref().map(|g| g.vram_mib),
        gpus.is_some(),
        found.home_dir.filter(|_| reached),
    )
    .execute(&mut *tx)
    .await?;
    if to != now.status || reach == Reach::KeyChanged {
        record(
            tx,
            Change {
                host_id: id,
                organization_id: org,
                from: Some(now.status),
                to,
                reason: &message,
                actor,
                request_id,
            },
        )
        .await?;
    }
    offer(tx, id).await?;
    let to = settle(tx, id, org, "verified").await?.unwrap_or(to);
    Ok(Applied::Done {
        from: now.status,
        to,
        reach,
        message,
    })
}

/// The home directory line of the probe's output (an absolute path of at
/// most 1024 printable characters, else None) and the other lines.
pub fn split_home(out: &str) -> (Option<String>, String) {
    let mut home = None;
    let mut rest = String::new();
    for line in out.lines() {
        match line.strip_prefix("::home::") {
            Some(h) => {
                home = Some(h.trim_end().trim_end_matches('/').to_owned()).filter(|h| {
                    h.starts_with('/')
                        && (2..=1024).contains(&h.len())
                        && !h.chars().any(|c| c.is_control() || c == '\'')
                });
            }
            None => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    (home, rest)
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

    #[test]
    fn home_directory_line() {
        let (home, rest) = split_home("::home::/home/gpu/\nNVIDIA L4, 23034\n");
        assert_eq!(home.as_deref(), Some("/home/gpu"));
        assert_eq!(parse_gpus(&rest).map(|g| g.count), Some(1));
        assert_eq!(split_home("::home::relative\n").0, None);
        assert_eq!(split_home("::home::/\n").0, None);
        assert_eq!(split_home("::home::/a'b\n").0, None);
        assert_eq!(split_home("").0, None);
    }
}
