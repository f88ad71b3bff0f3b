//! Instances of the current organization: list, read, timeline, history,
//! and the lifecycle actions (terminate, reinstall, archive). Members read;
//! owners and admins act. Another organization's instance is a 404.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::instance::Transition;
use inventiv_common::messages::{self, CommandKind};
use inventiv_common::{
    Action, ActionStatus, InstanceId, InstanceStatus, OrgId, VolumeStatus, WorkerStatus,
};
use inventiv_store::instances::{apply, Change, TransitionError};
use inventiv_store::outbox::enqueue;
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::drift::UsageReconciliation;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::request_id;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_instances))
        .routes(routes!(get_instance, terminate_instance))
        .routes(routes!(instance_actions))
        .routes(routes!(instance_history))
        .routes(routes!(instance_volumes))
        .routes(routes!(reinstall_instance))
        .routes(routes!(archive_instance))
}

/// An instance as its organization sees it.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Instance {
    pub id: Uuid,
    pub name: String,
    /// The service it is a replica of (null for an instance ended before
    /// services existed).
    pub service_id: Option<Uuid>,
    /// The revision of its service it was made at (see a service's `revision`).
    pub service_revision: i32,
    pub provider: String,
    pub zone: String,
    pub instance_type: String,
    /// Hugging Face id of the model it serves.
    pub model_id: String,
    pub mode: String,
    pub status: InstanceStatus,
    /// 0-100, from the completed provisioning milestones.
    pub progress: i16,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub ip_address: Option<String>,
    /// EUR per hour of its type when deployed (exact decimal).
    pub price_eur_per_hour: Option<String>,
    /// Cost since the provider started it, prorated by the second (exact decimal, 4 places).
    pub cost_so_far_eur: String,
    pub worker_status: Option<WorkerStatus>,
    pub worker_agent_version: Option<String>,
    pub agent_version_mismatch: bool,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    /// The W3C trace id of the request whose course the instance is on (its
    /// deployment, a reinstall, a termination), to find it in the traces;
    /// absent when traces were off.
    pub trace_id: Option<String>,
    /// The latest reconciliation of the proxy's metering with the engines'
    /// token counters (absent until the drift job has seen counters).
    #[schema(value_type = Option<crate::drift::UsageReconciliation>)]
    pub usage_reconciliation: Option<SqlJson<crate::drift::UsageReconciliation>>,
    /// Where it runs on one of the organization's own hosts (provider
    /// `ssh`), while it holds its seat there.
    #[schema(value_type = Option<HostPlacement>)]
    pub host: Option<SqlJson<HostPlacement>>,
}

/// An instance's seat on one of the organization's own hosts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostPlacement {
    pub host_id: Uuid,
    pub label: String,
    /// GPU indices (as nvidia-smi numbers them).
    pub gpus: Vec<i32>,
    /// Its worker ports are the worker settings' ports + 100 × slot.
    pub slot: i32,
}

/// The columns of [`Instance`], for `FROM instances i`: the list's,
/// whose `ORDER BY` is chosen at runtime. [`load`] writes them out again,
/// checked at build time.
const COLUMNS: &str = "i.id, i.name, i.service_id, i.service_revision, i.provider, i.zone, i.instance_type, i.model_id, i.mode, i.status, i.progress,
    i.error_code, i.error_message, i.ip_address, i.price_eur_per_hour::text AS price_eur_per_hour,
    COALESCE(round(i.price_eur_per_hour * extract(epoch FROM (COALESCE(i.terminated_at, now()) - i.started_at))::numeric / 3600, 4), 0)::text
        AS cost_so_far_eur,
    i.worker_status, i.worker_agent_version, i.agent_version_mismatch, i.last_heartbeat_at, i.created_at, i.updated_at,
    i.started_at, i.terminated_at, split_part(i.trace_context, '-', 2) AS trace_id,
    (SELECT to_jsonb(r) - 'instance_id' - 'organization_id' FROM instance_usage_reconciliations r WHERE r.instance_id = i.id)
        AS usage_reconciliation,
    (SELECT jsonb_build_object('host_id', h.id, 'label', h.label, 'gpus', a.gpus, 'slot', a.slot)
       FROM host_allocations a JOIN hosts h ON h.id = a.host_id WHERE a.instance_id = i.id) AS host";

