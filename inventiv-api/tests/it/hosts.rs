//! An organization's own GPU servers, played by real OpenSSH servers on
//! their own loopback addresses: registration, verification with the
//! organization's key (host key pinned at the first success, a changed key
//! refused), a stopped sshd becoming unreachable and verified again when it
//! returns, drain, removal, the bounds of a registration, and another
//! organization's host being a 404.

use std::net::Ipv4Addr;

use inventiv_testkit::sshd::Sshd;
use serde_json::{json, Value};

use crate::support::fixture::Org;
use crate::support::TestApp;

fn body(sshd: &Sshd, label: &str) -> Value {
    json!({
        "address": sshd.address.to_string(),
        "ssh_port": sshd.port,
        "ssh_user": sshd.user,
        "label": label,
        "pool": "paris-rack-2",
        "gpu_count": 2,
        "gpu_model": "NVIDIA L4",
        "gpu_vram_mib": 23034,
        "hourly_cost_eur": "0.3500",
    })
}

/// Registers `sshd` as a host of `org` and authorizes the organization's key on it.
async fn register(app: &TestApp, org: &Org, sshd: &Sshd, label: &str) -> String {
    let (status, key) = app
        .get("/organizations/current/ssh-key", Some(&org.owner.token))
        .await;
    assert_eq!(status, 200, "{key}");
    assert!(key["public_key"]
        .as_str()
        .unwrap()
        .starts_with("ssh-ed25519 "));
    sshd.authorize(key["public_key"].as_str().unwrap());
    let (status, host) = app
        .post("/hosts", Some(&org.admin.token), body(sshd, label))
        .await;
    assert_eq!(status, 201, "{host}");
    assert_eq!(host["status"], "registered");
    assert_eq!(host["hourly_cost_eur"], "0.3500");
    assert!(host["host_key_fingerprint"].is_null());
    host["id"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, org: &Org, id: &str) -> (u16, Value) {
    let (status, answer) = app
        .post(
            &format!("/hosts/{id}/verify"),
            Some(&org.owner.token),
            json!({}),
        )
        .await;
    (status.as_u16(), answer)
}

/// What `ssh-keygen -l` says of the sshd's host key.
fn host_key_fingerprint(sshd: &Sshd) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.dir.join("host_key.pub"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

async fn history(app: &TestApp, org: &Org, id: &str) -> Vec<Value> {
    let (status, rows) = app
        .get(&format!("/hosts/{id}/history"), Some(&org.user.token))
        .await;
    assert_eq!(status, 200, "{rows}");
    rows.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_host_is_verified_its_key_pinned_and_a_changed_key_refused() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let mut sshd = Sshd::start_on(Ipv4Addr::new(127, 0, 150, 1)).await;
    let id = register(&app, &a, &sshd, "rack 2, slot 1").await;

    let (status, host) = verify(&app, &a, &id).await;
    assert_eq!(status, 200, "{host}");
    assert_eq!(host["status"], "verified", "{host}");
    assert_eq!(host["last_check"]["ok"], true, "{host}");
    assert_eq!(
        host["host_key_fingerprint"].as_str(),
        Some(host_key_fingerprint(&sshd).as_str()),
        "the pinned key is the sshd's"
    );
    // No nvidia-smi here: the declared GPUs stay.
    assert_eq!(host["gpu_count"], 2);
    assert_eq!(host["gpus_detected"], false);
    // The private key was on disk only for the connection.
    let scratch = app.state_dir.join("ssh-hosts");
    let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().collect();
    assert!(left.is_empty(), "scratch files left: {left:?}");
    // ...and is stored only encrypted.
    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT ciphertext FROM organization_ssh_keys WHERE organization_id = $1",
    )
    .bind(a.id)
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));

    // Verifying again checks against the pin, and changes nothing.
    let pinned = host["host_key_fingerprint"].clone();
    let (status, host) = verify(&app, &a, &id).await;
    assert_eq!(status, 200, "{host}");
    assert_eq!(host["status"], "verified");
    assert_eq!(host["host_key_fingerprint"], pinned);

    // Another organization sees nothing of it.
    for path in [format!("/hosts/{id}"), format!("/hosts/{id}/history")] {
        let (status, answer) = app.get(&path, Some(&b.owner.token)).await;
        assert_eq!(status, 404, "{path}: {answer}");
    }
    let (status, _) = verify(&app, &b, &id).await;
    assert_eq!(status, 404);
    let (status, list) = app.get("/hosts", Some(&b.owner.token)).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));

    // The machine is replaced: another host key is refused, and said so.
    sshd.change_host_key().await;
    let (status, answer) = verify(&app, &a, &id).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "HOST_KEY_CHANGED", "{answer}");
    let (_, host) = app.get(&format!("/hosts/{id}"), Some(&a.user.token)).await;
    assert_eq!(
        host["status"], "unreachable",
        "kept out of placement: {host}"
    );
    assert_eq!(host["host_key_fingerprint"], pinned, "the pin stays");
    assert_eq!(host["last_check"]["ok"], false);
    let timeline = history(&app, &a, &id).await;
    let statuses: Vec<(&Value, &Value)> = timeline
        .iter()
        .map(|e| (&e["from_status"], &e["to_status"]))
        .collect();
    assert_eq!(
        statuses,
        [
            (&Value::Null, &json!("registered")),
            (&json!("registered"), &json!("verified")),
            (&json!("verified"), &json!("unreachable")),
        ]
    );
    assert!(
        timeline[2]["reason"]
            .as_str()
            .unwrap()
            .contains("another SSH host key"),
        "{timeline:?}"
    );
    assert_eq!(timeline[2]["actor_user_id"], json!(a.owner.user_id));
    // Refused again, recorded again.
    let (status, _) = verify(&app, &a, &id).await;
    assert_eq!(status, 409);
    assert_eq!(history(&app, &a, &id).await.len(), 4);

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE organization_id = $1 AND target_id = $2 ORDER BY id",
    )
    .bind(a.id)
    .bind(&id)
    .fetch_all(&app.state.db)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "host.registered",
            "host.verified",
            "host.verified",
            "host.host_key_refused",
            "host.host_key_refused"
        ]
    );
}

