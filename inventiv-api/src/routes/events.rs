//! `GET /events/stream`: Server-Sent Events for the dashboard — a snapshot
//! of the organization's instances first, then live changes of the caller's
//! current organization only, with keep-alive comments. A stream ends as
//! soon as its session ends or its caller leaves the organization: it
//! re-checks both on every access change (logout, revoked session, password
//! change or reset, removal) and at each re-check tick; a user has a
//! bounded number of streams per replica.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use inventiv_common::messages::{self, AccessSubject};
use inventiv_common::Action;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events::Subscription;
use crate::routes::instances::{self, Order, Sort};
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
              (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many live streams for this user")))]
async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    caller.require(Action::ViewInstances)?;
    // Subscribe before reading the snapshot so nothing falls in between.
    let subscription = state
        .events
        .subscribe(
            caller.user_id.0,
            caller.org_id.0,
            state.config.events_max_streams_per_user,
        )
        .ok_or(ApiError::rate_limited(15))?;
    let instances = instances::list(
        &state.db,
        caller.org_id,
        None,
        Sort::CreatedAt,
        Order::Desc,
        500,
        0,
    )
    .await?;
    let snapshot = serde_json::json!({ "type": "snapshot", "organization_id": caller.org_id, "instances": instances });
    let first = SseEvent::default()
        .event("snapshot")
        .data(snapshot.to_string());
    let period = state.config.events_recheck;
    let live = Live {
        tick: tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        subscription,
        state: state.clone(),
        user: caller.user_id.0,
        session: caller.session_id.0,
        org: caller.org_id.0,
    };
    let live = stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok(event), live))
    });
    let stream = stream::once(async move { Ok(first) }).chain(live);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

/// The live part of one client's stream.
struct Live {
    subscription: Subscription,
    tick: tokio::time::Interval,
    state: AppState,
    user: uuid::Uuid,
    session: uuid::Uuid,
    org: uuid::Uuid,
}

impl Live {
    /// The next event for the client, or None when the stream must end.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            let (recheck, event) = tokio::select! {
                received = self.subscription.receiver.recv() => match received {
                    Ok(e) if matches!(*e.message, messages::Event::AccessChanged { .. }) => {
                        (self.concerns(&e.message), None)
                    }
                    Ok(e) if e.message.organization_id() == self.org => {
                        (false, Some(SseEvent::default().event(e.message.kind()).data(&*e.json)))
                    }
                    Ok(_) => continue,
                    // What was missed may have been an access change.
                    Err(RecvError::Lagged(n)) => (
                        true,
                        Some(SseEvent::default().event("resync").data(format!("{{\"missed\":{n}}}"))),
                    ),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.tick.tick() => (true, None),
            };
            if recheck && !self.still_allowed().await {
                return None;
            }
            if event.is_some() {
                self.state.metrics.sse_events.inc();
                return event;
            }
        }
    }

    fn concerns(&self, e: &messages::Event) -> bool {
        match e {
            messages::Event::AccessChanged {
                organization_id,
                subject: AccessSubject::Everyone,
            } => *organization_id == self.org,
            messages::Event::AccessChanged {
                subject: AccessSubject::User(user),
                ..
            } => *user == self.user,
            _ => false,
        }
    }

    /// The session is live and its user still a member of the stream's
    /// organization (a failed check ends the stream too: the client
    /// reconnects and authenticates again).
    async fn still_allowed(&self) -> bool {
        let allowed = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM user_sessions s
                              JOIN organization_memberships m ON m.user_id = s.user_id AND m.organization_id = $3
                             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()) AS "exists!""#,
            self.session,
            self.user,
            self.org,
        )
        .fetch_one(&self.state.db)
        .await;
        allowed.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "live stream re-check failed; closing it");
            false
        })
    }
}