/// Loads one instance of the caller's organization.
pub async fn load(db: impl sqlx::PgExecutor<'_>, org: Uuid, id: Uuid) -> ApiResult<Instance> {
    sqlx::query_as!(
        Instance,
        r#"SELECT i.id, i.name, i.service_id, i.service_revision, i.provider, i.zone, i.instance_type, i.model_id, i.mode,
                  i.status AS "status: InstanceStatus", i.progress, i.error_code, i.error_message, i.ip_address,
                  i.price_eur_per_hour::text AS price_eur_per_hour,
                  COALESCE(round(i.price_eur_per_hour * extract(epoch FROM (COALESCE(i.terminated_at, now()) - i.started_at))::numeric / 3600, 4), 0)::text
                      AS "cost_so_far_eur!",
                  i.worker_status AS "worker_status: WorkerStatus", i.worker_agent_version,
                  i.agent_version_mismatch AS "agent_version_mismatch!",
                  i.last_heartbeat_at, i.created_at, i.updated_at, i.started_at, i.terminated_at,
                  split_part(i.trace_context, '-', 2) AS trace_id,
                  (SELECT to_jsonb(r) - 'instance_id' - 'organization_id' FROM instance_usage_reconciliations r WHERE r.instance_id = i.id)
                      AS "usage_reconciliation: SqlJson<UsageReconciliation>",
                  (SELECT jsonb_build_object('host_id', h.id, 'label', h.label, 'gpus', a.gpus, 'slot', a.slot)
                     FROM host_allocations a JOIN hosts h ON h.id = a.host_id WHERE a.instance_id = i.id)
                      AS "host: SqlJson<HostPlacement>"
             FROM instances i WHERE i.id = $1 AND i.organization_id = $2"#,
        id,
        org,
    )
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

/// The organization's instances in the order asked: those with the given
/// statuses, or all but the archived ones.
pub async fn list(
    db: &sqlx::PgPool,
    org: OrgId,
    statuses: Option<Vec<InstanceStatus>>,
    sort: Sort,
    order: Order,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Instance>> {
    // A runtime statement: a CASE in ORDER BY would cost the default order
    // its index (instances_org: organization, created_at DESC).
    let sort = sort.column();
    let order = match order {
        Order::Desc => "DESC",
        Order::Asc => "ASC",
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM instances i WHERE i.organization_id = $1
            AND (($2::text[] IS NULL AND i.status <> 'archived') OR i.status = ANY($2))
          ORDER BY {sort} {order}, i.id LIMIT $3 OFFSET $4"
    ))
    .bind(org)
    .bind(statuses)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
}

/// A service's replicas, newest first (archived ones left out).
pub async fn of_service(
    db: &sqlx::PgPool,
    org: Uuid,
    service: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Instance>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM instances i WHERE i.organization_id = $1 AND i.service_id = $2
            AND i.status <> 'archived' ORDER BY i.created_at DESC, i.id LIMIT $3"
    ))
    .bind(org)
    .bind(service)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// What the list is sorted by.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    CreatedAt,
    Name,
    Status,
    Progress,
}

impl Sort {
    /// The column: whitelisted, never interpolated from input.
    fn column(self) -> &'static str {
        match self {
            Sort::CreatedAt => "i.created_at",
            Sort::Name => "i.name",
            Sort::Status => "i.status",
            Sort::Progress => "i.progress",
        }
    }
}

/// Sort direction.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// Filtering, sorting and paging.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only these statuses (comma-separated); by default all but `archived`.
    status: Option<String>,
    /// `created_at` by default.
    #[serde(default)]
    #[param(inline)]
    sort: Sort,
    /// `desc` by default.
    #[serde(default)]
    #[param(inline)]
    order: Order,
    /// 1 to 200, default 50.
    limit: Option<u16>,
    offset: Option<u32>,
}

/// The current organization's instances.
#[utoipa::path(get, path = "/instances", tag = "instances", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = [Instance]), (status = 400, body = ErrorBody)))]
async fn list_instances(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Instance>>> {
    caller.require(Action::ViewInstances)?;
    let statuses: Option<Vec<InstanceStatus>> = match q.status.as_deref() {
        None | Some("") => None,
        Some(list) => Some(
            list.split(',')
                .map(|s| InstanceStatus::parse(s.trim()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::validation("INVALID_QUERY", "status: unknown instance status")
                })?,
        ),
    };
    let rows = list(
        &state.db,
        caller.org_id,
        statuses,
        q.sort,
        q.order,
        i64::from(q.limit.unwrap_or(50).clamp(1, 200)),
        i64::from(q.offset.unwrap_or(0)),
    )
    .await?;
    Ok(Json(rows))
}

/// One instance.
#[utoipa::path(get, path = "/instances/{instance_id}", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id")),
    responses((status = 200, body = Instance), (status = 404, body = ErrorBody)))]
