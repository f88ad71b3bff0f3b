//! `installing`: install the worker over SSH (`node::install`) with a
//! fresh per-instance token (only its hash is stored), on the ports of the
//! organization's worker settings, with the organization's Hugging Face token when the
//! model is gated, the dead-man switch the settings ask for (with the
//! organization's Scaleway key when it powers off through Scaleway's API),
//! a fresh relay key (the node gets its SHA-256; the relay's certificate,
//! made on the node, is pinned from what the install reports), retried with
//! backoff on transient failures, `startup_failed` after the settings'
//! attempts.

use std::time::Duration;

use inventiv_common::worker_settings::WorkerSettings;
use inventiv_common::InstanceStatus;
use inventiv_providers::ServerRef;
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};

use inventiv_common::host::PORT_STRIDE;
use inventiv_store::hosts::OrgSsh;

use super::{advance, log, move_to, InstanceRow, Outcome, StepError, StepResult};
use crate::context::Orchestrator;
use crate::node;

/// A fresh worker token (32 random bytes, base64url) and the hash stored.
fn new_token() -> (String, Vec<u8>) {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    (token, hash)
}

/// What a node gets of its organization's Hugging Face token: only the
/// nodes of gated models get it.
enum HfToken {
    NotNeeded,
    Deliver(SecretString),
    /// The model is gated and the organization has no token.
    Missing,
}

async fn huggingface_token(o: &Orchestrator, inst: &InstanceRow) -> Result<HfToken, StepError> {
    let gated = sqlx::query_scalar!(
        "SELECT m.gated FROM instances i JOIN models m ON m.id = i.model_catalog_id WHERE i.id = $1",
        inst.id,
    )
    .fetch_optional(&o.db)
    .await?;
    if gated != Some(true) {
        return Ok(HfToken::NotNeeded);
    }
    let token = inventiv_store::huggingface::load(&o.db, &o.config.keyring, inst.organization_id)
        .await
        .map_err(StepError::HuggingFaceToken)?;
    Ok(token.map_or(HfToken::Missing, HfToken::Deliver))
}

/// What the node's dead-man switch does when its control plane is gone.
enum DeadMan {
    /// Mock nodes run on the platform's own machine, own hosts are shared;
    /// or the settings say 0.
    Off,
    /// An in-guest power-off: on Scaleway the server stays "stopped in
    /// place", still billed.
    Shutdown,
    /// Through Scaleway's API with the organization's secret key (opted
    /// in): the server is "stopped", its compute no longer billed.
    ScalewayPoweroff(SecretString),
}

impl DeadMan {
    fn action(&self) -> &'static str {
        match self {
            DeadMan::Off => "off",
            DeadMan::Shutdown => "shutdown",
            DeadMan::ScalewayPoweroff(_) => "scaleway-poweroff",
        }
    }

    fn key(&self) -> Option<&SecretString> {
        match self {
            DeadMan::ScalewayPoweroff(key) => Some(key),
            DeadMan::Off | DeadMan::Shutdown => None,
        }
    }
}

async fn dead_man(
    o: &Orchestrator,
    inst: &InstanceRow,
    settings: &WorkerSettings,
) -> Result<DeadMan, StepError> {
    // An own host (`ssh`) may hold other engines and services: its engine
    // is never allowed to power it off.
    if inst.provider == "mock" || inst.provider == "ssh" || settings.dead_man_after_s == 0 {
        return Ok(DeadMan::Off);
    }
    if inst.provider == "scaleway" && settings.dead_man_poweroff {
        let (_, creds) = o
            .clouds
            .scaleway_credentials(&o.db, inst.organization_id)
            .await?;
        return Ok(DeadMan::ScalewayPoweroff(creds.secret_key));
    }
    Ok(DeadMan::Shutdown)
}

