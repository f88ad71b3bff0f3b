//! The dead-man switch as the orchestrator sets it up on nodes, through the
//! real install: off on the mock provider; on Scaleway an in-guest
//! `shutdown` by default, and with the organization's opt-in
//! (`dead_man_poweroff`) a power-off through Scaleway's API, whose key (the
//! organization's Scaleway secret key) lands on the node as a mode-600 file
//! the agent accepts, and nowhere else: not in the agent configuration, any
//! other file of the node, or the action logs. Without the opt-in, a
//! reinstall on the same node removes the key.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{files_under, NodeGuard, Stack};
use inventiv_testkit::fake_scaleway::FakeScaleway;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const READY: Duration = Duration::from_secs(120);
const KEY_FILE: &str = "secrets/scaleway_poweroff_key";

/// Where the install put the worker of `id` (from its action log),
/// and whether it delivered the Scaleway key.
async fn installed(h: &Stack, id: Uuid) -> (PathBuf, Value) {
    let done = h.installed(id).await;
    let dir = PathBuf::from(done["install_dir"].as_str().unwrap());
    (dir, done["scaleway_key_delivered"].clone())
}

/// The agent configuration the node runs with.
fn agent_config(node: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(node.join("config.json")).unwrap()).unwrap()
}

/// The agent's events on the node.
fn agent_events(node: &Path) -> Vec<Value> {
    std::fs::read_to_string(node.join("logs/events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Fails if `secret` is in a file of `node` other than `except`, or in the
/// action logs of `id`.
async fn assert_secret_nowhere_else(h: &Stack, id: Uuid, node: &Path, secret: &str, except: &Path) {
    let files = files_under(node);
    assert!(files.iter().any(|p| p.ends_with("config.json")));
    assert!(files.iter().any(|p| p.ends_with("agent.json")));
    for path in files.iter().filter(|p| *p != except) {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        assert!(!text.contains(secret), "the key is in {}", path.display());
    }
    let actions = serde_json::to_string(&h.actions(id).await).unwrap();
    assert!(actions.contains("WORKER_SSH_INSTALL"));
    assert!(!actions.contains(secret), "the key is in the action logs");
}

/// The Scaleway node's relay port: both test nodes are this machine and
/// their engines listen on its loopback (behind their relays), so the
/// Scaleway node's engines must not take the mock node's ports.
const SCALEWAY_ENGINE_PORT: u16 = 8200;

async fn set_worker_settings(h: &Stack, token: &str, body: Value) {
    let (s, answer) = h
        .call(
            Method::PUT,
            "/organizations/current/providers/scaleway/worker-settings",
            token,
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_gets_the_dead_man_switch_of_its_provider_and_settings() {
    let address = Ipv4Addr::new(127, 0, 150, 50);
    let fake = FakeScaleway::start(IpAddr::V4(address), Duration::from_millis(100)).await;
    let sshd = inventiv_testkit::sshd::Sshd::start_on(address).await;
    let mut h = Stack::start_with_scaleway(&fake.url).await;
    let scaleway_node = h.state_dir.join("scaleway-node");
    h.scaleway_ssh = (sshd.port, Some(scaleway_node.display().to_string()));
    let (_, key) = inventiv_orchestrator::context::ssh_key(&h.state_dir)
        .await
        .unwrap();
    sshd.authorize(&key);
    let _guard = NodeGuard {
        node: scaleway_node.display().to_string(),
        // The node's engines listen on loopback behind its relay.
        engine: format!("--port {} ", SCALEWAY_ENGINE_PORT + 1),
    };
    h.in_process(Ipv4Addr::new(127, 0, 155, 1)).await;

    // The mock provider: the node is this machine, the switch stays off.
    let mock_token = h.team().await;
    let id = h.deploy(&mock_token, None).await;
    h.wait_status(id, "ready", READY).await;
    let (node, delivered) = installed(&h, id).await;
    let config = agent_config(&node);
    assert_eq!(
        (&config["dead_man_action"], &config["dead_man_after_s"]),
        (&json!("off"), &json!(1800))
    );
    assert!(config.get("dead_man_key_file").is_none(), "{config}");
    assert_eq!(delivered, json!(false));
    assert!(!node.join(KEY_FILE).exists());

    // Scaleway, opted in: the API power-off, with the key beside the
    // configuration, private and exact; the agent accepts it.
    let (token, secret, _) = h.scaleway_team("Dead man", &fake).await;
    set_worker_settings(
        &h,
        &token,
        json!({ "dead_man_after_s": 600, "dead_man_poweroff": true, "engine_port": SCALEWAY_ENGINE_PORT }),
    )
    .await;
    let id = h.deploy_scaleway_ready(&token, READY).await;
    let (node, delivered) = installed(&h, id).await;
    assert_eq!(node, scaleway_node);
    let config = agent_config(&node);
    let key_file = node.join(KEY_FILE);
    assert_eq!(
        (
            &config["dead_man_action"],
            &config["dead_man_after_s"],
            &config["dead_man_key_file"],
            &config["dead_man_api_url"],
        ),
        (
            &json!("scaleway-poweroff"),
            &json!(600),
            &json!(key_file.display().to_string()),
            &json!(fake.url),
        )
    );
    assert_eq!(delivered, json!(true));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&node.join("secrets")), 0o700);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), secret);
    let events = agent_events(&node);
    let started = events
        .iter()
        .rev()
        .find(|e| e["event"] == "agent_started")
        .unwrap();
    assert_eq!(started["dead_man_action"], "scaleway-poweroff");
    assert!(
        events.iter().all(|e| e["event"] != "dead_man_key_refused"),
        "the agent refused its key file: {events:?}"
    );
    assert_secret_nowhere_else(&h, id, &node, &secret, &key_file).await;
    h.act(&token, Method::DELETE, &format!("/instances/{id}"))
        .await;
    h.wait_status(id, "terminated", Duration::from_secs(60))
        .await;

    // Scaleway, not opted in: an in-guest shutdown, and the key left by the
    // previous install on this node is removed.
    set_worker_settings(
        &h,
        &token,
        json!({ "dead_man_poweroff": false, "engine_port": SCALEWAY_ENGINE_PORT }),
    )
    .await;
    let id = h.deploy_scaleway_ready(&token, READY).await;
    let (node, delivered) = installed(&h, id).await;
    assert_eq!(node, scaleway_node);
    let config = agent_config(&node);
    assert_eq!(
        (&config["dead_man_action"], &config["dead_man_after_s"]),
        (&json!("shutdown"), &json!(1800))
    );
    assert!(config.get("dead_man_key_file").is_none(), "{config}");
    assert_eq!(delivered, json!(false));
    assert!(!key_file.exists(), "the key was left on the node");
    assert_secret_nowhere_else(&h, id, &node, &secret, &key_file).await;
}
