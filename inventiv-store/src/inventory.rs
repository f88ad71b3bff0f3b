//! What the database says an organization has on a provider: its live
//! instances and their servers, and the volumes recorded for live and for
//! finished instances. Reconciliation (the orchestrator's job and the
//! API's dry-run report) compares it with what the provider lists.

use std::collections::HashSet;

use sqlx::PgPool;
use uuid::Uuid;

/// An organization's resources on one provider, as recorded.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub live_instances: HashSet<Uuid>,
    /// (instance, server id) of live instances that have a server.
    pub live_servers: Vec<(Uuid, String)>,
    /// Volumes of live instances, and persistent volumes.
    pub live_volumes: HashSet<String>,
    /// Other recorded volumes of finished instances.
    pub dead_volumes: HashSet<String>,
    /// The zones to look in: every zone of the provider the organization
    /// has activated, and every zone its instances were ever deployed in.
    pub zones: Vec<String>,
}

/// Reads the inventory of `org` on `provider`.
pub async fn load(db: &PgPool, org: Uuid, provider: &str) -> sqlx::Result<Inventory> {
    let instances: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        // Terminated and archived instances own no cloud resource any more,
        // nor does a failed provisioning once what it made was released.
        "SELECT id, provider_server_id FROM instances
          WHERE organization_id = $1 AND provider = $2 AND status NOT IN ('terminated', 'archived')
            AND NOT (status = 'provisioning_failed' AND resources_released_at IS NOT NULL)",
    )
    .bind(org)
    .bind(provider)
    .fetch_all(db)
    .await?;
    let volumes: Vec<(String, bool)> = sqlx::query_as(
        // A persistent volume stays the organization's after its instance.
        "SELECT v.provider_volume_id,
                (i.status NOT IN ('terminated', 'archived')
                 AND NOT (i.status = 'provisioning_failed' AND i.resources_released_at IS NOT NULL))
                OR NOT v.delete_on_terminate
           FROM instance_volumes v JOIN instances i ON i.id = v.instance_id
          WHERE v.organization_id = $1 AND v.provider_code = $2 AND v.status <> 'deleted'",
    )
    .bind(org)
    .bind(provider)
    .fetch_all(db)
    .await?;
    let zones: Vec<String> = sqlx::query_scalar(
        "SELECT z.code FROM organization_activations a
           JOIN zones z ON a.item_kind = 'zone' AND a.item_id = z.id::text
          WHERE a.organization_id = $1 AND z.provider_code = $2
         UNION
         SELECT zone FROM instances WHERE organization_id = $1 AND provider = $2
         ORDER BY 1",
    )
    .bind(org)
    .bind(provider)
    .fetch_all(db)
    .await?;
    Ok(Inventory {
        zones,
        live_instances: instances.iter().map(|(i, _)| *i).collect(),
        live_servers: instances
            .into_iter()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .collect(),
        live_volumes: volumes
            .iter()
            .filter(|v| v.1)
            .map(|v| v.0.clone())
            .collect(),
        dead_volumes: volumes.into_iter().filter(|v| !v.1).map(|v| v.0).collect(),
    })
}

/// Marks recorded volumes the provider no longer has.
pub async fn mark_missing_volumes(db: &PgPool, provider: &str, ids: &[String]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE instance_volumes SET status = 'missing'
          WHERE provider_code = $1 AND provider_volume_id = ANY($2) AND status = 'attached'",
        provider,
        ids,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a volume deleted by reconciliation.
pub async fn mark_deleted_volume(db: &PgPool, provider: &str, id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instance_volumes SET status = 'deleted', deleted_at = now()
          WHERE provider_code = $1 AND provider_volume_id = $2",
    )
    .bind(provider)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}