async fn get_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Instance>> {
    caller.require(Action::ViewInstances)?;
    load(&state.db, caller.org_id.0, id).await.map(Json)
}

/// One step of an instance's action log.
#[derive(Serialize, ToSchema)]
pub struct ActionLogEntry {
    pub id: i64,
    pub action_type: String,
    pub status: ActionStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: SqlJson<serde_json::Value>,
    pub request_id: Option<String>,
}

/// The instance's action-log timeline, oldest first.
#[utoipa::path(get, path = "/instances/{instance_id}/actions", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id")),
    responses((status = 200, body = [ActionLogEntry]), (status = 404, body = ErrorBody)))]
async fn instance_actions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<ActionLogEntry>>> {
    caller.require(Action::ViewInstances)?;
    load(&state.db, caller.org_id.0, id).await?;
    let rows = sqlx::query_as!(
        ActionLogEntry,
        r#"SELECT id, action_type, status AS "status: ActionStatus", started_at, finished_at, duration_ms, error_code,
                  error_message, metadata AS "metadata: SqlJson<serde_json::Value>", request_id
             FROM action_logs WHERE instance_id = $1 AND organization_id = $2 ORDER BY id LIMIT 1000"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// One status change.
#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    /// Absent for the row recording the creation.
    pub from_status: Option<InstanceStatus>,
    pub to_status: InstanceStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub actor: String,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// The instance's status history, oldest first.
#[utoipa::path(get, path = "/instances/{instance_id}/history", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id")),
    responses((status = 200, body = [HistoryEntry]), (status = 404, body = ErrorBody)))]
async fn instance_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    caller.require(Action::ViewInstances)?;
    load(&state.db, caller.org_id.0, id).await?;
    let rows = sqlx::query_as!(
        HistoryEntry,
        r#"SELECT NULLIF(from_status, 'new') AS "from_status?: InstanceStatus", to_status AS "to_status: InstanceStatus",
                  error_code, error_message, actor, request_id, at
             FROM instance_state_history WHERE instance_id = $1 AND organization_id = $2 ORDER BY id"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// One cloud volume of an instance (`instance_volumes`).
#[derive(Serialize, ToSchema)]
pub struct Volume {
    pub id: Uuid,
    pub provider_volume_id: String,
    pub zone: String,
    /// `block` or `local`.
    pub volume_type: String,
    pub size_gb: i32,
    pub is_boot: bool,
    /// Deleted with the instance at termination (false: persistent).
    pub delete_on_terminate: bool,
    pub status: VolumeStatus,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// The instance's cloud volumes, boot volume first.
#[utoipa::path(get, path = "/instances/{instance_id}/volumes", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id")),
    responses((status = 200, body = [Volume]), (status = 404, body = ErrorBody)))]
