//! Live events: JSON objects tagged by `type`, published on the event
//! channel. Every API replica decodes them for its own use (cache
//! invalidation, access re-checks) and forwards those of an organization
//! to its members' SSE streams as they were published: the field names are
//! also the dashboard's contract.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::MessageError;
use crate::worker::{GpuSample, SystemSample, WorkerStatus};
use crate::{InstanceStatus, ServiceEventKind, ServiceState};

/// One live event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// An instance's status or progress changed.
    #[serde(rename = "instance.updated")]
    InstanceUpdated {
        organization_id: Uuid,
        instance_id: Uuid,
        status: InstanceStatus,
        progress: i16,
    },
    /// A service's state, bounds or desired replicas changed; `kind` and
    /// `reason` are those of the entry its timeline just got.
    #[serde(rename = "service.updated")]
    ServiceUpdated {
        organization_id: Uuid,
        service_id: Uuid,
        state: ServiceState,
        desired_replicas: i32,
        kind: ServiceEventKind,
        reason: String,
    },
    /// A worker's heartbeat (throttled per instance).
    #[serde(rename = "worker.heartbeat")]
    WorkerHeartbeat(Box<WorkerHeartbeat>),
    /// An instance's metered usage moved into or out of drift.
    #[serde(rename = "instance.usage_drift")]
    UsageDrift {
        organization_id: Uuid,
        instance_id: Uuid,
        /// The reconciliation as the instance answer carries it (the API's
        /// `UsageReconciliation`: produced and read by the API only).
        usage_reconciliation: serde_json::Value,
    },
    /// A budget crossed one of its thresholds.
    #[serde(rename = "budget.alert")]
    BudgetAlert {
        organization_id: Uuid,
        alert_id: i64,
    },
    /// An offering or its shares changed: routing tables refresh.
    #[serde(rename = "offering.changed")]
    OfferingChanged {
        organization_id: Uuid,
        /// The offering.
        subject: Uuid,
    },
    /// An API key changed or was revoked: key caches drop it.
    #[serde(rename = "api_key.changed")]
    ApiKeyChanged {
        organization_id: Uuid,
        /// The key's public id.
        subject: String,
    },
    /// Sessions or memberships changed: live streams re-check their
    /// caller. Never forwarded to clients.
    #[serde(rename = "access.changed")]
    AccessChanged {
        /// The organization (nil when the change is not about one).
        organization_id: Uuid,
        subject: AccessSubject,
    },
}

/// The heartbeat summary live views show.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    pub organization_id: Uuid,
    pub instance_id: Uuid,
    pub worker_status: WorkerStatus,
    pub engine_ready: bool,
    pub requests_running: u32,
    pub requests_waiting: u32,
    pub gpus: Option<Vec<GpuSample>>,
    pub system: Option<SystemSample>,
}

/// Whose access changed: one user, or every member of the organization
/// (`"*"` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum AccessSubject {
    Everyone,
    User(Uuid),
}

impl From<AccessSubject> for String {
    fn from(s: AccessSubject) -> String {
        match s {
            AccessSubject::Everyone => "*".to_owned(),
            AccessSubject::User(u) => u.to_string(),
        }
    }
}

impl TryFrom<String> for AccessSubject {
    type Error = MessageError;

    fn try_from(s: String) -> Result<AccessSubject, MessageError> {
        if s == "*" {
            return Ok(AccessSubject::Everyone);
        }
        Uuid::parse_str(&s)
            .map(AccessSubject::User)
            .map_err(|_| MessageError::Invalid {
                field: "subject",
                value: s,
                expected: "\"*\" or a user id",
            })
    }
}

impl Event {
    /// The `type` on the wire (also the SSE event name).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::InstanceUpdated { .. } => "instance.updated",
            Event::ServiceUpdated { .. } => "service.updated",
            Event::WorkerHeartbeat(_) => "worker.heartbeat",
            Event::UsageDrift { .. } => "instance.usage_drift",
            Event::BudgetAlert { .. } => "budget.alert",
            Event::OfferingChanged { .. } => "offering.changed",
            Event::ApiKeyChanged { .. } => "api_key.changed",
            Event::AccessChanged { .. } => "access.changed",
        }
    }

    /// The organization it concerns.
    pub fn organization_id(&self) -> Uuid {
        match self {
            Event::WorkerHeartbeat(h) => h.organization_id,
            Event::InstanceUpdated {
                organization_id, ..
            }
            | Event::ServiceUpdated {
                organization_id, ..
            }
            | Event::UsageDrift {
                organization_id, ..
            }
            | Event::BudgetAlert {
                organization_id, ..
            }
            | Event::OfferingChanged {
                organization_id, ..
            }
            | Event::ApiKeyChanged {
                organization_id, ..
            }
            | Event::AccessChanged {
                organization_id, ..
            } => *organization_id,
        }
    }

    /// The payload published on the channel.
    pub fn encode(&self) -> Result<String, MessageError> {
        Ok(serde_json::to_string(self)?)
    }

    /// Decodes a payload read from the channel.
    pub fn decode(payload: &str) -> Result<Event, MessageError> {
        Ok(serde_json::from_str(payload)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    /// The payloads as the producers wrote them by hand before these types:
    /// each decodes, and encodes back to the same JSON.
    #[test]
    fn every_event_keeps_its_wire_shape() {
        let (org, inst) = (Uuid::new_v4(), Uuid::new_v4());
        let payloads = [
            json!({ "type": "instance.updated", "organization_id": org, "instance_id": inst,
                    "status": "booting", "progress": 35 }),
            json!({ "type": "service.updated", "organization_id": org, "service_id": inst,
                    "state": "paused", "desired_replicas": 0, "kind": "paused", "reason": "paused by a@b.c" }),
            json!({ "type": "worker.heartbeat", "organization_id": org, "instance_id": inst,
                    "worker_status": "ready", "engine_ready": true, "requests_running": 2,
                    "requests_waiting": 0, "gpus": null, "system": null }),
            json!({ "type": "instance.usage_drift", "organization_id": org, "instance_id": inst,
                    "usage_reconciliation": { "status": "alert", "drift_ratio": 0.5 } }),
            json!({ "type": "budget.alert", "organization_id": org, "alert_id": 7 }),
            json!({ "type": "offering.changed", "organization_id": org, "subject": inst }),
            json!({ "type": "api_key.changed", "organization_id": org, "subject": "abc123" }),
            json!({ "type": "access.changed", "organization_id": org, "subject": "*" }),
            json!({ "type": "access.changed", "organization_id": Uuid::nil(), "subject": inst }),
        ];
        for payload in payloads {
            let event = Event::decode(&payload.to_string()).unwrap();
            assert_eq!(event.kind(), payload["type"]);
            assert_eq!(
                event.organization_id().to_string(),
                payload["organization_id"]
            );
            let back: serde_json::Value = serde_json::from_str(&event.encode().unwrap()).unwrap();
            assert_eq!(back, payload);
        }
    }

    #[test]
    fn a_malformed_event_is_refused() {
        for payload in [
            json!({ "type": "instance.updated", "organization_id": Uuid::nil() }),
            json!({ "type": "no.such.event", "organization_id": Uuid::nil() }),
            json!({ "type": "access.changed", "organization_id": Uuid::nil(), "subject": "someone" }),
        ] {
            assert!(Event::decode(&payload.to_string()).is_err(), "{payload}");
        }
    }
}
