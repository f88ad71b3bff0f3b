//! SSH to worker nodes and to an organization's hosts with the system
//! OpenSSH client (the orchestrator's install, the API's host
//! verification). The machine's host key is recorded on first contact
//! (`accept-new`) and checked on every later one against the copy kept
//! with the instance or the host; a changed key is refused. The machine
//! is the tenant's (root on its own VM or server): what it sends back is
//! read up to [`OUTPUT_MAX`] bytes per stream or line, never more.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use uuid::Uuid;

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
}

/// Why an SSH call failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The node presented another host key than the one recorded.
    #[error("the node's SSH host key changed; refusing to connect")]
    HostKeyChanged,
    /// Connection refused, timed out, or authentication failed.
    #[error("cannot reach the node over SSH: {0}")]
    Unreachable(String),
    /// The remote command ran and exited non-zero.
    #[error("remote command exited with {code}")]
    Failed { code: i32 },
    /// The remote side sent more than [`OUTPUT_MAX`] bytes on a stream
    /// (or in one line of a streamed command); the command was stopped.
    #[error("the remote command sent more than {OUTPUT_MAX} bytes of output; stopped")]
    Oversized,
    /// The local ssh client could not be run.
    #[error("ssh client: {0}")]
    Local(#[from] std::io::Error),
}

/// Most bytes read into memory from one of a remote command's streams
/// (stdout, stderr), or in one line of a streamed command.
pub const OUTPUT_MAX: usize = 1 << 20;

/// Reads a pipe to its end; [`SshError::Oversized`] past [`OUTPUT_MAX`]
/// bytes, the rest left unread (the caller drops the child, which kills it).
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>) -> Result<Vec<u8>, SshError> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        pipe.take(OUTPUT_MAX as u64 + 1)
            .read_to_end(&mut buf)
            .await?;
    }
    if buf.len() > OUTPUT_MAX {
        return Err(SshError::Oversized);
    }
    Ok(buf)
}

impl SshError {
    /// Whether a retry later may succeed (the node may still be booting).
    pub fn retryable(&self) -> bool {
        matches!(self, SshError::Unreachable(_))
    }
}

/// The SSH client settings shared by every connection.
#[derive(Debug, Clone)]
pub struct Ssh {
    /// Private key used to log in to nodes.
    pub key: PathBuf,
    /// Scratch directory for per-connection known_hosts files.
    pub work_dir: PathBuf,
    pub connect_timeout: Duration,
}

/// A connection context for one instance's node, or one host.
pub struct Session {
    target: Target,
    key: PathBuf,
    known_hosts: PathBuf,
    alias: String,
    connect_timeout: Duration,
}

impl Ssh {
    /// Prepares a session with the machine of an instance or a host (`id`);
    /// `known_hosts` is its recorded host key line(s), if any.
    pub async fn session(
        &self,
        id: Uuid,
        target: Target,
        known_hosts: Option<&str>,
    ) -> std::io::Result<Session> {
        tokio::fs::create_dir_all(&self.work_dir).await?;
        let path = self.work_dir.join(format!("{id}.known_hosts"));
        tokio::fs::write(&path, known_hosts.unwrap_or_default()).await?;
        Ok(Session {
            target,
            key: self.key.clone(),
            known_hosts: path,
            // Keyed on the instance or host, not on an address that may be reused.
            alias: format!("inventiv-{id}"),
            connect_timeout: self.connect_timeout,
        })
    }
}

fn classify(code: Option<i32>, stderr: &str) -> SshError {
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("Host key verification failed")
    {
        return SshError::HostKeyChanged;
    }
    match code {
        // 255 is ssh's own failure (connect, auth), not the remote command's.
        Some(255) | None => SshError::Unreachable(
            stderr
                .lines()
                .last()
                .unwrap_or("ssh failed")
                .trim()
                .to_owned(),
        ),
        Some(code) => SshError::Failed { code },
    }
}

/// The output of a running remote command.
pub struct OutputStream {
    reader: BufReader<tokio::process::ChildStdout>,
    child: tokio::process::Child,
}

impl OutputStream {
    /// The next line (bytes that are not UTF-8 replaced), or None at the
    /// end of the output; [`SshError::Oversized`] past [`OUTPUT_MAX`] bytes
    /// without a line end.
    pub async fn next_line(&mut self) -> Result<Option<String>, SshError> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(OUTPUT_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(None);
        }
        if line.len() > OUTPUT_MAX {
            return Err(SshError::Oversized);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    /// Waits for the command and says how it ended.
    pub async fn finish(mut self) -> Result<(), SshError> {
        let stderr = read_bounded(self.child.stderr.take()).await?;
        let status = self.child.wait().await?;
        if status.success() {
            Ok(())
        } else {
            Err(classify(status.code(), &String::from_utf8_lossy(&stderr)))
        }
    }
}

impl Session {
    fn command(&self, remote: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.key)
            .arg("-p")
            .arg(self.target.port.to_string())
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "HashKnownHosts=no",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("HostKeyAlias={}", self.alias))
            .arg("-o")
            .arg(format!(
                "ConnectTimeout={}",
                self.connect_timeout.as_secs().max(1)
            ))
            .arg(format!("{}@{}", self.target.user, self.target.host))
            .arg(remote)
            .kill_on_drop(true);
        cmd
    }

    /// Runs a remote command, feeding `stdin`; returns its standard output.
    pub async fn run(&self, remote: &str, stdin: &[u8]) -> Result<Vec<u8>, SshError> {
        let mut child = self
            .command(remote)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin).await?;
            input.shutdown().await?;
        }
        // Both at once (either may fill its pipe first); the first too
        // long ends both, and dropping the child kills it.
        let (stdout, stderr) = tokio::try_join!(
            read_bounded(child.stdout.take()),
            read_bounded(child.stderr.take())
        )?;
        let status = child.wait().await?;
        if status.success() {
            Ok(stdout)
        } else {
            Err(classify(status.code(), &String::from_utf8_lossy(&stderr)))
        }
    }

    /// Starts a remote command whose output (stdout and stderr merged by
    /// the remote shell) is read line by line as it arrives.
    pub fn stream(&self, remote: &str) -> Result<OutputStream, SshError> {
        let mut child = self
            .command(&format!("{remote} 2>&1"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        Ok(OutputStream {
            reader: BufReader::new(stdout),
            child,
        })
    }

    /// The host key line(s) recorded so far (after a first contact).
    pub async fn known_hosts(&self) -> std::io::Result<String> {
        tokio::fs::read_to_string(&self.known_hosts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            classify(
                Some(255),
                "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@"
            ),
            SshError::HostKeyChanged
        ));
        assert!(matches!(
            classify(Some(255), "Host key verification failed."),
            SshError::HostKeyChanged
        ));
        assert!(classify(
            Some(255),
            "ssh: connect to host 127.0.0.1 port 1: Connection refused"
        )
        .retryable());
        assert!(matches!(
            classify(Some(3), ""),
            SshError::Failed { code: 3 }
        ));
    }
}
