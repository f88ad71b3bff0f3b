//! End to end on the mock provider, with the orchestrator binary logging at
//! debug: a gated model deploys with the organization's Hugging Face token,
//! which lands on its node as a mode-600 file with the exact content and in
//! its engine's environment as HF_TOKEN, and nowhere else (database, action
//! logs, agent configuration, every other file of the node, orchestrator
//! log, command lines). A model that is not gated gets no token. Without a
//! token, reinstalling a gated model's dead worker stops at
//! `startup_failed` before touching the node.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{files_under, processes_mentioning, sigkill, Opts, Stack};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const HF_TOKEN: &str = "hf_EndToEndGatedToken0123456789abcdefgh";
const GATED: &str = "meta-llama/Llama-3.2-1B-Instruct";

/// Where the install put the worker of `id` (from its action log).
async fn install_dir(h: &Stack, id: Uuid) -> PathBuf {
    let done = h.installed(id).await;
    PathBuf::from(done["install_dir"].as_str().unwrap())
}

/// The environment of the engine process of `id`'s node.
async fn engine_environ(h: &Stack, id: Uuid, node: &Path) -> Vec<(String, String)> {
    let port: i32 = sqlx::query_scalar("SELECT worker_engine_port FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&h.db)
        .await
        .unwrap();
    // The registered port is the relay's; the engine is on the next one.
    let port = port + 1;
    let pid = std::fs::read_to_string(node.join(format!("logs/engine-{port}.pid"))).unwrap();
    let raw = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    String::from_utf8(raw)
        .unwrap()
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn dump_database(h: &Stack) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&h.db)
    .await
    .unwrap();
    let mut dump = String::new();
    for table in tables {
        // Names come from the catalog; bytea columns appear hex-encoded.
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
                .fetch_all(&h.db)
                .await
                .unwrap();
        dump.push_str(&rows.join("\n"));
    }
    dump
}

