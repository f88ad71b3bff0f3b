//! Services of the current organization: create, list, read (with its
//! replicas), update the policy, bounds, name and placements, delete
//! (pause, resume and the timeline: `service_actions`). Members read; owners and admins act
//! (the instances' permissions: a service's replicas are instances).
//! Another organization's service is a 404. Every change writes a timeline
//! entry and publishes a `service.updated` event; a refusal stores nothing.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use inventiv_common::service::{self as bounds, MAX_PLACEMENTS};
use inventiv_common::{Action, ServiceEventKind, ServiceState, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::placement::{self, Placement};
use crate::request_id;
use crate::routes::instances::{self, Instance};
use crate::routes::service_policy::{self, Policy};
use crate::services::{self, Loaded, Note, Service};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_service, list_services))
        .routes(routes!(get_service, update_service, delete_service))
}

/// A new service. Its first `min_replicas` replicas are created at once on
/// the first placement not avoided (one where a replica failed lately for
/// lack of capacity or quota is skipped).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateService {
    /// The catalog model: its id or its Hugging Face id.
    model_id: String,
    /// At most 100 printable characters; default: the model's name.
    name: Option<String>,
    /// `mono` or `multi`; default: the organization's worker settings on
    /// the first placement's provider.
    mode: Option<String>,
    /// 1 to 8, first preferred; each checked as a deployment's.
    placements: Vec<Placement>,
    /// 0 to `max_replicas`.
    min_replicas: i32,
    /// `min_replicas` to 16, at least 1.
    max_replicas: i32,
    /// Outstanding requests per replica to scale up past: above 0, at most 1000.
    target_outstanding: Option<f64>,
    /// TTFT p95 in ms to scale up past: 1 to 600000.
    target_ttft_p95_ms: Option<i32>,
    /// 1 to 604800; default 900.
    idle_window_s: Option<i32>,
    /// 0 to 86400; default 300.
    scale_down_cooldown_s: Option<i32>,
    /// GPU hours per month, a non-negative decimal string.
    gpu_hours_cap: Option<String>,
    /// EUR per month, a non-negative decimal string.
    eur_cap: Option<String>,
}

/// A service with its replicas.
#[derive(Serialize, ToSchema)]
pub struct ServiceDetail {
    #[serde(flatten)]
    pub service: Service,
    /// Its replicas, newest first (at most 200; archived ones left out).
    pub replicas: Vec<Instance>,
    /// Its replicas per status (archived ones left out).
    pub replica_counts: BTreeMap<String, i64>,
}

pub(super) async fn detail(
    state: &AppState,
    org: Uuid,
    service: Service,
) -> ApiResult<ServiceDetail> {
    let replicas = instances::of_service(&state.db, org, service.id, 200).await?;
    let counts = sqlx::query!(
        r#"SELECT status, count(*) AS "n!" FROM instances
            WHERE service_id = $1 AND organization_id = $2 AND status <> 'archived' GROUP BY status"#,
        service.id,
        org,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(ServiceDetail {
        service,
        replicas,
        replica_counts: counts.into_iter().map(|r| (r.status, r.n)).collect(),
    })
}

/// Creates a service (owners and admins) and its first `min_replicas`
/// replicas on its first placement not avoided, in one transaction. Answers 201.
#[utoipa::path(post, path = "/services", tag = "services", security(("bearer" = [])), request_body = CreateService,
    responses((status = 201, body = ServiceDetail),
              (status = 409, body = ErrorBody, description = "refused: NOT_ACTIVATED, QUOTA_EXCEEDED, ZONE_NOT_AVAILABLE, ..."),
              (status = 429, body = ErrorBody, description = "too many objects created; see Retry-After")))]
