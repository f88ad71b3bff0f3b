//! End to end on the mock provider: the real API and orchestrator in this
//! process, mock VMs with their own loopback address and sshd, the real
//! agent installed over SSH and the mock engine. Deploy → ready with the
//! milestones in order and progress 100; terminate → terminated, every
//! process of the VM gone and its directory removed.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::support::{assert_in_order, processes_mentioning, Stack};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_to_ready_then_terminate_on_the_mock_provider() {
    let h = Stack::start().await;
    h.in_process(Ipv4Addr::new(127, 0, 61, 1)).await;
    let token = h.team().await;
    // Live events: a member of the organization, and someone of another one.
    let (_, other) = h
        .call(
            reqwest::Method::POST,
            "/users",
            &token,
            Some(json!({ "email": "other@example.com", "display_name": "Other", "password": "other-password-1" })),
        )
        .await;
    assert_eq!(other["email"], "other@example.com");
    let res = h
        .http
        .post(format!("{}/auth/login", h.api))
        .json(&json!({ "email": "other@example.com", "password": "other-password-1" }))
        .send()
        .await
        .unwrap();
    let other_token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let member_events = listen(&h, &token).await;
    let other_events = listen(&h, &other_token).await;
    let started = std::time::Instant::now();
    let id = h.deploy_ready(&token, Duration::from_secs(90)).await;
    let ready = h.instance(&token, id).await;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "deploy to ready"
    );
    assert_eq!(ready["progress"], 100);
    assert_eq!(ready["worker_status"], "ready");
    let ip = ready["ip_address"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("127.0.61."), "{ip}");

    // The member saw the status changes live; the other organization saw none.
    let seen = support_wait_events(&member_events, &id.to_string(), "ready").await;
    for status in ["booting", "installing", "starting", "ready"] {
        assert!(
            seen.iter()
                .any(|e| e.contains(&format!("\"status\":\"{status}\""))),
            "{status} not streamed: {seen:?}"
        );
    }
    let leaked: Vec<String> = other_events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains(&id.to_string()))
        .cloned()
        .collect();
    assert!(leaked.is_empty(), "another organization saw: {leaked:?}");

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
    assert_in_order(&done, &milestones);
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

    // The model answers through the node's relay.
    let (_, base) = h.engine(id).await;
    assert!(base.starts_with(&format!("https://{ip}:8000")), "{base}");
    h.assert_answers(id).await;

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
    let done = h.instance(&token, id).await;
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

type Events = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Reads `/events/stream` in the background, keeping each event's data line.
async fn listen(h: &Stack, token: &str) -> Events {
    use futures_util::StreamExt;
    let res = h
        .http
        .get(format!("{}/events/stream", h.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events: Events = Default::default();
    let sink = events.clone();
    tokio::spawn(async move {
        let mut body = res.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                    sink.lock().unwrap().push(data.to_owned());
                }
            }
        }
    });
    // The snapshot proves the subscription is live before anything happens.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < until, "no snapshot event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    events
}

/// Waits until the events mention `instance` with `status`; returns them.
async fn support_wait_events(events: &Events, instance: &str, status: &str) -> Vec<String> {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen: Vec<String> = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.contains(instance))
            .cloned()
            .collect();
        if seen
            .iter()
            .any(|e| e.contains(&format!("\"status\":\"{status}\"")))
        {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "no {status} event for {instance}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
