//! What owners and admins do to the organization's hosts: read the key to
//! authorize, verify (log in over SSH with it, pin the host key at the
//! first success, refuse another key later, read the GPUs with
//! nvidia-smi), drain, undrain and remove. Each change writes the host's
//! history and an audit entry in one transaction.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use inventiv_common::host::Reach;
use inventiv_common::{Action, HostStatus, OrgId};
use inventiv_store::host_alloc::{seated, settle};
use inventiv_store::host_check::{apply, probe, Applied, Attempt};
use inventiv_store::hosts::{ensure_key, fingerprint, record, Change, OrgKey};
use inventiv_store::ssh::Target;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::hosts::{host_view, load_row, Host, HostRow};
use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::request_id;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ssh_key))
        .routes(routes!(verify_host))
        .routes(routes!(drain_host))
        .routes(routes!(undrain_host))
        .routes(routes!(remove_host))
}

/// How long the TCP connection to a host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole verification may take (login and GPU probe).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(15);

/// The organization's key, made on first need.
async fn org_key(state: &AppState, org: OrgId) -> ApiResult<OrgKey> {
    ensure_key(
        &state.db,
        &state.config.keyring,
        org.0,
        &state.config.state_dir.join("ssh-hosts"),
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))
}

/// The key the control plane logs in to the organization's hosts with.
#[derive(Serialize, ToSchema)]
pub struct SshKey {
    /// The OpenSSH public key line to add to the SSH user's
    /// `~/.ssh/authorized_keys` on every host.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` shows it.
    pub fingerprint: String,
}

/// The organization's SSH public key (made on first request).
#[utoipa::path(get, path = "/organizations/current/ssh-key", tag = "hosts", security(("bearer" = [])),
    responses((status = 200, body = SshKey)))]
async fn ssh_key(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<SshKey>> {
    caller.require(Action::ManageHosts)?;
    let key = org_key(&state, caller.org_id).await?;
    let fingerprint = fingerprint(&format!("- {}", key.public))
        .ok_or_else(|| anyhow::anyhow!("the stored public key does not parse"))?;
    Ok(Json(SshKey {
        public_key: key.public,
        fingerprint,
    }))
}

fn target(row: &HostRow) -> ApiResult<Target> {
    Ok(Target {
        host: row.address.clone(),
        port: u16::try_from(row.ssh_port).map_err(|_| anyhow::anyhow!("stored port"))?,
        user: row.ssh_user.clone(),
    })
}

fn removed() -> ApiError {
    ApiError::conflict("HOST_REMOVED", "the host was removed")
}

/// Connects to the host with the organization's key and records what it
/// found: the host key at the first success (pinned afterwards), the GPUs
/// nvidia-smi reports (else the declared ones stay), and the status. An
/// unreachable host is answered 200 with status `unreachable`; another host
/// key than the pinned one is refused (409 `HOST_KEY_CHANGED`, recorded in
/// the host's history, status `unreachable`).
#[utoipa::path(post, path = "/hosts/{host_id}/verify", tag = "hosts", security(("bearer" = [])),
    params(("host_id" = Uuid, Path, description = "host id")),
    responses((status = 200, body = Host),
              (status = 409, body = ErrorBody, description = "HOST_KEY_CHANGED: the host presented another SSH host key than the pinned one; HOST_REMOVED")))]
async fn verify_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Host>> {
    caller.require(Action::ManageHosts)?;
    let row = load_row(&state.db, caller.org_id, id).await?;
    if row.status == HostStatus::Removed {
        return Err(removed());
    }
    let key = org_key(&state, caller.org_id).await?;
    let found = probe(Attempt {
        host_id: id,
        target: target(&row)?,
        known_hosts: row.ssh_known_hosts.as_deref(),
        key: &key,
        scratch: &state.config.state_dir.join("ssh-hosts"),
        connect_timeout: CONNECT_TIMEOUT,
        timeout: VERIFY_TIMEOUT,
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("host verification: {e}")))?;

    let mut tx = state.db.begin().await?;
    let applied = apply(
        &mut tx,
        caller.org_id.0,
        id,
        found,
        Some(caller.user_id.0),
        request_id::current(),
    )
    .await?;
    let (to, reach, message) = match applied {
        Applied::NotFound => return Err(ApiError::NotFound),
        Applied::Removed => return Err(removed()),
        Applied::Done {
            to, reach, message, ..
        } => (to, reach, message),
    };
    let action = match reach {
        Reach::Reached => "host.verified",
        Reach::Unreached => "host.unreachable",
        Reach::KeyChanged => "host.host_key_refused",
    };
    audit::record(
        &mut *tx,
        audit::Entry::by(&caller, action, "host", id.to_string())
            .details(serde_json::json!({ "status": to, "message": message })),
    )
    .await?;
    tx.commit().await?;
    if reach == Reach::KeyChanged {
        return Err(ApiError::conflict(
            "HOST_KEY_CHANGED",
            "the host presented another SSH host key than the pinned one: refused. \
             If the machine was reinstalled, remove the host and register it again",
        ));
    }
    Ok(Json(host_view(&state.db, caller.org_id, id).await?))
}

