//! A ready worker whose agent dies for good (its supervisor and itself
//! SIGKILLed) is declared `worker_dead` within the heartbeat threshold plus
//! one heartbeat interval; `POST /instances/{id}/reinstall` installs it
//! again and it comes back to `ready` — also when the instance has been up
//! for longer than the start-up timeout.

#![allow(clippy::print_stderr, reason = "it reports its timings")]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::support::{poll, processes_mentioning, sigkill, Opts, Stack};
use uuid::Uuid;

const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(4);
/// The agents' heartbeat interval the harness configures.
const HEARTBEAT: Duration = Duration::from_secs(1);
const STARTUP_TIMEOUT_SECS: u64 = 60;

/// The node directory of the instance's VM.
async fn node_dir(s: &Stack, id: Uuid) -> std::path::PathBuf {
    let server: String =
        sqlx::query_scalar("SELECT provider_server_id FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&s.db)
            .await
            .unwrap();
    s.state_dir.join("mock-vms").join(server).join("node")
}

/// (supervisor pid, agent pids) of the node.
fn agent_processes(node: &std::path::Path) -> (Option<u32>, Vec<u32>) {
    let supervisor = std::fs::read_to_string(node.join("run/agent.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let agents = processes_mentioning(&node.display().to_string())
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("-m inventiv_agent"))
        .map(|(pid, _)| pid)
        .collect();
    (supervisor, agents)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_worker_is_detected_then_reinstalled() {
    let s = Stack::start().await;
    let token = s.team().await;
    let mut opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 101, 1));
    opts.heartbeat_timeout_secs = HEARTBEAT_TIMEOUT.as_secs();
    opts.startup_timeout_secs = STARTUP_TIMEOUT_SECS;
    let a = s.spawn_up(&opts).await;

    let id = s.deploy_ready(&token, Duration::from_secs(120)).await;
    s.assert_ready_once(id).await;
    // The orchestrator's metrics saw the jobs that got it there.
    let metrics = reqwest::get(format!("http://{}/metrics", a.metrics_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "inventiv_orchestrator_job_runs_total{job=\"installing\"}",
        "inventiv_instances{status=\"ready\"} 1",
        "inventiv_commands_pending{queue=\"outbox\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let node = node_dir(&s, id).await;
    let (supervisor, agents) = agent_processes(&node);
    let supervisor = supervisor.expect("the supervisor's pid file");
    assert_eq!(agents.len(), 1, "{agents:?}");

    // The supervisor first, so that nobody restarts the agent.
    sigkill(&[supervisor]);
    sigkill(&agents);
    let killed = Instant::now();
    let gone = poll(Duration::from_secs(5), Duration::from_millis(20), || {
        let (_, left) = agent_processes(&node);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    assert!(gone.is_some(), "the agent survived SIGKILL");

    let limit = HEARTBEAT_TIMEOUT + HEARTBEAT;
    let dead = poll(limit, Duration::from_millis(50), || async {
        (s.status(id).await == "worker_dead").then(|| killed.elapsed())
    })
    .await;
    let Some(after) = dead else {
        panic!(
            "not worker_dead within {limit:?} of the kill\n{}\n{}",
            s.describe(id).await,
            s.logs()
        );
    };
    eprintln!(
        "worker_dead {:.2} s after the agent was killed",
        after.as_secs_f64()
    );
    // The last heartbeat came about one interval before the kill at most.
    assert!(
        after >= HEARTBEAT_TIMEOUT - 2 * HEARTBEAT,
        "declared dead too early: {after:?}"
    );
    let code: Option<String> = sqlx::query_scalar("SELECT error_code FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&s.db)
        .await
        .unwrap();
    assert_eq!(code.as_deref(), Some("WORKER_HEARTBEAT_TIMEOUT"));

    // A worker that had served for an hour: older than the start-up timeout.
    sqlx::query("UPDATE instances SET created_at = created_at - interval '1 hour' WHERE id = $1")
        .bind(id)
        .execute(&s.db)
        .await
        .unwrap();
    s.act(
        &token,
        reqwest::Method::POST,
        &format!("/instances/{id}/reinstall"),
    )
    .await;
    s.wait_status(id, "ready", Duration::from_secs(120)).await;
    s.assert_ready_once(id).await;
    let (_, agents_now) = agent_processes(&node);
    assert!(
        agents_now.iter().all(|p| !agents.contains(p)),
        "a new agent runs"
    );
    s.assert_answers(id).await;
    let path: Vec<String> = sqlx::query_scalar(
        "SELECT to_status FROM instance_state_history WHERE instance_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&s.db)
    .await
    .unwrap();
    assert_eq!(
        path,
        [
            "provisioning",
            "booting",
            "installing",
            "starting",
            "ready",
            "worker_dead",
            "installing",
            "starting",
            "ready"
        ]
    );

    s.terminate_and_check(&token, id).await;
    assert!(s.vms().is_empty());
}
