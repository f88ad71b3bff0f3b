//! Crash robustness: the orchestrator binary is SIGKILLed at several points
//! of an instance's provisioning and started again (same name, or another
//! one once the dead replica's lease has expired). Each time the instance
//! converges to `ready` with exactly one VM, created once, one agent, and
//! no step left open; then it terminates cleanly.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::support::{poll, Opts, Stack};
use uuid::Uuid;

const READY: Duration = Duration::from_secs(120);
/// From a restart under the same name to convergence: the replica resumes
/// its own leases at once (not after the stream's 30 s reclaim idle time,
/// nor the 120 s lease).
const RESUME: Duration = Duration::from_secs(30);

async fn server_id(s: &Stack, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT provider_server_id FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&s.db)
        .await
        .unwrap()
}

/// (a) Deployments committed while no orchestrator runs, and one killed
/// right after the API answered: both converge once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_right_after_the_deployment_is_committed() {
    let s = Stack::start().await;
    let token = s.team().await;
    let opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 71, 1));

    let first = s.deploy(&token, None).await;
    let a = s.spawn_up(&opts).await;
    let second = s.deploy(&token, None).await;
    let _a = s.restart(a, &opts);

    s.converge_then_terminate(&token, &[first, second], RESUME)
        .await;
}

/// (b) Killed while the provider is creating the server (its VM directory
/// appeared, the database may not know it yet): the restarted orchestrator
/// adopts the tagged server instead of creating a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_while_the_server_is_created() {
    let s = Stack::start().await;
    let token = s.team().await;
    let opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 72, 1));
    let a = s.spawn_up(&opts).await;

    let id = s.deploy(&token, None).await;
    let found = poll(Duration::from_secs(30), Duration::from_millis(2), || {
        let any = !s.vms().is_empty();
        async move { any.then_some(()) }
    })
    .await;
    assert!(found.is_some(), "no VM created\n{}", s.logs());
    let _a = s.restart(a, &opts);

    s.converge_then_terminate(&token, &[id], RESUME).await;
}

/// (b) Killed right after the provider create was recorded, while the VM
/// boots; restarted under another name, which must wait for the dead
/// replica's lease to expire (fast-forwarded here) and then finish the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_after_the_provider_create_and_taken_over_by_another_replica() {
    let s = Stack::start().await;
    let token = s.team().await;
    let mut opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 73, 1));
    opts.boot_delay_ms = 3000;
    let mut a = s.spawn_up(&opts).await;

    let id = s.deploy(&token, None).await;
    s.until("the server id recorded", Duration::from_secs(30), || {
        server_id(&s, id)
    })
    .await;
    a.kill9();

    opts.name = "orch-b".into();
    let _b = s.spawn_up(&opts).await;
    // The dead replica's lease is honoured: orch-b does not touch the instance.
    let stolen = poll(
        Duration::from_secs(2),
        Duration::from_millis(100),
        || async {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT lease_owner FROM instances WHERE id = $1")
                    .bind(id)
                    .fetch_one(&s.db)
                    .await
                    .unwrap();
            (owner.as_deref() != Some("orch-a")).then_some(owner)
        },
    )
    .await;
    assert_eq!(
        stolen, None,
        "the lease of orch-a was taken before it expired"
    );
    s.expire_leases().await;

    s.converge_then_terminate(&token, &[id], RESUME).await;
}

/// (c) Killed while the bootstrap script runs on the node (its SSH session
/// lives on, orphaned): the restarted orchestrator installs again and the
/// node ends up with one agent, registered with the latest token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_the_bootstrap() {
    let s = Stack::start().await;
    let token = s.team().await;
    let opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 74, 1));
    let a = s.spawn_up(&opts).await;

    let id = s.deploy(&token, None).await;
    let phase = s
        .until("a bootstrap phase running", Duration::from_secs(60), || async {
            sqlx::query_scalar::<_, String>(
                "SELECT action_type FROM action_logs WHERE instance_id = $1 AND status = 'in_progress'
                    AND action_type LIKE 'WORKER_SSH_%'
                    AND action_type NOT IN ('WORKER_SSH_ACCESSIBLE', 'WORKER_SSH_INSTALL')",
            )
            .bind(id)
            .fetch_optional(&s.db)
            .await
            .unwrap()
        })
        .await;
    assert!(phase.starts_with("WORKER_SSH_"), "{phase}");
    let _a = s.restart(a, &opts);

    s.converge_then_terminate(&token, &[id], RESUME).await;
}

