//! The worker agents' side door: registration and heartbeats, authenticated
//! by the per-instance worker token (never by address). The latest state is
//! kept on the instance; GPU and system samples become time series, both
//! written in batches off the request path (`crate::heartbeats`). With
//! traces on, the first heartbeat of a starting worker is a span of its
//! deployment's trace.

use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use inventiv_common::messages;
use inventiv_common::telemetry;
use inventiv_common::worker::{Heartbeat, Register};
use inventiv_common::InstanceStatus;
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::tokens;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::heartbeats::Received;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(heartbeat))
}

/// Instance states in which a worker has nothing left to report.
const FINISHED: [InstanceStatus; 3] = [
    InstanceStatus::Terminating,
    InstanceStatus::Terminated,
    InstanceStatus::Archived,
];

/// The instance a worker token belongs to.
pub struct Worker {
    pub instance_id: Uuid,
    pub organization_id: Uuid,
    pub status: InstanceStatus,
}

impl FromRequestParts<AppState> for Worker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Worker> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| tokens::well_formed(t))
            .ok_or(ApiError::Unauthenticated)?;
        let worker = sqlx::query_as!(
            Worker,
            r#"SELECT id AS instance_id, organization_id, status AS "status: InstanceStatus"
                 FROM instances WHERE worker_token_hash = $1"#,
            tokens::hash(token),
        )
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
        Ok(worker)
    }
}

impl Worker {
    fn check(&self, claimed: Uuid) -> ApiResult<()> {
        if claimed != self.instance_id {
            return Err(ApiError::Forbidden {
                code: "WORKER_INSTANCE_MISMATCH",
                message: "this worker token belongs to another instance".into(),
            });
        }
        if FINISHED.contains(&self.status) {
            return Err(ApiError::conflict(
                "INSTANCE_FINISHED",
                format!("the instance is {}; stop the agent", self.status),
            ));
        }
        Ok(())
    }
}

/// What the control plane answers a worker.
#[derive(Serialize, ToSchema)]
pub struct WorkerAck {
    /// Always `accepted`.
    pub status: &'static str,
    /// The instance's lifecycle status, so the agent can tell it is expected to drain.
    pub instance_status: InstanceStatus,
}

/// Registers an agent start (once per boot).
#[utoipa::path(post, path = "/internal/workers/register", operation_id = "register_worker", tag = "workers", security(("worker" = [])),
    request_body = Register,
    responses((status = 200, body = WorkerAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    worker: Worker,
    Json(body): Json<Register>,
) -> ApiResult<Json<WorkerAck>> {
    body.validate()?;
    worker.check(body.instance_id)?;
    let mode = match body.mode {
        inventiv_common::worker::WorkerMode::Mono => "mono",
        inventiv_common::worker::WorkerMode::Multi => "multi",
    };
    // The ports are the ones the orchestrator installed, never the
    // worker's word: a claim of others is refused (routing would follow it).
    let registered = sqlx::query!(
        "UPDATE instances SET worker_boot_id = $2, worker_agent_version = $3, worker_bundle_sha256 = $4,
                worker_mode = $5, worker_status = 'starting',
                worker_engine_ready = false, worker_registered_at = now(), last_heartbeat_at = now(), updated_at = now()
          WHERE id = $1 AND COALESCE(worker_agent_port = $6, true) AND COALESCE(worker_engine_port = $7, true)",
        worker.instance_id,
        body.boot_id,
        body.agent.version,
        body.agent.bundle_sha256,
        mode,
        i32::from(body.agent_port),
        i32::from(body.engine_port),
    )
    .execute(&state.db)
    .await?;
    if registered.rows_affected() == 0 {
        tracing::warn!(instance_id = %worker.instance_id, agent_port = body.agent_port, engine_port = body.engine_port,
                       "worker claimed ports other than the installed ones; registration refused");
        return Err(ApiError::conflict(
            "WORKER_PORT_MISMATCH",
            "the ports claimed are not the ones installed on this instance",
        ));
    }
    tracing::info!(instance_id = %worker.instance_id, boot_id = %body.boot_id, agent_version = %body.agent.version, "worker registered");
    Ok(Json(WorkerAck {
        status: "accepted",
        instance_status: worker.status,
    }))
}

/// Records a heartbeat (schema version 1 or 2): the latest state on the
/// instance, and the samples (GPU, system, engine token counters) as time series.
/// One sooner than `INVENTIV_HEARTBEAT_MIN_INTERVAL_MS` after the last one
/// accepted is refused (429 `HEARTBEAT_TOO_FREQUENT`, `Retry-After`) and not stored.
#[utoipa::path(post, path = "/internal/workers/heartbeat", tag = "workers", security(("worker" = [])),
    request_body = Heartbeat,
    responses((status = 200, body = WorkerAck), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "`HEARTBEAT_TOO_FREQUENT`: sooner than the minimum interval after the last accepted heartbeat; see Retry-After")))]