async fn create_service(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateService>,
) -> ApiResult<(StatusCode, Json<ServiceDetail>)> {
    caller.require(Action::ManageInstances)?;
    let org = caller.org_id.0;
    let policy = Policy {
        min_replicas: body.min_replicas,
        max_replicas: body.max_replicas,
        target_outstanding: body.target_outstanding,
        target_ttft_p95_ms: body.target_ttft_p95_ms,
        idle_window_s: body.idle_window_s.unwrap_or(bounds::DEFAULT_IDLE_WINDOW_S),
        scale_down_cooldown_s: body
            .scale_down_cooldown_s
            .unwrap_or(bounds::DEFAULT_SCALE_DOWN_COOLDOWN_S),
        gpu_hours_cap: body.gpu_hours_cap,
        eur_cap: body.eur_cap,
    }
    .validated()?;
    let name = placement::name(body.name.as_deref())?;
    if body.placements.is_empty() || body.placements.len() > MAX_PLACEMENTS {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            format!("placements: 1 to {MAX_PLACEMENTS}"),
        ));
    }
    crate::ratelimit::creation(&state, caller.user_id).await?;
    let mode = placement::mode(&state, org, body.mode, &body.placements[0].provider).await?;
    let model = placement::model(&state, Some(body.model_id.as_str())).await?;
    let checked = service_policy::check_placements(&state, org, &model, &body.placements).await?;
    let name: String = name
        .unwrap_or_else(|| model.display_name.clone())
        .chars()
        .take(100)
        .collect();
    let rid = request_id::current();
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "INSERT INTO services (id, organization_id, name, model_id, model_catalog_id, mode, min_replicas, max_replicas,
                               desired_replicas, target_outstanding, target_ttft_p95_ms, idle_window_s,
                               scale_down_cooldown_s, gpu_hours_cap, eur_cap, state, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $9, $10, $11, $12, $13::text::numeric, $14::text::numeric, $15, $16)",
        id,
        org,
        name,
        model.hf_id,
        model.id,
        mode,
        policy.min_replicas,
        policy.max_replicas,
        policy.target_outstanding,
        policy.target_ttft_p95_ms,
        policy.idle_window_s,
        policy.scale_down_cooldown_s,
        policy.gpu_hours_cap,
        policy.eur_cap,
        ServiceState::Active.as_str(),
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    services::set_placements(&mut tx, id, &checked).await?;
    let loaded = services::load(&mut tx, org, id, false).await?;
    services::add_replicas(
        &state,
        &mut tx,
        org,
        caller.user_id,
        &loaded,
        policy.min_replicas,
        rid.as_deref(),
    )
    .await?;
    let note = Note {
        kind: ServiceEventKind::Created,
        from_replicas: Some(0),
        to_replicas: Some(policy.min_replicas),
        reason: format!(
            "created by {}: {} replica(s) of {} on {} in {}",
            caller.role.with_article(),
            policy.min_replicas,
            model.hf_id,
            body.placements[0].instance_type,
            body.placements[0].zone
        ),
    };
    services::record(&mut tx, org, id, &note).await?;
    let service = services::load(&mut tx, org, id, false).await?.service;
    tx.commit().await?;
    finish(&state, org, &service, &note, true).await;
    tracing::info!(service_id = %id, model = %model.hf_id, replicas = policy.min_replicas, "service created");
    Ok((
        StatusCode::CREATED,
        Json(detail(&state, org, service).await?),
    ))
}

/// After a commit: wakes the outbox relay, announces the service's change
/// and its replicas' new statuses.
pub(super) async fn finish(
    state: &AppState,
    org: Uuid,
    service: &Service,
    note: &Note,
    replicas: bool,
) {
    state.outbox.notify_one();
    services::publish(state, org, service, note).await;
    if replicas {
        if let Ok(list) = instances::of_service(&state.db, org, service.id, 200).await {
            for instance in list.iter().filter(|i| !i.status.is_final()) {
                instances::publish_instance(state, org, instance).await;
            }
        }
    }
}

/// Filtering and paging of the list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this state; by default all but `deleted`.
    #[param(inline)]
    state: Option<ServiceState>,
    /// 1 to 200, default 50.
    limit: Option<u16>,
    /// Up to 1000000, default 0.
    offset: Option<u32>,
}

/// The current organization's services, newest first.
#[utoipa::path(get, path = "/services", tag = "services", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = [Service])))]
async fn list_services(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Service>>> {
    caller.require(Action::ViewInstances)?;
    let mut conn = state.db.acquire().await?;
    let list = services::list(
        &mut conn,
        caller.org_id.0,
        q.state,
        i64::from(q.limit.unwrap_or(50).clamp(1, 200)),
        i64::from(q.offset.unwrap_or(0).min(1_000_000)),
    )
    .await?;
    Ok(Json(list))
}

/// One service with its replicas.
#[utoipa::path(get, path = "/services/{service_id}", tag = "services", security(("bearer" = [])),
    params(("service_id" = Uuid, Path, description = "service id")),
    responses((status = 200, body = ServiceDetail)))]
async fn get_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ServiceDetail>> {
    caller.require(Action::ViewInstances)?;
    let mut conn = state.db.acquire().await?;
    let service = services::load(&mut conn, caller.org_id.0, id, false)
        .await?
        .service;
    drop(conn);
    Ok(Json(detail(&state, caller.org_id.0, service).await?))
}

/// Refuses a change to a service that is being deleted.
pub(super) fn alive(loaded: &Loaded) -> ApiResult<()> {
    if loaded.service.state.is_ending() {
        return Err(ApiError::conflict(
            "SERVICE_DELETED",
            format!("the service is {}", loaded.service.state),
        ));
    }
    Ok(())
}

