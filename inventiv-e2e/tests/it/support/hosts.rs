//! An organization's own hosts in the end-to-end tests: real OpenSSH
//! servers of this machine on loopback addresses of their own
//! (`inventiv_testkit::sshd`), the organization's key authorized, and the
//! API calls that register, verify, activate and deploy on them.

use std::net::Ipv4Addr;

use inventiv_testkit::sshd::Sshd;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::Stack;

impl Stack {
    /// The organization's SSH public key, as the dashboard shows it.
    pub async fn org_ssh_key(&self, token: &str) -> String {
        let (status, key) = self
            .call(Method::GET, "/organizations/current/ssh-key", token, None)
            .await;
        assert_eq!(status, 200, "{key}");
        key["public_key"].as_str().unwrap().to_owned()
    }

    /// Starts a host on `address` that accepts the organization's key. Its
    /// sessions have a home of their own in the test's state (so installs
    /// land there) and carry the stack's mark, so that everything they
    /// started is killed with the stack ([`kill_host_processes`]).
    pub async fn fake_host(&self, token: &str, address: Ipv4Addr) -> Sshd {
        let mut sshd = Sshd::start_on(address).await;
        sshd.authorize(&self.org_ssh_key(token).await);
        let home = self.state_dir.join(format!("host-home-{address}"));
        std::fs::create_dir_all(&home).unwrap();
        let home = home.display().to_string();
        sshd.set_env(&[("HOME", &home), (HOST_MARK, &self.prefix)])
            .await;
        sshd
    }

    /// Registers `host` in `pool` with `gpus` declared L4 GPUs and an
    /// optional hourly cost, verifies it, and returns its id.
    pub async fn register_host(
        &self,
        token: &str,
        host: &Sshd,
        pool: &str,
        gpus: i32,
        hourly_cost: Option<&str>,
    ) -> Uuid {
        let (status, created) = self
            .call(
                Method::POST,
                "/hosts",
                token,
                Some(json!({
                    "address": host.address.to_string(), "ssh_port": host.port, "ssh_user": host.user,
                    "label": format!("gpu-{}", host.address), "pool": pool, "gpu_count": gpus,
                    "gpu_model": "NVIDIA L4", "gpu_vram_mib": 23034, "hourly_cost_eur": hourly_cost
                })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
        let verified = self.verify_host(token, id).await;
        assert_eq!(verified["status"], "verified", "{verified}");
        id
    }

    /// `POST /hosts/{id}/verify`, answered 200.
    pub async fn verify_host(&self, token: &str, id: Uuid) -> Value {
        let (status, host) = self
            .call(Method::POST, &format!("/hosts/{id}/verify"), token, None)
            .await;
        assert_eq!(status, 200, "{host}");
        host
    }

    /// The host as the API shows it.
    pub async fn host(&self, token: &str, id: Uuid) -> Value {
        let (status, host) = self
            .call(Method::GET, &format!("/hosts/{id}"), token, None)
            .await;
        assert_eq!(status, 200, "{host}");
        host
    }

    /// Activates, on both sides, the `ssh` provider, the pool (zone) and
    /// the one-GPU L4 shape the organization's hosts offer.
    pub async fn activate_hosts(&self, token: &str, pool: &str) {
        let (_, zones) = self
            .call(Method::GET, "/zones?provider=ssh", token, None)
            .await;
        let zone = zones
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["code"] == pool)
            .unwrap_or_else(|| panic!("no zone {pool}: {zones}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, types) = self
            .call(Method::GET, "/instance_types?provider=ssh", token, None)
            .await;
        let shape = types
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["code"] == SHAPE)
            .unwrap_or_else(|| panic!("no shape {SHAPE}: {types}"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (kind, item) in [
            ("provider", "ssh"),
            ("zone", zone.as_str()),
            ("instance_type", shape.as_str()),
        ] {
            let (s, body) = self
                .call(
                    Method::PUT,
                    &format!("/organizations/current/activations/{kind}/{item}"),
                    token,
                    Some(json!({ "technical": true, "economic": true })),
                )
                .await;
            assert_eq!(s, 200, "{kind}: {body}");
        }
    }

    /// `POST /deployments` of the test model on one L4 GPU of `pool`;
    /// returns the status and the body.
    pub async fn deploy_on_hosts(&self, token: &str, pool: &str) -> (u16, Value) {
        self.call(
            Method::POST,
            "/deployments",
            token,
            Some(
                json!({ "model_id": super::MODEL, "provider": "ssh", "zone": pool,
                         "instance_type": SHAPE }),
            ),
        )
        .await
    }
}

/// The variable marking every process a test's hosts started (its value:
/// the stack's prefix).
const HOST_MARK: &str = "INVENTIV_E2E_HOST";

/// Kills (SIGKILL) every process whose environment carries the mark of
/// the stack `prefix`: what the test's hosts started (agents, engines,
/// relays), whether or not the test ended them.
pub fn kill_host_processes(prefix: &str) {
    let mark = format!("{HOST_MARK}={prefix}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == mark.as_bytes()))
        })
        .collect();
    super::sigkill(&pids);
}

/// The one-GPU shape of the hosts the tests register.
pub const SHAPE: &str = "1x-nvidia-l4-22g";
