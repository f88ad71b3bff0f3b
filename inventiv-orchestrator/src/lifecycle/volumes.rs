//! The volumes of an instance: recorded in `instance_volumes` from its
//! server right after creation, the root volume grown to the model's
//! recommended size before power-on (`PROVIDER_VOLUME_RESIZE`), and deleted
//! at termination unless marked persistent.

use std::time::Duration;

use inventiv_providers::{CloudProvider, ProviderError, ServerRef, Volume, VolumeRef};
use serde_json::json;

use super::{advance, log, InstanceRow, Outcome, StepError};
use crate::context::Orchestrator;

/// Records volumes of the instance (the first one is the boot volume);
/// known ones are left as they are.
pub async fn record(o: &Orchestrator, inst: &InstanceRow, volumes: &[Volume]) -> sqlx::Result<()> {
    for (i, v) in volumes.iter().enumerate() {
        sqlx::query!(
            "INSERT INTO instance_volumes (instance_id, organization_id, provider_code, zone, provider_volume_id, size_gb, is_boot)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (provider_code, zone, provider_volume_id) DO NOTHING",
            inst.id,
            inst.organization_id,
            inst.provider,
            v.zone,
            v.provider_id,
            i32::try_from(v.size_gb).unwrap_or(i32::MAX),
            i == 0,
        )
        .execute(&o.db)
        .await?;
    }
    Ok(())
}

/// The size the model wants for its weights, if the model is in the catalog.
pub async fn recommended_gb(o: &Orchestrator, inst: &InstanceRow) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        "SELECT recommended_data_volume_gb FROM models WHERE hf_id = $1",
        inst.model_id,
    )
    .fetch_optional(&o.db)
    .await
}

/// Before power-on: records the server's volumes and grows the root one.
/// `None` when done (or already done), `Some(outcome)` to stop here.
pub async fn prepare(
    o: &Orchestrator,
    inst: &InstanceRow,
    provider: &dyn CloudProvider,
    server: ServerRef,
) -> Result<Option<Outcome>, StepError> {
    let resize_progress = inventiv_common::instance::milestone_progress("PROVIDER_VOLUME_RESIZE");
    if resize_progress.is_some_and(|p| inst.progress >= p) {
        return Ok(None);
    }
    let retry = Some(Outcome::RequeueAfter(Duration::from_secs(2)));
    let found = match provider.get_server(server).await {
        Ok(Some(s)) => s,
        // Gone: the start step that follows reports it.
        Ok(None) => return Ok(None),
        // Unreachable: try again, the volumes must be known before power-on.
        Err(e) => {
            let log = log(o, inst);
            let step = log.start("PROVIDER_VOLUME_RESIZE").await?;
            log.fail(step, e.code(), &e.to_string(), json!({})).await?;
            return Ok(retry);
        }
    };
    record(o, inst, &found.volumes).await?;
    let Some(root) = found.volumes.first() else {
        return Ok(None);
    };
    let target = recommended_gb(o, inst)
        .await?
        .and_then(|gb| u64::try_from(gb).ok())
        .unwrap_or(root.size_gb)
        .max(root.size_gb);
    let log = log(o, inst);
    let step = log.start("PROVIDER_VOLUME_RESIZE").await?;
    match provider.resize_volume(root.reference(), target).await {
        Ok(()) => {
            sqlx::query!(
                "UPDATE instance_volumes SET size_gb = $3 WHERE provider_code = $1 AND provider_volume_id = $2",
                inst.provider,
                root.provider_id,
                i32::try_from(target).unwrap_or(i32::MAX),
            )
            .execute(&o.db)
            .await?;
            let meta =
                json!({ "volume_id": root.provider_id, "from_gb": root.size_gb, "to_gb": target });
            log.succeed(step, meta).await?;
            advance(o, inst, "PROVIDER_VOLUME_RESIZE").await?;
            Ok(None)
        }
        Err(e) => {
            log.fail(
                step,
                e.code(),
                &e.to_string(),
                json!({ "volume_id": root.provider_id }),
            )
            .await?;
            Ok(retry)
        }
    }
}

/// Deletes the instance's recorded volumes that are not persistent (plus
/// `tagged`, the ones its tags name); marks them deleted. `Err` with the
/// failure to retry later.
pub async fn delete_all(
    o: &Orchestrator,
    inst: &InstanceRow,
    provider: &dyn CloudProvider,
    tagged: Vec<Volume>,
) -> Result<Result<(), ProviderError>, StepError> {
    let rows = sqlx::query!(
        "SELECT zone, provider_volume_id, delete_on_terminate FROM instance_volumes
          WHERE instance_id = $1 AND status = 'attached'",
        inst.id,
    )
    .fetch_all(&o.db)
    .await?;
    let persistent: Vec<&str> = rows
        .iter()
        .filter(|r| !r.delete_on_terminate)
        .map(|r| r.provider_volume_id.as_str())
        .collect();
    let mut targets: Vec<(VolumeRef, u64)> = rows
        .iter()
        .filter(|r| r.delete_on_terminate)
        .map(|r| {
            (
                VolumeRef {
                    zone: r.zone.clone(),
                    provider_id: r.provider_volume_id.clone(),
                },
                0,
            )
        })
        .collect();
    for v in tagged {
        if !persistent.contains(&v.provider_id.as_str())
            && !targets.iter().any(|t| t.0.provider_id == v.provider_id)
        {
            targets.push((v.reference(), v.size_gb));
        }
    }
    let log = log(o, inst);
    for (volume, size_gb) in targets {
        let step = log.start("PROVIDER_VOLUME_DELETE").await?;
        if let Err(e) = provider.delete_volume(volume.clone()).await {
            log.fail(
                step,
                "PROVIDER_DELETE_FAILED",
                &e.to_string(),
                json!({ "volume_id": volume.provider_id }),
            )
            .await?;
            return Ok(Err(e));
        }
        sqlx::query!(
            "UPDATE instance_volumes SET status = 'deleted', deleted_at = now()
              WHERE instance_id = $1 AND provider_volume_id = $2",
            inst.id,
            volume.provider_id,
        )
        .execute(&o.db)
        .await?;
        log.succeed(
            step,
            json!({ "volume_id": volume.provider_id, "size_gb": size_gb }),
        )
        .await?;
    }
    Ok(Ok(()))
}
