//! The orchestrator on Scaleway (the testkit's fake): a deployment reaches
//! ready through the real SSH install to a local sshd on the server's
//! address; two organizations
//! with their own credentials deploy; each provider call carries the
//! token of the instance's organization; the Scaleway steps run in order
//! (create, root volume grown to the model's size, power-on, address,
//! security group);
//! the volumes are recorded; terminating deletes the servers and volumes.
//! Then the leak tests: cloud reconciliation deletes tagged orphans older
//! than the grace window and nothing else, cleans up after a create whose
//! answer was lost, retries refused deletions with backoff, and marks what
//! vanished; the API's dry-run report shows the same verdicts. A quota
//! refusal and an out-of-stock answer end a deployment with their own codes
//! and Scaleway's message, leaving nothing behind.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::support::{assert_in_order, poll, NodeGuard, Stack, MODEL};
use inventiv_orchestrator::jobs::cloud_reconcile::{reconcile_org, Backoff};
use inventiv_providers::reconcile::Kind;
use inventiv_providers::{tags, CreateServer};
use inventiv_testkit::fake_scaleway::{FakeScaleway, Faults};
use serde_json::json;
use uuid::Uuid;

/// Successful actions of an instance, in order.
async fn done(h: &Stack, id: Uuid) -> Vec<String> {
    h.actions(id)
        .await
        .into_iter()
        .filter(|a| a.1.starts_with("success"))
        .map(|a| a.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_organizations_provision_and_terminate_with_their_own_tokens() {
    let fake = FakeScaleway::start(
        IpAddr::V4(Ipv4Addr::new(127, 0, 140, 10)),
        Duration::from_millis(200),
    )
    .await;
    let h = Stack::start_with_scaleway(&fake.url).await;
    h.in_process(Ipv4Addr::new(127, 0, 141, 1)).await;
    let (token_a, secret_a, _) = h.scaleway_team("Scaleway A", &fake).await;
    let (token_b, secret_b, _) = h.scaleway_team("Scaleway B", &fake).await;
    let (a, b) = (
        h.deploy_scaleway(&token_a).await,
        h.deploy_scaleway(&token_b).await,
    );

    let steps = [
        "PROVIDER_CREATE",
        "PROVIDER_VOLUME_RESIZE",
        "PROVIDER_START",
        "PROVIDER_GET_IP",
        "PROVIDER_SECURITY_GROUP",
    ];
    for id in [a, b] {
        let got = poll(
            Duration::from_secs(60),
            Duration::from_millis(100),
            || async {
                let done = done(&h, id).await;
                done.iter()
                    .any(|d| d == "PROVIDER_SECURITY_GROUP")
                    .then_some(done)
            },
        )
        .await
        .unwrap_or_else(|| panic!("the server was never secured"));
        let positions: Vec<Option<usize>> = steps
            .iter()
            .map(|s| got.iter().position(|d| d == s))
            .collect();
        assert!(
            positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]),
            "Scaleway steps out of order: {got:?}"
        );
    }
    let instance = h.instance(&token_a, a).await;
    assert!(instance["progress"].as_i64().unwrap() >= 45, "{instance}");
    assert_eq!(instance["ip_address"], "127.0.140.10");

    // One server per instance, tagged with it; root volumes grown to the
    // model's 50 GB, tagged and recorded.
    let servers = fake.servers();
    assert_eq!(servers.len(), 2);
    for id in [a, b] {
        let server = servers
            .iter()
            .find(|s| s.tags.contains(&format!("inventiv:instance={id}")))
            .unwrap();
        let volume = fake
            .volumes()
            .into_iter()
            .find(|v| v.id == server.volume_ids[0])
            .unwrap();
        assert_eq!(volume.size, 50 * 1_000_000_000);
        assert!(volume.tags.contains(&format!("inventiv:instance={id}")));
        let recorded: Vec<(String, i32, bool, bool)> = sqlx::query_as(
            "SELECT provider_volume_id, size_gb, is_boot, delete_on_terminate FROM instance_volumes WHERE instance_id = $1",
        )
        .bind(id)
        .fetch_all(&h.db)
        .await
        .unwrap();
        assert_eq!(recorded, vec![(volume.id.clone(), 50, true, true)]);
    }

    // One security group per instance: SSH from anywhere, the worker's
    // ports from the control plane only.
    let groups = fake.security_groups();
    assert_eq!(groups.len(), 2);
    for g in &groups {
        let opened: Vec<(u64, &str)> = g
            .rules
            .iter()
            .map(|r| {
                (
                    r["dest_port_from"].as_u64().unwrap(),
                    r["ip_range"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            opened,
            vec![
                (22, "0.0.0.0/0"),
                (8000, "127.0.0.1/32"),
                (8090, "127.0.0.1/32")
            ]
        );
        assert!(servers
            .iter()
            .any(|s| s.security_group.as_ref() == Some(&g.id)));
    }

    // Every call about an organization's server carried that organization's token.
    for (id, secret) in [(a, &secret_a), (b, &secret_b)] {
        let server = servers
            .iter()
            .find(|s| s.tags.contains(&format!("inventiv:instance={id}")))
            .unwrap();
        let about: Vec<_> = fake
            .calls()
            .into_iter()
            .filter(|c| c.path.contains(&server.id))
            .collect();
        assert!(!about.is_empty());
        assert!(
            about.iter().all(|c| c.token.as_ref() == Some(secret)),
            "{about:?}"
        );
    }

    // Terminating deletes the servers and their volumes.
    h.act(
        &token_a,
        reqwest::Method::DELETE,
        &format!("/instances/{a}"),
    )
    .await;
    h.act(
        &token_b,
        reqwest::Method::DELETE,
        &format!("/instances/{b}"),
    )
    .await;
    h.wait_status(a, "terminated", Duration::from_secs(60))
        .await;
    h.wait_status(b, "terminated", Duration::from_secs(60))
        .await;
    assert!(fake.servers().is_empty(), "{:?}", fake.servers());
    assert!(fake.volumes().is_empty(), "{:?}", fake.volumes());
    assert!(
        fake.security_groups().is_empty(),
        "{:?}",
        fake.security_groups()
    );
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM instance_volumes WHERE status <> 'deleted'")
            .fetch_one(&h.db)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

/// The Scaleway node's public (relay) port; its engines listen on the next
/// ports of the loopback, clear of the mock provider's (8001 and up).
const SCALEWAY_ENGINE_PORT: u16 = 8100;

const PERSISTENT: &str = "persistent volume of a terminated instance";

/// An instance row of the organization, in `status`.
pub(crate) async fn instance(h: &Stack, org: Uuid, status: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO instances (id, organization_id, name, provider, zone, instance_type, model_id, status)
         VALUES ($1, $2, 'leak-test', 'scaleway', 'fr-par-2', 'L4-1-24G', $3, $4)",
    )
    .bind(id)
    .bind(org)
    .bind(MODEL)
    .bind(status)
    .execute(&h.db)
    .await
    .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_deletes_old_tagged_orphans_and_nothing_else() {
    let fake =
        FakeScaleway::start(IpAddr::V4(Ipv4Addr::new(127, 0, 140, 20)), Duration::ZERO).await;
    let h = Stack::start_with_scaleway(&fake.url).await;
    let o = h.in_process(Ipv4Addr::new(127, 0, 142, 1)).await;
    let (token, _, project) = h.scaleway_team("Leaks", &fake).await;
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM provider_credentials")
        .fetch_one(&h.db)
        .await
        .unwrap();
    let live = instance(&h, org, "ready").await;
    let finished = instance(&h, org, "terminated").await;
    // A live instance whose server and recorded volume vanished at the provider.
    let stranded = instance(&h, org, "ready").await;
    sqlx::query("UPDATE instances SET provider_server_id = 'gone-server' WHERE id = $1")
        .bind(stranded)
        .execute(&h.db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO instance_volumes (instance_id, organization_id, provider_code, zone, provider_volume_id, size_gb, is_boot)
         VALUES ($1, $2, 'scaleway', 'fr-par-2', 'gone-volume', 50, true)",
    )
    .bind(stranded)
    .bind(org)
    .execute(&h.db)
    .await
    .unwrap();
    let ours = |i: Uuid| tags::standard(i, org);
    let (old, young) = (Duration::from_secs(7200), Duration::from_secs(60));
    let table: Vec<(&str, Kind, Vec<String>, Duration, bool)> = vec![
        (
            "orphan server, old",
            Kind::Server,
            ours(Uuid::new_v4()),
            old,
            true,
        ),
        (
            "orphan server, young",
            Kind::Server,
            ours(Uuid::new_v4()),
            young,
            false,
        ),
        (
            "server of a terminated instance",
            Kind::Server,
            ours(finished),
            old,
            true,
        ),
        (
            "server of a live instance",
            Kind::Server,
            ours(live),
            old,
            false,
        ),
        (
            "untagged server",
            Kind::Server,
            vec!["customer-vm".into()],
            old,
            false,
        ),
        (
            "another organization's server",
            Kind::Server,
            tags::standard(Uuid::new_v4(), Uuid::new_v4()),
            old,
            false,
        ),
        (
            "orphan volume, old",
            Kind::Volume,
            ours(Uuid::new_v4()),
            old,
            true,
        ),
        (
            "orphan volume, young",
            Kind::Volume,
            ours(Uuid::new_v4()),
            young,
            false,
        ),
        ("untagged volume", Kind::Volume, Vec::new(), old, false),
        (
            "volume of a live instance",
            Kind::Volume,
            ours(live),
            old,
            false,
        ),
        (PERSISTENT, Kind::Volume, ours(finished), old, false),
        (
            "orphan security group, old",
            Kind::SecurityGroup,
            ours(Uuid::new_v4()),
            old,
            true,
        ),
        (
            "orphan security group, young",
            Kind::SecurityGroup,
            ours(Uuid::new_v4()),
            young,
            false,
        ),
        (
            "security group of a live instance",
            Kind::SecurityGroup,
            ours(live),
            old,
            false,
        ),
        (
            "untagged security group",
            Kind::SecurityGroup,
            vec!["customer-sg".into()],
            old,
            false,
        ),
    ];
    let mut ids = Vec::new();
    for (what, kind, tags, age, _) in &table {
        let id = match kind {
            Kind::Server => fake.insert_server(&project, "fr-par-2", tags, *age),
            Kind::Volume => fake.insert_volume(&project, "fr-par-2", tags, *age),
            Kind::SecurityGroup => fake.insert_security_group(&project, "fr-par-2", tags, *age),
        };
        if *what == PERSISTENT {
            sqlx::query(
                "INSERT INTO instance_volumes (instance_id, organization_id, provider_code, zone, provider_volume_id, size_gb, is_boot, delete_on_terminate, status)
                 VALUES ($1, $2, 'scaleway', 'fr-par-2', $3, 20, false, false, 'attached')",
            )
            .bind(finished)
            .bind(org)
            .bind(&id)
            .execute(&h.db)
            .await
            .unwrap();
        }
        ids.push((*what, id));
    }
    let root_of = |server: &str| -> Option<String> {
        fake.servers()
            .into_iter()
            .find(|s| s.id == server)
            .map(|s| s.volume_ids[0].clone())
    };
    let roots: Vec<Option<String>> = ids.iter().map(|(_, id)| root_of(id)).collect();

    // The dry run shows the verdicts and deletes nothing.
    let (status, report) = h
        .call(
            reqwest::Method::GET,
            "/providers/scaleway/reconciliation",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let verdict = |id: &str| -> Option<String> {
        report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider_id"] == id)
            .map(|r| r["verdict"].as_str().unwrap().to_owned())
    };
    for ((what, id), (_, _, tags, _, deleted)) in ids.iter().zip(&table) {
        match (tags.iter().any(|t| t == tags::MANAGED), verdict(id)) {
            (false, v) => assert_eq!(v, None, "{what}: untagged resources are not even listed"),
            (true, Some(v)) => assert_eq!(v == "delete", *deleted, "{what}: {v}"),
            (true, None) => panic!("{what} missing from the report: {report}"),
        }
    }
    assert_eq!(fake.servers().len(), 6, "a dry run deletes nothing");
    assert_eq!(report["vanished_instances"], json!([stranded]), "{report}");
    assert_eq!(
        report["missing_volumes"],
        json!(["gone-volume"]),
        "{report}"
    );

    let backoff = Backoff::default();
    let grace = Duration::from_secs(1800);
    let pass = reconcile_org(&o, &backoff, "scaleway", org, grace)
        .await
        .unwrap();
    assert!(pass.failed.is_empty(), "{pass:?}");
    assert_eq!(pass.vanished_instances, vec![stranded]);
    let marked: String = sqlx::query_scalar(
        "SELECT status FROM instance_volumes WHERE provider_volume_id = 'gone-volume'",
    )
    .fetch_one(&h.db)
    .await
    .unwrap();
    assert_eq!(marked, "missing");
    let servers: Vec<String> = fake.servers().into_iter().map(|s| s.id).collect();
    let volumes: Vec<String> = fake.volumes().into_iter().map(|v| v.id).collect();
    let groups: Vec<String> = fake.security_groups().into_iter().map(|g| g.id).collect();
    for (((what, id), (_, kind, _, _, deleted)), root) in ids.iter().zip(&table).zip(&roots) {
        let exists = match kind {
            Kind::Server => servers.contains(id),
            Kind::Volume => volumes.contains(id),
            Kind::SecurityGroup => groups.contains(id),
        };
        assert_eq!(exists, !deleted, "{what}");
        if let Some(root) = root {
            assert_eq!(volumes.contains(root), !deleted, "root volume of {what}");
        }
    }

    // Every zone the organization activated is looked at, not only the
    // credentials' default zone; a zone it never used is none of its business.
    sqlx::query(
        "INSERT INTO organization_activations (organization_id, item_kind, item_id, technical)
         VALUES ($1, 'zone', '8a1d0000-0000-4000-8000-000000000013', true)",
    )
    .bind(org)
    .execute(&h.db)
    .await
    .unwrap();
    let amsterdam = fake.insert_server(&project, "nl-ams-1", &ours(Uuid::new_v4()), old);
    let amsterdam_group =
        fake.insert_security_group(&project, "nl-ams-1", &ours(Uuid::new_v4()), old);
    let warsaw = fake.insert_server(&project, "pl-waw-2", &ours(Uuid::new_v4()), old);
    let pass = reconcile_org(&o, &backoff, "scaleway", org, grace)
        .await
        .unwrap();
    assert!(pass.deleted.contains(&amsterdam), "{pass:?}");
    assert!(pass.deleted.contains(&amsterdam_group), "{pass:?}");
    assert!(!pass.deleted.contains(&warsaw), "{pass:?}");
    assert!(fake.servers().iter().any(|s| s.id == warsaw));

    // A create whose answer was lost (5xx) leaves a tagged server that no
    // instance knows: once past the grace window it goes, with its volume.
    let provider = o.provider("scaleway", org).await.unwrap();
    fake.set_faults(Faults {
        fail_after_create: 1,
        ..Faults::default()
    });
    let lost = Uuid::new_v4();
    let request = CreateServer {
        instance_id: lost,
        organization_id: org,
        zone: "fr-par-2".into(),
        instance_type: "L4-1-24G".into(),
        name: "lost".into(),
        image: None,
        tags: Vec::new(),
        root_volume_gb: None,
        ssh_public_key: None,
    };
    assert!(provider.create_server(request).await.is_err());
    let lost_server = fake
        .servers()
        .into_iter()
        .find(|s| s.tags.contains(&tags::instance(lost)))
        .unwrap();
    // Its root volume was never tagged (the answer naming it was lost).
    let lost_root = lost_server.volume_ids[0].clone();
    let lost_left = |fake: &FakeScaleway| {
        fake.servers()
            .iter()
            .filter(|s| s.id == lost_server.id)
            .count()
            + fake.volumes().iter().filter(|v| v.id == lost_root).count()
    };
    assert_eq!(lost_left(&fake), 2, "the server and its root volume exist");
    reconcile_org(&o, &backoff, "scaleway", org, grace)
        .await
        .unwrap();
    assert_eq!(lost_left(&fake), 2, "inside the grace window it is kept");
    reconcile_org(&o, &backoff, "scaleway", org, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(lost_left(&fake), 0, "no orphan is left");
    assert_eq!(
        fake.servers().len(),
        4,
        "with no grace the young orphan went too; owned, untagged and foreign servers stay, \
         and the one in a zone the organization never used"
    );

    // A refused deletion is retried later, not in a tight loop.
    let orphan = fake.insert_volume(&project, "fr-par-2", &ours(Uuid::new_v4()), old);
    fake.set_faults(Faults {
        refuse_deletes: 1,
        ..Faults::default()
    });
    let pass = reconcile_org(&o, &backoff, "scaleway", org, grace)
        .await
        .unwrap();
    assert_eq!(pass.failed.len(), 1, "{pass:?}");
    let pass = reconcile_org(&o, &backoff, "scaleway", org, grace)
        .await
        .unwrap();
    assert!(
        pass.failed.is_empty() && !pass.deleted.contains(&orphan),
        "backing off: {pass:?}"
    );
    assert!(fake.volumes().iter().any(|v| v.id == orphan));
    let pass = reconcile_org(&o, &Backoff::default(), "scaleway", org, grace)
        .await
        .unwrap();
    assert!(pass.deleted.contains(&orphan), "{pass:?}");
}

/// Acceptance: a deployment on (fake) Scaleway goes all the way to ready
/// through the real SSH install (a local sshd on the server's address,
/// the agent and the mock engine, on the ports of the organization's
/// worker settings), with the Scaleway milestones in order;
/// terminating deletes the server, its security group and its volumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scaleway_deployment_reaches_ready_through_the_real_install() {
    let address = Ipv4Addr::new(127, 0, 140, 50);
    let fake = FakeScaleway::start(IpAddr::V4(address), Duration::from_millis(100)).await;
    let sshd = inventiv_testkit::sshd::Sshd::start_on(address).await;
    let mut h = Stack::start_with_scaleway(&fake.url).await;
    let node = h.state_dir.join("scaleway-node");
    h.scaleway_ssh = (sshd.port, Some(node.display().to_string()));
    let (_, key) = inventiv_orchestrator::context::ssh_key(&h.state_dir)
        .await
        .unwrap();
    sshd.authorize(&key);
    let node_guard = NodeGuard {
        node: node.display().to_string(),
        // The node's engine listens on loopback behind its relay.
        engine: format!("--port {} ", SCALEWAY_ENGINE_PORT + 1),
    };
    h.in_process(Ipv4Addr::new(127, 0, 145, 1)).await;
    let (token, secret, _) = h.scaleway_team("Scaleway ready", &fake).await;

    // The organization's worker settings move the node's ports.
    let (s, body) = h
        .call(
            reqwest::Method::PUT,
            "/organizations/current/providers/scaleway/worker-settings",
            &token,
            Some(json!({ "engine_port": SCALEWAY_ENGINE_PORT, "agent_port": 8190 })),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    let id = h
        .deploy_scaleway_ready(&token, Duration::from_secs(120))
        .await;

    // The server was created with its root volume at the model's size, and
    // its user data authorized the orchestrator's key before any power-on.
    let server = fake.servers().pop().unwrap();
    assert_eq!(server.root_volume_requested, Some(50 * 1_000_000_000));
    let first = server
        .user_data_log
        .first()
        .expect("user data was set on the server");
    assert_eq!(first.key, "cloud-init");
    assert_eq!(first.state, "stopped", "set before power-on");
    assert!(
        first.value.starts_with("#cloud-config") && first.value.contains(key.trim()),
        "the user data carries the orchestrator's public key: {}",
        first.value
    );
    let rules = &fake.security_groups()[0].rules;
    let ports: Vec<u64> = rules
        .iter()
        .map(|r| r["dest_port_from"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ports,
        vec![u64::from(sshd.port), u64::from(SCALEWAY_ENGINE_PORT), 8190]
    );
    let ready = h.instance(&token, id).await;
    assert_eq!(ready["progress"], 100);
    assert_eq!(ready["ip_address"], address.to_string());
    let done = done(&h, id).await;
    let milestones = [
        "PROVIDER_CREATE",
        "PROVIDER_VOLUME_RESIZE",
        "PROVIDER_START",
        "PROVIDER_SECURITY_GROUP",
        "WORKER_SSH_ACCESSIBLE",
        "WORKER_SSH_INSTALL",
        "WORKER_VLLM_HTTP_OK",
        "WORKER_MODEL_LOADED",
        "WORKER_VLLM_WARMUP",
        "HEALTH_CHECK",
    ];
    assert_in_order(&done, &milestones);
    assert!(fake
        .calls()
        .iter()
        .all(|c| c.token.as_deref() == Some(secret.as_str())));

    h.act(&token, reqwest::Method::DELETE, &format!("/instances/{id}"))
        .await;
    h.wait_status(id, "terminated", Duration::from_secs(60))
        .await;
    assert!(
        fake.servers().is_empty() && fake.volumes().is_empty() && fake.security_groups().is_empty()
    );
    drop(node_guard);
    let engine = format!("--port {} ", SCALEWAY_ENGINE_PORT + 1);
    let stopped = poll(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            crate::support::processes_mentioning(&engine)
                .is_empty()
                .then_some(())
        },
    )
    .await;
    assert!(stopped.is_some(), "the node's engine still runs");
}

/// Acceptance: Scaleway refusing the create for quota (403) or the
/// power-on for lack of stock ends the deployment in `provisioning_failed`
/// with its own code and Scaleway's message, in the instance and its action
/// log; whatever was created (the server refused power) is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_and_out_of_stock_end_with_their_codes_and_leave_nothing() {
    let fake = FakeScaleway::start(
        IpAddr::V4(Ipv4Addr::new(127, 0, 140, 70)),
        Duration::from_millis(100),
    )
    .await;
    let h = Stack::start_with_scaleway(&fake.url).await;
    h.in_process(Ipv4Addr::new(127, 0, 146, 1)).await;
    let (token, _, _) = h.scaleway_team("Refused", &fake).await;

    let failed = |id: Uuid| {
        let db = h.db.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT error_code, error_message FROM instances WHERE id = $1 AND status = 'provisioning_failed'",
            )
            .bind(id)
            .fetch_optional(&db)
            .await
            .unwrap()
        }
    };
    let logged = |id: Uuid, code: &'static str| {
        let db = h.db.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT error_message FROM action_logs WHERE instance_id = $1 AND error_code = $2",
            )
            .bind(id)
            .bind(code)
            .fetch_optional(&db)
            .await
            .unwrap()
        }
    };
    let released = |id: Uuid| {
        let db = h.db.clone();
        async move {
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "SELECT resources_released_at FROM instances WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
            .map(drop)
        }
    };

    // Quota: refused at creation, nothing exists.
    fake.set_faults(Faults {
        quota_exceeded: 1,
        ..Faults::default()
    });
    let id = h.deploy_scaleway(&token).await;
    let (code, message) = h
        .until("the quota refusal", Duration::from_secs(30), || failed(id))
        .await;
    assert_eq!(code, "PROVIDER_QUOTA_EXCEEDED");
    assert!(
        message.contains("Quota exceeded"),
        "Scaleway's message: {message}"
    );
    let log = logged(id, "PROVIDER_QUOTA_EXCEEDED").await.unwrap();
    assert!(log.contains("Quota exceeded"), "{log}");
    h.until("the release", Duration::from_secs(30), || released(id))
        .await;
    assert!(fake.servers().is_empty(), "{:?}", fake.servers());

    // Out of stock: the server is created, its power-on refused; it goes.
    fake.set_faults(Faults {
        out_of_stock_on_poweron: 1,
        ..Faults::default()
    });
    let id = h.deploy_scaleway(&token).await;
    let (code, message) = h
        .until("the out-of-stock refusal", Duration::from_secs(30), || {
            failed(id)
        })
        .await;
    assert_eq!(code, "PROVIDER_OUT_OF_STOCK");
    assert!(
        message.contains("out of stock"),
        "Scaleway's message: {message}"
    );
    assert!(logged(id, "PROVIDER_OUT_OF_STOCK").await.is_some());
    h.until("the release", Duration::from_secs(60), || released(id))
        .await;
    assert!(fake.servers().is_empty(), "{:?}", fake.servers());
    assert!(fake.volumes().is_empty(), "{:?}", fake.volumes());
    assert!(fake.security_groups().is_empty());
}