/// Moves the host to `to` (from its locked current status), with its
/// history row and an audit entry; the same status changes nothing.
async fn change(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    next: impl FnOnce(HostStatus, Option<bool>) -> ApiResult<HostStatus>,
    reason: &str,
    action: &str,
) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    let now = sqlx::query!(
        r#"SELECT status AS "status: HostStatus", last_check_ok FROM hosts
            WHERE id = $1 AND organization_id = $2 FOR UPDATE"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    let to = next(now.status, now.last_check_ok)?;
    if to == now.status {
        return Ok(());
    }
    record(
        &mut tx,
        Change {
            host_id: id,
            organization_id: caller.org_id.0,
            from: Some(now.status),
            to,
            reason,
            actor: Some(caller.user_id.0),
            request_id: request_id::current(),
        },
    )
    .await?;
    settle(&mut tx, id, caller.org_id.0, reason).await?;
    audit::record(
        &mut *tx,
        audit::Entry::by(caller, action, "host", id.to_string())
            .details(serde_json::json!({ "from": now.status, "to": to })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Drains the host: nothing new is placed on it, what runs stays. Draining
/// a draining host changes nothing.
#[utoipa::path(post, path = "/hosts/{host_id}/drain", tag = "hosts", security(("bearer" = [])),
    params(("host_id" = Uuid, Path, description = "host id")),
    responses((status = 200, body = Host), (status = 409, body = ErrorBody, description = "HOST_REMOVED")))]
async fn drain_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Host>> {
    caller.require(Action::ManageHosts)?;
    let next = |s: HostStatus, _: Option<bool>| s.after_drain().ok_or_else(removed);
    change(&state, &caller, id, next, "drained", "host.drained").await?;
    Ok(Json(host_view(&state.db, caller.org_id, id).await?))
}

/// Ends a drain: the host returns to what its last verification said
/// (`verified`, `unreachable`, or `registered` if it never had one).
#[utoipa::path(post, path = "/hosts/{host_id}/undrain", tag = "hosts", security(("bearer" = [])),
    params(("host_id" = Uuid, Path, description = "host id")),
    responses((status = 200, body = Host), (status = 409, body = ErrorBody, description = "HOST_NOT_DRAINING")))]
async fn undrain_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Host>> {
    caller.require(Action::ManageHosts)?;
    let next = |s: HostStatus, ok: Option<bool>| {
        s.after_undrain(ok).ok_or_else(|| {
            ApiError::conflict(
                "HOST_NOT_DRAINING",
                format!("the host is {s}, not draining"),
            )
        })
    };
    change(&state, &caller, id, next, "drain ended", "host.undrained").await?;
    Ok(Json(host_view(&state.db, caller.org_id, id).await?))
}

/// Removes the host (kept, with its history, as `removed`); refused while
/// an instance is seated on it (draining or not). Removing a removed host
/// changes nothing.
#[utoipa::path(delete, path = "/hosts/{host_id}", tag = "hosts", security(("bearer" = [])),
    params(("host_id" = Uuid, Path, description = "host id")),
    responses((status = 204), (status = 409, body = ErrorBody, description = "HOST_IN_USE: terminate its instances first")))]
async fn remove_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageHosts)?;
    load_row(&state.db, caller.org_id, id).await?;
    let holds = seated(&state.db, id).await?;
    let next = |s: HostStatus, _: Option<bool>| {
        if s.removable() && holds == 0 {
            Ok(HostStatus::Removed)
        } else {
            Err(ApiError::conflict(
                "HOST_IN_USE",
                "the host holds instances: terminate them first",
            ))
        }
    };
    change(&state, &caller, id, next, "removed", "host.removed").await?;
    Ok(StatusCode::NO_CONTENT)
}
