//! The current organization's own GPU servers (hosts of the `ssh`
//! provider): register, list, read and their history. Members read; owners
//! and admins register. Another organization's host is a 404. Verifying,
//! draining and removing are in [`super::host_actions`].

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::host::{self, HostStatus, MAX_GPUS, MAX_GPU_MODEL, MAX_LABEL, VRAM_MIB};
use inventiv_common::{Action, OrgId};
use inventiv_store::host_alloc::Seats;
use inventiv_store::hosts::{record, Change};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::accounts::is_unique_violation;
use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::request_id;
use crate::routes::budget_limits::amount;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_hosts, register_host))
        .routes(routes!(get_host))
        .routes(routes!(host_history))
}

/// A host as its organization sees it.
#[derive(Serialize, ToSchema)]
pub struct Host {
    pub id: Uuid,
    /// An IP address or a DNS name.
    pub address: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    pub label: String,
    /// The pool (the `ssh` provider's zone), e.g. `paris-rack-2`.
    pub pool: String,
    pub gpu_count: i32,
    pub gpu_model: Option<String>,
    /// Memory per GPU, in MiB.
    pub gpu_vram_mib: Option<i32>,
    /// Whether the GPUs were read with nvidia-smi on the host (else declared).
    pub gpus_detected: bool,
    /// EUR per hour, an exact decimal; null: the host has no cost.
    pub hourly_cost_eur: Option<String>,
    pub status: HostStatus,
    /// The pinned SSH host key (`SHA256:…`, as `ssh-keygen -l` shows it);
    /// null before the first successful verification.
    pub host_key_fingerprint: Option<String>,
    /// The last verification; null before the first.
    pub last_check: Option<HostCheck>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
    /// The engines seated on it now (its GPUs in use).
    pub seats: Vec<HostSeat>,
}

/// An engine seated on a host.
#[derive(Serialize, ToSchema)]
pub struct HostSeat {
    pub instance_id: Uuid,
    /// GPU indices (as nvidia-smi numbers them).
    pub gpus: Vec<i32>,
    /// Its worker ports are the worker settings' ports + 100 × slot.
    pub slot: i32,
    /// The instance ended: its engine is being stopped and its install
    /// removed (waits for an unreachable host to answer); the GPUs stay
    /// taken meanwhile.
    pub releasing: bool,
}

/// `hosts` with their seats filled in.
pub(crate) async fn with_seats(
    db: &sqlx::PgPool,
    org: OrgId,
    mut hosts: Vec<Host>,
) -> ApiResult<Vec<Host>> {
    let seats = inventiv_store::host_alloc::list(db, Seats::Organization(org.0)).await?;
    for a in seats {
        if let Some(h) = hosts.iter_mut().find(|h| h.id == a.host_id) {
            h.seats.push(HostSeat {
                instance_id: a.instance_id,
                gpus: a.gpus,
                slot: a.slot,
                releasing: a.releasing,
            });
        }
    }
    Ok(hosts)
}

/// One host with its seats.
pub(crate) async fn host_view(db: &sqlx::PgPool, org: OrgId, id: Uuid) -> ApiResult<Host> {
    let row = load_row(db, org, id).await?;
    let mut one = with_seats(db, org, vec![row.into()]).await?;
    one.pop().ok_or(ApiError::NotFound)
}

/// The outcome of the last verification.
#[derive(Serialize, ToSchema)]
pub struct HostCheck {
    pub ok: bool,
    pub message: String,
    pub at: DateTime<Utc>,
}