/// The reconciliation job runs on one replica at a time: its lock is held
/// by one connection, refused to others, and free again once that
/// connection is gone (a replica that dies releases it with its socket).
#[tokio::test]
async fn one_replica_at_a_time_runs_the_reconciliation_job() {
    let h = Stack::start().await;
    let first = inventiv_orchestrator::jobs::cloud_reconcile::take_lock(&h.db_url)
        .await
        .unwrap();
    assert!(first.is_some());
    let second = inventiv_orchestrator::jobs::cloud_reconcile::take_lock(&h.db_url)
        .await
        .unwrap();
    assert!(second.is_none(), "a second replica must not run it");
    drop(first);
    let url = h.db_url.clone();
    let third = poll(Duration::from_secs(10), Duration::from_millis(50), || {
        let url = url.clone();
        async move {
            inventiv_orchestrator::jobs::cloud_reconcile::take_lock(&url)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(third.is_some(), "the lock is free once its holder is gone");
}

/// In production a cloud deployment without `INVENTIV_CONTROL_PLANE_ADDRESS`
/// would open the node's worker ports to the whole Internet: it is refused
/// before anything is created, with a code and a message that say what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn production_refuses_cloud_provisioning_without_a_control_plane_address() {
    let fake = FakeScaleway::start(
        IpAddr::V4(Ipv4Addr::new(127, 0, 140, 90)),
        Duration::from_millis(100),
    )
    .await;
    let mut h = Stack::start_with_scaleway(&fake.url).await;
    h.production = true;
    h.control_plane_address = None;
    h.in_process(Ipv4Addr::new(127, 0, 147, 1)).await;
    let (token, _, _) = h.scaleway_team("Exposed", &fake).await;
    let id = h.deploy_scaleway(&token).await;
    let (code, message) = h
        .until("the refusal", Duration::from_secs(30), || {
            let db = h.db.clone();
            async move {
                sqlx::query_as::<_, (String, String)>(
                    "SELECT error_code, error_message FROM instances WHERE id = $1 AND status = 'provisioning_failed'",
                )
                .bind(id)
                .fetch_optional(&db)
                .await
                .unwrap()
            }
        })
        .await;
    assert_eq!(code, "CONTROL_PLANE_ADDRESS_REQUIRED");
    assert!(
        message.contains("INVENTIV_CONTROL_PLANE_ADDRESS"),
        "{message}"
    );
    assert!(fake.servers().is_empty(), "{:?}", fake.servers());
    assert!(fake.security_groups().is_empty());
}
