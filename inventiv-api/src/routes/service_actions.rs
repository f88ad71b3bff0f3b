//! A service's lifecycle actions and its timeline: pause (desired 0, its
//! replicas terminated), resume (desired `min`, created at once), rollout
//! (its replicas replaced one at a time, see `rollout.rs`), and the
//! timeline, newest first. Members read; owners and admins act; another
//! organization's service is a 404. Each action writes a timeline entry
//! and publishes a `service.updated` event.

use axum::extract::State;
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId, ServiceEventKind, ServiceState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::placement::Placement;
use crate::request_id;
use crate::routes::instances;
use crate::routes::service_policy;
use crate::routes::services::{alive, detail, finish, ServiceDetail};
use crate::services::{self, Note};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pause_service))
        .routes(routes!(resume_service))
        .routes(routes!(rollout_service))
        .routes(routes!(service_events))
}

/// Pauses an active service (owners and admins): desired 0, its replicas
/// terminated (those serving drain first). Pausing a paused service changes nothing.
#[utoipa::path(post, path = "/services/{service_id}/pause", tag = "services", security(("bearer" = [])),
    params(("service_id" = Uuid, Path, description = "service id")),
    responses((status = 200, body = ServiceDetail), (status = 409, body = ErrorBody, description = "SERVICE_DELETED")))]
async fn pause_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ServiceDetail>> {
    caller.require(Action::ManageInstances)?;
    let org = caller.org_id.0;
    let rid = request_id::current();
    let mut tx = state.db.begin().await?;
    let loaded = services::load(&mut tx, org, id, true).await?;
    alive(&loaded)?;
    if loaded.service.state == ServiceState::Paused {
        tx.rollback().await?;
        return Ok(Json(detail(&state, org, loaded.service).await?));
    }
    let ended = services::terminate_replicas(&mut tx, org, id, rid.as_deref()).await?;
    let note = Note {
        kind: ServiceEventKind::Paused,
        from_replicas: Some(loaded.service.desired_replicas),
        to_replicas: Some(0),
        reason: format!(
            "paused by {}: {} replica(s) taken away (those serving drain first)",
            caller.role.with_article(),
            ended.len()
        ),
    };
    let service = services::set_state(&mut tx, org, id, ServiceState::Paused, 0, &note).await?;
    tx.commit().await?;
    finish(&state, org, &service, &note, false).await;
    for instance in &ended {
        instances::publish_instance(&state, org, instance).await;
    }
    Ok(Json(detail(&state, org, service).await?))
}

/// Resumes a paused service (owners and admins): desired `min_replicas`,
/// created at once on the first placement not avoided. Resuming an active service
/// changes nothing.
#[utoipa::path(post, path = "/services/{service_id}/resume", tag = "services", security(("bearer" = [])),
    params(("service_id" = Uuid, Path, description = "service id")),
    responses((status = 200, body = ServiceDetail),
              (status = 409, body = ErrorBody, description = "refused: SERVICE_DELETED, NOT_ACTIVATED, QUOTA_EXCEEDED, ...")))]
async fn resume_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ServiceDetail>> {
    caller.require(Action::ManageInstances)?;
    let org = caller.org_id.0;
    let rid = request_id::current();
    let mut tx = state.db.begin().await?;
    let loaded = services::load(&mut tx, org, id, true).await?;
    alive(&loaded)?;
    if loaded.service.state == ServiceState::Active {
        tx.rollback().await?;
        return Ok(Json(detail(&state, org, loaded.service).await?));
    }
    let min = loaded.service.min_replicas;
    let added = services::add_replicas(
        &state,
        &mut tx,
        org,
        caller.user_id,
        &loaded,
        min,
        rid.as_deref(),
    )
    .await?;
    let note = Note {
        kind: ServiceEventKind::Resumed,
        from_replicas: Some(0),
        to_replicas: Some(min),
        reason: format!(
            "resumed by {}: {} replica(s) created",
            caller.role.with_article(),
            added.len()
        ),
    };
    let service = services::set_state(&mut tx, org, id, ServiceState::Active, min, &note).await?;
    tx.commit().await?;
    finish(&state, org, &service, &note, true).await;
    Ok(Json(detail(&state, org, service).await?))
}

/// A rollout: the service's replicas replaced by new ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Where the new replicas go (1 to 8, first preferred, each checked as
    /// a deployment's), e.g. another instance type; absent: the current ones.
    placements: Option<Vec<Placement>>,
    /// Why, for the timeline (1 to 200 printable characters), e.g. "vLLM 0.7".
    #[schema(min_length = 1, max_length = 200)]
    reason: Option<String>,
}

/// Most characters of a rollout's reason.
const ROLLOUT_REASON_MAX: usize = 200;