pub(crate) struct HostRow {
    pub id: Uuid,
    pub address: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    pub label: String,
    pub pool: String,
    pub gpu_count: i32,
    pub gpu_model: Option<String>,
    pub gpu_vram_mib: Option<i32>,
    pub gpus_detected: bool,
    pub hourly_cost_eur: Option<String>,
    pub status: HostStatus,
    pub ssh_known_hosts: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_check_ok: Option<bool>,
    pub last_check_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

impl From<HostRow> for Host {
    fn from(r: HostRow) -> Host {
        let last_check = match (r.last_check_ok, r.last_checked_at) {
            (Some(ok), Some(at)) => Some(HostCheck {
                ok,
                message: r.last_check_message.unwrap_or_default(),
                at,
            }),
            _ => None,
        };
        Host {
            id: r.id,
            address: r.address,
            ssh_port: r.ssh_port,
            ssh_user: r.ssh_user,
            label: r.label,
            pool: r.pool,
            gpu_count: r.gpu_count,
            gpu_model: r.gpu_model,
            gpu_vram_mib: r.gpu_vram_mib,
            gpus_detected: r.gpus_detected,
            hourly_cost_eur: r.hourly_cost_eur,
            status: r.status,
            host_key_fingerprint: r
                .ssh_known_hosts
                .as_deref()
                .and_then(inventiv_store::hosts::fingerprint),
            last_check,
            created_at: r.created_at,
            updated_at: r.updated_at,
            removed_at: r.removed_at,
            seats: Vec::new(),
        }
    }
}

/// One of the organization's hosts, as stored; 404 when it is not theirs.
pub(crate) async fn load_row(db: impl PgExecutor<'_>, org: OrgId, id: Uuid) -> ApiResult<HostRow> {
    sqlx::query_as!(
        HostRow,
        r#"SELECT id, address, ssh_port, ssh_user, label, pool, gpu_count, gpu_model, gpu_vram_mib,
                  gpus_detected, hourly_cost_eur::text AS hourly_cost_eur, status AS "status: HostStatus",
                  ssh_known_hosts, last_checked_at, last_check_ok, last_check_message,
                  created_at, updated_at, removed_at
             FROM hosts WHERE id = $1 AND organization_id = $2"#,
        id,
        org as OrgId,
    )
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

/// A host to register. The GPUs are declared here; a verification reads
/// them with nvidia-smi when the host has it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterHost {
    /// An IP address or a DNS name (at most 253 characters).
    address: String,
    /// 1 to 65535, default 22.
    ssh_port: Option<i32>,
    /// The account the control plane logs in as (letters, digits, `.`, `_`, `-`; at most 32).
    ssh_user: String,
    /// 1 to 100 characters.
    label: String,
    /// The pool: 1 to 63 letters, digits, `-`, `_`, `.` (e.g. `paris-rack-2`).
    pool: String,
    /// 0 to 16, default 0.
    gpu_count: Option<i32>,
    /// Required with GPUs: 1 to 100 characters (e.g. `NVIDIA L4`).
    gpu_model: Option<String>,
    /// Required with GPUs: memory per GPU in MiB, 1024 to 1048576.
    gpu_vram_mib: Option<i32>,
    /// EUR per hour (amortization, power): a non-negative decimal string,
    /// up to 8 digits and 4 decimals; absent: no cost.
    hourly_cost_eur: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::validation("VALIDATION_ERROR", message)
}

/// The body's values, within bounds (the GPU model and VRAM only with GPUs).
fn check(body: RegisterHost) -> ApiResult<RegisterHost> {
    if !host::valid_address(&body.address) {
        return Err(invalid("address: an IP address or a DNS name"));
    }
    if body.ssh_port.is_some_and(|p| !(1..=65535).contains(&p)) {
        return Err(invalid("ssh_port: 1 to 65535"));
    }
    if !host::valid_ssh_user(&body.ssh_user) {
        return Err(invalid(
            "ssh_user: 1 to 32 letters, digits, '.', '_', '-', not starting with '-'",
        ));
    }
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL {
        return Err(invalid("label: 1 to 100 characters"));
    }
    if !host::valid_pool(&body.pool) {
        return Err(invalid("pool: 1 to 63 letters, digits, '-', '_', '.'"));
    }
    let gpus = body.gpu_count.unwrap_or(0);
    if !(0..=MAX_GPUS).contains(&gpus) {
        return Err(invalid("gpu_count: 0 to 16"));
    }
    let model_ok = |m: &String| {
        let m = m.trim();
        !m.is_empty() && m.chars().count() <= MAX_GPU_MODEL
    };
    if body.gpu_model.as_ref().is_some_and(|m| !model_ok(m)) {
        return Err(invalid("gpu_model: 1 to 100 characters"));
    }
    if body.gpu_vram_mib.is_some_and(|v| !VRAM_MIB.contains(&v)) {
        return Err(invalid("gpu_vram_mib: 1024 to 1048576 (MiB per GPU)"));
    }
    if gpus > 0 && (body.gpu_model.is_none() || body.gpu_vram_mib.is_none()) {
        return Err(invalid(
            "gpu_model and gpu_vram_mib are required with gpu_count above 0",
        ));
    }
    let hourly_cost_eur = amount("hourly_cost_eur", body.hourly_cost_eur, 8, 4)?;
    Ok(RegisterHost {
        label: label.to_owned(),
        gpu_count: Some(gpus),
        gpu_model: body.gpu_model.map(|m| m.trim().to_owned()),
        hourly_cost_eur,
        ..body
    })
}

/// Registers a host (status `registered`); verify it once its
/// `authorized_keys` holds the organization's key
/// (`GET /organizations/current/ssh-key`).
#[utoipa::path(post, path = "/hosts", tag = "hosts", security(("bearer" = [])),
    request_body = RegisterHost,
    responses((status = 201, body = Host), (status = 409, body = ErrorBody, description = "HOST_EXISTS: this address and port are already registered")))]