/// Changes the name, the bounds, the policy or the placements (owners and
/// admins); absent fields keep their value, null clears a nullable one. An
/// active service's desired replicas are clamped into the new bounds; the
/// replicas a raise asks for are created at once on the first placement
/// not avoided.
#[utoipa::path(patch, path = "/services/{service_id}", tag = "services", security(("bearer" = [])),
    params(("service_id" = Uuid, Path, description = "service id")), request_body = service_policy::UpdateService,
    responses((status = 200, body = ServiceDetail),
              (status = 409, body = ErrorBody, description = "refused: SERVICE_DELETED, NOT_ACTIVATED, QUOTA_EXCEEDED, ...")))]
async fn update_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<service_policy::UpdateService>,
) -> ApiResult<Json<ServiceDetail>> {
    caller.require(Action::ManageInstances)?;
    let org = caller.org_id.0;
    let rid = request_id::current();
    let mut tx = state.db.begin().await?;
    let loaded = services::load(&mut tx, org, id, true).await?;
    alive(&loaded)?;
    let (policy, name, changed) = service_policy::merge(&loaded.service, &body)?;
    let placements = match &body.placements {
        Some(list) => Some(service_policy::check_new_placements(&state, org, &loaded, list).await?),
        None => None,
    };
    let s = &loaded.service;
    let desired = if s.state == ServiceState::Active {
        s.desired_replicas
            .clamp(policy.min_replicas, policy.max_replicas)
    } else {
        0
    };
    sqlx::query!(
        "UPDATE services SET name = $2, min_replicas = $3, max_replicas = $4, desired_replicas = $5,
                target_outstanding = $6, target_ttft_p95_ms = $7, idle_window_s = $8, scale_down_cooldown_s = $9,
                gpu_hours_cap = $10::text::numeric, eur_cap = $11::text::numeric, updated_at = now()
          WHERE id = $1",
        id,
        name,
        policy.min_replicas,
        policy.max_replicas,
        desired,
        policy.target_outstanding,
        policy.target_ttft_p95_ms,
        policy.idle_window_s,
        policy.scale_down_cooldown_s,
        policy.gpu_hours_cap,
        policy.eur_cap,
    )
    .execute(&mut *tx)
    .await?;
    if let Some(list) = &placements {
        services::set_placements(&mut tx, id, list).await?;
    }
    let after = services::load(&mut tx, org, id, false).await?;
    let missing = i64::from(desired) - after.service.active_replicas;
    let added = services::add_replicas(
        &state,
        &mut tx,
        org,
        caller.user_id,
        &after,
        i32::try_from(missing.max(0)).unwrap_or(0),
        rid.as_deref(),
    )
    .await?;
    let mut reason = format!(
        "{} changed {}",
        caller.role.with_article(),
        changed.join(", ")
    );
    if desired != s.desired_replicas {
        reason.push_str(&format!("; desired {} → {desired}", s.desired_replicas));
    }
    if !added.is_empty() {
        reason.push_str(&format!("; {} replica(s) created", added.len()));
    }
    let note = Note {
        kind: ServiceEventKind::Updated,
        from_replicas: Some(s.desired_replicas),
        to_replicas: Some(desired),
        reason,
    };
    services::record(&mut tx, org, id, &note).await?;
    let service = services::load(&mut tx, org, id, false).await?.service;
    tx.commit().await?;
    finish(&state, org, &service, &note, !added.is_empty()).await;
    Ok(Json(detail(&state, org, service).await?))
}

/// Deletes a service (owners and admins): its replicas are terminated and
/// it is `deleting` until none is left (`deleted` at once when none is).
/// Deleting it again changes nothing.
#[utoipa::path(delete, path = "/services/{service_id}", tag = "services", security(("bearer" = [])),
    params(("service_id" = Uuid, Path, description = "service id")),
    responses((status = 202, body = ServiceDetail)))]
async fn delete_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<ServiceDetail>)> {
    caller.require(Action::ManageInstances)?;
    let org = caller.org_id.0;
    let rid = request_id::current();
    let mut tx = state.db.begin().await?;
    let loaded = services::load(&mut tx, org, id, true).await?;
    if loaded.service.state.is_ending() {
        tx.rollback().await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(detail(&state, org, loaded.service).await?),
        ));
    }
    let ended = services::terminate_replicas(&mut tx, org, id, rid.as_deref()).await?;
    let left = services::any_replica_left(&mut tx, id).await?;
    let (to, kind) = if left {
        (ServiceState::Deleting, ServiceEventKind::Deleting)
    } else {
        (ServiceState::Deleted, ServiceEventKind::Deleted)
    };
    let note = Note {
        kind,
        from_replicas: Some(loaded.service.desired_replicas),
        to_replicas: Some(0),
        reason: format!(
            "deleted by {}: {} replica(s) taken away (those serving drain first)",
            caller.role.with_article(),
            ended.len()
        ),
    };
    let service = services::set_state(&mut tx, org, id, to, 0, &note).await?;
    tx.commit().await?;
    finish(&state, org, &service, &note, false).await;
    for instance in &ended {
        instances::publish_instance(&state, org, instance).await;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(detail(&state, org, service).await?),
    ))
}
