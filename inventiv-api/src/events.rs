//! Live events: one Redis pub/sub subscription per API replica feeds a
//! broadcast hub; each SSE client takes the events of its organization.
//! Publishers (the orchestrator, the heartbeat handler) only talk to Redis,
//! so any replica can serve any client. Nothing polls the database. The
//! events are `inventiv_common::messages::Event`s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use inventiv_common::messages::{self, AccessSubject};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::state::AppState;

/// An event as received from the channel: decoded, and the payload as
/// published (what SSE clients get).
#[derive(Debug, Clone)]
pub struct Event {
    pub message: Arc<messages::Event>,
    pub json: Arc<str>,
}

/// The replica's fan-out point and its SSE client count.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Event>,
    clients: Arc<AtomicI64>,
    /// Live streams per user on this replica.
    per_user: Arc<Mutex<HashMap<Uuid, usize>>>,
    /// Last heartbeat event published per instance (throttling).
    heartbeats: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

/// Heartbeat events are sent at most this often per instance.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

impl Hub {
    pub fn new() -> Hub {
        let (sender, _) = broadcast::channel(1024);
        Hub {
            sender,
            clients: Arc::new(AtomicI64::new(0)),
            per_user: Arc::new(Mutex::new(HashMap::new())),
            heartbeats: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A receiver of every event for one of `user`'s streams, counted as an
    /// SSE client until dropped; None when the user already has `max`.
    pub fn subscribe(&self, user: Uuid, max: usize) -> Option<Subscription> {
        let mut per_user = self.per_user.lock().ok()?;
        let open = per_user.entry(user).or_insert(0);
        if *open >= max {
            return None;
        }
        *open += 1;
        self.clients.fetch_add(1, Ordering::Relaxed);
        Some(Subscription {
            receiver: self.sender.subscribe(),
            clients: self.clients.clone(),
            user,
            per_user: self.per_user.clone(),
        })
    }

    /// A receiver for the replica's own machinery (not counted as a client).
    pub fn subscribe_uncounted(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// SSE clients connected to this replica.
    pub fn clients(&self) -> i64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Whether a heartbeat event for `instance` is due (and marks it sent).
    pub fn heartbeat_due(&self, instance: Uuid) -> bool {
        let Ok(mut last) = self.heartbeats.lock() else {
            return false;
        };
        let now = Instant::now();
        match last.get(&instance) {
            Some(t) if now.duration_since(*t) < HEARTBEAT_EVERY => false,
            _ => {
                last.insert(instance, now);
                true
            }
        }
    }
}

/// One client's view of the hub.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Event>,
    clients: Arc<AtomicI64>,
    user: Uuid,
    per_user: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut per_user) = self.per_user.lock() {
            if let Some(open) = per_user.get_mut(&self.user) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    per_user.remove(&self.user);
                }
            }
        }
    }
}

/// The channel under the deployment's prefix.
pub fn channel(state: &AppState) -> String {
    messages::event_channel(&state.config.redis_prefix)
}

/// Publishes an event to every replica.
pub async fn publish(state: &AppState, event: &messages::Event) {
    let payload = match event.encode() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, kind = event.kind(), "event not encoded");
            return;
        }
    };
    let mut redis = state.redis.clone();
    let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg(channel(state))
        .arg(payload)
        .query_async(&mut redis)
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, kind = event.kind(), "event not published");
    }
}

/// Tells every replica's live streams that `user`'s sessions or
/// memberships changed (with `user` None: every member of `org`), so they
/// re-check their caller at once.
pub async fn access_changed(state: &AppState, org: Option<Uuid>, user: Option<Uuid>) {
    let event = messages::Event::AccessChanged {
        organization_id: org.unwrap_or(Uuid::nil()),
        subject: user.map_or(AccessSubject::Everyone, AccessSubject::User),
    };
    publish(state, &event).await;
}

/// Feeds the hub from Redis until shutdown, reconnecting after errors.
pub async fn subscribe(state: AppState, shutdown: CancellationToken) {
    let channel = channel(&state);
    while !shutdown.is_cancelled() {
        match state.redis_client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.subscribe(&channel).await {
                    tracing::warn!(error = %e, "event subscription failed; retrying");
                } else {
                    let mut messages = pubsub.into_on_message();
                    loop {
                        let message = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            m = messages.next() => m,
                        };
                        let Some(message) = message else { break };
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match messages::Event::decode(&payload) {
                            Ok(message) => {
                                let _ = state.events.sender.send(Event {
                                    message: Arc::new(message),
                                    json: payload.into(),
                                });
                            }
                            Err(e) => tracing::warn!(error = %e, "malformed event ignored"),
                        }
                    }
                    tracing::warn!("event subscription lost; reconnecting");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the event subscription; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