async fn register_host(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RegisterHost>,
) -> ApiResult<(StatusCode, Json<Host>)> {
    caller.require(Action::ManageHosts)?;
    let body = check(body)?;
    let id = Uuid::new_v4();
    let port = body.ssh_port.unwrap_or(i32::from(host::DEFAULT_SSH_PORT));
    let mut tx = state.db.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO hosts (id, organization_id, address, ssh_port, ssh_user, label, pool, gpu_count,
                            gpu_model, gpu_vram_mib, hourly_cost_eur, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::numeric, $12)",
        id,
        caller.org_id as OrgId,
        body.address,
        port,
        body.ssh_user,
        body.label,
        body.pool,
        body.gpu_count.unwrap_or(0),
        body.gpu_model,
        body.gpu_vram_mib,
        body.hourly_cost_eur,
        caller.user_id.0,
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(
                "HOST_EXISTS",
                format!(
                    "{}:{port} is already registered in this organization",
                    body.address
                ),
            ))
        }
        other => other?,
    };
    record(
        &mut tx,
        Change {
            host_id: id,
            organization_id: caller.org_id.0,
            from: None,
            to: HostStatus::Registered,
            reason: "registered",
            actor: Some(caller.user_id.0),
            request_id: request_id::current(),
        },
    )
    .await?;
    inventiv_store::host_alloc::offer(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        audit::Entry::by(&caller, "host.registered", "host", id.to_string()).details(
            serde_json::json!({ "address": body.address, "ssh_port": port, "pool": body.pool,
                                "gpu_count": body.gpu_count }),
        ),
    )
    .await?;
    tx.commit().await?;
    let host = load_row(&state.db, caller.org_id, id).await?;
    Ok((StatusCode::CREATED, Json(host.into())))
}

/// Filters and paging of the host list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HostQuery {
    /// Only this pool.
    pool: Option<String>,
    /// Also removed hosts (default false).
    include_removed: Option<bool>,
    /// 1 to 200, default 100.
    limit: Option<u16>,
    /// 0 to 100000, default 0.
    offset: Option<u32>,
}

/// The current organization's hosts, newest first.
#[utoipa::path(get, path = "/hosts", tag = "hosts", security(("bearer" = [])), params(HostQuery),
    responses((status = 200, body = [Host])))]
async fn list_hosts(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<HostQuery>,
) -> ApiResult<Json<Vec<Host>>> {
    caller.require(Action::ViewHosts)?;
    let rows = sqlx::query_as!(
        HostRow,
        r#"SELECT id, address, ssh_port, ssh_user, label, pool, gpu_count, gpu_model, gpu_vram_mib,
                  gpus_detected, hourly_cost_eur::text AS hourly_cost_eur, status AS "status: HostStatus",
                  ssh_known_hosts, last_checked_at, last_check_ok, last_check_message,
                  created_at, updated_at, removed_at
             FROM hosts
            WHERE organization_id = $1 AND ($2::text IS NULL OR pool = $2)
              AND ($3 OR status <> 'removed')
            ORDER BY created_at DESC, id LIMIT $4 OFFSET $5"#,
        caller.org_id as OrgId,
        q.pool,
        q.include_removed.unwrap_or(false),
        i64::from(q.limit.unwrap_or(100).clamp(1, 200)),
        i64::from(q.offset.unwrap_or(0).min(100_000)),
    )
    .fetch_all(&state.db)
    .await?;
    let hosts = rows.into_iter().map(Host::from).collect();
    Ok(Json(with_seats(&state.db, caller.org_id, hosts).await?))
}

/// One host.
#[utoipa::path(get, path = "/hosts/{host_id}", tag = "hosts", security(("bearer" = [])),
    params(("host_id" = Uuid, Path, description = "host id")),
    responses((status = 200, body = Host)))]
async fn get_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Host>> {
    caller.require(Action::ViewHosts)?;
    Ok(Json(host_view(&state.db, caller.org_id, id).await?))
}

/// One entry of a host's timeline: a status change, or a refused host key
/// (the same status on both sides).
#[derive(Serialize, ToSchema)]
pub struct HostHistoryEntry {
    /// Absent for the registration.
    pub from_status: Option<HostStatus>,
    pub to_status: HostStatus,
    pub reason: String,
    /// The member who caused it; null: the control plane itself.
    pub actor_user_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// The host's timeline, oldest first (the last 500 entries).
#[utoipa::path(get, path = "/hosts/{host_id}/history", tag = "hosts", security(("bearer" = [])),
    params(("host_id" = Uuid, Path, description = "host id")),
    responses((status = 200, body = [HostHistoryEntry])))]
async fn host_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<HostHistoryEntry>>> {
    caller.require(Action::ViewHosts)?;
    load_row(&state.db, caller.org_id, id).await?;
    let rows = sqlx::query_as!(
        HostHistoryEntry,
        r#"SELECT from_status AS "from_status?: HostStatus", to_status AS "to_status!: HostStatus",
                  reason AS "reason!", actor_user_id, request_id, at AS "at!"
             FROM (SELECT * FROM host_state_history WHERE host_id = $1 AND organization_id = $2
                    ORDER BY id DESC LIMIT 500) last
            ORDER BY id"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}
