//! The worker's install over real SSH (a local sshd standing in for the VM),
//! with the real bootstrap script and agent bundle: phases become action
//! logs, a checksum mismatch is refused with a clear action log, a second
//! run is idempotent, and a changed host key is refused.

use std::path::PathBuf;
use std::time::Duration;

use inventiv_orchestrator::node::agent_info;
use inventiv_orchestrator::node::install::{self, Install, InstallError};
use inventiv_orchestrator::node::ssh::{Ssh, SshError, Target};
use inventiv_store::action_log::ActionLog;
use inventiv_store::crypto::Keyring;
use inventiv_store::relay;
use inventiv_testkit::binaries::repo;
use inventiv_testkit::sshd::Sshd;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// Builds the agent bundle; returns (sha256, path).
fn bundle() -> (String, PathBuf) {
    let out = std::process::Command::new(repo().join("scripts/agent-bundle.sh"))
        .output()
        .expect("agent-bundle.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let (sha, path) = line.trim().split_once("  ").unwrap();
    (sha.to_owned(), PathBuf::from(path))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn instance(db: &PgPool) -> (Uuid, Uuid) {
    let (user, org, instance) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, $2, 'u', 'x')",
    )
    .bind(user)
    .bind(format!("{user}@example.com"))
    .execute(db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO organizations (id, name, slug, kind, created_by) VALUES ($1, 'o', $2, 'team', $3)")
        .bind(org)
        .bind(format!("o-{}", &user.simple().to_string()[..8]))
        .bind(user)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status) VALUES ($1, $2, 'i', 'mock', 'z', 't', 'mock/model', 'installing')")
        .bind(instance)
        .bind(org)
        .execute(db)
        .await
        .unwrap();
    (org, instance)
}

async fn actions(
    db: &PgPool,
    instance: Uuid,
) -> Vec<(String, String, Option<String>, Option<String>, Value)> {
    sqlx::query_as("SELECT action_type, status, error_code, error_message, metadata FROM action_logs WHERE instance_id = $1 ORDER BY id")
        .bind(instance)
        .fetch_all(db)
        .await
        .unwrap()
}

struct Node {
    install_dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(repo().join("inventiv-worker/bootstrap.sh"))
            .arg("--stop")
            .arg("--install-dir")
            .arg(&self.install_dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.install_dir);
    }
}