async fn call(h: &Stack, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let (status, answer) = h.call(method, path, token, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gated_model_gets_the_organizations_token_on_its_node_and_nowhere_else() {
    let h = Stack::start().await;
    let mut opts = Opts::new("hf", Ipv4Addr::new(127, 0, 66, 1));
    opts.extra.push(("RUST_LOG".into(), "debug".into()));
    opts.heartbeat_timeout_secs = 4;
    let orchestrator = h.spawn_up(&opts).await;
    let token = h.team().await;

    // A gated model in the catalog (the admin of the team is a platform
    // admin), activated for the organization.
    let model = call(
        &h,
        Method::POST,
        "/models",
        &token,
        Some(
            json!({ "hf_id": GATED, "display_name": "Llama 3.2 1B", "required_vram_gb": 4,
                     "context_length": 8192, "recommended_data_volume_gb": 20, "gated": true }),
        ),
    )
    .await;
    call(
        &h,
        Method::PUT,
        &format!(
            "/organizations/current/activations/model/{}",
            model["id"].as_str().unwrap()
        ),
        &token,
        Some(json!({ "technical": true, "economic": true })),
    )
    .await;
    let deploy = json!({ "provider": "mock", "zone": "mock-zone-1", "instance_type": "mock-1gpu-24g", "model_id": GATED });
    let (status, refused) = h
        .call(Method::POST, "/deployments", &token, Some(deploy.clone()))
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("HUGGINGFACE_TOKEN_REQUIRED"))
    );

    // With the organization's token: the gated model and, beside it, one
    // that is not gated.
    call(
        &h,
        Method::PUT,
        "/organizations/current/huggingface-token",
        &token,
        Some(json!({ "token": HF_TOKEN })),
    )
    .await;
    let gated = call(&h, Method::POST, "/deployments", &token, Some(deploy)).await;
    let gated = Uuid::parse_str(gated["id"].as_str().unwrap()).unwrap();
    let open = h.deploy(&token, None).await;
    for id in [gated, open] {
        h.wait_status(id, "ready", Duration::from_secs(120)).await;
    }

    // On the gated node: the token file, private, exact; the engine has it.
    let node = install_dir(&h, gated).await;
    let file = node.join("secrets/hf_token");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&node.join("secrets")), 0o700);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), HF_TOKEN);
    let env = engine_environ(&h, gated, &node).await;
    assert!(
        env.iter().any(|(k, v)| k == "HF_TOKEN" && v == HF_TOKEN),
        "the engine did not get HF_TOKEN"
    );
    let config = std::fs::read_to_string(node.join("config.json")).unwrap();
    assert!(config.contains(&file.display().to_string()), "{config}");

    // On the other node: no token at all.
    let open_node = install_dir(&h, open).await;
    assert!(!open_node.join("secrets/hf_token").exists());
    assert!(engine_environ(&h, open, &open_node)
        .await
        .iter()
        .all(|(k, _)| k != "HF_TOKEN"));
    let delivered = |actions: Vec<(String, String, Value)>| {
        actions
            .into_iter()
            .rev()
            .find(|(kind, _, _)| kind == "WORKER_SSH_INSTALL")
            .map(|(_, _, done)| done["hf_token_delivered"].clone())
    };
    assert_eq!(delivered(h.actions(gated).await), Some(json!(true)));
    assert_eq!(delivered(h.actions(open).await), Some(json!(false)));

    // Nowhere else: the database (action logs, heartbeats and audit log
    // included), every other file of both nodes (agent configuration,
    // agent, engine and bootstrap logs), the orchestrator's log, any
    // command line.
    let needles = [HF_TOKEN, &HF_TOKEN[3..]];
    let dump = dump_database(&h).await;
    assert!(dump.contains("WORKER_SSH_INSTALL") && dump.contains("huggingface_token.set"));
    let mut places: Vec<(String, String)> = vec![("the database".into(), dump)];
    for path in files_under(&node)
        .into_iter()
        .chain(files_under(&open_node))
        .filter(|p| *p != file)
    {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        places.push((path.display().to_string(), text));
    }
    let log = std::fs::read_to_string(&orchestrator.log).unwrap();
    assert!(log.contains("DEBUG"), "the orchestrator logged at debug");
    places.push(("the orchestrator's log".into(), log));
    assert!(places.iter().any(|(p, _)| p.ends_with("agent.json")));
    assert!(places.iter().any(|(p, _)| p.ends_with("events.jsonl")));
    for (place, text) in &places {
        for needle in needles {
            assert!(!text.contains(needle), "the token is in {place}");
        }
    }
    assert!(processes_mentioning(&HF_TOKEN[3..]).is_empty());

    // Without the token, reinstalling the gated model stops before the
    // node: its agent dies for good, the token is deleted, reinstall.
    let supervisor = std::fs::read_to_string(node.join("run/agent.pid")).unwrap();
    let mut pids: Vec<u32> = processes_mentioning(&node.display().to_string())
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("-m inventiv_agent"))
        .map(|(pid, _)| pid)
        .collect();
    pids.push(supervisor.trim().parse().unwrap());
    sigkill(&pids);
    h.wait_status(gated, "worker_dead", Duration::from_secs(30))
        .await;
    let (status, _) = h
        .call(
            Method::DELETE,
            "/organizations/current/huggingface-token",
            &token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    h.act(
        &token,
        Method::POST,
        &format!("/instances/{gated}/reinstall"),
    )
    .await;
    h.wait_status(gated, "startup_failed", Duration::from_secs(60))
        .await;
    let code: Option<String> = sqlx::query_scalar("SELECT error_code FROM instances WHERE id = $1")
        .bind(gated)
        .fetch_one(&h.db)
        .await
        .unwrap();
    assert_eq!(code.as_deref(), Some("HUGGINGFACE_TOKEN_REQUIRED"));
}
