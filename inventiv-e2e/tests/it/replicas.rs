//! Two orchestrator processes (two names, one database, Redis prefix and
//! state directory) and a burst of concurrent deployments: every instance
//! reaches `ready` exactly once, with one VM created once and one agent;
//! then all are terminated and nothing is left.

#![allow(clippy::print_stderr, reason = "it reports its timings")]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::support::{processes_mentioning, Opts, Stack};
use uuid::Uuid;

/// How many deployments at once (20 real VMs, each with sshd, agent and
/// engine, on a 2-core machine).
const DEPLOYMENTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_a_burst_of_deployments() {
    let s = Stack::start().await;
    let token = s.team().await;
    let first = Ipv4Addr::new(127, 0, 91, 1);
    let _a = s.spawn_up(&Opts::new("orch-a", first)).await;
    let _b = s.spawn_up(&Opts::new("orch-b", first)).await;

    let started = Instant::now();
    let ids: Vec<Uuid> = s.deploy_many(&token, DEPLOYMENTS).await;
    let deadline = Duration::from_secs(300);
    for id in &ids {
        s.wait_status(*id, "ready", deadline.saturating_sub(started.elapsed()))
            .await;
    }
    let ready_after = started.elapsed();

    for id in &ids {
        s.assert_ready_once(*id).await;
        let readies: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM instance_state_history WHERE instance_id = $1 AND to_status = 'ready'",
        )
        .bind(id)
        .fetch_one(&s.db)
        .await
        .unwrap();
        assert_eq!(readies, 1, "{}", s.describe(*id).await);
        // No crash here: exactly one create, never an adoption.
        assert_eq!(s.vm_creations_logged(*id), 1);
        let creates = s
            .actions(*id)
            .await
            .into_iter()
            .filter(|a| a.0 == "PROVIDER_CREATE")
            .count();
        assert_eq!(creates, 1, "{}", s.describe(*id).await);
    }
    let vms = s.vms();
    assert_eq!(vms.len(), DEPLOYMENTS, "one VM per instance: {vms:?}");
    let mut addresses: Vec<String> = sqlx::query_scalar(
        "SELECT ip_address FROM instances WHERE id = ANY($1) AND ip_address IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(&s.db)
    .await
    .unwrap();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), DEPLOYMENTS, "each VM has its own address");
    let by = |name: &str| {
        std::fs::read_dir(s.state_dir.join("logs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(name))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .map(|l| l.matches("mock VM created").count())
            .sum::<usize>()
    };
    eprintln!(
        "{DEPLOYMENTS} deployments ready in {:.1} s (VMs created by orch-a: {}, orch-b: {})",
        ready_after.as_secs_f64(),
        by("orch-a"),
        by("orch-b")
    );

    let terminating = Instant::now();
    s.terminate_many(&token, &ids).await;
    for id in &ids {
        s.wait_status(*id, "terminated", Duration::from_secs(120))
            .await;
    }
    eprintln!(
        "{DEPLOYMENTS} terminated in {:.1} s",
        terminating.elapsed().as_secs_f64()
    );
    assert!(s.vms().is_empty(), "VMs left: {:?}", s.vms());
    assert!(
        s.volumes(None).is_empty(),
        "volumes left: {:?}",
        s.volumes(None)
    );
    let left = processes_mentioning(&s.state_dir.join("mock-vms").display().to_string());
    assert!(left.is_empty(), "processes of the VMs survived: {left:?}");
}