#[tokio::test]
async fn install_over_ssh_records_phases_is_idempotent_and_checks_keys() {
    let name = inventiv_testkit::db::fresh_database().await;
    let db = PgPool::connect(&inventiv_testkit::db::url_for(&name))
        .await
        .unwrap();
    let (org, id) = instance(&db).await;
    let mut sshd = Sshd::start().await;
    let (sha, bundle_path) = bundle();
    let node = Node {
        install_dir: std::env::temp_dir().join(format!("inventiv-node-{}", id.simple())),
    };
    let agent_port = free_port();
    let (relay_port, engine_port) = (free_port(), free_port());
    let keyring = Keyring::from_hex(inventiv_store::crypto::DEV_KEY, 1, None).unwrap();
    let relay_key_sha256 = relay::issue_key(&db, &keyring, id).await.unwrap();
    let config = json!({
        "control_plane_url": "http://127.0.0.1:9",
        "instance_id": id,
        "worker_token": "t".repeat(43),
        "model_id": "mock/model",
        "relay_key_sha256": relay_key_sha256,
        "engine_command": [inventiv_testkit::engine::mock_engine(), "--host", "{host}", "--port", "{port}", "--model", "{model}"],
        "engine_host": "127.0.0.1",
        "engine_port": engine_port,
        "relay_host": "127.0.0.1",
        "relay_port": relay_port,
        "agent_host": "127.0.0.1",
        "agent_port": agent_port,
        "log_dir": node.install_dir.join("logs"),
        "heartbeat_interval_s": 1
    });
    let ssh = Ssh {
        key: sshd.client_key.clone(),
        work_dir: sshd.dir.join("orchestrator"),
        connect_timeout: Duration::from_secs(5),
    };
    let target = Target {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
    };
    let log = ActionLog {
        db: db.clone(),
        organization_id: org,
        instance_id: id,
        request_id: Some("req-1".into()),
    };
    let script = repo().join("inventiv-worker/bootstrap.sh");
    let install_dir = node.install_dir.display().to_string();
    let run = |sha: String, log: ActionLog, target: Target| {
        let (ssh, bundle_path, script, config, install_dir) = (
            ssh.clone(),
            bundle_path.clone(),
            script.clone(),
            config.clone(),
            install_dir.clone(),
        );
        async move {
            install::run(Install {
                ssh: &ssh,
                log,
                target,
                bundle: &bundle_path,
                bundle_sha256: &sha,
                script: &script,
                agent_config: config,
                hf_token: None,
                scaleway_key: None,
                install_dir: &install_dir,
                mock: true,
                background: false,
            })
            .await
        }
    };

    // First run: every phase in order, the host key recorded, the agent up.
    let pin = run(sha.clone(), log.clone(), target.clone())
        .await
        .expect("install succeeds");
    let first = actions(&db, id).await;
    let types: Vec<&str> = first.iter().map(|a| a.0.as_str()).collect();
    let expected = [
        "WORKER_SSH_ACCESSIBLE",
        "WORKER_SSH_INSTALL",
        "WORKER_SSH_CHECK_BUNDLE",
        "WORKER_SSH_PREPARE_DIRS",
        "WORKER_SSH_MOUNT_DATA_VOLUME",
        "WORKER_SSH_NVIDIA_CHECK",
        "WORKER_SSH_PYTHON_VENV",
        "WORKER_SSH_INSTALL_RELAY",
        "WORKER_SSH_INSTALL_AGENT",
        "WORKER_SSH_INSTALL_VLLM",
        "WORKER_SSH_START_AGENT",
        "WORKER_SSH_DONE",
    ];
    assert_eq!(types, expected, "{first:#?}");
    assert!(first.iter().all(|a| a.1 == "success"), "{first:#?}");
    let skipped: Vec<&str> = first
        .iter()
        .filter(|a| a.4.get("skipped").is_some())
        .map(|a| a.0.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "WORKER_SSH_MOUNT_DATA_VOLUME",
            "WORKER_SSH_NVIDIA_CHECK",
            "WORKER_SSH_INSTALL_VLLM"
        ]
    );
    assert!(
        first
            .iter()
            .any(|a| a.4["output_tail"].as_array().is_some_and(|t| !t.is_empty())),
        "output tails kept"
    );
    let request_ids: Vec<Option<String>> =
        sqlx::query_scalar("SELECT request_id FROM action_logs WHERE instance_id = $1")
            .bind(id)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(request_ids.iter().all(|r| r.as_deref() == Some("req-1")));
    let known: Option<String> =
        sqlx::query_scalar("SELECT ssh_known_hosts FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        known
            .as_deref()
            .is_some_and(|k| k.contains(&format!("inventiv-{id}"))),
        "host key recorded: {known:?}"
    );
    let http = reqwest_lite(agent_port).await;
    assert!(http, "the agent answers /healthz");
    through_the_relay(&db, &keyring, id, pin, relay_port, engine_port).await;
    let pid = std::fs::read_to_string(node.install_dir.join("run/agent.pid")).unwrap();

    // The health check reads /info (token required) and records the version.
    let http = reqwest::Client::new();
    assert!(
        agent_info::fetch(&http, "127.0.0.1", agent_port, "wrong-token")
            .await
            .is_err()
    );
    let info = agent_info::fetch(&http, "127.0.0.1", agent_port, &"t".repeat(43))
        .await
        .expect("/info");
    assert_eq!(info.bundle_sha256, sha);
    assert!(
        !agent_info::record(&db, id, &info).await.unwrap(),
        "the installed bundle runs"
    );
    let stale = agent_info::AgentInfo {
        bundle_sha256: "f".repeat(64),
        ..info.clone()
    };
    let flagged = agent_info::record(&db, id, &stale).await.unwrap();
    let row: Value = sqlx::query_scalar("SELECT row_to_json(i) FROM instances i WHERE id = $1")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(flagged, "a different bundle is flagged: {row}");
    agent_info::record(&db, id, &info).await.unwrap();

    // Second run: idempotent, the same agent keeps running, the same
    // certificate reported.
    let again = run(sha.clone(), log.clone(), target.clone())
        .await
        .expect("second install succeeds");
    assert_eq!(again, pin);
    assert_eq!(
        std::fs::read_to_string(node.install_dir.join("run/agent.pid")).unwrap(),
        pid,
        "not restarted"
    );
    assert!(reqwest_lite(agent_port).await);

    // A bundle whose checksum does not match is refused, with a clear log.
    let before = actions(&db, id).await.len();
    let err = run("0".repeat(64), log.clone(), target.clone())
        .await
        .expect_err("mismatch refused");
    assert!(
        matches!(&err, InstallError::Phase { phase, .. } if phase == "CHECK_BUNDLE"),
        "{err}"
    );
    let after = actions(&db, id).await;
    let check = after[before..]
        .iter()
        .find(|a| a.0 == "WORKER_SSH_CHECK_BUNDLE")
        .unwrap();
    assert_eq!(
        (check.1.as_str(), check.2.as_deref()),
        ("failed", Some("CHECK_BUNDLE_FAILED"))
    );
    assert!(
        check.3.as_deref().unwrap().contains("checksum mismatch"),
        "{check:?}"
    );
    let install = after[before..]
        .iter()
        .find(|a| a.0 == "WORKER_SSH_INSTALL")
        .unwrap();
    assert_eq!(install.1, "failed");
    assert!(
        reqwest_lite(agent_port).await,
        "the running agent is left alone"
    );

    // The node's host key changes: refused before anything is uploaded.
    sshd.change_host_key().await;
    let before = actions(&db, id).await.len();
    let err = run(sha.clone(), log.clone(), target.clone())
        .await
        .expect_err("changed key refused");
    assert!(
        matches!(err, InstallError::Ssh(SshError::HostKeyChanged)),
        "{err}"
    );
    let after = actions(&db, id).await;
    assert_eq!(
        after.len() - before,
        1,
        "only the accessibility check ran: {:#?}",
        &after[before..]
    );
    assert_eq!(
        (after[before].0.as_str(), after[before].2.as_deref()),
        ("WORKER_SSH_ACCESSIBLE", Some("HOST_KEY_MISMATCH"))
    );
    drop(node);
}