/// Rolls a service out (owners and admins): its revision is raised (and
/// its placements replaced when given), and its replicas are replaced one
/// at a time by new ones made now — on the placements, with the agent and
/// engine the control plane installs today: a new replica is ready before
/// an old one drains, so serving never falls below `desired_replicas`
/// (one replica more than desired meanwhile). The replica convergence
/// carries it out; `rollout_finished` in the timeline says when it is
/// done. A rollout during another one replaces the replicas of both.
#[utoipa::path(post, path = "/services/{service_id}/rollout", tag = "services", security(("bearer" = [])),
    params(("service_id" = Uuid, Path, description = "service id")), request_body = Rollout,
    responses((status = 200, body = ServiceDetail),
              (status = 409, body = ErrorBody, description = "refused: SERVICE_DELETED, NOT_ACTIVATED, ZONE_NOT_AVAILABLE, ..."),
              (status = 429, body = ErrorBody, description = "too many objects created; see Retry-After")))]
async fn rollout_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<Rollout>,
) -> ApiResult<Json<ServiceDetail>> {
    caller.require(Action::ManageInstances)?;
    let org = caller.org_id.0;
    let why = match body.reason.as_deref().map(str::trim) {
        None => None,
        Some(r)
            if !r.is_empty()
                && r.chars().count() <= ROLLOUT_REASON_MAX
                && !r.chars().any(char::is_control) =>
        {
            Some(r.to_owned())
        }
        Some(_) => {
            return Err(ApiError::validation(
                "VALIDATION_ERROR",
                format!("reason: 1 to {ROLLOUT_REASON_MAX} printable characters"),
            ))
        }
    };
    crate::ratelimit::creation(&state, caller.user_id).await?;
    let mut tx = state.db.begin().await?;
    let loaded = services::load(&mut tx, org, id, true).await?;
    alive(&loaded)?;
    let placements = match &body.placements {
        Some(list) => Some(service_policy::check_new_placements(&state, org, &loaded, list).await?),
        None => None,
    };
    if let Some(list) = &placements {
        services::set_placements(&mut tx, id, list).await?;
    }
    sqlx::query!(
        "UPDATE services SET revision = revision + 1, updated_at = now() WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    let after = services::load(&mut tx, org, id, false).await?.service;
    let mut reason = format!(
        "rollout to revision {} started by {}",
        after.revision,
        caller.role.with_article()
    );
    if let Some(why) = &why {
        reason.push_str(&format!(" ({why})"));
    }
    if let Some(first) = body.placements.as_ref().and_then(|l| l.first()) {
        reason.push_str(&format!(
            ", new replicas on {} in {}",
            first.instance_type, first.zone
        ));
    }
    reason.push_str(&format!(
        ": {} replica(s) to replace one at a time, each new one ready before an old one drains",
        after.outdated_replicas
    ));
    let note = Note {
        kind: ServiceEventKind::RolloutStarted,
        from_replicas: Some(after.desired_replicas),
        to_replicas: Some(after.desired_replicas),
        reason,
    };
    services::record(&mut tx, org, id, &note).await?;
    tx.commit().await?;
    finish(&state, org, &after, &note, false).await;
    tracing::info!(service_id = %id, revision = after.revision, outdated = after.outdated_replicas, "service rollout started");
    Ok(Json(detail(&state, org, after).await?))
}

/// One entry of a service's timeline.
#[derive(Serialize, ToSchema)]
pub struct ServiceEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: ServiceEventKind,
    pub from_replicas: Option<i32>,
    pub to_replicas: Option<i32>,
    /// Why, in words (e.g. "outstanding 9.2 per replica > 4 for 60 s: 2 → 3").
    pub reason: String,
}

/// Paging of the timeline.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// 1 to 200, default 50.
    limit: Option<u16>,
    /// Up to 1000000, default 0.
    offset: Option<u32>,
}

/// A service's timeline, newest first.
#[utoipa::path(get, path = "/services/{service_id}/events", tag = "services", security(("bearer" = [])),
    params(("service_id" = Uuid, Path, description = "service id"), EventsQuery),
    responses((status = 200, body = [ServiceEvent])))]
async fn service_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Vec<ServiceEvent>>> {
    caller.require(Action::ViewInstances)?;
    let mut conn = state.db.acquire().await?;
    services::load(&mut conn, caller.org_id.0, id, false).await?;
    let rows = sqlx::query_as!(
        ServiceEvent,
        r#"SELECT id, at, kind AS "kind: ServiceEventKind", from_replicas, to_replicas, reason
             FROM service_events WHERE service_id = $1 AND organization_id = $2
            ORDER BY id DESC LIMIT $3 OFFSET $4"#,
        id,
        caller.org_id as OrgId,
        i64::from(q.limit.unwrap_or(50).clamp(1, 200)),
        i64::from(q.offset.unwrap_or(0).min(1_000_000)),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(rows))
}
