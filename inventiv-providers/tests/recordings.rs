//! The Scaleway client against the real API's recordings
//! (`fixtures/scaleway-recordings/`, every file of the folder): every
//! recorded answer of an endpoint the client calls parses through the
//! client's own wire types, the Instance API's paging headers
//! (`X-Total-Count`, `Link`) read as the client reads them, the requests
//! the client builds match the recorded ones where they overlap, and every
//! recorded error classifies to the expected `ProviderError`. A file with
//! nothing this test knows how to check fails it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};

use inventiv_providers::scaleway::{errors, wire, Paging};
use inventiv_providers::{ProviderError, ServerState};
use inventiv_testkit::recordings::{self, pattern, Cassette, Interaction};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn parse<T: DeserializeOwned>(i: &Interaction) -> T {
    serde_json::from_str(&i.body).unwrap_or_else(|e| {
        panic!(
            "{} {} ({}): {e}\n{}",
            i.method,
            i.url,
            i.code,
            &i.body[..i.body.len().min(500)]
        )
    })
}

fn json(i: &Interaction) -> Value {
    serde_json::from_str(&i.body).unwrap()
}

/// What the Instance API's list headers say, as the client reads them.
fn instance_paging(i: &Interaction) -> Paging {
    let total = i.header("x-total-count");
    let link = i.header("link");
    assert!(
        total.is_some() && link.is_some(),
        "{}: paging headers",
        i.url
    );
    assert!(
        json(i).get("total_count").is_none(),
        "{}: Instance lists carry no total in the body",
        i.url
    );
    let paging = Paging::parse(total, link);
    assert!(paging.total.is_some(), "{}: X-Total-Count {total:?}", i.url);
    paging
}

fn assert_empty(i: &Interaction) {
    assert!(i.body.is_empty(), "{} {}: {}", i.method, i.url, i.body);
}

