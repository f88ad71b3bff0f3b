//! `ScalewayProvider` against the fake Scaleway of the testkit: the
//! validated sequence (create with the root volume sized and the SSH key
//! set as user data before power-on, resize, power-on once the volume has
//! settled, running with an address, security group, delete), retries on
//! 429 and 5xx, no retry of a create whose answer was lost, pagination by
//! the Instance API's headers, and one token per organization.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod scw;

use std::time::Duration;

use inventiv_providers::scaleway::cloud_config;
use inventiv_providers::{
    tags, CloudProvider, CreateServer, Firewall, ListFilter, ProviderError, ServerState,
};
use inventiv_testkit::fake_scaleway::{FakeScaleway, Faults};
use inventiv_testkit::wait::eventually;
use scw::{provider, request, KEY, VM_IP, ZONE};
use uuid::Uuid;

#[tokio::test]
async fn the_validated_sequence_runs_and_deleting_leaves_volumes_to_delete() {
    let fake = FakeScaleway::start(VM_IP, Duration::from_millis(150)).await;
    let (p, _, _) = provider(&fake);
    let req = CreateServer {
        root_volume_gb: Some(40),
        ssh_public_key: Some(KEY.into()),
        ..request()
    };
    let server = p.create_server(req.clone()).await.unwrap();
    assert_eq!(server.state, ServerState::Stopped);
    assert_eq!(server.ip, None, "no address before power-on");
    assert_eq!(server.instance_id(), Some(req.instance_id));
    assert_eq!(server.organization_id(), Some(req.organization_id));
    // The root volume was sized at creation, found, tagged like the server.
    assert_eq!(server.volumes.len(), 1);
    let root = &server.volumes[0];
    assert_eq!(
        (root.size_gb, root.server_id.as_deref()),
        (40, Some(server.provider_id.as_str()))
    );
    assert_eq!(root.tags, req.all_tags());
    let created = &fake.servers()[0];
    assert_eq!(created.root_volume_requested, Some(40_000_000_000));
    // The key went in as cloud-init user data while the server was stopped.
    let sets = &created.user_data_log;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(
        (sets[0].key.as_str(), sets[0].state.as_str()),
        ("cloud-init", "stopped")
    );
    assert_eq!(sets[0].value, cloud_config(KEY).unwrap());

    // Grow before power-on. The volume is `updating` for a while: another
    // resize and the power-on wait (Transient) until it has settled.
    p.resize_volume(root.reference(), 200).await.unwrap();
    assert!(matches!(
        p.resize_volume(root.reference(), 200).await,
        Err(ProviderError::Transient(_))
    ));
    match p.start_server(server.reference()).await {
        Err(ProviderError::Transient(m)) => assert!(m.contains("updating"), "{m}"),
        other => panic!("power-on during a resize: {other:?}"),
    }
    eventually("power-on", Duration::from_secs(10), || async {
        match p.start_server(server.reference()).await {
            Ok(()) => Some(()),
            Err(ProviderError::Transient(_)) => None,
            Err(e) => panic!("{e}"),
        }
    })
    .await;
    p.start_server(server.reference()).await.unwrap();
    // Settled: the same size again is a no-op, shrinking is refused.
    p.resize_volume(root.reference(), 200).await.unwrap();
    assert!(matches!(
        p.resize_volume(root.reference(), 100).await,
        Err(ProviderError::InvalidRequest(_))
    ));
    let running = eventually("running", Duration::from_secs(10), || async {
        let s = p.get_server(server.reference()).await.unwrap().unwrap();
        (s.state == ServerState::Running).then_some(s)
    })
    .await;
    assert_eq!(running.ip, Some(VM_IP));
    assert_eq!(running.volumes[0].size_gb, 200);

    // The security group: SSH from anywhere, worker ports from the control
    // plane only; applied twice, still one group, attached to the server.
    let rules = Firewall {
        instance_id: req.instance_id,
        organization_id: req.organization_id,
        ssh_port: 22,
        worker_ports: vec![8000, 8090],
        control_plane: Some("10.1.2.3".parse().unwrap()),
    };
    p.ensure_firewall(server.reference(), rules.clone())
        .await
        .unwrap();
    p.ensure_firewall(server.reference(), rules).await.unwrap();
    let groups = fake.security_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].inbound_default_policy, "drop");
    assert_eq!(groups[0].tags, req.all_tags());
    let opened: Vec<(u64, &str)> = groups[0]
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
            (8000, "10.1.2.3/32"),
            (8090, "10.1.2.3/32")
        ]
    );
    assert_eq!(
        fake.servers()[0].security_group.as_deref(),
        Some(groups[0].id.as_str())
    );
    let listed = p
        .list_firewalls(ListFilter {
            zone: None,
            tag: Some(tags::MANAGED.into()),
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance_id(), Some(req.instance_id));

    // An attached volume cannot go; deleting the server detaches it.
    assert!(matches!(
        p.delete_volume(root.reference()).await,
        Err(ProviderError::InvalidRequest(_))
    ));
    p.delete_server(server.reference()).await.unwrap();
    p.delete_server(server.reference()).await.unwrap();
    assert!(p.get_server(server.reference()).await.unwrap().is_none());
    let left = p
        .list_volumes(ListFilter {
            zone: None,
            tag: Some(tags::instance(req.instance_id)),
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].server_id, None);
    p.delete_volume(root.reference()).await.unwrap();
    p.delete_volume(root.reference()).await.unwrap();
    p.delete_firewall(ZONE.into(), req.instance_id)
        .await
        .unwrap();
    p.delete_firewall(ZONE.into(), req.instance_id)
        .await
        .unwrap();
    assert!(fake.security_groups().is_empty());
    assert!(fake.volumes().is_empty() && fake.servers().is_empty());
}

