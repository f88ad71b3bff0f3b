//! The mock provider for real: sshd processes on loopback addresses, ssh
//! logins with the system client, processes killed on delete, faults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use inventiv_providers::mock::MockFaults;
use inventiv_providers::{tags, CloudProvider, ListFilter, ProviderError, ServerRef, ServerState};
use support::{alive, assert_own_loopback, eventually, pid_in, request, running, Lab};
use tokio::time::Instant;

fn addr(x: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, x, 1)
}

#[tokio::test]
async fn boots_after_the_delay_accepts_ssh_and_delete_kills_every_process() {
    let delay = Duration::from_millis(1500);
    let lab = Lab::new(addr(20), delay, MockFaults::default());
    let p = &lab.provider;

    let created = p.create_server(request("vm-a")).await.unwrap();
    assert_eq!(created.state, ServerState::Stopped);
    assert_own_loopback(&created);
    assert_eq!(created.ssh_user, "root");
    assert!(created
        .tags
        .contains(&tags::instance(request_instance(&created))));
    let dir = p.vm_dir(&created.provider_id).unwrap();
    assert!(dir.join("vm.json").is_file());

    let powered_on = Instant::now();
    p.start_server(created.reference()).await.unwrap();
    let booting = p.get_server(created.reference()).await.unwrap().unwrap();
    assert_eq!(booting.state, ServerState::Starting);
    // Unreachable while booting, like a real VM.
    assert!(!lab.ssh(&booting, "true").status.success());

    let server = running(p, &created).await;
    assert!(powered_on.elapsed() >= delay, "booted before the delay");
    assert_eq!(server.ip, created.ip);
    let out = lab.ssh(&server, "true");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A daemon under the install dir, and one that only carries the VM's
    // session environment (cwd elsewhere), as the worker's would.
    let node = server.install_dir.clone().unwrap();
    assert!(Path::new(&node).starts_with(&dir));
    let out = lab.ssh(
        &server,
        &format!(
            "(cd {node} && exec setsid sh -c 'echo $$ > {node}/a.pid; exec sleep 300') </dev/null >/dev/null 2>&1 & \
             (cd /tmp && exec setsid sh -c 'echo $$ > {node}/b.pid; exec sleep 301') </dev/null >/dev/null 2>&1 &"
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = pid_in(&Path::new(&node).join("a.pid")).await;
    let b = pid_in(&Path::new(&node).join("b.pid")).await;
    let sshd: u32 = std::fs::read_to_string(dir.join("sshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(a) && alive(b) && alive(sshd));

    p.delete_server(server.reference()).await.unwrap();
    for pid in [a, b, sshd] {
        assert!(!alive(pid), "process {pid} survived the delete");
    }
    assert!(!dir.exists());
    assert!(p.get_server(server.reference()).await.unwrap().is_none());
    // Idempotent.
    p.delete_server(server.reference()).await.unwrap();
}

fn request_instance(server: &inventiv_providers::Server) -> uuid::Uuid {
    server.instance_id().expect("instance tag")
}

#[tokio::test]
async fn vms_get_distinct_addresses_and_a_new_provider_sees_them() {
    let lab = Lab::new(addr(21), Duration::ZERO, MockFaults::default());
    let p = &lab.provider;
    let one = p.create_server(request("one")).await.unwrap();
    let two = p.create_server(request("two")).await.unwrap();
    assert_ne!(one.ip, two.ip);
    p.start_server(one.reference()).await.unwrap();
    p.start_server(two.reference()).await.unwrap();
    running(p, &one).await;
    running(p, &two).await;

    // As after an orchestrator restart.
    let again = lab.second_provider();
    let listed = again.list_servers(ListFilter::default()).await.unwrap();
    let mut ids: Vec<_> = listed.iter().map(|s| s.provider_id.clone()).collect();
    ids.sort();
    let mut expected = vec![one.provider_id.clone(), two.provider_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(listed.iter().all(|s| s.state == ServerState::Running));

    let only_one = ListFilter {
        zone: None,
        tag: Some(tags::instance(one.instance_id().unwrap())),
    };
    let filtered = again.list_servers(only_one).await.unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].provider_id, one.provider_id);
    let other_zone = ListFilter {
        zone: Some("elsewhere".into()),
        tag: None,
    };
    assert!(again.list_servers(other_zone).await.unwrap().is_empty());

    again.delete_server(one.reference()).await.unwrap();
    assert_eq!(
        p.list_servers(ListFilter::default()).await.unwrap().len(),
        1
    );
    // The other VM still answers.
    let two = again.get_server(two.reference()).await.unwrap().unwrap();
    assert!(lab.ssh(&two, "true").status.success());
}

#[tokio::test]
async fn a_new_provider_completes_a_boot_and_start_revives_a_dead_sshd() {
    let mut lab = Lab::new(addr(22), Duration::from_millis(200), MockFaults::default());
    let created = lab
        .provider
        .create_server(request("restart"))
        .await
        .unwrap();
    lab.provider
        .start_server(created.reference())
        .await
        .unwrap();
    let dir = lab.provider.vm_dir(&created.provider_id).unwrap();

    // The orchestrator restarts mid-boot: dropping the provider stops its
    // boot task, so only the new provider's readers can finish the boot.
    let restarted = lab.second_provider();
    drop(std::mem::replace(&mut lab.provider, restarted));
    let again = &lab.provider;
    let server = running(again, &created).await;
    assert!(lab.ssh(&server, "true").status.success());

    let sshd: u32 = std::fs::read_to_string(dir.join("sshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::process::Command::new("kill")
        .arg(sshd.to_string())
        .status()
        .unwrap();
    eventually("sshd to die", Duration::from_secs(5), || async {
        (!alive(sshd)).then_some(())
    })
    .await;
    // Still Running, like a cloud VM whose OS crashed...
    let server = again
        .get_server(created.reference())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.state, ServerState::Running);
    assert!(!lab.ssh(&server, "true").status.success());
    // ...until it is started again.
    again.start_server(created.reference()).await.unwrap();
    assert!(lab.ssh(&server, "true").status.success());
}

#[tokio::test]
async fn create_fails_n_times_then_succeeds() {
    let faults = MockFaults {
        fail_create: 2,
        ..MockFaults::default()
    };
    let lab = Lab::new(addr(23), Duration::ZERO, faults);
    for _ in 0..2 {
        let err = lab.provider.create_server(request("x")).await.unwrap_err();
        assert!(matches!(err, ProviderError::Transient(_)), "{err}");
        assert!(err.retryable());
    }
    let empty = lab
        .provider
        .list_servers(ListFilter::default())
        .await
        .unwrap();
    assert!(empty.is_empty(), "a failed create left a VM");
    lab.provider.create_server(request("x")).await.unwrap();
    // Injected at run time too.
    lab.provider.inject(&MockFaults {
        fail_create: 1,
        ..MockFaults::default()
    });
    assert!(lab.provider.create_server(request("y")).await.is_err());
    lab.provider.create_server(request("y")).await.unwrap();
}

#[tokio::test]
async fn an_out_of_stock_zone_refuses_creates_as_a_cloud_without_capacity_does() {
    let faults = MockFaults {
        out_of_stock_zones: vec!["mock-zone-1".into()],
        ..MockFaults::default()
    };
    let lab = Lab::new(addr(28), Duration::ZERO, faults);
    let p = &lab.provider;
    for _ in 0..2 {
        let err = p.create_server(request("x")).await.unwrap_err();
        assert!(matches!(err, ProviderError::OutOfStock(_)), "{err}");
        assert_eq!(err.code(), "PROVIDER_OUT_OF_STOCK");
        assert!(!err.retryable());
    }
    let mut elsewhere = request("y");
    elsewhere.zone = "mock-zone-2".into();
    p.create_server(elsewhere).await.unwrap();
    p.restock("mock-zone-1");
    p.create_server(request("x")).await.unwrap();
}

#[tokio::test]
async fn delete_is_refused_n_times_then_deletes() {
    let faults = MockFaults {
        refuse_delete: 2,
        ..MockFaults::default()
    };
    let lab = Lab::new(addr(24), Duration::ZERO, faults);
    let p = &lab.provider;
    let server = p.create_server(request("x")).await.unwrap();
    p.start_server(server.reference()).await.unwrap();
    let server = running(p, &server).await;
    let dir = p.vm_dir(&server.provider_id).unwrap();
    for _ in 0..2 {
        let err = p.delete_server(server.reference()).await.unwrap_err();
        assert!(err.retryable(), "{err}");
        assert!(dir.exists());
        assert!(lab.ssh(&server, "true").status.success());
    }
    p.delete_server(server.reference()).await.unwrap();
    assert!(!dir.exists());
    assert!(p.get_server(server.reference()).await.unwrap().is_none());
}

#[tokio::test]
async fn vanished_vms_are_gone_on_demand_and_by_fault() {
    let faults = MockFaults {
        vanish: 1,
        vanish_after: Duration::from_millis(100),
        ..MockFaults::default()
    };
    let lab = Lab::new(addr(25), Duration::ZERO, faults);
    let p = &lab.provider;

    // By fault: it boots, then disappears by itself.
    let doomed = p.create_server(request("doomed")).await.unwrap();
    p.start_server(doomed.reference()).await.unwrap();
    eventually("the VM to vanish", Duration::from_secs(20), || async {
        p.get_server(doomed.reference())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // On demand.
    let server = p.create_server(request("victim")).await.unwrap();
    p.start_server(server.reference()).await.unwrap();
    let server = running(p, &server).await;
    let dir = p.vm_dir(&server.provider_id).unwrap();
    let sshd: u32 = std::fs::read_to_string(dir.join("sshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    p.vanish(&server.provider_id).await.unwrap();
    assert!(p.get_server(server.reference()).await.unwrap().is_none());
    assert!(!alive(sshd));
    assert!(p
        .list_servers(ListFilter::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn unknown_ids_and_bad_requests() {
    let lab = Lab::new(addr(26), Duration::ZERO, MockFaults::default());
    let p = &lab.provider;
    for id in [uuid::Uuid::new_v4().to_string(), "../../etc".to_owned()] {
        let r = ServerRef {
            zone: "mock-zone-1".into(),
            provider_id: id,
        };
        p.delete_server(r.clone()).await.unwrap();
        assert!(p.get_server(r.clone()).await.unwrap().is_none());
        let err = p.start_server(r).await.unwrap_err();
        assert!(matches!(err, ProviderError::NotFound(_)) && !err.retryable());
    }
    let mut bad = request("x");
    bad.zone = " ".into();
    let err = p.create_server(bad).await.unwrap_err();
    assert!(matches!(err, ProviderError::InvalidRequest(_)) && !err.retryable());
    assert_eq!(p.name(), "mock");
}

#[tokio::test]
async fn volumes_grow_outlive_their_server_and_are_deleted_when_detached() {
    let lab = Lab::new(addr(27), Duration::ZERO, MockFaults::default());
    let p = &lab.provider;
    let server = p.create_server(request("disk")).await.unwrap();
    let root = server.volumes.first().expect("a root volume").clone();
    assert_eq!(root.server_id.as_deref(), Some(server.provider_id.as_str()));
    assert_eq!(root.size_gb, 20);

    p.resize_volume(root.reference(), 200).await.unwrap();
    let err = p.resize_volume(root.reference(), 100).await.unwrap_err();
    assert!(matches!(err, ProviderError::InvalidRequest(_)));
    let err = p.delete_volume(root.reference()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidRequest(_)),
        "attached: {err}"
    );

    p.delete_server(server.reference()).await.unwrap();
    let managed = ListFilter {
        zone: None,
        tag: Some(tags::MANAGED.into()),
    };
    let left = p.list_volumes(managed.clone()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].size_gb, 200);
    assert_eq!(left[0].server_id, None);

    p.delete_volume(root.reference()).await.unwrap();
    p.delete_volume(root.reference()).await.unwrap();
    assert!(p.list_volumes(managed).await.unwrap().is_empty());
}
