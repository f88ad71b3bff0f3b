//! `provisioning`: create the server (or adopt the one a lost answer left
//! behind), record and grow its volumes, power it on; and the provisioning
//! deadline that ends `provisioning` and `booting` alike when they last too
//! long.

use std::time::Duration;

use chrono::Utc;
use inventiv_common::InstanceStatus;
use inventiv_providers::{tags, CreateServer, ListFilter, ServerRef};
use serde_json::json;

use super::{advance, log, move_to, volumes, InstanceRow, Outcome, StepError, StepResult};
use crate::clouds::CloudError;
use crate::context::Orchestrator;

/// Ends provisioning that has lasted longer than the deadline (counted
/// from the instance's creation): `provisioning_failed` with the last
/// error the action log holds; whatever was created is then released.
/// `None` while there is time left.
pub async fn past_deadline(
    o: &Orchestrator,
    inst: &InstanceRow,
) -> Result<Option<Outcome>, StepError> {
    let age = (Utc::now() - inst.created_at).to_std().unwrap_or_default();
    let deadline = o.config.provisioning_deadline;
    if age <= deadline {
        return Ok(None);
    }
    // A failed step always has both (see `ActionLog::fail`).
    let last = sqlx::query!(
        r#"SELECT error_code AS "code!", error_message AS "message!" FROM action_logs
            WHERE instance_id = $1 AND status = 'failed' AND error_code IS NOT NULL AND error_code <> 'INTERRUPTED'
            ORDER BY started_at DESC, id DESC LIMIT 1"#,
        inst.id,
    )
    .fetch_optional(&o.db)
    .await?;
    let message = match last {
        Some(last) => format!(
            "provisioning did not finish within {} s; last error: {}: {}",
            deadline.as_secs(),
            last.code,
            last.message
        ),
        None => format!(
            "provisioning did not finish within {} s",
            deadline.as_secs()
        ),
    };
    tracing::warn!(alert = true, instance_id = %inst.id, %message, "provisioning deadline passed");
    move_to(
        o,
        inst,
        InstanceStatus::ProvisioningFailed,
        Some(("PROVISIONING_DEADLINE", &message)),
        "orchestrator",
    )
    .await?;
    Ok(Some(Outcome::Continue))
}

/// `provisioning`: create (or adopt) the server, power it on.
pub async fn provision(o: &Orchestrator, inst: &InstanceRow) -> StepResult {
    let firewalled = inst.provider != "mock" && inst.provider != "ssh";
    if firewalled && o.config.production && o.config.control_plane_address.is_none() {
        // Nothing is created: without the address, the firewall would open
        // the node's ports to everyone. (Own hosts keep their own firewall.)
        move_to(
            o,
            inst,
            InstanceStatus::ProvisioningFailed,
            Some((
                "CONTROL_PLANE_ADDRESS_REQUIRED",
                "INVENTIV_CONTROL_PLANE_ADDRESS is not set: in production a cloud node's worker ports open to the control plane's address only; set it on the orchestrator, then deploy again",
            )),
            "orchestrator",
        )
        .await?;
        return Ok(Outcome::Continue);
    }
    // Without usable credentials nothing is created: the instance fails here.
    let provider = match o.provider(&inst.provider, inst.organization_id).await {
        Ok(p) => p,
        Err(CloudError::Db(e)) => return Err(e.into()),
        Err(e) => {
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
    let server_id = match &inst.provider_server_id {
        Some(id) => id.clone(),
        None => {
            // A create whose answer was lost (crash, timeout) left a tagged
            // server: adopt it instead of creating a second one.
            let filter = ListFilter {
                zone: Some(inst.zone.clone()),
                tag: Some(tags::instance(inst.id)),
            };
            let log = log(o, inst);
            let step = log.start("PROVIDER_CREATE").await?;
            let existing = match provider.list_servers(filter).await {
                Ok(list) => list,
                Err(e) => {
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
            let adopted = !existing.is_empty();
            let server = match existing.into_iter().next() {
                Some(s) => s,
                None => {
                    let req = CreateServer {
                        instance_id: inst.id,
                        organization_id: inst.organization_id,
                        zone: inst.zone.clone(),
                        instance_type: inst.instance_type.clone(),
                        name: format!("inventiv-{}", inst.id.simple()),
                        image: None,
                        tags: Vec::new(),
                        root_volume_gb: volumes::recommended_gb(o, inst)
                            .await?
                            .and_then(|gb| u64::try_from(gb).ok()),
                        ssh_public_key: Some(o.ssh_public_key.clone()),
                    };
                    match provider.create_server(req).await {
                        Ok(s) => s,
                        Err(e) if e.retryable() => {
                            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
                            return Ok(Outcome::RequeueAfter(Duration::from_secs(2)));
                        }
                        Err(e) => {
                            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
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
                    }
                }
            };
            sqlx::query!(
                "UPDATE instances SET provider_server_id = $2 WHERE id = $1",
                inst.id,
                server.provider_id,
            )
            .execute(&o.db)
            .await?;
            log.succeed(
                step,
                json!({ "server_id": server.provider_id, "zone": server.zone, "adopted": adopted }),
            )
            .await?;
            advance(o, inst, "PROVIDER_CREATE").await?;
            server.provider_id
        }
    };
    let reference = ServerRef {
        zone: inst.zone.clone(),
        provider_id: server_id.clone(),
    };
    if let Some(outcome) = volumes::prepare(o, inst, provider.as_ref(), reference.clone()).await? {
        return Ok(outcome);
    }
    let log = log(o, inst);
    let step = log.start("PROVIDER_START").await?;
    match provider.start_server(reference).await {
        Ok(()) => {
            log.succeed(step, json!({ "server_id": server_id })).await?;
            sqlx::query!(
                "UPDATE instances SET started_at = COALESCE(started_at, now()) WHERE id = $1",
                inst.id,
            )
            .execute(&o.db)
            .await?;
            advance(o, inst, "PROVIDER_START").await?;
            move_to(o, inst, InstanceStatus::Booting, None, "orchestrator").await?;
            Ok(Outcome::Continue)
        }
        Err(e) if e.retryable() => {
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            Ok(Outcome::RequeueAfter(Duration::from_secs(2)))
        }
        Err(e) => {
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            let code = match e {
                inventiv_providers::ProviderError::NotFound(_) => "SERVER_VANISHED",
                _ => e.code(),
            };
            move_to(
                o,
                inst,
                InstanceStatus::ProvisioningFailed,
                Some((code, &e.to_string())),
                "orchestrator",
            )
            .await?;
            Ok(Outcome::Continue)
        }
    }
}
