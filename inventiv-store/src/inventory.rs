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
    // Terminated and archived instances own no cloud resource any more,
    // nor does a failed provisioning once what it made was released.
    let instances = sqlx::query!(
        "SELECT id, provider_server_id FROM instances
          WHERE organization_id = $1 AND provider = $2 AND status NOT IN ('terminated', 'archived')
            AND NOT (status = 'provisioning_failed' AND resources_released_at IS NOT NULL)",
        org,
        provider,
    )
    .fetch_all(db)
    .await?;
    // A persistent volume stays the organization's after its instance.
    let volumes = sqlx::query!(
        r#"SELECT v.provider_volume_id,
                  (i.status NOT IN ('terminated', 'archived')
                   AND NOT (i.status = 'provisioning_failed' AND i.resources_released_at IS NOT NULL))
                  OR NOT v.delete_on_terminate AS "live!"
             FROM instance_volumes v JOIN instances i ON i.id = v.instance_id
            WHERE v.organization_id = $1 AND v.provider_code = $2 AND v.status <> 'deleted'"#,
        org,
        provider,
    )
    .fetch_all(db)
    .await?;
    let zones = sqlx::query_scalar!(
        r#"SELECT z.code AS "code!" FROM organization_activations a
             JOIN zones z ON a.item_kind = 'zone' AND a.item_id = z.id::text
            WHERE a.organization_id = $1 AND z.provider_code = $2
           UNION
           SELECT zone FROM instances WHERE organization_id = $1 AND provider = $2
           ORDER BY 1"#,
        org,
        provider,
    )
    .fetch_all(db)
    .await?;
    let (live_volumes, dead_volumes): (Vec<_>, Vec<_>) = volumes.into_iter().partition(|v| v.live);
    Ok(Inventory {
        zones,
        live_instances: instances.iter().map(|i| i.id).collect(),
        live_servers: instances
            .into_iter()
            .filter_map(|i| i.provider_server_id.map(|s| (i.id, s)))
            .collect(),
        live_volumes: live_volumes
            .into_iter()
            .map(|v| v.provider_volume_id)
            .collect(),
        dead_volumes: dead_volumes
            .into_iter()
            .map(|v| v.provider_volume_id)
            .collect(),
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
    sqlx::query!(
        "UPDATE instance_volumes SET status = 'deleted', deleted_at = now()
          WHERE provider_code = $1 AND provider_volume_id = $2",
        provider,
        id,
    )
    .execute(db)
    .await?;
    Ok(())
}
