//! Crash robustness on Scaleway (the testkit's fake): the orchestrator
//! binary is SIGKILLed at each provisioning step (create sent, server
//! recorded, root volume resized, power-on sent) and started again. Each
//! instance gets exactly one server, created once; after termination and
//! convergence no step is left open and not one server, volume or security
//! group is left at the provider.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::support::{poll, Opts, Stack};
use inventiv_testkit::fake_scaleway::FakeScaleway;
use uuid::Uuid;

/// A provisioning step, seen at the fake or in the database.
#[derive(Debug, Clone, Copy)]
enum Step {
    CreateSent,
    ServerRecorded,
    VolumeResized,
    PowerOnSent,
}

/// Whether `step` was reached, judging from the calls the fake got since
/// `since` and the instance's row and action log.
async fn reached(h: &Stack, fake: &FakeScaleway, since: usize, id: Uuid, step: Step) -> bool {
    let calls: Vec<_> = fake.calls().into_iter().skip(since).collect();
    match step {
        Step::CreateSent => calls
            .iter()
            .any(|c| c.method == "POST" && c.path.ends_with("/servers")),
        Step::ServerRecorded => sqlx::query_scalar::<_, Option<String>>(
            "SELECT provider_server_id FROM instances WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap()
        .is_some(),
        Step::VolumeResized => {
            calls
                .iter()
                .any(|c| c.method == "PATCH" && c.path.contains("/volumes/"))
                && h.actions(id)
                    .await
                    .iter()
                    .any(|a| a.0 == "PROVIDER_VOLUME_RESIZE")
        }
        Step::PowerOnSent => calls.iter().any(|c| c.path.ends_with("/action")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_each_provisioning_step_leaves_no_orphan() {
    let fake = FakeScaleway::start(
        IpAddr::V4(Ipv4Addr::new(127, 0, 140, 30)),
        Duration::from_millis(100),
    )
    .await;
    let h = Stack::start_with_scaleway(&fake.url).await;
    let (token, _, _) = h.scaleway_team("Crashes", &fake).await;
    let mut opts = Opts::new("orch-scw", Ipv4Addr::new(127, 0, 144, 1));
    opts.extra = vec![("INVENTIV_SCALEWAY_API_URL".into(), fake.url.clone())];

    for step in [
        Step::CreateSent,
        Step::ServerRecorded,
        Step::VolumeResized,
        Step::PowerOnSent,
    ] {
        let before = fake.calls().len();
        let mut orchestrator = h.spawn_up(&opts).await;
        let id = h.deploy_scaleway(&token).await;
        let seen = poll(
            Duration::from_secs(30),
            Duration::from_millis(2),
            || async { reached(&h, &fake, before, id, step).await.then_some(()) },
        )
        .await;
        orchestrator.kill9();
        assert!(
            seen.is_some(),
            "{step:?} never reached\n{}",
            h.describe(id).await
        );

        // Started again, it converges to an address with exactly one server.
        let _orchestrator = h.spawn_up(&opts).await;
        let addressed = poll(
            Duration::from_secs(60),
            Duration::from_millis(100),
            || async {
                h.actions(id)
                    .await
                    .iter()
                    .any(|a| a.0 == "PROVIDER_GET_IP" && a.1.starts_with("success"))
                    .then_some(())
            },
        )
        .await;
        assert!(
            addressed.is_some(),
            "{step:?}: never got an address\n{}",
            h.describe(id).await
        );
        let mine = fake
            .servers()
            .into_iter()
            .filter(|s| s.tags.contains(&format!("inventiv:instance={id}")))
            .count();
        assert_eq!(mine, 1, "{step:?}: one server for the instance");
        let creates = fake.servers_created_with(&format!("inventiv:instance={id}"));
        assert_eq!(creates, 1, "{step:?}: created once");

        h.act(&token, reqwest::Method::DELETE, &format!("/instances/{id}"))
            .await;
        h.wait_status(id, "terminated", Duration::from_secs(60))
            .await;
        let open: Vec<_> = h
            .actions(id)
            .await
            .into_iter()
            .filter(|a| a.1.starts_with("in_progress"))
            .collect();
        assert!(open.is_empty(), "{step:?}: steps left open: {open:?}");
        assert!(
            fake.servers().is_empty(),
            "{step:?}: servers left: {:?}",
            fake.servers()
        );
        assert!(
            fake.volumes().is_empty(),
            "{step:?}: volumes left: {:?}",
            fake.volumes()
        );
        assert!(
            fake.security_groups().is_empty(),
            "{step:?}: security groups left"
        );
    }
}
