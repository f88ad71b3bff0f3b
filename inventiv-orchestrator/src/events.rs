//! Live events for the dashboards: every change of an instance is published
//! on Redis pub/sub, so any API replica can push it to its SSE clients.

use serde_json::json;
use uuid::Uuid;

/// The pub/sub channel under the deployment's prefix.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}events")
}

/// Publishes an instance change; a lost event is repaired by the next one
/// and by the snapshot a reconnecting client gets, so errors are only logged.
pub async fn instance_changed(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    org: Uuid,
    instance: Uuid,
    status: &str,
    progress: i16,
) {
    let event = json!({
        "type": "instance.updated",
        "organization_id": org,
        "instance_id": instance,
        "status": status,
        "progress": progress,
    });
    let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg(channel(prefix))
        .arg(event.to_string())
        .query_async(redis)
        .await;
    if let Err(e) = published {
        tracing::warn!(error = %e, instance_id = %instance, "event not published");
    }
}
