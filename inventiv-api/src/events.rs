//! Live events: one Redis pub/sub subscription per API replica feeds a
//! hub; each SSE client receives its organization's events only (one
//! broadcast channel per organization with a live stream, so an event
//! wakes that organization's streams, not every stream of the replica),
//! and access changes, which go to every stream.
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
    /// Every event, for the replica's own machinery (the routing table).
    sender: broadcast::Sender<Event>,
    /// The events of each organization that has live streams here.
    orgs: Arc<Mutex<HashMap<Uuid, broadcast::Sender<Event>>>>,
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
            orgs: Arc::new(Mutex::new(HashMap::new())),
            clients: Arc::new(AtomicI64::new(0)),
            per_user: Arc::new(Mutex::new(HashMap::new())),
            heartbeats: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A receiver of `org`'s events (and access changes) for one of
    /// `user`'s streams, counted as an SSE client until dropped; None when
    /// the user already has `max`.
    pub fn subscribe(&self, user: Uuid, org: Uuid, max: usize) -> Option<Subscription> {
        let mut per_user = self.per_user.lock().ok()?;
        let open = per_user.entry(user).or_insert(0);
        if *open >= max {
            return None;
        }
        let receiver = self
            .orgs
            .lock()
            .ok()?
            .entry(org)
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe();
        *open += 1;
        self.clients.fetch_add(1, Ordering::Relaxed);
        Some(Subscription {
            receiver,
            clients: self.clients.clone(),
            user,
            per_user: self.per_user.clone(),
            org,
            orgs: self.orgs.clone(),
        })
    }

    /// Hands an event to the replica's machinery and to the streams it
    /// concerns: its organization's, or every one for an access change
    /// (which names a user, whatever organization the stream shows).
    pub fn dispatch(&self, event: Event) {
        if let Ok(orgs) = self.orgs.lock() {
            if matches!(*event.message, messages::Event::AccessChanged { .. }) {
                for sender in orgs.values() {
                    let _ = sender.send(event.clone());
                }
            } else if let Some(sender) = orgs.get(&event.message.organization_id()) {
                let _ = sender.send(event.clone());
            }
        }
        let _ = self.sender.send(event);
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
    org: Uuid,
    orgs: Arc<Mutex<HashMap<Uuid, broadcast::Sender<Event>>>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.clients.fetch_sub(1, Ordering::Relaxed);
        // The organization's channel goes with its last stream (this
        // receiver, dropped right after).
        if let Ok(mut orgs) = self.orgs.lock() {
            if orgs.get(&self.org).is_some_and(|s| s.receiver_count() <= 1) {
                orgs.remove(&self.org);
            }
        }
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
                            Ok(message) => state.events.dispatch(Event {
                                message: Arc::new(message),
                                json: payload.into(),
                            }),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use tokio::sync::broadcast::error::TryRecvError;

    fn event(message: messages::Event) -> Event {
        Event {
            json: message.encode().unwrap().into(),
            message: Arc::new(message),
        }
    }

    #[test]
    fn an_event_reaches_its_organizations_streams_only_and_access_changes_reach_all() {
        let hub = Hub::new();
        let (a, b, user) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut in_a = hub.subscribe(user, a, 10).unwrap();
        let mut in_b = hub.subscribe(user, b, 10).unwrap();
        let mut machinery = hub.subscribe_uncounted();

        hub.dispatch(event(messages::Event::BudgetAlert {
            organization_id: a,
            alert_id: 7,
        }));
        assert_eq!(
            in_a.receiver.try_recv().unwrap().message.organization_id(),
            a
        );
        assert!(matches!(in_b.receiver.try_recv(), Err(TryRecvError::Empty)));
        assert_eq!(machinery.try_recv().unwrap().message.organization_id(), a);

        hub.dispatch(event(messages::Event::AccessChanged {
            organization_id: Uuid::nil(),
            subject: AccessSubject::User(user),
        }));
        assert!(in_a.receiver.try_recv().is_ok());
        assert!(in_b.receiver.try_recv().is_ok());
    }

    #[test]
    fn an_organizations_channel_goes_with_its_last_stream() {
        let hub = Hub::new();
        let (org, user) = (Uuid::new_v4(), Uuid::new_v4());
        let first = hub.subscribe(user, org, 10).unwrap();
        let second = hub.subscribe(user, org, 10).unwrap();
        assert_eq!(hub.clients(), 2);
        drop(first);
        assert!(hub.orgs.lock().unwrap().contains_key(&org));
        drop(second);
        assert!(hub.orgs.lock().unwrap().is_empty());
        assert_eq!(hub.clients(), 0);
        // A stream opened afterwards gets a channel again, and its events.
        let mut again = hub.subscribe(user, org, 10).unwrap();
        hub.dispatch(event(messages::Event::BudgetAlert {
            organization_id: org,
            alert_id: 1,
        }));
        assert!(again.receiver.try_recv().is_ok());
    }
}
