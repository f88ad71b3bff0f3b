//! `ScalewayProvider` against the fake Scaleway of the testkit: the
//! validated sequence (create, find and resize the root volume, power on,
//! running with an address, security group, delete), retries on 429 and 5xx, no retry of a
//! create whose answer was lost, pagination, and one token per
//! organization.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use inventiv_providers::scaleway::{Credentials, RetryPolicy, ScalewayProvider, Settings};
use inventiv_providers::{
    tags, CloudProvider, CreateServer, Firewall, ListFilter, ProviderError, ServerState,
};
use inventiv_testkit::fake_scaleway::{FakeScaleway, Faults};
use tokio::time::Instant;
use uuid::Uuid;

const ZONE: &str = "fr-par-2";
const VM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 140, 2));

/// A provider for a fresh project whose key the fake accepts.
fn provider(fake: &FakeScaleway) -> (ScalewayProvider, String, String) {
    let (secret, project) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    fake.accept(&secret, &project);
    (provider_with(fake, &secret, &project), secret, project)
}

fn provider_with(fake: &FakeScaleway, secret: &str, project: &str) -> ScalewayProvider {
    let settings = Settings {
        base_url: fake.url.clone(),
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(5),
        },
        poll_interval: Duration::from_millis(20),
        power_timeout: Duration::from_secs(10),
        ..Settings::default()
    };
    let creds = Credentials {
        access_key: "SCWAAAAAAAAAAAAAAAAA".into(),
        secret_key: secret.to_owned().into(),
        project_id: project.to_owned(),
        organization_id: Uuid::new_v4().to_string(),
        default_zone: ZONE.into(),
    };
    ScalewayProvider::new(reqwest::Client::new(), settings, creds)
}

fn request() -> CreateServer {
    CreateServer {
        instance_id: Uuid::new_v4(),
        organization_id: Uuid::new_v4(),
        zone: ZONE.into(),
        instance_type: "L4-1-24G".into(),
        name: "inventiv-test".into(),
        image: None,
        tags: Vec::new(),
        root_volume_gb: None,
        ssh_public_key: None,
    }
}

#[tokio::test]
async fn the_validated_sequence_runs_and_deleting_leaves_volumes_to_delete() {
    let fake = FakeScaleway::start(VM_IP, Duration::from_millis(150)).await;
    let (p, _, _) = provider(&fake);
    let req = request();
    let server = p.create_server(req.clone()).await.unwrap();
    assert_eq!(server.state, ServerState::Stopped);
    assert_eq!(server.ip, None, "no address before power-on");
    assert_eq!(server.instance_id(), Some(req.instance_id));
    assert_eq!(server.organization_id(), Some(req.organization_id));
    // The automatically created root volume is found, tagged like the server.
    assert_eq!(server.volumes.len(), 1);
    let root = &server.volumes[0];
    assert_eq!(
        (root.size_gb, root.server_id.as_deref()),
        (20, Some(server.provider_id.as_str()))
    );
    assert_eq!(root.tags, req.all_tags());

    // Resize before power-on; shrinking is refused.
    p.resize_volume(root.reference(), 200).await.unwrap();
    p.resize_volume(root.reference(), 200).await.unwrap();
    assert!(matches!(
        p.resize_volume(root.reference(), 100).await,
        Err(ProviderError::InvalidRequest(_))
    ));

    p.start_server(server.reference()).await.unwrap();
    p.start_server(server.reference()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let running = loop {
        let s = p.get_server(server.reference()).await.unwrap().unwrap();
        if s.state == ServerState::Running {
            break s;
        }
        assert!(Instant::now() < deadline, "never running: {:?}", s.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
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
        unavailable: 10,
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
    }
    fake.insert_server(&project, ZONE, &["someone-else".to_owned()], Duration::ZERO);
    let tagged = ListFilter {
        zone: None,
        tag: Some(tags::MANAGED.to_owned()),
    };
    assert_eq!(p.list_servers(tagged.clone()).await.unwrap().len(), 230);
    assert_eq!(
        p.list_servers(ListFilter::default()).await.unwrap().len(),
        231
    );
    assert_eq!(p.list_volumes(tagged).await.unwrap().len(), 230);
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
    let stranger = provider_with(&fake, &Uuid::new_v4().to_string(), "p");
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
