//! Provisioning that cannot stall or run twice: a step that lasts three
//! times the instance lease keeps the lease (two orchestrator processes,
//! one create, no step started by the other), and a provider that keeps
//! answering 503 ends the instance in `provisioning_failed` at the
//! provisioning deadline with its last error, after which everything that
//! was created is deleted.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::support::{Opts, Stack};
use inventiv_testkit::fake_scaleway::{FakeScaleway, Faults};
use uuid::Uuid;

/// (action, started, finished) of every step of the instance, in order.
async fn spans(
    h: &Stack,
    id: Uuid,
) -> Vec<(
    String,
    chrono::DateTime<chrono::Utc>,
    Option<chrono::DateTime<chrono::Utc>>,
)> {
    sqlx::query_as(
        "SELECT action_type, started_at, finished_at FROM action_logs WHERE instance_id = $1 ORDER BY started_at, id",
    )
    .bind(id)
    .fetch_all(&h.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_three_leases_long_keeps_its_lease() {
    let s = Stack::start().await;
    let token = s.team().await;
    let first = Ipv4Addr::new(127, 0, 96, 1);
    // A 1 s lease and a create that takes 3.5 s: without renewal the other
    // replica, polling every 200 ms, takes the instance over mid-create.
    let opts = |name: &str| {
        let mut o = Opts::new(name, first);
        o.extra = vec![
            ("INVENTIV_INSTANCE_LEASE_MS".into(), "1000".into()),
            ("INVENTIV_MOCK_CREATE_DELAY_MS".into(), "3500".into()),
        ];
        o
    };
    let _a = s.spawn_up(&opts("orch-a")).await;
    let _b = s.spawn_up(&opts("orch-b")).await;

    let id = s.deploy_ready(&token, Duration::from_secs(120)).await;

    s.assert_ready_once(id).await;
    assert_eq!(s.vm_creations_logged(id), 1, "{}", s.describe(id).await);
    let steps = spans(&s, id).await;
    let creates = steps.iter().filter(|a| a.0 == "PROVIDER_CREATE").count();
    assert_eq!(creates, 1, "{}", s.describe(id).await);
    let create = steps.iter().find(|a| a.0 == "PROVIDER_CREATE").unwrap();
    let lasted = create.2.unwrap() - create.1;
    assert!(
        lasted >= chrono::TimeDelta::seconds(3),
        "the create must have outlived the lease: {lasted}"
    );
    // Nothing else ran for the instance while the create did.
    let create_ended = create.2.unwrap();
    for other in steps.iter().filter(|a| a.0 != "PROVIDER_CREATE") {
        assert!(
            other.1 >= create_ended,
            "{} started while PROVIDER_CREATE ran\n{}",
            other.0,
            s.describe(id).await
        );
    }
    let interrupted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM action_logs WHERE instance_id = $1 AND error_code = 'INTERRUPTED'",
    )
    .bind(id)
    .fetch_one(&s.db)
    .await
    .unwrap();
    assert_eq!(interrupted, 0, "{}", s.describe(id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_answering_503_for_ever_fails_at_the_deadline_and_leaves_nothing() {
    let fake = FakeScaleway::start(
        IpAddr::V4(Ipv4Addr::new(127, 0, 97, 10)),
        Duration::from_secs(3),
    )
    .await;
    let mut h = Stack::start_with_scaleway(&fake.url).await;
    h.provisioning_deadline = Duration::from_secs(6);
    h.in_process(Ipv4Addr::new(127, 0, 98, 1)).await;
    let (token, _, _) = h.scaleway_team("Deadline", &fake).await;
    let id = h.deploy_scaleway(&token).await;

    // Once the server exists, the API answers 503 to everything.
    h.until("the server is created", Duration::from_secs(30), || async {
        (!fake.servers().is_empty()).then_some(())
    })
    .await;
    fake.set_faults(Faults {
        unavailable: u32::MAX,
        ..Faults::default()
    });
    let (code, message): (String, String) = h
        .until(
            "provisioning_failed at the deadline",
            Duration::from_secs(60),
            || async {
                sqlx::query_as(
                    "SELECT error_code, error_message FROM instances WHERE id = $1 AND status = 'provisioning_failed'",
                )
                .bind(id)
                .fetch_optional(&h.db)
                .await
                .unwrap()
            },
        )
        .await;
    assert_eq!(code, "PROVISIONING_DEADLINE", "{message}");
    assert!(
        message.contains("within 6 s") && message.contains("unavailable"),
        "the last provider error is named: {message}"
    );
    assert!(!fake.servers().is_empty(), "nothing could be deleted yet");

    // The API comes back: what was created goes, and the instance says so.
    fake.set_faults(Faults::default());
    h.until(
        "the failed instance's resources deleted",
        Duration::from_secs(60),
        || async {
            let released: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT resources_released_at FROM instances WHERE id = $1")
                    .bind(id)
                    .fetch_one(&h.db)
                    .await
                    .unwrap();
            released.is_some().then_some(())
        },
    )
    .await;
    // Nothing of this instance is left. (Its service — a deployment is a
    // service of one replica — replaces a failed replica after a backoff:
    // a replacement's resources are its own, tagged with its own id.)
    let tag = format!("inventiv:instance={id}");
    let servers: Vec<_> = fake
        .servers()
        .into_iter()
        .filter(|s| s.tags.contains(&tag))
        .collect();
    assert!(servers.is_empty(), "{servers:?}");
    let volumes: Vec<_> = fake
        .volumes()
        .into_iter()
        .filter(|v| v.tags.contains(&tag))
        .collect();
    assert!(volumes.is_empty(), "{volumes:?}");
    let group = format!("inventiv-{}", id.simple());
    let groups: Vec<_> = fake
        .security_groups()
        .into_iter()
        .filter(|g| g.name == group)
        .collect();
    assert!(groups.is_empty(), "{groups:?}");
    assert_eq!(h.status(id).await, "provisioning_failed");
}