/// The node as the control plane and an attacker see it: the pin reported
/// over SSH is the certificate the relay presents; with the pinned client
/// and the relay key the engine answers; without the key (even over TLS),
/// in plain HTTP, or from a client pinning another certificate, nothing
/// does; the engine's own port is not on the node's address.
async fn through_the_relay(
    db: &PgPool,
    keyring: &Keyring,
    id: Uuid,
    pin: [u8; 32],
    relay_port: u16,
    engine_port: u16,
) {
    relay::pin_certificate(db, id, pin).await.unwrap();
    let access = relay::load(db, keyring, id).await.unwrap().unwrap();
    let pinned = relay::pinned_client(reqwest::Client::builder().no_proxy(), &access).unwrap();
    let url = format!("{}/v1/models", relay::base_url("127.0.0.1", relay_port));
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let sent = pinned.get(&url).send().await;
        if sent.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the engine never answered through the relay: {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let any_cert = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let refused = any_cert.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401, "no relay key, no engine");
    let wrong = any_cert
        .get(&url)
        .header(relay::RELAY_KEY_HEADER, "f".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401, "a wrong relay key, no engine");
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{relay_port}/v1/models"))
            .send()
            .await
            .is_err(),
        "plain HTTP is not answered"
    );

    // A client pinning another certificate (another node's) refuses this one.
    let other = inventiv_testkit::relay::Certificate::generate();
    relay::pin_certificate(db, id, other.sha256).await.unwrap();
    let elsewhere = relay::load(db, keyring, id).await.unwrap().unwrap();
    let mistaken = relay::pinned_client(reqwest::Client::builder().no_proxy(), &elsewhere).unwrap();
    assert!(mistaken.get(&url).send().await.is_err(), "pin mismatch");
    relay::pin_certificate(db, id, pin).await.unwrap();

    // The engine listens on loopback only: the node's address here is
    // loopback too (one host), so the check is that its bind is 127.0.0.1,
    // which the relay reaches and nothing on another address does.
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let bind = format!("0100007F:{engine_port:04X}");
    assert!(
        listening
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&bind)),
        "the engine listens on 127.0.0.1:{engine_port}"
    );
}

/// GET /healthz on the agent with a tiny client (no HTTP crate needed here).
async fn reqwest_lite(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s
                .write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            if buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200") {
                return true;
            }
        }
        if tokio::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