/// Checks one successful answer of an endpoint the client calls; `false`
/// for an endpoint the client does not call.
fn check_success(c: &Cassette, index: usize, seen: &mut BTreeSet<String>) -> bool {
    let i = &c.interactions[index];
    let endpoint = format!("{} {}", i.method, pattern(&i.path));
    let zoned = "/instance/v1/zones/{zone}";
    match endpoint
        .strip_prefix(&format!("{} ", i.method))
        .unwrap_or_default()
    {
        p if p == format!("{zoned}/servers") && i.method == "GET" => {
            let list: wire::ServerList = parse(i);
            let paging = instance_paging(i);
            let page = i.query_value("page").map_or(1, |p| p.parse().unwrap());
            assert!(!paging.more(page, 50, list.servers.len()), "{}", i.url);
            for s in &list.servers {
                if let Some(ip) = s.ipv4() {
                    assert!(ip.is_ipv4(), "{ip}");
                }
                assert_ne!(wire::server_state(&s.state), ServerState::Unknown);
            }
        }
        p if p == format!("{zoned}/servers") && i.method == "POST" => {
            let created: wire::ServerEnvelope = parse(i);
            assert_eq!(created.server.state, "stopped", "created powered off");
            assert!(created.server.ipv4().is_none() || !created.server.public_ips.is_empty());
            check_create_request(i);
        }
        p if p == format!("{zoned}/servers/{{id}}")
            && matches!(i.method.as_str(), "GET" | "PATCH") =>
        {
            let got: wire::ServerEnvelope = parse(i);
            let s = &got.server;
            assert_ne!(
                wire::server_state(&s.state),
                ServerState::Unknown,
                "{}",
                s.state
            );
            if !s.public_ips.is_empty() {
                assert!(s.ipv4().is_some_and(|ip| ip.is_ipv4()));
            }
            for id in s.block_volume_ids() {
                assert!(!id.is_empty());
            }
        }
        p if p == format!("{zoned}/servers/{{id}}") && i.method == "DELETE" => assert_empty(i),
        p if p == format!("{zoned}/servers/{{id}}/action") => {
            let _: wire::TaskEnvelope = parse(i);
        }
        p if p == format!("{zoned}/servers/{{id}}/user_data/{{key}}") && i.method == "PATCH" => {
            assert_empty(i);
            assert_eq!(i.request_header("content-type"), Some("text/plain"));
        }
        p if p == format!("{zoned}/products/servers") => {
            let list: wire::ProductList = parse(i);
            let paging = instance_paging(i);
            let page: u64 = i.query_value("page").unwrap().parse().unwrap();
            let total = paging.total.unwrap();
            assert_eq!(paging.more(page, 50, list.servers.len()), page * 50 < total);
            // The pages of this cassette add up to X-Total-Count.
            let all: usize = c
                .interactions
                .iter()
                .filter(|o| o.path == i.path && o.code == 200)
                .map(|o| parse::<wire::ProductList>(o).servers.len())
                .sum();
            assert_eq!(all as u64, total, "{}", c.name);
            for p in list.servers.values() {
                assert!(p.hourly_price.is_f64() || p.hourly_price.is_u64());
            }
        }
        "/marketplace/v2/local-images" => {
            let list: wire::LocalImageList = parse(i);
            assert!(list.total_count >= list.local_images.len() as u64);
            check_image_pick(c, index, &list);
        }
        p if p == format!("{zoned}/security_groups") && i.method == "POST" => {
            let _: wire::GroupEnvelope = parse(i);
        }
        p if p == format!("{zoned}/security_groups/{{id}}") && i.method == "DELETE" => {
            assert_empty(i)
        }
        p if p == format!("{zoned}/security_groups/{{id}}/rules") && i.method == "PUT" => {
            let rules: wire::RuleList = parse(i);
            assert!(
                rules.rules.iter().any(|r| r.editable == Some(false)),
                "Scaleway's own rules"
            );
        }
        "/block/v1/zones/{zone}/volumes" if i.method == "GET" => {
            let list: wire::VolumeList = parse(i);
            assert!(
                list.total_count >= list.volumes.len() as u64,
                "total in the body"
            );
        }
        "/block/v1/zones/{zone}/volumes/{id}" if matches!(i.method.as_str(), "GET" | "PATCH") => {
            let v: wire::WireVolume = parse(i);
            assert!(v.size % wire::GB == 0);
            if i.method == "PATCH" && i.request_body.contains("\"size\"") {
                assert_eq!(v.status, "updating", "a resize answers `updating`");
                assert!(!v.settled());
            }
        }
        "/block/v1/zones/{zone}/volumes/{id}" if i.method == "DELETE" => assert_empty(i),
        _ => return false,
    }
    seen.insert(endpoint);
    true
}

/// The recorded create body's root volume is what the client sends.
fn check_create_request(i: &Interaction) {
    let sent: Value = serde_json::from_str(&i.request_body).unwrap();
    let root = &sent["volumes"]["0"];
    let keys: BTreeSet<&str> = root
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if keys != BTreeSet::from(["size", "volume_type"]) || root["volume_type"] != "sbs_volume" {
        return;
    }
    let ours = wire::CreateServerBody {
        name: sent["name"].as_str().unwrap(),
        commercial_type: sent["commercial_type"].as_str().unwrap(),
        image: sent["image"].as_str().unwrap(),
        project: sent["project"].as_str().unwrap(),
        tags: &[],
        dynamic_ip_required: true,
        volumes: Some(BTreeMap::from([(
            "0",
            wire::NewVolume {
                size: root["size"].as_u64().unwrap(),
                volume_type: wire::SBS_VOLUME,
            },
        )])),
    };
    let ours = serde_json::to_value(&ours).unwrap();
    assert_eq!(ours["volumes"], sent["volumes"]);
    for key in ["name", "commercial_type", "image", "project"] {
        assert_eq!(ours[key], sent[key]);
    }
}

