//! Live events for the dashboards: every change of an instance is published
//! on Redis pub/sub, so any API replica can push it to its SSE clients. The
//! event is `inventiv_common::messages::Event::InstanceUpdated`.

use inventiv_common::messages::{self, Event};
use inventiv_common::InstanceStatus;
use uuid::Uuid;

/// The pub/sub channel under the deployment's prefix.
pub fn channel(prefix: &str) -> String {
    messages::event_channel(prefix)
}

/// Publishes an event; a lost event is repaired by the next one and by the
/// snapshot a reconnecting client gets, so errors are only logged.
pub async fn publish(redis: &mut redis::aio::ConnectionManager, prefix: &str, event: &Event) {
    let payload = match event.encode() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, kind = event.kind(), "event not encoded");
            return;
        }
    };
    let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg(channel(prefix))
        .arg(payload)
        .query_async(redis)
        .await;
    if let Err(e) = published {
        tracing::warn!(error = %e, kind = event.kind(), "event not published");
    }
}

/// Publishes an instance change.
pub async fn instance_changed(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    org: Uuid,
    instance: Uuid,
    status: InstanceStatus,
    progress: i16,
) {
    let event = Event::InstanceUpdated {
        organization_id: org,
        instance_id: instance,
        status,
        progress,
    };
    publish(redis, prefix, &event).await;
}
