//! The orchestrator on Scaleway (the testkit's fake): two organizations
//! with their own credentials deploy; each provider call carries the
//! token of the instance's organization; the Scaleway steps run in order
//! (create, root volume grown to the model's size, power-on, address);
//! the volumes are recorded; terminating deletes the servers and volumes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use inventiv_testkit::fake_scaleway::FakeScaleway;
use serde_json::{json, Value};
use support::{poll, Stack, MODEL};
use uuid::Uuid;

/// A team organization with the Scaleway catalog items activated and its
/// own credentials (accepted by the fake); returns (token, secret key).
async fn scaleway_team(h: &Stack, name: &str, fake: &FakeScaleway) -> (String, String) {
    let res = h
        .http
        .post(format!("{}/auth/login", h.api))
        .json(&json!({ "email": "admin@inventiv.test", "password": "admin-password-for-tests" }))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, org) = h
        .call(
            reqwest::Method::POST,
            "/organizations",
            &token,
            Some(json!({ "name": name })),
        )
        .await;
    let (_, switched) = h
        .call(
            reqwest::Method::PUT,
            "/organizations/current",
            &token,
            Some(json!({ "organization_id": org["id"] })),
        )
        .await;
    let token = switched["access_token"].as_str().unwrap().to_owned();
    for (kind, item) in [
        ("provider", "scaleway"),
        ("zone", "8a1d0000-0000-4000-8000-000000000012"),
        ("instance_type", "8a1e0000-0000-4000-8000-000000000011"),
        ("model", "8a1f0000-0000-4000-8000-000000000001"),
    ] {
        let (s, body) = h
            .call(
                reqwest::Method::PUT,
                &format!("/organizations/current/activations/{kind}/{item}"),
                &token,
                Some(json!({ "technical": true, "economic": true })),
            )
            .await;
        assert_eq!(s, 200, "{kind}: {body}");
    }
    let (secret, project) = (Uuid::new_v4().to_string(), Uuid::new_v4());
    fake.accept(&secret, &project.to_string());
    let (s, body) = h
        .call(
            reqwest::Method::PUT,
            "/organizations/current/providers/scaleway/credentials",
            &token,
            Some(json!({ "access_key": "SCWE2EE2EE2EE2EE2EE2", "secret_key": secret, "project_id": project,
                         "organization_id": Uuid::new_v4(), "default_zone": "fr-par-2" })),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    (token, secret)
}

async fn deploy(h: &Stack, token: &str) -> Uuid {
    let (status, instance) = h
        .call(
            reqwest::Method::POST,
            "/deployments",
            token,
            Some(json!({ "provider": "scaleway", "zone": "fr-par-2", "instance_type": "L4-1-24G", "model_id": MODEL })),
        )
        .await;
    assert_eq!(status, 202, "{instance}");
    Uuid::parse_str(instance["id"].as_str().unwrap()).unwrap()
}

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
    let mut h = Stack::start().await;
    h.scaleway_url = fake.url.clone();
    h.in_process(Ipv4Addr::new(127, 0, 141, 1)).await;
    let (token_a, secret_a) = scaleway_team(&h, "Scaleway A", &fake).await;
    let (token_b, secret_b) = scaleway_team(&h, "Scaleway B", &fake).await;
    let (a, b) = (deploy(&h, &token_a).await, deploy(&h, &token_b).await);

    let steps = [
        "PROVIDER_CREATE",
        "PROVIDER_VOLUME_RESIZE",
        "PROVIDER_START",
        "PROVIDER_GET_IP",
    ];
    for id in [a, b] {
        let got = poll(
            Duration::from_secs(60),
            Duration::from_millis(100),
            || async {
                let done = done(&h, id).await;
                done.iter().any(|d| d == "PROVIDER_GET_IP").then_some(done)
            },
        )
        .await
        .unwrap_or_else(|| panic!("never got an address"));
        let positions: Vec<Option<usize>> = steps
            .iter()
            .map(|s| got.iter().position(|d| d == s))
            .collect();
        assert!(
            positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]),
            "Scaleway steps out of order: {got:?}"
        );
    }
    let (status, instance) = h
        .call(
            reqwest::Method::GET,
            &format!("/instances/{a}"),
            &token_a,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(instance["progress"].as_i64().unwrap() >= 35, "{instance}");
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
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM instance_volumes WHERE status <> 'deleted'")
            .fetch_one(&h.db)
            .await
            .unwrap();
    assert_eq!(left, 0);
}