#[tokio::test]
async fn a_stopped_sshd_makes_the_host_unreachable_until_it_returns() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let mut sshd = Sshd::start_on(Ipv4Addr::new(127, 0, 150, 2)).await;
    let id = register(&app, &a, &sshd, "rack 2, slot 2").await;
    let (status, host) = verify(&app, &a, &id).await;
    assert_eq!(
        (status, &host["status"]),
        (200, &json!("verified")),
        "{host}"
    );

    sshd.stop().await;
    let (status, host) = verify(&app, &a, &id).await;
    assert_eq!(status, 200, "{host}");
    assert_eq!(host["status"], "unreachable", "{host}");
    assert_eq!(host["last_check"]["ok"], false);
    assert!(
        host["last_check"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot log in"),
        "{host}"
    );

    sshd.resume().await;
    let (status, host) = verify(&app, &a, &id).await;
    assert_eq!(
        (status, &host["status"]),
        (200, &json!("verified")),
        "{host}"
    );

    // Drained: nothing new goes there, whatever a verification says.
    let (status, host) = app
        .post(
            &format!("/hosts/{id}/drain"),
            Some(&a.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &host["status"]),
        (200, &json!("draining"))
    );
    sshd.stop().await;
    let (_, host) = verify(&app, &a, &id).await;
    assert_eq!(host["status"], "draining", "{host}");
    assert_eq!(host["last_check"]["ok"], false);
    // The drain ends on what the last verification said.
    let (status, host) = app
        .post(
            &format!("/hosts/{id}/undrain"),
            Some(&a.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &host["status"]),
        (200, &json!("unreachable"))
    );
    let (status, answer) = app
        .post(
            &format!("/hosts/{id}/undrain"),
            Some(&a.admin.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(answer["error"]["code"], "HOST_NOT_DRAINING");

    // Removed: kept with its history, out of the list, no longer verified;
    // its address may be registered again (with a fresh pin).
    let (status, _) = app
        .delete(&format!("/hosts/{id}"), Some(&a.owner.token))
        .await;
    assert_eq!(status, 204);
    let (_, host) = app.get(&format!("/hosts/{id}"), Some(&a.user.token)).await;
    assert_eq!(host["status"], "removed");
    assert!(host["removed_at"].is_string());
    let (_, list) = app.get("/hosts", Some(&a.user.token)).await;
    assert_eq!(list, json!([]));
    let (_, list) = app
        .get("/hosts?include_removed=true", Some(&a.user.token))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, answer) = verify(&app, &a, &id).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (409, &json!("HOST_REMOVED"))
    );
    let (status, again) = app
        .post("/hosts", Some(&a.owner.token), body(&sshd, "reinstalled"))
        .await;
    assert_eq!(status, 201, "{again}");
}