async fn heartbeat(
    State(state): State<AppState>,
    worker: Worker,
    Json(body): Json<Heartbeat>,
) -> ApiResult<Json<WorkerAck>> {
    // Written with this replica's next batch (`crate::heartbeats`).
    body.validate()?;
    worker.check(body.instance_id)?;
    let sent_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&body.sent_at)
        .map_err(|_| ApiError::validation("VALIDATION_ERROR", "sent_at: an RFC 3339 time"))?
        .with_timezone(&Utc);
    if let Err(wait) = state
        .heartbeat_limit
        .admit(worker.instance_id, std::time::Instant::now())
    {
        return Err(ApiError::TooManyRequests {
            code: "HEARTBEAT_TOO_FREQUENT",
            message: format!(
                "one heartbeat per {} ms at most; send the next one later",
                state.config.heartbeat_min_interval.as_millis()
            ),
            retry_after_secs: wait.as_millis().div_ceil(1000).try_into().unwrap_or(1),
        });
    }
    // Samples are stamped on arrival: agents' clocks are not trusted; sent_at
    // is kept for diagnosis only.
    let now = Utc::now();
    let span = first_heartbeat(&state, &worker).await?;
    if state.events.heartbeat_due(worker.instance_id) {
        let event = messages::Event::WorkerHeartbeat(Box::new(messages::WorkerHeartbeat {
            organization_id: worker.organization_id,
            instance_id: worker.instance_id,
            worker_status: body.status,
            engine_ready: body.engine.ready,
            requests_running: body.engine.requests_running,
            requests_waiting: body.engine.requests_waiting,
            gpus: body.gpus.clone(),
            system: body.system.clone(),
        }));
        crate::events::publish(&state, &event)
            .instrument(span.clone())
            .await;
    }
    span.in_scope(|| {
        state.heartbeats.push(Received {
            instance_id: worker.instance_id,
            organization_id: worker.organization_id,
            at: now,
            body,
        })
    });
    tracing::debug!(instance_id = %worker.instance_id, skew_ms = (now - sent_at).num_milliseconds(), "heartbeat");
    Ok(Json(WorkerAck {
        status: "accepted",
        instance_status: worker.status,
    }))
}

/// A span in the deployment's trace for the first heartbeat since the
/// agent registered, while the instance starts up; `Span::none()` for any
/// other, and always when traces are off (then nothing is read).
async fn first_heartbeat(state: &AppState, worker: &Worker) -> ApiResult<tracing::Span> {
    if !telemetry::enabled()
        || !matches!(
            worker.status,
            InstanceStatus::Installing | InstanceStatus::Starting
        )
    {
        return Ok(tracing::Span::none());
    }
    // Registration stamps both at once; a heartbeat moves the second on.
    let trace = sqlx::query_scalar!(
        "SELECT trace_context FROM instances
          WHERE id = $1 AND last_heartbeat_at IS NOT DISTINCT FROM worker_registered_at",
        worker.instance_id,
    )
    .fetch_optional(&state.db)
    .await?
    .flatten();
    let Some(trace) = trace else {
        return Ok(tracing::Span::none());
    };
    let span = tracing::info_span!("first_heartbeat", instance_id = %worker.instance_id);
    telemetry::set_parent(&span, Some(&trace));
    Ok(span)
}

/// Deletes samples older than `retention` (token counters older than
/// `counter_retention`); returns how many rows went.
pub async fn prune_samples(
    db: &sqlx::PgPool,
    retention: std::time::Duration,
    counter_retention: std::time::Duration,
) -> sqlx::Result<u64> {
    let counters = sqlx::query!(
        "DELETE FROM instance_token_counters WHERE sampled_at < $1",
        Utc::now() - counter_retention,
    )
    .execute(db)
    .await?;
    let cutoff = Utc::now() - retention;
    let gpu = sqlx::query!("DELETE FROM gpu_samples WHERE sampled_at < $1", cutoff)
        .execute(db)
        .await?;
    let sys = sqlx::query!("DELETE FROM system_samples WHERE sampled_at < $1", cutoff)
        .execute(db)
        .await?;
    Ok(gpu.rows_affected() + sys.rows_affected() + counters.rows_affected())
}