#[tokio::test]
async fn a_volume_still_detaching_from_a_deleted_server_is_deleted_later() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    fake.set_detach_time(Duration::from_millis(300));
    let (p, _, _) = provider(&fake);
    let server = p.create_server(request()).await.unwrap();
    let root = server.volumes[0].reference();
    p.delete_server(server.reference()).await.unwrap();
    match p.delete_volume(root.clone()).await {
        Err(e @ ProviderError::Transient(_)) => assert!(e.to_string().contains("detaching"), "{e}"),
        other => panic!("deleting a detaching volume: {other:?}"),
    }
    eventually("the volume to go", Duration::from_secs(5), || async {
        p.delete_volume(root.clone()).await.ok()
    })
    .await;
    assert!(fake.volumes().is_empty());
}

#[tokio::test]
async fn rate_limits_and_5xx_are_retried_with_backoff_then_reported() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    let (p, _, _) = provider(&fake);
    fake.set_faults(Faults {
        rate_limited: 2,
        unavailable: 1,
        ..Faults::default()
    });
    assert!(p
        .list_servers(ListFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(fake.calls().len(), 4, "three refusals, then the answer");

    fake.set_faults(Faults {
        unavailable: u32::MAX,
        ..Faults::default()
    });
    let err = p.list_volumes(ListFilter::default()).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert_eq!(fake.calls().len(), 8, "four attempts in all");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_repeated_but_can_be_found() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    let (p, _, _) = provider(&fake);
    fake.set_faults(Faults {
        fail_after_create: 1,
        ..Faults::default()
    });
    let req = request();
    let err = p.create_server(req.clone()).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert_eq!(fake.servers().len(), 1, "created once, not retried");
    let found = p
        .list_servers(ListFilter {
            zone: None,
            tag: Some(tags::instance(req.instance_id)),
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn lists_follow_every_page() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    let (p, _, project) = provider(&fake);
    let ours = tags::standard(Uuid::new_v4(), Uuid::new_v4());
    for _ in 0..230 {
        fake.insert_server(&project, ZONE, &ours, Duration::ZERO);
        fake.insert_security_group(&project, ZONE, &ours, Duration::ZERO);
    }
    fake.insert_server(&project, ZONE, &["someone-else".to_owned()], Duration::ZERO);
    let tagged = ListFilter {
        zone: None,
        tag: Some(tags::MANAGED.to_owned()),
    };
    let before = fake.calls().len();
    assert_eq!(p.list_servers(tagged.clone()).await.unwrap().len(), 230);
    let pages = fake.calls()[before..]
        .iter()
        .filter(|c| c.path.ends_with("/servers"))
        .count();
    assert_eq!(pages, 3, "100 per page, paged by the headers");
    assert_eq!(
        p.list_servers(ListFilter::default()).await.unwrap().len(),
        231
    );
    assert_eq!(p.list_volumes(tagged.clone()).await.unwrap().len(), 230);
    assert_eq!(p.list_firewalls(tagged).await.unwrap().len(), 230);
}

#[tokio::test]
async fn each_organization_calls_with_its_own_token_and_sees_its_own_project() {
    let fake = FakeScaleway::start(VM_IP, Duration::ZERO).await;
    let (a, secret_a, _) = provider(&fake);
    let (b, secret_b, _) = provider(&fake);
    let server_a = a.create_server(request()).await.unwrap();
    let before = fake.calls().len();
    assert!(
        b.get_server(server_a.reference()).await.unwrap().is_none(),
        "B cannot see A's server"
    );
    assert!(b
        .list_servers(ListFilter::default())
        .await
        .unwrap()
        .is_empty());
    for (i, call) in fake.calls().iter().enumerate() {
        let expected = if i < before { &secret_a } else { &secret_b };
        assert_eq!(call.token.as_ref(), Some(expected), "{call:?}");
    }
    let stranger = inventiv_providers::scaleway::ScalewayProvider::new(
        reqwest::Client::new(),
        scw::settings(&fake),
        scw::credentials(&Uuid::new_v4().to_string(), "p"),
    );
    let calls = fake.calls().len();
    assert!(matches!(
        stranger.verify().await,
        Err(ProviderError::Unauthorized(_))
    ));
    assert_eq!(
        fake.calls().len(),
        calls + 1,
        "a rejected key is not retried"
    );
    a.verify().await.unwrap();
}
