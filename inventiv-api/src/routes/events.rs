//! `GET /events/stream`: Server-Sent Events for the dashboard — a snapshot
//! of the organization's instances first, then live changes of the caller's
//! current organization only, with keep-alive comments.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use inventiv_common::Action;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::routes::instances::{Instance, COLUMNS};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

/// Live events of the current organization as `text/event-stream`: first a
/// `snapshot` event (the instances), then `instance.updated`,
/// `worker.heartbeat`, ... events; a `resync` event when this client fell
/// behind (reload the snapshot).
#[utoipa::path(get, path = "/events/stream", tag = "instances", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "an SSE stream", content_type = "text/event-stream"),
              (status = 401, body = ErrorBody)))]
async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    caller.require(Action::ViewInstances)?;
    // Subscribe before reading the snapshot so nothing falls in between.
    let subscription = state.events.subscribe();
    let instances: Vec<Instance> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM instances i WHERE i.organization_id = $1 AND i.status <> 'archived' ORDER BY i.created_at DESC LIMIT 500"
    ))
    .bind(caller.org_id.0)
    .fetch_all(&state.db)
    .await?;
    let snapshot = serde_json::json!({ "type": "snapshot", "organization_id": caller.org_id, "instances": instances });
    let first = SseEvent::default()
        .event("snapshot")
        .data(snapshot.to_string());
    let org = caller.org_id.0;
    let live = stream::unfold(subscription, move |mut sub| async move {
        loop {
            match sub.receiver.recv().await {
                Ok(e) if e.organization_id == org => {
                    let event = SseEvent::default().event(e.kind.clone()).data(&*e.json);
                    return Some((Ok(event), sub));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let event = SseEvent::default()
                        .event("resync")
                        .data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(event), sub));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = stream::once(async move { Ok(first) }).chain(live);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}
