//! The fake Scaleway against the real API's recordings: the fake is driven
//! through the requests Scaleway's own clients recorded (create, power
//! actions, user data, security groups, products, Block Storage, errors,
//! rate limit), and each answer is compared with the recorded answers of
//! the same endpoint and status: no JSON field the real API lacks, the
//! same JSON types, the same content type, the paging headers on Instance
//! lists; and it parses through the client's wire types, so every field
//! the client reads is there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod scw;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use inventiv_providers::scaleway::wire;
use inventiv_testkit::fake_scaleway::{FakeOffer, FakeScaleway, Faults, DEFAULT_IMAGE_ID};
use inventiv_testkit::recordings::{self, pattern, Interaction};
use inventiv_testkit::wait::eventually;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

/// JSON path → the JSON types seen there (maps keyed by index or type
/// code collapse to `*`, array elements to `[]`).
type Shape = BTreeMap<String, BTreeSet<&'static str>>;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shape_into(v: &Value, path: &str, out: &mut Shape) {
    out.entry(path.to_owned()).or_default().insert(kind(v));
    match v {
        Value::Object(map) => {
            // A server's `volumes` ({"0": …}) and the products' `servers`
            // ({"L4-1-24G": …}) are maps, not records.
            let is_map = path.ends_with(".volumes") || path == ".servers";
            for (k, child) in map {
                let key = if is_map { "*" } else { k.as_str() };
                shape_into(child, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for child in items {
                shape_into(child, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// One answer of the fake.
struct Answer {
    method: Method,
    path: String,
    code: u16,
    content_type: Option<String>,
    total: Option<String>,
    link: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{} {}: {e}: {}", self.method, self.path, self.body))
    }
}

struct Driver {
    http: reqwest::Client,
    url: String,
    token: String,
    answers: Vec<Answer>,
}

impl Driver {
    async fn send(&mut self, method: Method, path: &str, body: Option<Value>) -> &Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("X-Auth-Token", &self.token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        self.record(method, path, request).await
    }

    async fn send_text(&mut self, method: Method, path: &str, text: &str) -> &Answer {
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("X-Auth-Token", &self.token)
            .header("Content-Type", "text/plain")
            .body(text.to_owned());
        self.record(method, path, request).await
    }

    async fn record(
        &mut self,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> &Answer {
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (content_type, total, link) = (
            header("content-type"),
            header("x-total-count"),
            header("link"),
        );
        let code = response.status().as_u16();
        let body = response.text().await.unwrap();
        self.answers.push(Answer {
            method,
            path: path.split('?').next().unwrap().to_owned(),
            code,
            content_type,
            total,
            link,
            body,
        });
        self.answers.last().unwrap()
    }
}

fn essence(content_type: Option<&str>) -> Option<String> {
    content_type.map(|c| c.split(';').next().unwrap().trim().to_owned())
}

/// Compares one answer of the fake with the recorded answers of the same
/// endpoint and status (`also`: recorded objects of the same kind from
/// other endpoints, as (JSON, path in this answer)).
fn compare(answer: &Answer, recorded: &[&Interaction], also: &[(Value, &str)]) {
    let what = format!(
        "{} {} {}",
        answer.method,
        pattern(&answer.path),
        answer.code
    );
    assert!(!recorded.is_empty(), "{what}: not recorded");
    assert_eq!(
        essence(answer.content_type.as_deref()),
        essence(recorded[0].header("content-type")),
        "{what}: content type"
    );
    let instance_list = recorded[0].header("x-total-count").is_some();
    if instance_list {
        assert!(
            answer.total.is_some() && answer.link.is_some(),
            "{what}: paging headers"
        );
    }
    if recorded[0].body.is_empty() {
        assert!(answer.body.is_empty(), "{what}: {}", answer.body);
        return;
    }
    if !recorded[0].body.starts_with(['{', '[']) {
        return; // text/plain user data: any text.
    }
    let mut real = Shape::new();
    for r in recorded {
        shape_into(&serde_json::from_str(&r.body).unwrap(), "", &mut real);
    }
    for (value, path) in also {
        shape_into(value, path, &mut real);
    }
    let mut fake = Shape::new();
    shape_into(&answer.json(), "", &mut fake);
    for (path, kinds) in &fake {
        let Some(real_kinds) = real.get(path) else {
            panic!("{what}: `{path}` is not in Scaleway's answers");
        };
        for k in kinds {
            assert!(
                real_kinds.contains(k),
                "{what}: `{path}` is {k}, Scaleway sends {real_kinds:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_fake_answers_in_the_recorded_shapes() {
    let fake = FakeScaleway::start(scw::VM_IP, Duration::from_millis(50)).await;
    fake.set_offers(
        (0..75)
            .map(|i| FakeOffer {
                code: format!("TYPE-{i}"),
                gpu: (i % 2) as u32,
                gpu_memory_gib: 24,
                ncpus: 8,
                ram_gib: 48,
                hourly_price: "0.7875".into(),
                availability: "available".into(),
            })
            .collect(),
    );
    let (token, project) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    fake.accept(&token, &project);
    let mut d = Driver {
        http: reqwest::Client::new(),
        url: fake.url.clone(),
        token,
        answers: Vec::new(),
    };
    let zone = "/instance/v1/zones/fr-par-1";
    let block = "/block/v1/zones/fr-par-1";

    let images = d
        .send(Method::GET, "/marketplace/v2/local-images?image_label=ubuntu_jammy_gpu_os_12&order_by=type_asc&type=instance_sbs&zone=fr-par-1", None)
        .await
        .parse::<wire::LocalImageList>();
    assert_eq!(
        images
            .pick("ubuntu_jammy_gpu_os_12", "fr-par-1", "L4-1-24G")
            .unwrap()
            .id,
        DEFAULT_IMAGE_ID
    );
    let body = json!({ "name": "srv", "commercial_type": "L4-1-24G", "image": DEFAULT_IMAGE_ID, "project": project,
                       "tags": ["t"], "dynamic_ip_required": true, "volumes": { "0": { "size": 15_000_000_000u64, "volume_type": "sbs_volume" } } });
    let created: wire::ServerEnvelope = d
        .send(Method::POST, &format!("{zone}/servers"), Some(body))
        .await
        .parse();
    let id = created.server.id.clone();
    let volume = created.server.block_volume_ids()[0].clone();
    let server = format!("{zone}/servers/{id}");
    d.send(
        Method::POST,
        &format!("{zone}/servers"),
        Some(json!({ "name": "srv", "project": project })),
    )
    .await;
    d.send(Method::GET, &server, None)
        .await
        .parse::<wire::ServerEnvelope>();
    d.send(Method::GET, &format!("{block}/volumes/{volume}"), None)
        .await
        .parse::<wire::WireVolume>();
    let resized: wire::WireVolume = d
        .send(
            Method::PATCH,
            &format!("{block}/volumes/{volume}"),
            Some(json!({ "size": 20_000_000_000u64 })),
        )
        .await
        .parse();
    assert_eq!(
        (resized.status.as_str(), resized.size),
        ("updating", 15_000_000_000)
    );
    d.send(
        Method::GET,
        &format!("{block}/volumes?project_id={project}"),
        None,
    )
    .await
    .parse::<wire::VolumeList>();
    for (key, value) in [("cloud-init", "#cloud-config\n"), ("hello", "world")] {
        d.send_text(Method::PATCH, &format!("{server}/user_data/{key}"), value)
            .await;
    }
    d.send(Method::GET, &format!("{server}/user_data"), None)
        .await;
    let text = d
        .send(Method::GET, &format!("{server}/user_data/hello"), None)
        .await;
    assert_eq!(text.body, "world");
    d.send(Method::DELETE, &format!("{server}/user_data/hello"), None)
        .await;

    // Power on once the volume settled: starting, then running with the
    // loopback address of the test.
    let settled = || async { fake.volumes().iter().all(|v| v.status() != "updating") };
    eventually("the resize", Duration::from_secs(5), || async {
        settled().await.then_some(())
    })
    .await;
    d.send(
        Method::POST,
        &format!("{server}/action"),
        Some(json!({ "action": "poweron" })),
    )
    .await
    .parse::<wire::TaskEnvelope>();
    let starting: wire::ServerEnvelope = d.send(Method::GET, &server, None).await.parse();
    assert_eq!(
        (starting.server.state.as_str(), starting.server.ipv4()),
        ("starting", None)
    );
    let running = eventually("running", Duration::from_secs(5), || async {
        let url = format!("{}{server}", fake.url);
        let s: wire::ServerEnvelope = reqwest::Client::new()
            .get(url)
            .header("X-Auth-Token", &d.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (s.server.state == "running").then_some(s)
    })
    .await;
    assert_eq!(running.server.ipv4(), Some(scw::VM_IP));
    d.send(Method::GET, &server, None).await;
    let list: wire::ServerList = d
        .send(
            Method::GET,
            &format!("{zone}/servers?order=creation_date_desc"),
            None,
        )
        .await
        .parse();
    assert_eq!(list.servers.len(), 1);

    let group: wire::GroupEnvelope = d
        .send(Method::POST, &format!("{zone}/security_groups"), Some(json!({ "name": "g", "project": project, "stateful": true,
            "inbound_default_policy": "drop", "outbound_default_policy": "accept", "tags": ["t"] })))
        .await
        .parse();
    let rules = json!({ "rules": [{ "action": "accept", "direction": "inbound", "protocol": "TCP", "ip_range": "0.0.0.0/0",
                                     "dest_port_from": 22, "dest_port_to": null, "position": 1, "editable": true }] });
    d.send(
        Method::PUT,
        &format!("{zone}/security_groups/{}/rules", group.security_group.id),
        Some(rules),
    )
    .await
    .parse::<wire::RuleList>();
    d.send(
        Method::PATCH,
        &server,
        Some(json!({ "security_group": { "id": group.security_group.id } })),
    )
    .await
    .parse::<wire::ServerEnvelope>();

    for page in [1, 2] {
        d.send(
            Method::GET,
            &format!("{zone}/products/servers?page={page}"),
            None,
        )
        .await
        .parse::<wire::ProductList>();
    }

    d.send(
        Method::POST,
        &format!("{server}/action"),
        Some(json!({ "action": "poweroff" })),
    )
    .await;
    eventually("stopped", Duration::from_secs(5), || async {
        fake.servers()
            .iter()
            .all(|s| s.state == "stopped")
            .then_some(())
    })
    .await;
    d.send(Method::DELETE, &server, None).await;
    d.send(
        Method::DELETE,
        &format!("{zone}/security_groups/{}", group.security_group.id),
        None,
    )
    .await;
    d.send(Method::GET, &server, None).await;
    d.send(Method::DELETE, &format!("{block}/volumes/{volume}"), None)
        .await;
    d.send(Method::GET, &format!("{block}/volumes/{volume}"), None)
        .await;
    fake.set_faults(Faults {
        rate_limited: 1,
        ..Faults::default()
    });
    d.send(
        Method::GET,
        &format!("{block}/volumes?project_id={project}&tags=t"),
        None,
    )
    .await;

    let recorded = recordings::load_all();
    let all: Vec<&Interaction> = recorded.iter().flat_map(|c| &c.interactions).collect();
    let mut compared = BTreeSet::new();
    for answer in &d.answers {
        let key = (
            answer.method.to_string(),
            pattern(&answer.path),
            answer.code,
        );
        let same: Vec<&Interaction> = all
            .iter()
            .copied()
            .filter(|i| (i.method.clone(), pattern(&i.path), i.code) == key)
            .collect();
        // Recorded lists hold few kinds of items (no attached volume, for
        // one): items read alone are the same objects.
        let items = |method: &str, item: &str, pointer: &str, path: &'static str| {
            all.iter()
                .filter(|i| i.method == method && pattern(&i.path) == item && i.code == 200)
                .map(|i| {
                    let v: Value = serde_json::from_str(&i.body).unwrap();
                    (v.pointer(pointer).cloned().unwrap(), path)
                })
                .collect::<Vec<_>>()
        };
        let also = match (answer.method.as_str(), pattern(&answer.path).as_str()) {
            ("GET", "/instance/v1/zones/{zone}/servers") => items(
                "GET",
                "/instance/v1/zones/{zone}/servers/{id}",
                "/server",
                ".servers[]",
            ),
            ("GET", "/block/v1/zones/{zone}/volumes") => items(
                "GET",
                "/block/v1/zones/{zone}/volumes/{id}",
                "",
                ".volumes[]",
            ),
            _ => Vec::new(),
        };
        compare(answer, &same, &also);
        compared.insert(key);
    }
    assert!(compared.len() >= 23, "{compared:?}");
}