/// (b) again, without touching the lease: another replica (under another
/// name) takes over only once the dead one's lease has run out by itself
/// (a 3 s lease here; 120 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_replica_takes_over_when_the_lease_expires() {
    let s = Stack::start().await;
    let token = s.team().await;
    let mut opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 75, 1));
    opts.boot_delay_ms = 3000;
    opts.extra = vec![("INVENTIV_INSTANCE_LEASE_MS".into(), "3000".into())];
    let a = s.spawn_up(&opts).await;
    let id = s.deploy(&token, None).await;
    s.until("the server id recorded", Duration::from_secs(30), || {
        server_id(&s, id)
    })
    .await;
    opts.name = "orch-b".into();
    let _b = s.restart(a, &opts);
    s.converge_then_terminate(&token, &[id], Duration::from_secs(240))
        .await;
}

/// (d) Killed while the provider deletes the server (its processes are
/// being killed or its directory removed): the restarted orchestrator
/// finishes the deletion; nothing of the VM is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_the_termination() {
    let s = Stack::start().await;
    let token = s.team().await;
    let opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 76, 1));
    let a = s.spawn_up(&opts).await;
    let id = s.deploy_ready(&token, READY).await;
    let vm = s.vms().pop().unwrap();

    s.act(&token, reqwest::Method::DELETE, &format!("/instances/{id}"))
        .await;
    s.until("the deletion started", Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM action_logs WHERE instance_id = $1 AND action_type = 'PROVIDER_TERMINATE'",
        )
        .bind(id)
        .fetch_optional(&s.db)
        .await
        .unwrap()
    })
    .await;
    // Its processes gone: the provider is removing the directory now.
    let dir = vm.dir.display().to_string();
    poll(Duration::from_secs(10), Duration::from_millis(2), || {
        let left = crate::support::processes_mentioning(&dir);
        async move { left.is_empty().then_some(()) }
    })
    .await;
    let _a = s.restart(a, &opts);
    s.wait_status(id, "terminated", RESUME).await;
    assert!(!vm.dir.exists(), "{} survived", vm.dir.display());
    s.assert_vms_of(&[]);
    let left = crate::support::processes_mentioning(&dir);
    assert!(left.is_empty(), "processes of the VM survived: {left:?}");
}

/// A server that never comes up (as one whose creation a crash broke) does
/// not leave the instance `booting` for ever: it fails cleanly once the
/// start-up timeout has passed, its server is removed (a failed
/// provisioning keeps nothing), and it can then be terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_never_boots_fails_cleanly() {
    let s = Stack::start().await;
    let token = s.team().await;
    let mut opts = Opts::new("orch-a", Ipv4Addr::new(127, 0, 77, 1));
    opts.boot_delay_ms = 3_600_000;
    opts.startup_timeout_secs = 3;
    let _a = s.spawn_up(&opts).await;

    let id = s.deploy(&token, None).await;
    s.wait_status(id, "provisioning_failed", RESUME).await;
    let code: Option<String> = sqlx::query_scalar("SELECT error_code FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&s.db)
        .await
        .unwrap();
    assert_eq!(code.as_deref(), Some("BOOT_TIMEOUT"));
    s.until("the failed instance's server removed", RESUME, || async {
        let released: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT resources_released_at FROM instances WHERE id = $1")
                .bind(id)
                .fetch_one(&s.db)
                .await
                .unwrap();
        released.map(drop)
    })
    .await;
    s.assert_vms_of(&[]);
    s.terminate_and_check(&token, id).await;
    s.assert_vms_of(&[]);
}
