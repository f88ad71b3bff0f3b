//! `terminating` → `terminated`: delete the server, check the provider no
//! longer reports it, delete its volumes; failures are retried later, and an
//! instance is never marked terminated while its server still exists.
//!
//! The same deletions release what a failed provisioning created
//! (`provisioning_failed` keeps no cloud resource): the instance keeps its
//! status and records `resources_released_at` once nothing is left.

use std::time::Duration;

use inventiv_common::InstanceStatus;
use inventiv_providers::{tags, CloudProvider, ListFilter, ServerRef};
use serde_json::json;

use super::{log, move_to, InstanceRow, Outcome, StepError, StepResult};
use crate::clouds::CloudError;
use crate::context::Orchestrator;

/// One pass of the termination.
pub async fn terminate(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let provider = o.provider(&inst.provider, inst.organization_id).await?;
    if !delete_resources(o, inst, provider.as_ref()).await? {
        return Ok(Outcome::RequeueAfter(Duration::from_secs(2)));
    }
    move_to(o, inst, InstanceStatus::Terminated, None, "orchestrator").await?;
    Ok(Outcome::Idle)
}

/// One pass of releasing what a failed provisioning created.
pub async fn release(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let provider = match o.provider(&inst.provider, inst.organization_id).await {
        Ok(p) => Some(p),
        // Without usable credentials nothing was created with them.
        Err(CloudError::NotConfigured(_) | CloudError::Unknown(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(provider) = provider {
        if !delete_resources(o, inst, provider.as_ref()).await? {
            return Ok(Outcome::RequeueAfter(Duration::from_secs(5)));
        }
    }
    sqlx::query!(
        "UPDATE instances SET resources_released_at = now() WHERE id = $1 AND resources_released_at IS NULL",
        inst.id,
    )
    .execute(&o.db)
    .await?;
    Ok(Outcome::Idle)
}

/// Deletes the instance's servers (the recorded one and any tagged for
/// it), its security group and its volumes that are not persistent.
/// `false` when something is left to retry later (each failure is in the
/// action log).
async fn delete_resources(
    o: &Orchestrator,
    inst: &InstanceRow,
    provider: &dyn CloudProvider,
) -> Result<bool, StepError> {
    // Adopt a server created but never recorded (crash right after create).
    let filter = ListFilter {
        zone: Some(inst.zone.clone()),
        tag: Some(tags::instance(inst.id)),
    };
    let log = log(o, inst);
    let mut servers: Vec<String> = match provider.list_servers(filter.clone()).await {
        Ok(list) => list.into_iter().map(|s| s.provider_id).collect(),
        Err(e) => {
            let step = log.start("PROVIDER_TERMINATE").await?;
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            return Ok(false);
        }
    };
    if let Some(id) = &inst.provider_server_id {
        if !servers.contains(id) {
            servers.push(id.clone());
        }
    }
    for id in servers {
        let reference = ServerRef {
            zone: inst.zone.clone(),
            provider_id: id.clone(),
        };
        let step = log.start("PROVIDER_TERMINATE").await?;
        if let Err(e) = provider.delete_server(reference.clone()).await {
            log.fail(
                step,
                "PROVIDER_DELETE_FAILED",
                &e.to_string(),
                json!({ "server_id": id }),
            )
            .await?;
            return Ok(false);
        }
        match provider.get_server(reference).await {
            Ok(None) => log.succeed(step, json!({ "server_id": id })).await?,
            Ok(Some(_)) => {
                log.fail(
                    step,
                    "SERVER_STILL_EXISTS",
                    "the provider still reports the server",
                    json!({ "server_id": id }),
                )
                .await?;
                return Ok(false);
            }
            Err(e) => {
                log.fail(
                    step,
                    "PROVIDER_UNAVAILABLE",
                    &e.to_string(),
                    json!({ "server_id": id }),
                )
                .await?;
                return Ok(false);
            }
        }
    }
    let step = log.start("PROVIDER_SECURITY_GROUP_DELETE").await?;
    if let Err(e) = provider.delete_firewall(inst.zone.clone(), inst.id).await {
        log.fail(step, "PROVIDER_DELETE_FAILED", &e.to_string(), json!({}))
            .await?;
        return Ok(false);
    }
    log.succeed(step, json!({})).await?;
    let tagged = match provider.list_volumes(filter).await {
        Ok(list) => list,
        Err(e) => {
            let step = log.start("PROVIDER_VOLUME_DELETE").await?;
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            return Ok(false);
        }
    };
    Ok(super::volumes::delete_all(o, inst, provider, tagged)
        .await?
        .is_ok())
}
