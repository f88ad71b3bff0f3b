//! `POST /deployments`: a service of exactly one replica. Checks everything
//! a deployment needs (role, catalog, availability, compatibility, double
//! activation, provider configuration, a Hugging Face token for a gated
//! model: [`crate::placement`], as every service replica), then writes the
//! service (min = max = desired = 1, named after the deployment), its
//! placement, its first timeline entry, the instance and its provision
//! command in one transaction. The answer is the instance, with its
//! `service_id`. A refused request stores nothing and sends nothing.

use axum::extract::State;
use axum::http::StatusCode;
use inventiv_common::{Action, ServiceEventKind, ServiceState, UserId};
use inventiv_store::host_alloc::{self, AllocateError};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::placement::{self, NewInstance, Placement};
use crate::request_id;
use crate::routes::instances::{load, Instance};
use crate::services::{self, Note};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(deploy))
}

/// What to deploy where.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Provider code, e.g. `mock` or `scaleway`.
    provider: String,
    /// Zone code, e.g. `fr-par-2`.
    zone: String,
    /// Instance type code, e.g. `L4-1-24G`.
    instance_type: String,
    /// The catalog model: its id or its Hugging Face id. Mandatory.
    model_id: Option<String>,
    name: Option<String>,
    /// `mono` (default: one engine on all GPUs) or `multi` (one per GPU).
    mode: Option<String>,
}

/// Deploys a catalog model on an instance type of a provider zone (owners
/// and admins): a service of one replica. Answers 202 with the instance in
/// `provisioning` and its `service_id`.
#[utoipa::path(post, path = "/deployments", tag = "instances", security(("bearer" = [])), request_body = Deploy,
    responses((status = 202, body = Instance), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "refused: NOT_ACTIVATED, QUOTA_EXCEEDED, MOCK_PROVIDER_DISABLED, ..."),
              (status = 429, body = ErrorBody, description = "too many objects created; see Retry-After")))]
async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Deploy>,
) -> ApiResult<(StatusCode, Json<Instance>)> {
    caller.require(Action::ManageInstances)?;
    crate::ratelimit::creation(&state, caller.user_id).await?;
    let org = caller.org_id.0;
    if body.model_id.as_deref().is_none_or(|m| m.trim().is_empty()) {
        return Err(crate::error::ApiError::validation(
            "MISSING_MODEL",
            "model_id is mandatory: choose a model of the catalog",
        ));
    }
    let mode = placement::mode(&state, org, body.mode, &body.provider).await?;
    let name = placement::name(body.name.as_deref())?;
    let model = placement::model(&state, body.model_id.as_deref()).await?;
    let wanted = Placement {
        provider: body.provider,
        zone: body.zone,
        instance_type: body.instance_type,
    };
    let at = placement::check(&state, org, &model, &wanted).await?;
    if wanted.provider == "ssh" {
        // The seat itself is taken when the orchestrator creates the server;
        // a pool already full is refused now rather than failing later.
        host_alloc::fits(&state.db, org, &wanted.zone, &wanted.instance_type)
            .await
            .map_err(|e| match e {
                AllocateError::NoFreeHost(why) => ApiError::conflict("NO_FREE_HOST", why),
                AllocateError::Db(e) => e.into(),
            })?;
    }
    let name =
        name.unwrap_or_else(|| format!("{} on {}", model.display_name, wanted.instance_type));
    let name: String = name.chars().take(100).collect();
    let rid = request_id::current();
    let mut tx = state.db.begin().await?;
    placement::admit(&state, &mut tx, org, 1, at.gpu_count).await?;
    let service_id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO services (id, organization_id, name, model_id, model_catalog_id, mode,
                               min_replicas, max_replicas, desired_replicas, state, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, 1, 1, 1, $7, $8)",
        service_id,
        org,
        name,
        model.hf_id,
        model.id,
        mode,
        ServiceState::Active.as_str(),
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    services::set_placements(&mut tx, service_id, std::slice::from_ref(&at)).await?;
    let id = placement::create_instance(
        &mut tx,
        NewInstance {
            org,
            created_by: caller.user_id,
            name: &name,
            model: &model,
            mode: &mode,
            at: &at,
            service_id,
            service_revision: 1,
            request_id: rid.as_deref(),
        },
    )
    .await?;
    let note = Note {
        kind: ServiceEventKind::Created,
        from_replicas: Some(0),
        to_replicas: Some(1),
        reason: format!(
            "deployed by {}: {} on {} in {}, one replica",
            caller.role.with_article(),
            model.hf_id,
            wanted.instance_type,
            wanted.zone
        ),
    };
    services::record(&mut tx, org, service_id, &note).await?;
    let entry = audit::Entry::by(&caller, "instance.deployed", "instance", id.to_string()).details(
        serde_json::json!({
            "model": model.hf_id,
            "provider": wanted.provider,
            "zone": wanted.zone,
            "instance_type": wanted.instance_type,
            "service_id": service_id,
        }),
    );
    audit::record(&mut *tx, entry).await?;
    let instance = load(&mut *tx, org, id).await?;
    let service = services::load(&mut tx, org, service_id, false)
        .await?
        .service;
    tx.commit().await?;
    state.outbox.notify_one();
    crate::routes::instances::publish_instance(&state, org, &instance).await;
    services::publish(&state, org, &service, &note).await;
    tracing::info!(instance_id = %id, service_id = %service_id, model = %model.hf_id, "deployment requested");
    Ok((StatusCode::ACCEPTED, Json(instance)))
}
