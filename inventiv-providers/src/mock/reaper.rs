//! Finding and killing every process of a mock VM.
//!
//! The rule: a process belongs to a VM when
//! 1. one of its command-line arguments contains the VM directory path, or
//!    its working directory is inside it (sshd runs from there with its
//!    config in it; the worker is installed under `<vm dir>/node`), or
//! 2. its environment carries `INVENTIV_MOCK_VM=<provider_id>` (the VM's
//!    sshd sets it in every session, and daemons keep it through `setsid`),
//!    or `SSH_CONNECTION` naming the VM's address and port as the server, or
//! 3. it descends (through parent ids) from a process of 1 or 2, which
//!    catches sshd's per-connection children.
//!
//! Zombies are dead already and the calling process is never a candidate.
//! Killing is SIGTERM, a grace period, SIGKILL, repeated until a scan finds
//! nothing (processes may fork while dying).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::ProviderError;

/// Environment variable marking every process started over a VM's SSH.
pub(crate) const VM_ENV: &str = "INVENTIV_MOCK_VM";

const TERM_GRACE: Duration = Duration::from_secs(3);
const KILL_GRACE: Duration = Duration::from_secs(2);
const ROUNDS: usize = 4;

/// What identifies a VM's processes.
#[derive(Debug, Clone)]
pub(crate) struct VmMarks {
    pub dir: PathBuf,
    pub provider_id: String,
    /// Address and SSH port, when the record could be read.
    pub endpoint: Option<(Ipv4Addr, u16)>,
}

struct Proc {
    pid: u32,
    ppid: u32,
}

/// The pids of every live process of the VM.
pub(crate) fn processes_of(marks: &VmMarks) -> Vec<u32> {
    let me = std::process::id();
    let dir = marks.dir.to_string_lossy().into_owned();
    let marker = format!("{VM_ENV}={}", marks.provider_id);
    let mut all = Vec::new();
    let mut hit: HashSet<u32> = HashSet::new();
    for pid in pids() {
        let Some(ppid) = live_ppid(pid) else { continue };
        all.push(Proc { pid, ppid });
        if pid == me || pid == 1 {
            continue;
        }
        let base = PathBuf::from(format!("/proc/{pid}"));
        let by_cmdline = read_nul(&base.join("cmdline"))
            .iter()
            .any(|arg| arg.contains(&dir));
        let by_cwd =
            std::fs::read_link(base.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&marks.dir));
        if by_cmdline || by_cwd || env_matches(&read_nul(&base.join("environ")), &marker, marks) {
            hit.insert(pid);
        }
    }
    // Descendants, to a fixed point (the table is small).
    let children: HashMap<u32, Vec<u32>> = all.iter().fold(HashMap::new(), |mut m, p| {
        m.entry(p.ppid).or_default().push(p.pid);
        m
    });
    let mut stack: Vec<u32> = hit.iter().copied().collect();
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if child != me && hit.insert(child) {
                stack.push(child);
            }
        }
    }
    let mut out: Vec<u32> = hit.into_iter().collect();
    out.sort_unstable();
    out
}

fn env_matches(environ: &[String], marker: &str, marks: &VmMarks) -> bool {
    environ.iter().any(|var| {
        if var == marker {
            return true;
        }
        let (Some(conn), Some((addr, port))) =
            (var.strip_prefix("SSH_CONNECTION="), marks.endpoint)
        else {
            return false;
        };
        // "client_ip client_port server_ip server_port"
        let fields: Vec<&str> = conn.split(' ').collect();
        fields.len() == 4 && fields[2] == addr.to_string() && fields[3] == port.to_string()
    })
}

/// Sends SIGTERM, then SIGKILL, to every process of the VM until none is
/// left. `Transient` when some survive every round.
pub(crate) fn kill_all(marks: &VmMarks) -> Result<(), ProviderError> {
    for _ in 0..ROUNDS {
        let pids = processes_of(marks);
        if pids.is_empty() {
            return Ok(());
        }
        tracing::debug!(vm = %marks.provider_id, ?pids, "terminating mock VM processes");
        signal("TERM", &pids)?;
        let left = wait_gone(&pids, TERM_GRACE);
        if !left.is_empty() {
            signal("KILL", &left)?;
            wait_gone(&left, KILL_GRACE);
        }
    }
    let left = processes_of(marks);
    if left.is_empty() {
        Ok(())
    } else {
        Err(ProviderError::Transient(format!(
            "processes {left:?} of mock VM {} survive SIGKILL",
            marks.provider_id
        )))
    }
}

/// Whether `pid` is a live (not zombie) process.
pub(crate) fn is_alive(pid: u32) -> bool {
    live_ppid(pid).is_some()
}

/// The arguments of a process, empty when it is gone.
pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    read_nul(Path::new(&format!("/proc/{pid}/cmdline")))
}

fn signal(name: &str, pids: &[u32]) -> Result<(), ProviderError> {
    // The `kill` program rather than libc: the workspace forbids unsafe code.
    // Its exit status is ignored: some pids may have exited meanwhile.
    Command::new("kill")
        .arg("-s")
        .arg(name)
        .arg("--")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(|e| ProviderError::io("run kill (Debian: procps)", e))
}

/// Polls until every pid is gone or `grace` is over; returns the survivors.
fn wait_gone(pids: &[u32], grace: Duration) -> Vec<u32> {
    let deadline = Instant::now() + grace;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The parent pid of a live process; `None` when gone or a zombie.
fn live_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

fn read_nul(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks() -> VmMarks {
        VmMarks {
            dir: PathBuf::from("/state/mock-vms/x"),
            provider_id: "x".into(),
            endpoint: Some((Ipv4Addr::new(127, 0, 10, 3), 22)),
        }
    }

    #[test]
    fn environment_rule() {
        let m = marks();
        let marker = "INVENTIV_MOCK_VM=x";
        let table: [(&[&str], bool); 5] = [
            (&["INVENTIV_MOCK_VM=x"], true),
            (&["INVENTIV_MOCK_VM=xy"], false),
            (&["SSH_CONNECTION=127.0.0.1 5000 127.0.10.3 22"], true),
            (&["SSH_CONNECTION=127.0.0.1 5000 127.0.10.30 22"], false),
            (&["SSH_CONNECTION=127.0.0.1 5000 127.0.10.3 2222"], false),
        ];
        for (env, expected) in table {
            let env: Vec<String> = env.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(env_matches(&env, marker, &m), expected, "{env:?}");
        }
    }

    #[test]
    fn this_process_is_alive_and_never_a_candidate() {
        assert!(is_alive(std::process::id()));
        let mut m = marks();
        m.dir = std::env::current_dir().unwrap_or_default();
        assert!(!processes_of(&m).contains(&std::process::id()));
    }
}
