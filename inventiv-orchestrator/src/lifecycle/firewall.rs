//! `PROVIDER_SECURITY_GROUP`: once the server runs and has an address, its
//! inbound traffic is limited to SSH and, for the worker's ports, to the
//! control plane's address when `INVENTIV_CONTROL_PLANE_ADDRESS` is set.

use std::time::Duration;

use inventiv_common::InstanceStatus;
use inventiv_providers::{CloudProvider, Firewall, Server};
use serde_json::json;

use super::{advance, log, move_to, InstanceRow, Outcome, StepError};
use crate::context::Orchestrator;

/// Applies the firewall; `None` when done, `Some(outcome)` to stop here.
pub async fn secure(
    o: &Orchestrator,
    inst: &InstanceRow,
    provider: &dyn CloudProvider,
    server: &Server,
) -> Result<Option<Outcome>, StepError> {
    let settings = o
        .worker_settings(inst.organization_id, &inst.provider)
        .await?;
    let rules = Firewall {
        instance_id: inst.id,
        organization_id: inst.organization_id,
        ssh_port: server.ssh_port,
        worker_ports: vec![settings.engine_port, settings.agent_port],
        control_plane: o.config.control_plane_address,
    };
    let meta = json!({
        "ssh_port": rules.ssh_port, "worker_ports": rules.worker_ports,
        "workers_from": rules.control_plane.map_or_else(|| "anywhere".to_owned(), |ip| ip.to_string()),
    });
    let log = log(o, inst);
    let step = log.start("PROVIDER_SECURITY_GROUP").await?;
    match provider.ensure_firewall(server.reference(), rules).await {
        Ok(()) => {
            log.succeed(step, meta).await?;
            advance(o, inst, "PROVIDER_SECURITY_GROUP").await?;
            Ok(None)
        }
        Err(e) => {
            log.fail(step, e.code(), &e.to_string(), meta).await?;
            if e.retryable() {
                return Ok(Some(Outcome::RequeueAfter(Duration::from_secs(2))));
            }
            let message = e.to_string();
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some(("SECURITY_GROUP_FAILED", &message)),
                "orchestrator",
            )
            .await?;
            Ok(Some(Outcome::Idle))
        }
    }
}
