//! End to end on the mock provider: the real API and orchestrator in this
//! process, mock VMs with their own loopback address and sshd, the real
//! agent bootstrapped over SSH and the mock engine. Deploy → ready with the
//! milestones in order and progress 100; terminate → terminated, every
//! process of the VM gone and its directory removed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{json, Value};
use support::{processes_mentioning, Stack, MODEL};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_to_ready_then_terminate_on_the_mock_provider() {
    let h = Stack::start().await;
    h.in_process(Ipv4Addr::new(127, 0, 61, 1)).await;
    let token = h.team().await;
    let started = std::time::Instant::now();
    let id = h.deploy(&token).await;
    h.wait_status(id, "ready", Duration::from_secs(90)).await;
    let (_, ready) = h
        .call(
            reqwest::Method::GET,
            &format!("/instances/{id}"),
            &token,
            None,
        )
        .await;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "deploy to ready"
    );
    assert_eq!(ready["progress"], 100);
    assert_eq!(ready["worker_status"], "ready");
    let ip = ready["ip_address"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("127.0.61."), "{ip}");

    // The milestones, in order.
    let (_, actions) = h
        .call(
            reqwest::Method::GET,
            &format!("/instances/{id}/actions"),
            &token,
            None,
        )
        .await;
    let done: Vec<String> = actions
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "success")
        .map(|a| a["action_type"].as_str().unwrap().to_owned())
        .collect();
    let milestones = [
        "PROVIDER_CREATE",
        "PROVIDER_START",
        "PROVIDER_GET_IP",
        "WORKER_SSH_ACCESSIBLE",
        "WORKER_SSH_INSTALL",
        "WORKER_VLLM_HTTP_OK",
        "WORKER_MODEL_LOADED",
        "WORKER_VLLM_WARMUP",
        "HEALTH_CHECK",
    ];
    let positions: Vec<usize> = milestones
        .iter()
        .map(|m| {
            done.iter()
                .position(|d| d == m)
                .unwrap_or_else(|| panic!("{m} missing from {done:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "milestones out of order: {done:?}"
    );
    let (_, history) = h
        .call(
            reqwest::Method::GET,
            &format!("/instances/{id}/history"),
            &token,
            None,
        )
        .await;
    let path: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        ["provisioning", "booting", "installing", "starting", "ready"]
    );

    // The model answers through the node's engine.
    let completion: Value = h
        .http
        .post(format!("http://{ip}:8000/v1/chat/completions"))
        .json(&json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hello" }] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(completion["usage"]["completion_tokens"].as_i64().unwrap() > 0);

    // Terminate: the server, its processes and its directory are gone.
    let server_id: String =
        sqlx::query_scalar("SELECT provider_server_id FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&h.db)
            .await
            .unwrap();
    let vm_dir = h.state_dir.join("mock-vms").join(&server_id);
    assert!(vm_dir.exists());
    let (status, _) = h
        .call(
            reqwest::Method::DELETE,
            &format!("/instances/{id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 202);
    h.wait_status(id, "terminated", Duration::from_secs(60))
        .await;
    let (_, done) = h
        .call(
            reqwest::Method::GET,
            &format!("/instances/{id}"),
            &token,
            None,
        )
        .await;
    assert!(done["terminated_at"].is_string());
    assert!(!vm_dir.exists(), "the VM directory is removed");
    let left = processes_mentioning(&vm_dir.display().to_string());
    assert!(left.is_empty(), "processes of the VM survived: {left:?}");
    assert!(
        processes_mentioning(&ip)
            .iter()
            .all(|(_, p)| !p.contains("sshd")),
        "the VM's sshd is gone"
    );
}
