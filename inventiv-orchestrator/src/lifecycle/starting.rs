//! `starting` → `ready`: the engine answers through the node's relay (TLS
//! with the pinned certificate, the relay key), lists the model, completes a
//! warm-up request, and the agent heartbeats as ready; past the start-up
//! timeout (counted from the last install) the instance is `startup_failed`.

use std::time::Duration;

use chrono::Utc;
use inventiv_common::InstanceStatus;
use serde_json::json;

use super::{milestone, move_to, InstanceRow, Outcome, StepError, StepResult};
use crate::context::Orchestrator;

const POLL: Duration = Duration::from_millis(250);

/// One pass of the start-up checks; each passing check is a milestone.
pub async fn check_startup(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    // From the last reinstall, not the creation: a worker that served for
    // longer than the timeout must still be reinstallable.
    let settings = o
        .worker_settings(inst.organization_id, &inst.provider)
        .await?;
    let timeout = std::time::Duration::from_secs(settings.startup_timeout_secs.into());
    let age = Utc::now() - inst.attempt_started_at;
    if age.to_std().unwrap_or_default() > timeout {
        let message = format!("not ready after {} s", timeout.as_secs());
        tracing::warn!(alert = true, instance_id = %inst.id, "startup timeout");
        move_to(
            o,
            inst,
            InstanceStatus::StartupFailed,
            Some(("STARTUP_TIMEOUT", &message)),
            "orchestrator:health",
        )
        .await?;
        return Ok(Outcome::Idle);
    }
    let Some(ip) = inst.ip_address.as_deref() else {
        return Ok(Outcome::RequeueAfter(POLL));
    };
    let port = inst
        .worker_engine_port
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(settings.engine_port);
    // Through the node's relay, as the proxy will: its pinned certificate
    // and the instance's relay key.
    let access = inventiv_store::relay::load(&o.db, &o.config.keyring, inst.id)
        .await
        .map_err(StepError::RelayKey)?;
    let Some(access) = access else {
        // Installed without a relay (an older bundle): only a reinstall helps.
        return Ok(Outcome::RequeueAfter(POLL));
    };
    let http = o.engine_client(&access)?;
    let base = inventiv_store::relay::base_url(ip, port);
    if inst.progress < 75 {
        let ok = http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            return Ok(Outcome::RequeueAfter(POLL));
        }
        milestone(
            o,
            inst,
            "WORKER_VLLM_HTTP_OK",
            json!({ "url": format!("{base}/health") }),
        )
        .await?;
    }
    if inst.progress < 85 {
        let models: Option<serde_json::Value> =
            match http.get(format!("{base}/v1/models")).send().await {
                Ok(r) if r.status().is_success() => r.json().await.ok(),
                _ => None,
            };
        let listed = models
            .as_ref()
            .and_then(|m| m["data"].as_array())
            .is_some_and(|d| d.iter().any(|m| m["id"] == inst.model_id.as_str()));
        if !listed {
            return Ok(Outcome::RequeueAfter(POLL));
        }
        milestone(
            o,
            inst,
            "WORKER_MODEL_LOADED",
            json!({ "model": inst.model_id }),
        )
        .await?;
    }
    if inst.progress < 95 {
        let started = std::time::Instant::now();
        let warm = http
            .post(format!("{base}/v1/completions"))
            .json(&json!({ "model": inst.model_id, "prompt": "warm-up", "max_tokens": 1 }))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !warm {
            return Ok(Outcome::RequeueAfter(POLL));
        }
        milestone(
            o,
            inst,
            "WORKER_VLLM_WARMUP",
            json!({ "latency_ms": started.elapsed().as_millis() }),
        )
        .await?;
    }
    let fresh = inst.last_heartbeat_at.is_some_and(|t| {
        (Utc::now() - t).to_std().unwrap_or_default() < o.config.heartbeat_timeout
    });
    if !(fresh && inst.worker_status.as_deref() == Some("ready")) {
        return Ok(Outcome::RequeueAfter(POLL));
    }
    milestone(o, inst, "HEALTH_CHECK", json!({ "worker_status": "ready" })).await?;
    move_to(o, inst, InstanceStatus::Ready, None, "orchestrator:health").await?;
    Ok(Outcome::Idle)
}