/// The image the client picks for the type the SDK created next is the
/// one the SDK sent.
fn check_image_pick(c: &Cassette, index: usize, list: &wire::LocalImageList) {
    let i = &c.interactions[index];
    if i.query_value("type") != Some("instance_sbs") {
        return;
    }
    let Some(create) = c.interactions[index + 1..]
        .iter()
        .find(|o| o.method == "POST" && o.path.ends_with("/servers"))
    else {
        return;
    };
    let sent: Value = serde_json::from_str(&create.request_body).unwrap();
    let (label, zone) = (
        i.query_value("image_label").unwrap(),
        i.query_value("zone").unwrap(),
    );
    let picked = list
        .pick(label, zone, sent["commercial_type"].as_str().unwrap())
        .unwrap_or_else(|| panic!("{}: no image for {}", i.url, sent["commercial_type"]));
    assert_eq!(
        Some(picked.id.as_str()),
        sent["image"].as_str(),
        "{}",
        i.url
    );
}

/// Every recorded error classifies as expected.
fn check_error(i: &Interaction) {
    let e = errors::classify(i.code, i.body.as_bytes());
    let kind = serde_json::from_str::<Value>(&i.body)
        .ok()
        .and_then(|b| b["type"].as_str().map(str::to_owned));
    match (i.code, kind.as_deref()) {
        (404, Some("not_found")) => {
            assert!(matches!(e, ProviderError::NotFound(_)), "{e}");
            assert!(e.to_string().contains("resource is not found"), "{e}");
        }
        (400, Some("invalid_arguments")) => {
            assert!(matches!(e, ProviderError::InvalidRequest(_)), "{e}");
            assert!(
                e.to_string().contains("commercial_type"),
                "details kept: {e}"
            );
        }
        (429, None) => {
            assert!(i.body.is_empty());
            assert_eq!(i.header("x-envoy-ratelimited"), Some("true"));
            assert!(e.retryable(), "{e}");
        }
        other => panic!(
            "{} {}: an unexpected recorded error {other:?}",
            i.method, i.url
        ),
    }
}

#[test]
fn every_recording_parses_through_the_clients_wire_types() {
    let cassettes = recordings::load_all();
    assert!(!cassettes.is_empty());
    let mut seen = BTreeSet::new();
    let mut unchecked = Vec::new();
    for c in &cassettes {
        let mut checked = 0;
        for (index, i) in c.interactions.iter().enumerate() {
            if i.code >= 400 {
                check_error(i);
                checked += 1;
            } else if check_success(c, index, &mut seen) {
                checked += 1;
            }
        }
        if checked == 0 {
            unchecked.push(c.name.clone());
        }
    }
    assert!(
        unchecked.is_empty(),
        "recordings with nothing this test checks: {unchecked:?}"
    );
    // Every endpoint the client calls that Scaleway's clients recorded.
    let zoned = "/instance/v1/zones/{zone}";
    let expected = [
        format!("GET {zoned}/servers"),
        format!("POST {zoned}/servers"),
        format!("GET {zoned}/servers/{{id}}"),
        format!("PATCH {zoned}/servers/{{id}}"),
        format!("DELETE {zoned}/servers/{{id}}"),
        format!("POST {zoned}/servers/{{id}}/action"),
        format!("PATCH {zoned}/servers/{{id}}/user_data/{{key}}"),
        format!("GET {zoned}/products/servers"),
        format!("POST {zoned}/security_groups"),
        format!("DELETE {zoned}/security_groups/{{id}}"),
        format!("PUT {zoned}/security_groups/{{id}}/rules"),
        "GET /marketplace/v2/local-images".to_owned(),
        "GET /block/v1/zones/{zone}/volumes".to_owned(),
        "GET /block/v1/zones/{zone}/volumes/{id}".to_owned(),
        "PATCH /block/v1/zones/{zone}/volumes/{id}".to_owned(),
        "DELETE /block/v1/zones/{zone}/volumes/{id}".to_owned(),
    ];
    let missing: Vec<&String> = expected.iter().filter(|e| !seen.contains(*e)).collect();
    assert!(missing.is_empty(), "never checked: {missing:?}");
}
