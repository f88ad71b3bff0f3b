//! Draining a service's replicas taken away (scale-down, pause, delete).
//!
//! A `ready` replica taken away first becomes `draining`: routing only
//! sends requests to `ready` workers (`proxy/routing.rs`), so once every
//! API replica has refreshed its table (at once on the instance event,
//! within a second otherwise) it gets no new request. It is terminated
//! (the instance terminate path) when drained — its worker's heartbeat,
//! received at least [`SETTLE`] after the drain began, reports no request
//! running or waiting in its engine; the engine counts the requests of
//! every API replica, streams included, so this holds across replicas —
//! or when the drain timeout (`INVENTIV_DRAIN_TIMEOUT_SECS`) has passed,
//! whatever is still in flight then. A replica not ready serves nothing
//! and is terminated at once.

use std::time::Duration;

use inventiv_common::instance::Transition;
use inventiv_common::messages::CommandKind;
use inventiv_common::{InstanceStatus, ServiceEventKind};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::routes::instances::{self, Instance};
use crate::services::{self, Note};
use crate::state::AppState;

/// How long after the drain began a heartbeat must be to count: the
/// routing tables' refresh (a second) and a request on its way to the
/// engine are behind it.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Takes a replica away in the caller's transaction: `draining` when it
/// serves (or already drains), `terminating` with its command otherwise.
pub async fn take_away(
    tx: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    request_id: Option<&str>,
) -> ApiResult<(Instance, Transition)> {
    let status = sqlx::query_scalar!(
        "SELECT status FROM instances WHERE id = $1 AND organization_id = $2 FOR UPDATE",
        id,
        org
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    match InstanceStatus::parse(&status) {
        Some(InstanceStatus::Ready | InstanceStatus::Draining) => {
            instances::transition_in(tx, org, id, InstanceStatus::Draining, None, request_id).await
        }
        _ => {
            instances::transition_in(
                tx,
                org,
                id,
                InstanceStatus::Terminating,
                Some(CommandKind::Terminate),
                request_id,
            )
            .await
        }
    }
}

/// A drained replica, terminated.
pub struct Ended {
    pub org: Uuid,
    pub service_id: Uuid,
    pub instance: Instance,
    pub note: Note,
}

/// Terminates the draining replicas that are drained or past the timeout,
/// each in its own transaction with a `replica_terminated` entry saying
/// which; returns them to announce.
pub async fn finish(state: &AppState) -> ApiResult<Vec<Ended>> {
    let due = sqlx::query!(
        r#"SELECT id, organization_id, service_id AS "service_id!",
                  COALESCE(last_heartbeat_at > status_changed_at + make_interval(secs => $1)
                           AND COALESCE(worker_requests_running, 0) = 0
                           AND COALESCE(worker_requests_waiting, 0) = 0, false) AS "idle!",
                  extract(epoch FROM now() - status_changed_at)::float8 AS "secs!"
             FROM instances
            WHERE status = 'draining' AND service_id IS NOT NULL"#,
        SETTLE.as_secs_f64(),
    )
    .fetch_all(&state.db)
    .await?;
    let timeout = state.config.drain_timeout.as_secs_f64();
    let mut ended = Vec::new();
    for d in due {
        let reason = if d.idle {
            format!(
                "replica {} drained (no request in flight) after {:.0} s: terminated",
                d.id, d.secs
            )
        } else if d.secs >= timeout {
            format!(
                "replica {} still busy or silent at the drain timeout ({timeout:.0} s): terminated",
                d.id
            )
        } else {
            continue;
        };
        let mut tx = state.db.begin().await?;
        let (instance, outcome) = instances::transition_in(
            &mut tx,
            d.organization_id,
            d.id,
            InstanceStatus::Terminating,
            Some(CommandKind::Terminate),
            None,
        )
        .await?;
        if outcome != Transition::Changed {
            continue;
        }
        let note = Note {
            kind: ServiceEventKind::ReplicaTerminated,
            from_replicas: None,
            to_replicas: None,
            reason,
        };
        services::record(&mut tx, d.organization_id, d.service_id, &note).await?;
        tx.commit().await?;
        ended.push(Ended {
            org: d.organization_id,
            service_id: d.service_id,
            instance,
            note,
        });
    }
    if !ended.is_empty() {
        state.outbox.notify_one();
    }
    Ok(ended)
}
