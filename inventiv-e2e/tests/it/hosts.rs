//! The `ssh` provider end to end: an organization's own hosts, played by
//! real sshd processes on loopback addresses of their own, registered and
//! verified (host keys pinned), then used as any provider: deployments seat
//! on free GPUs, bootstrap through the real install, answer `/v1` through
//! the proxy, cost what the host costs, and give their GPUs back at
//! termination, leaving nothing of ours on the host. A host whose sshd
//! stops is taken out of placement and comes back; draining a host under a
//! service moves its replica without a failed request.

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{processes_mentioning, Stack, MODEL};

/// The instance's seat: (host, GPUs, slot), from the database.
async fn seat(h: &Stack, instance: Uuid) -> Option<(Uuid, Vec<i32>, i32)> {
    sqlx::query_as("SELECT host_id, gpus, slot FROM host_allocations WHERE instance_id = $1")
        .bind(instance)
        .fetch_optional(&h.db)
        .await
        .unwrap()
}

async fn deployed(h: &Stack, token: &str, pool: &str) -> Uuid {
    let (status, body) = h.deploy_on_hosts(token, pool).await;
    assert_eq!(status, 202, "{body}");
    Uuid::parse_str(body["id"].as_str().unwrap()).unwrap()
}

/// A chat completion through the proxy with `key`.
async fn chat(h: &Stack, key: &str) -> Value {
    let res = h
        .http
        .post(format!("{}/v1/chat/completions", h.api))
        .bearer_auth(key)
        .json(&json!({ "model": MODEL, "max_tokens": 4,
                       "messages": [{ "role": "user", "content": "hello host" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn own_hosts_are_verified_shared_without_collision_paid_for_and_given_back() {
    let h = Stack::start().await;
    h.in_process(Ipv4Addr::new(127, 0, 210, 1)).await;
    let token = h.team().await;
    let a = h.fake_host(&token, Ipv4Addr::new(127, 0, 211, 1)).await;
    let b = h.fake_host(&token, Ipv4Addr::new(127, 0, 211, 2)).await;
    let mut c = h.fake_host(&token, Ipv4Addr::new(127, 0, 211, 3)).await;
    let host_a = h.register_host(&token, &a, "rack-1", 2, Some("1.2")).await;
    let host_b = h.register_host(&token, &b, "rack-1", 1, None).await;
    let host_c = h.register_host(&token, &c, "rack-2", 1, None).await;
    let first = h.host(&token, host_c).await;
    assert!(first["host_key_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));

    // A host presenting another key than the pinned one is refused.
    c.change_host_key().await;
    let (status, refused) = h
        .call(
            Method::POST,
            &format!("/hosts/{host_c}/verify"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "HOST_KEY_CHANGED");
    let c_now = h.host(&token, host_c).await;
    assert_eq!(c_now["status"], "unreachable");
    assert_eq!(c_now["host_key_fingerprint"], first["host_key_fingerprint"]);

    // The catalog shows the pools and the shapes the hosts offer.
    h.activate_hosts(&token, "rack-1").await;

    // Two engines share host A (its two GPUs), the third goes to B, a
    // fourth finds no free GPU in the pool.
    let one = deployed(&h, &token, "rack-1").await;
    let two = deployed(&h, &token, "rack-1").await;
    let three = deployed(&h, &token, "rack-1").await;
    for id in [one, two, three] {
        h.wait_status(id, "ready", Duration::from_secs(120)).await;
    }
    let (s1, s2, s3) = (
        seat(&h, one).await.unwrap(),
        seat(&h, two).await.unwrap(),
        seat(&h, three).await.unwrap(),
    );
    assert_eq!((s1.0, s2.0, s3.0), (host_a, host_a, host_b));
    assert_eq!((s1.1.clone(), s2.1.clone()), (vec![0], vec![1]));
    assert_ne!(s1.2, s2.2);
    let (status, full) = h.deploy_on_hosts(&token, "rack-1").await;
    assert_eq!(status, 409, "{full}");
    assert_eq!(full["error"]["code"], "NO_FREE_HOST");
    assert_eq!(h.host(&token, host_a).await["status"], "in_use");
    assert_eq!(
        h.host(&token, host_a).await["seats"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Each worker on its own ports, each engine on its own GPU.
    let ports: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT worker_agent_port, worker_engine_port FROM instances WHERE id = ANY($1) ORDER BY id",
    )
    .bind(vec![one, two])
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert_ne!(ports[0], ports[1], "{ports:?}");
    for (id, gpus) in [(one, &s1.1), (two, &s2.1)] {
        let dir: String =
            sqlx::query_scalar("SELECT install_dir FROM host_allocations WHERE instance_id = $1")
                .bind(id)
                .fetch_one(&h.db)
                .await
                .unwrap();
        let config: Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/agent.json")).unwrap()).unwrap();
        assert_eq!(config["gpu_devices"], json!(gpus), "{config}");
    }

    // Every engine answers through the proxy.
    let key = h.routed_key(&token, "hosts").await;
    for _ in 0..6 {
        let answer = chat(&h, &key).await;
        assert!(answer["usage"]["completion_tokens"].as_i64().unwrap() > 0);
    }
    let served: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT instance_id FROM usage_records")
        .fetch_all(&h.db)
        .await
        .unwrap();
    assert!(!served.is_empty());

    // Cost: A costs 1.2 EUR/h for two GPUs, so 0.6 per seat; B costs nothing.
    let prices: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, price_eur_per_hour::text FROM instances WHERE id = ANY($1)")
            .bind(vec![one, three])
            .fetch_all(&h.db)
            .await
            .unwrap();
    for (id, price) in &prices {
        let want = if *id == one { "0.6000" } else { "0.0000" };
        assert_eq!(price, want, "{id}");
    }

    // Terminating gives everything back and leaves nothing of ours behind.
    let dirs: Vec<String> = sqlx::query_scalar("SELECT install_dir FROM host_allocations")
        .fetch_all(&h.db)
        .await
        .unwrap();
    assert_eq!(dirs.len(), 3);
    for id in [one, two, three] {
        h.act(&token, Method::DELETE, &format!("/instances/{id}"))
            .await;
    }
    for id in [one, two, three] {
        h.wait_status(id, "terminated", Duration::from_secs(60))
            .await;
    }
    h.until("the seats given back", Duration::from_secs(30), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM host_allocations")
            .fetch_one(&h.db)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
    for dir in &dirs {
        assert!(!std::path::Path::new(dir).exists(), "{dir} survived");
        let left = processes_mentioning(dir);
        assert!(left.is_empty(), "processes survived on the host: {left:?}");
    }
    assert_eq!(h.host(&token, host_a).await["status"], "verified");
    let history: Vec<String> = sqlx::query_scalar(
        "SELECT to_status FROM host_state_history WHERE host_id = $1 ORDER BY id",
    )
    .bind(host_a)
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert_eq!(history, ["registered", "verified", "in_use", "verified"]);

    // The cost buckets of the minutes they ran: A's seat at its price, B's
    // at zero (present, not missing).
    inventiv_api::finops::cost_job::run_once(
        &h.db,
        chrono::Utc::now() + chrono::Duration::minutes(2),
    )
    .await
    .unwrap();
    let costs: Vec<(Uuid, i64, String)> = sqlx::query_as(
        "SELECT instance_id, count(*), sum(cost_eur)::text FROM cost_buckets WHERE instance_id = ANY($1)
          GROUP BY instance_id",
    )
    .bind(vec![one, three])
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert_eq!(costs.len(), 2, "{costs:?}");
    for (id, buckets, cost) in costs {
        assert!(buckets >= 1);
        let cost: f64 = cost.parse().unwrap();
        if id == one {
            assert!(cost > 0.0, "{cost}");
        } else {
            assert_eq!(cost, 0.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_that_stops_answering_gets_no_placement_until_it_answers_again() {
    let h = Stack::start().await;
    h.in_process(Ipv4Addr::new(127, 0, 212, 1)).await;
    let token = h.team().await;
    let mut a = h.fake_host(&token, Ipv4Addr::new(127, 0, 213, 1)).await;
    let host_a = h.register_host(&token, &a, "rack-9", 1, None).await;
    h.activate_hosts(&token, "rack-9").await;

    a.stop().await;
    h.until("the host unreachable", Duration::from_secs(30), || async {
        (h.host(&token, host_a).await["status"] == "unreachable").then_some(())
    })
    .await;
    let (status, refused) = h.deploy_on_hosts(&token, "rack-9").await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "NO_FREE_HOST");

    a.resume().await;
    h.until(
        "the host verified again",
        Duration::from_secs(30),
        || async { (h.host(&token, host_a).await["status"] == "verified").then_some(()) },
    )
    .await;
    let id = deployed(&h, &token, "rack-9").await;
    h.wait_status(id, "ready", Duration::from_secs(120)).await;
    assert_eq!(seat(&h, id).await.unwrap().0, host_a);
    let history: Vec<String> = sqlx::query_scalar(
        "SELECT to_status FROM host_state_history WHERE host_id = $1 ORDER BY id",
    )
    .bind(host_a)
    .fetch_all(&h.db)
    .await
    .unwrap();
    assert_eq!(
        history,
        [
            "registered",
            "verified",
            "unreachable",
            "verified",
            "in_use"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn draining_a_host_moves_a_service_replica_without_a_failed_request() {
    let mut h = Stack::start().await;
    h.mock_engine_args = "--ttft-ms 100 --tokens-per-second 50";
    h.in_process(Ipv4Addr::new(127, 0, 214, 1)).await;
    let token = h.team().await;
    let a = h.fake_host(&token, Ipv4Addr::new(127, 0, 215, 1)).await;
    let b = h.fake_host(&token, Ipv4Addr::new(127, 0, 215, 2)).await;
    let host_a = h.register_host(&token, &a, "rack-5", 1, None).await;
    let host_b = h.register_host(&token, &b, "rack-5", 1, None).await;
    h.activate_hosts(&token, "rack-5").await;
    let (status, created) = h
        .call(
            Method::POST,
            "/services",
            &token,
            Some(json!({
                "model_id": MODEL, "name": "on-hosts",
                "placements": [{ "provider": "ssh", "zone": "rack-5", "instance_type": crate::support::SHAPE }],
                "min_replicas": 1, "max_replicas": 1
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let service = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    let first: Uuid = h
        .until("a replica ready", Duration::from_secs(120), || async {
            sqlx::query_scalar(
                "SELECT id FROM instances WHERE service_id = $1 AND status = 'ready'",
            )
            .bind(service)
            .fetch_optional(&h.db)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(seat(&h, first).await.unwrap().0, host_a);
    let key = h.routed_key(&token, "steady").await;
    let clients = h.clients(&key, 3);
    h.until_metered(10, None).await;

    let (status, drained) = h
        .call(
            Method::POST,
            &format!("/hosts/{host_a}/drain"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{drained}");
    let second: Uuid = h
        .until(
            "the replica moved to the other host",
            Duration::from_secs(180),
            || async {
                let old: String = sqlx::query_scalar("SELECT status FROM instances WHERE id = $1")
                    .bind(first)
                    .fetch_one(&h.db)
                    .await
                    .unwrap();
                let new: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM instances WHERE service_id = $1 AND id <> $2 AND status = 'ready'",
                )
                .bind(service)
                .bind(first)
                .fetch_optional(&h.db)
                .await
                .unwrap();
                new.filter(|_| old == "terminated")
            },
        )
        .await;
    h.until_metered(5, Some(second)).await;
    h.all_answered(clients).await;
    assert_eq!(seat(&h, second).await.unwrap().0, host_b);
    h.until(
        "host A's seat given back",
        Duration::from_secs(30),
        || async { seat(&h, first).await.is_none().then_some(()) },
    )
    .await;
    // Draining outlives the move; the host holds nothing and stays out.
    assert_eq!(h.host(&token, host_a).await["status"], "draining");
    assert_eq!(h.host(&token, host_b).await["status"], "in_use");
}
