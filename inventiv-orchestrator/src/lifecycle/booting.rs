//! `booting`: wait for the server to run and have an address, then limit
//! its inbound traffic (the firewall) before anything is installed on it;
//! a server that never comes up fails at the start-up timeout.

use std::time::Duration;

use chrono::Utc;
use inventiv_common::InstanceStatus;
use inventiv_providers::{ServerRef, ServerState};
use serde_json::json;

use super::{firewall, log, milestone, move_to, InstanceRow, Outcome, StepError, StepResult};
use crate::context::Orchestrator;

/// `booting`: wait for the server to run and have an address.
pub async fn boot(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let provider = o.provider(&inst.provider, inst.organization_id).await?;
    let Some(id) = inst.provider_server_id.clone() else {
        return Err(StepError::NoServer("booting"));
    };
    let server = match provider
        .get_server(ServerRef {
            zone: inst.zone.clone(),
            provider_id: id,
        })
        .await
    {
        Ok(server) => server,
        Err(e) => {
            let log = log(o, inst);
            let step = log.start("PROVIDER_GET_IP").await?;
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            if e.retryable() {
                return Ok(Outcome::RequeueAfter(Duration::from_secs(2)));
            }
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some((e.code(), &e.to_string())),
                "orchestrator",
            )
            .await?;
            return Ok(Outcome::Continue);
        }
    };
    match server {
        None => {
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some(("SERVER_VANISHED", "the provider no longer has the server")),
                "orchestrator",
            )
            .await?;
            Ok(Outcome::Continue)
        }
        Some(s) if s.state == ServerState::Running && s.ip.is_some() => {
            let ip = s.ip.map(|ip| ip.to_string()).unwrap_or_default();
            sqlx::query!(
                "UPDATE instances SET ip_address = $2 WHERE id = $1",
                inst.id,
                ip,
            )
            .execute(&o.db)
            .await?;
            milestone(
                o,
                inst,
                "PROVIDER_GET_IP",
                json!({ "ip": ip, "ssh_port": s.ssh_port }),
            )
            .await?;
            if let Some(outcome) = firewall::secure(o, inst, provider.as_ref(), &s).await? {
                return Ok(outcome);
            }
            move_to(o, inst, InstanceStatus::Installing, None, "orchestrator").await?;
            Ok(Outcome::Continue)
        }
        Some(_) => {
            // A server that never comes up must not leave the instance
            // booting for ever: the start-up timeout covers the boot too.
            let age = (Utc::now() - inst.attempt_started_at)
                .to_std()
                .unwrap_or_default();
            let timeout = o
                .worker_settings(inst.organization_id, &inst.provider)
                .await?
                .startup_timeout_secs;
            if age > Duration::from_secs(timeout.into()) {
                let message = format!("the server did not come up in {timeout} s");
                tracing::warn!(alert = true, instance_id = %inst.id, "boot timeout");
                move_to(
                    o,
                    inst,
                    InstanceStatus::ProvisioningFailed,
                    Some(("BOOT_TIMEOUT", &message)),
                    "orchestrator",
                )
                .await?;
                return Ok(Outcome::Continue);
            }
            Ok(Outcome::RequeueAfter(Duration::from_millis(200)))
        }
    }
}