#[tokio::test]
async fn registrations_are_bounded_and_unique_per_endpoint() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let valid = json!({
        "address": "gpu-1.rack.example.com", "ssh_user": "ubuntu", "label": "gpu-1",
        "pool": "paris-rack-2", "gpu_count": 1, "gpu_model": "NVIDIA L4", "gpu_vram_mib": 23034,
    });
    let cases = [
        ("ssh_port", json!(0)),
        ("ssh_port", json!(65536)),
        ("label", json!("l".repeat(101))),
        ("label", json!("  ")),
        ("gpu_count", json!(17)),
        ("gpu_count", json!(-1)),
        ("gpu_vram_mib", json!(512)),
        ("gpu_vram_mib", json!(2_000_000)),
        ("hourly_cost_eur", json!("-1")),
        ("hourly_cost_eur", json!("1.23456")),
        ("address", json!("-oProxyCommand=touch /tmp/x")),
        ("address", json!("user@host")),
        ("ssh_user", json!("-oProxyCommand=x")),
        ("pool", json!("paris rack")),
        ("gpu_model", json!(null)),
    ];
    for (field, value) in cases {
        let mut bad = valid.clone();
        bad[field] = value.clone();
        let (status, answer) = app.post("/hosts", Some(&a.owner.token), bad).await;
        assert_eq!(status, 400, "{field} = {value}: {answer}");
    }
    let (status, host) = app
        .post("/hosts", Some(&a.owner.token), valid.clone())
        .await;
    assert_eq!(status, 201, "{host}");
    assert_eq!(host["ssh_port"], 22);
    assert!(host["hourly_cost_eur"].is_null(), "no cost: {host}");
    // Free of cost and without GPUs is fine too.
    let mut bare = valid.clone();
    bare["address"] = json!("10.0.0.9");
    bare["gpu_count"] = json!(0);
    bare["hourly_cost_eur"] = json!("0");
    let (status, host) = app.post("/hosts", Some(&a.owner.token), bare).await;
    assert_eq!(status, 201, "{host}");
    assert_eq!(host["hourly_cost_eur"], "0.0000", "zero, not missing");
    let mut same = valid.clone();
    same["address"] = json!("GPU-1.rack.example.com");
    let (status, answer) = app.post("/hosts", Some(&a.owner.token), same).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "HOST_EXISTS");
    let (_, list) = app
        .get("/hosts?pool=paris-rack-2&limit=1", Some(&a.user.token))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, _) = app.get("/hosts?limit=0", Some(&a.user.token)).await;
    assert_eq!(status, 200, "a page size is clamped, not refused");
    for query in ["limit=99999999", "surprise=1", "include_removed=maybe"] {
        let (status, answer) = app
            .get(&format!("/hosts?{query}"), Some(&a.user.token))
            .await;
        assert_eq!(status, 400, "{query}: {answer}");
    }
}

#[tokio::test]
async fn a_key_rotation_re_encrypts_the_organizations_ssh_key_which_still_logs_in() {
    use crate::support::rotation::{app_on_key_1, rotated_to_key_2, single_keys};

    let app = app_on_key_1().await;
    let a = app.org("a").await;
    let sshd = Sshd::start_on(Ipv4Addr::new(127, 0, 150, 3)).await;
    let id = register(&app, &a, &sshd, "rack 2, slot 3").await;
    let rotated = rotated_to_key_2(
        &app,
        "SELECT key_version, ciphertext FROM organization_ssh_keys ORDER BY organization_id",
        1,
    )
    .await;
    let (only_2, only_1) = single_keys();
    let key = inventiv_store::hosts::load_key(&app.state.db, &only_2, a.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        inventiv_store::hosts::load_key(&app.state.db, &only_1, a.id)
            .await
            .is_err()
    );
    // The same key pair: the public half did not change, and the process on
    // key 2 logs in with it.
    let (_, shown) = rotated
        .get("/organizations/current/ssh-key", Some(&a.owner.token))
        .await;
    assert_eq!(shown["public_key"].as_str(), Some(key.public.as_str()));
    let (status, host) = verify(&rotated, &a, &id).await;
    assert_eq!(
        (status, &host["status"]),
        (200, &json!("verified")),
        "{host}"
    );
    rotated.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_gpus_nvidia_smi_reports_replace_the_declared_ones() {
    use std::os::unix::fs::PermissionsExt;

    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let mut sshd = Sshd::start_on(Ipv4Addr::new(127, 0, 150, 4)).await;
    // A stand-in nvidia-smi on the host: four H100s, one with less memory.
    let bin = sshd.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\nprintf 'NVIDIA H100 80GB HBM3, 81559\\nNVIDIA H100 80GB HBM3, 81559\\n\
         NVIDIA H100 80GB HBM3, 81559\\nNVIDIA H100 80GB HBM3, 81000\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    sshd.prepend_path(&bin).await;
    let id = register(&app, &a, &sshd, "rack 2, slot 4").await;
    let (status, host) = verify(&app, &a, &id).await;
    assert_eq!(status, 200, "{host}");
    assert_eq!(host["status"], "verified");
    assert_eq!(host["gpus_detected"], true, "{host}");
    assert_eq!(host["gpu_count"], 4);
    assert_eq!(host["gpu_model"], "NVIDIA H100 80GB HBM3");
    assert_eq!(host["gpu_vram_mib"], 81000);
}