async fn instance_volumes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<Volume>>> {
    caller.require(Action::ViewInstances)?;
    load(&state.db, caller.org_id.0, id).await?;
    let rows = sqlx::query_as!(
        Volume,
        r#"SELECT id, provider_volume_id, zone, volume_type, size_gb, is_boot, delete_on_terminate,
                  status AS "status: VolumeStatus", created_at, deleted_at
             FROM instance_volumes WHERE instance_id = $1 AND organization_id = $2
            ORDER BY is_boot DESC, created_at, id"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

fn transition_error(e: TransitionError) -> ApiError {
    match e {
        TransitionError::Illegal(i) => ApiError::conflict(
            "INVALID_TRANSITION",
            format!("an instance cannot go from {} to {}", i.from, i.to),
        ),
        TransitionError::NotFound => ApiError::NotFound,
        TransitionError::Corrupt(s) => ApiError::Internal(anyhow::anyhow!("stored status {s:?}")),
        TransitionError::Db(e) => e.into(),
    }
}

/// Announces an instance's new status to the organization's live views.
pub async fn publish_instance(state: &AppState, org: Uuid, instance: &Instance) {
    let event = messages::Event::InstanceUpdated {
        organization_id: org,
        instance_id: instance.id,
        status: instance.status,
        progress: instance.progress,
    };
    crate::events::publish(state, &event).await;
}

/// Moves an instance of `org` and queues the command, in the caller's
/// transaction: the one path of a user's change to an instance (its own
/// routes, and a service's pause and delete). Returns the instance and
/// whether it changed.
pub async fn transition_in(
    tx: &mut sqlx::PgConnection,
    org: Uuid,
    id: Uuid,
    to: InstanceStatus,
    command: Option<CommandKind>,
    rid: Option<&str>,
) -> ApiResult<(Instance, Transition)> {
    load(&mut *tx, org, id).await?;
    let change = Change {
        instance_id: InstanceId(id),
        to,
        error: None,
        actor: "user",
        request_id: rid,
    };
    let (_, outcome) = apply(tx, change).await.map_err(transition_error)?;
    if to == InstanceStatus::Installing && outcome == Transition::Changed {
        // A reinstall starts the worker's part over: the bootstrap's tries
        // and the milestones after the server came up.
        sqlx::query!(
            "UPDATE instances SET bootstrap_attempts = 0, next_attempt_at = NULL, progress = LEAST(progress, 45) WHERE id = $1",
            id,
        )
        .execute(&mut *tx)
        .await?;
    }
    if let Some(command) = command {
        enqueue(tx, org, id, command, rid).await?;
    }
    Ok((load(&mut *tx, org, id).await?, outcome))
}

/// Moves an instance of the caller's organization and queues the command;
/// a change is recorded in the audit log as `action`, and a replica
/// terminated by hand changes its service (see
/// [`crate::services::replica_terminated_by_hand`]).
async fn act(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    (to, action): (InstanceStatus, &str),
    command: Option<CommandKind>,
) -> ApiResult<Instance> {
    caller.require(Action::ManageInstances)?;
    let org = caller.org_id.0;
    let mut tx = state.db.begin().await?;
    let rid = request_id::current();
    let (instance, outcome) = transition_in(&mut tx, org, id, to, command, rid.as_deref()).await?;
    if outcome == Transition::Changed {
        let entry = audit::Entry::by(caller, action, "instance", id.to_string()).details(
            serde_json::json!({ "name": instance.name, "model": instance.model_id, "provider": instance.provider }),
        );
        audit::record(&mut *tx, entry).await?;
    }
    let service = match instance.service_id {
        Some(service) if to == InstanceStatus::Terminating && outcome == Transition::Changed => {
            crate::services::replica_terminated_by_hand(
                &mut tx,
                org,
                service,
                id,
                caller.role.with_article(),
            )
            .await?
        }
        _ => None,
    };
    tx.commit().await?;
    state.outbox.notify_one();
    publish_instance(state, org, &instance).await;
    if let Some((service, note)) = service {
        crate::services::publish(state, org, &service, &note).await;
    }
    Ok(instance)
}

/// Terminates an instance: the orchestrator deletes its server and volumes.
#[utoipa::path(delete, path = "/instances/{instance_id}", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id")),
    responses((status = 202, body = Instance), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn terminate_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<Instance>)> {
    let instance = act(
        &state,
        &caller,
        id,
        (InstanceStatus::Terminating, "instance.terminated"),
        Some(CommandKind::Terminate),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(instance)))
}

/// Bootstraps the worker again (after `worker_dead` or `startup_failed`).
#[utoipa::path(post, path = "/instances/{instance_id}/reinstall", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id")),
    responses((status = 202, body = Instance), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reinstall_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<Instance>)> {
    let instance = act(
        &state,
        &caller,
        id,
        (InstanceStatus::Installing, "instance.reinstalled"),
        Some(CommandKind::Reinstall),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(instance)))
}

/// Archives a terminated instance (hides it from the default views).
#[utoipa::path(put, path = "/instances/{instance_id}/archive", tag = "instances", security(("bearer" = [])),
    params(("instance_id" = Uuid, Path, description = "instance id")),
    responses((status = 200, body = Instance), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn archive_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Instance>> {
    act(
        &state,
        &caller,
        id,
        (InstanceStatus::Archived, "instance.archived"),
        None,
    )
    .await
    .map(Json)
}
