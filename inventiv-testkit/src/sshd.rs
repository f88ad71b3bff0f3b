//! A real OpenSSH server on 127.0.0.1 for tests: its own host key, a client
//! key authorized for the current user, everything in a temporary directory.
//! Stands in for a VM's SSH endpoint.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A running sshd; stopped when dropped.
pub struct Sshd {
    pub address: Ipv4Addr,
    pub port: u16,
    pub dir: PathBuf,
    /// The private key authorized to log in.
    pub client_key: PathBuf,
    pub user: String,
    child: Child,
}

fn keygen(path: &Path) {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (Debian: openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

fn free_port(address: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((address, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 and waits until it accepts connections.
    pub async fn start() -> Sshd {
        Sshd::start_on(Ipv4Addr::LOCALHOST).await
    }

    /// Starts sshd on `address` (a loopback address standing in for a
    /// VM's) and waits until it accepts connections.
    pub async fn start_on(address: Ipv4Addr) -> Sshd {
        let dir =
            std::env::temp_dir().join(format!("inventiv-sshd-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        keygen(&dir.join("host_key"));
        let client_key = dir.join("client_key");
        keygen(&client_key);
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").ok();
        let port = free_port(address);
        let config = format!(
            "Port {port}\nListenAddress {address}\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             LogLevel ERROR\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let child = spawn(&dir);
        wait_listening(address, port).await;
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        Sshd {
            address,
            port,
            dir,
            client_key,
            user,
            child,
        }
    }

    /// Replaces the host key (as if the VM were replaced) and restarts.
    pub async fn change_host_key(&mut self) {
        self.child.kill().await.ok();
        std::fs::remove_file(self.dir.join("host_key")).unwrap();
        std::fs::remove_file(self.dir.join("host_key.pub")).unwrap();
        keygen(&self.dir.join("host_key"));
        self.child = spawn(&self.dir);
        wait_listening(self.address, self.port).await;
    }

    /// Stops sshd, as if the machine went away ([`Sshd::resume`] brings it back).
    pub async fn stop(&mut self) {
        self.child.kill().await.ok();
    }

    /// Starts sshd again after [`Sshd::stop`], with the same host key and port.
    pub async fn resume(&mut self) {
        self.child = spawn(&self.dir);
        wait_listening(self.address, self.port).await;
    }

    /// Restarts sshd with `dir` first in the PATH of the commands it runs
    /// (e.g. a stand-in `nvidia-smi`).
    pub async fn prepend_path(&mut self, dir: &Path) {
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display());
        self.set_env(&[("PATH", &path)]).await;
    }

    /// Restarts sshd with `vars` set in the sessions it starts (over the
    /// defaults, e.g. `HOME`), for every process they start in turn.
    pub async fn set_env(&mut self, vars: &[(&str, &str)]) {
        use std::io::Write;
        self.child.kill().await.ok();
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("sshd_config"))
            .unwrap();
        let vars: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(config, "SetEnv {}", vars.join(" ")).unwrap();
        self.child = spawn(&self.dir);
        wait_listening(self.address, self.port).await;
    }

    /// Also lets `public_key` (an OpenSSH public key line) log in.
    pub fn authorize(&self, public_key: &str) {
        use std::io::Write;
        let mut keys = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("authorized_keys"))
            .unwrap();
        writeln!(keys, "{}", public_key.trim()).unwrap();
    }
}

fn spawn(dir: &Path) -> Child {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sshd not found: install Debian's openssh-server (make test does)");
    Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start sshd")
}

async fn wait_listening(address: Ipv4Addr, port: u16) {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect((address, port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < until,
            "sshd did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