/// Whether `ip` is a loopback address (127.0.0.0/8, ::1).
fn is_loopback(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Runs the install once.
pub async fn install(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let provider = o.provider(&inst.provider, inst.organization_id).await?;
    let Some(id) = inst.provider_server_id.clone() else {
        return Err(StepError::NoServer("installing"));
    };
    let server = provider
        .get_server(ServerRef {
            zone: inst.zone.clone(),
            provider_id: id,
        })
        .await?;
    let Some(server) = server else {
        move_to(
            o,
            inst,
            InstanceStatus::StartupFailed,
            Some(("SERVER_VANISHED", "the provider no longer has the server")),
            "orchestrator",
        )
        .await?;
        return Ok(Outcome::Idle);
    };
    let Some(ip) = server.ip.map(|ip| ip.to_string()) else {
        return Ok(Outcome::RequeueAfter(Duration::from_millis(500)));
    };
    let hf_token = match huggingface_token(o, inst).await? {
        HfToken::NotNeeded => None,
        HfToken::Deliver(token) => Some(token),
        HfToken::Missing => {
            let why = "the model is gated and the organization has no Hugging Face token: set one, then reinstall";
            let error = Some(("HUGGINGFACE_TOKEN_REQUIRED", why));
            move_to(
                o,
                inst,
                InstanceStatus::StartupFailed,
                error,
                "orchestrator",
            )
            .await?;
            return Ok(Outcome::Idle);
        }
    };
    let mock = inst.provider == "mock" || o.config.mock_engine_everywhere;
    let settings = o
        .worker_settings(inst.organization_id, &inst.provider)
        .await?;
    let install_dir = server
        .install_dir
        .clone()
        .unwrap_or_else(|| "/opt/inventiv".into());
    // On an own host the engine has its seat: its GPUs and its port slot.
    let seat = if inst.provider == "ssh" {
        let Some(seat) = inventiv_store::host_alloc::find(&o.db, inst.id).await? else {
            return Err(StepError::NoServer("installing"));
        };
        Some(seat)
    } else {
        None
    };
    let shift = seat
        .as_ref()
        .map_or(0, |s| u16::try_from(s.slot * PORT_STRIDE).unwrap_or(0));
    let (agent_port, relay_port) = (
        settings.agent_port.saturating_add(shift),
        settings.engine_port.saturating_add(shift),
    );
    let (token, hash) = new_token();
    let engine_command = if mock {
        let mut command = vec![json!(o.config.mock_engine)];
        command.extend(
            [
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--model",
                "{model}",
                "--enable-prompt-tokens-details",
            ]
            .map(|w| json!(w)),
        );
        // The operator's additions (INVENTIV_MOCK_ENGINE_ARGS), last.
        command.extend(o.config.mock_engine_args.words().iter().map(|w| json!(w)));
        json!(command)
    } else {
        json!([
            "vllm",
            "serve",
            "{model}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--tensor-parallel-size",
            "{tp}",
            // Cached prompt tokens in usage, priced at their own rate.
            "--enable-prompt-tokens-details"
        ])
    };
    let relay_key_sha256 = inventiv_store::relay::issue_key(&o.db, &o.config.keyring, inst.id)
        .await
        .map_err(StepError::RelayKey)?;
    let mut config = json!({
        "control_plane_url": o.config.control_plane_url,
        "instance_id": inst.id,
        "worker_token": token,
        "model_id": inst.model_id,
        "relay_key_sha256": relay_key_sha256,
        "engine_command": engine_command,
        // The engines listen on loopback only, behind the relay: the node's
        // 127.0.0.1; or the node's own address when that is a loopback one
        // (mock VMs, hosts played on one machine), so nodes sharing a
        // machine never share an engine address.
        "engine_host": if is_loopback(&ip) { ip.as_str() } else { "127.0.0.1" },
        "relay_host": ip,
        "relay_port": relay_port,
        "agent_host": ip,
        "agent_port": agent_port,
        "mode": inst.mode,
        "log_dir": format!("{install_dir}/logs"),
        "heartbeat_interval_s": o.config.worker_heartbeat.as_secs(),
    });
    if let Some(seat) = &seat {
        config["gpu_devices"] = json!(seat.gpus);
        config["gpu_count"] = json!(seat.gpus.len());
    }
    if hf_token.is_some() {
        // The path only: the token itself goes to its own file.
        config["hf_token_file"] = json!(node::install::hf_token_path(&install_dir));
    }
    let dead_man = dead_man(o, inst, &settings).await?;
    config["dead_man_after_s"] = json!(settings.dead_man_after_s);
    config["dead_man_action"] = json!(dead_man.action());
    if dead_man.key().is_some() {
        // The path only, as for the Hugging Face token.
        config["dead_man_key_file"] = json!(node::install::scaleway_key_path(&install_dir));
        config["dead_man_api_url"] = json!(o.config.scaleway_api_url);
    }
    // The ports are recorded before the agent starts: they are the only ones
    // the worker may serve on (the API refuses a registration claiming
    // others, and the proxy routes to these).
    sqlx::query!(
        "UPDATE instances SET worker_token_hash = $2, bootstrap_attempts = bootstrap_attempts + 1,
                worker_agent_port = $3, worker_engine_port = $4 WHERE id = $1",
        inst.id,
        hash,
        i32::from(agent_port),
        i32::from(relay_port),
    )
    .execute(&o.db)
    .await?;
    // An own host is reached with its organization's key, written for the
    // length of the install only.
    let org_ssh = match &seat {
        Some(_) => {
            let key =
                inventiv_store::hosts::load_key(&o.db, &o.config.keyring, inst.organization_id)
                    .await
                    .map_err(|e| StepError::HostKey(e.to_string()))?
                    .ok_or_else(|| StepError::HostKey("the organization has no SSH key".into()))?;
            Some(
                OrgSsh::open(&crate::hosts::scratch_dir(o), &key, o.ssh.connect_timeout)
                    .await
                    .map_err(|e| StepError::HostKey(e.to_string()))?,
            )
        }
        None => None,
    };
    let run = node::install::run(node::install::Install {
        ssh: org_ssh.as_ref().map_or(&o.ssh, |c| &c.ssh),
        log: log(o, inst),
        target: node::ssh::Target {
            host: ip,
            port: server.ssh_port,
            user: server.ssh_user.clone(),
        },
        bundle: &o.bundle.path,
        bundle_sha256: &o.bundle.sha256,
        script: &o.bundle.script,
        agent_config: config,
        hf_token: hf_token.as_ref(),
        scaleway_key: dead_man.key(),
        install_dir: &install_dir,
        mock,
        background: seat.is_some(),
    })
    .await;
    if let Some(client) = org_ssh {
        client
            .close()
            .await
            .map_err(|e| StepError::HostKey(e.to_string()))?;
    }
    match run {
        Ok(relay_cert) => {
            inventiv_store::relay::pin_certificate(&o.db, inst.id, relay_cert).await?;
            advance(o, inst, "WORKER_SSH_ACCESSIBLE").await?;
            advance(o, inst, "WORKER_SSH_INSTALL").await?;
            move_to(o, inst, InstanceStatus::Starting, None, "orchestrator").await?;
            Ok(Outcome::Continue)
        }
        Err(e) => {
            let attempts = inst.bootstrap_attempts + 1;
            if e.retryable() && attempts < i32::from(settings.bootstrap_attempts) {
                let backoff = Duration::from_secs(1u64 << attempts.clamp(0, 6));
                tracing::warn!(instance_id = %inst.id, attempts, error = %e, "install failed; will retry");
                Ok(Outcome::RequeueAfter(backoff))
            } else {
                tracing::warn!(alert = true, instance_id = %inst.id, attempts, error = %e, "install failed for good");
                move_to(
                    o,
                    inst,
                    InstanceStatus::StartupFailed,
                    Some(("BOOTSTRAP_FAILED", &e.to_string())),
                    "orchestrator",
                )
                .await?;
                Ok(Outcome::Idle)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_43_url_safe_characters() {
        let (a, _) = super::new_token();
        let (b, _) = super::new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "{a}");
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
