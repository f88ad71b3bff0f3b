//! `terminating` → `terminated`: delete the server, check the provider no
//! longer reports it, delete its volumes; failures are retried later, and an
//! instance is never marked terminated while its server still exists.

use std::time::Duration;

use inventiv_common::InstanceStatus;
use inventiv_providers::{tags, ListFilter, ServerRef};
use serde_json::json;

use crate::engine::Orchestrator;
use crate::steps::{log, move_to, InstanceRow, Outcome, StepError, StepResult};

/// One pass of the termination.
pub async fn terminate(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let provider = o
        .provider(&inst.provider, inst.organization_id)
        .await
        .map_err(|e| StepError::Other(e.to_string()))?;
    let retry = Outcome::RequeueAfter(Duration::from_secs(2));
    // Adopt a server created but never recorded (crash right after create).
    let filter = ListFilter {
        zone: Some(inst.zone.clone()),
        tag: Some(tags::instance(inst.id)),
    };
    let mut servers: Vec<String> = provider
        .list_servers(filter.clone())
        .await
        .map_err(|e| StepError::Other(e.to_string()))?
        .into_iter()
        .map(|s| s.provider_id)
        .collect();
    if let Some(id) = &inst.provider_server_id {
        if !servers.contains(id) {
            servers.push(id.clone());
        }
    }
    let log = log(o, inst);
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
            return Ok(retry);
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
                return Ok(retry);
            }
            Err(e) => {
                log.fail(
                    step,
                    "PROVIDER_UNAVAILABLE",
                    &e.to_string(),
                    json!({ "server_id": id }),
                )
                .await?;
                return Ok(retry);
            }
        }
    }
    let step = log.start("PROVIDER_SECURITY_GROUP_DELETE").await?;
    if let Err(e) = provider.delete_firewall(inst.zone.clone(), inst.id).await {
        log.fail(step, "PROVIDER_DELETE_FAILED", &e.to_string(), json!({}))
            .await?;
        return Ok(retry);
    }
    log.succeed(step, json!({})).await?;
    let tagged = provider
        .list_volumes(filter)
        .await
        .map_err(|e| StepError::Other(e.to_string()))?;
    if crate::volumes::delete_all(o, inst, provider.as_ref(), tagged)
        .await?
        .is_err()
    {
        return Ok(retry);
    }
    move_to(o, inst, InstanceStatus::Terminated, None, "orchestrator").await?;
    Ok(Outcome::Idle)
}
