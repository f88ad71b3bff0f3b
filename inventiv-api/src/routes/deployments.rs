//! `POST /deployments`: checks everything a deployment needs (role, catalog,
//! availability, compatibility, double activation, provider configuration,
//! a Hugging Face token for a gated model), then writes the instance and its provision command in one transaction.
//! A refused request stores nothing and sends nothing.

use axum::extract::State;
use axum::http::StatusCode;
use inventiv_common::messages::CommandKind;
use inventiv_common::{Action, InstanceStatus, UserId};
use inventiv_store::outbox::enqueue;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::request_id;
use crate::routes::instances::{load, Instance};
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

struct Resolved {
    zone_id: Uuid,
    zone_active: bool,
    type_id: Uuid,
    type_active: bool,
    total_vram: i32,
    gpu_count: i32,
    price: String,
    available: bool,
}

struct ModelRow {
    id: Uuid,
    hf_id: String,
    display_name: String,
    required_vram_gb: i32,
    active: bool,
    gated: bool,
}

fn refuse(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::conflict(code, message)
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::validation(code, message)
}

/// Whether the organization can use this provider (credentials when needed).
async fn provider_configured(state: &AppState, org: Uuid, provider: &str) -> ApiResult<bool> {
    // The mock provider runs locally and needs nothing; cloud providers need
    // the organization's credentials.
    if provider == "mock" {
        return Ok(true);
    }
    Ok(
        inventiv_store::credentials::updated_at(&state.db, org, provider)
            .await?
            .is_some(),
    )
}

/// The missing activation sides of the items a deployment uses.
async fn missing_activations(
    state: &AppState,
    org: Uuid,
    items: &[(&str, String)],
) -> ApiResult<Vec<String>> {
    let mut missing = Vec::new();
    for (kind, id) in items {
        let row = sqlx::query!(
            "SELECT technical, economic FROM organization_activations WHERE organization_id = $1 AND item_kind = $2 AND item_id = $3",
            org,
            kind,
            id,
        )
        .fetch_optional(&state.db)
        .await?;
        let (t, e) = row.map_or((false, false), |r| (r.technical, r.economic));
        let sides: Vec<&str> = [(!t).then_some("technical"), (!e).then_some("economic")]
            .into_iter()
            .flatten()
            .collect();
        if !sides.is_empty() {
            missing.push(format!("{kind} {id} ({})", sides.join(" and ")));
        }
    }
    Ok(missing)
}

/// Deploys a catalog model on an instance type of a provider zone (owners
/// and admins). Answers 202 with the instance in `provisioning`.
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
    let model_ref = body
        .model_id
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let Some(model_ref) = model_ref else {
        return Err(invalid(
            "MISSING_MODEL",
            "model_id is mandatory: choose a model of the catalog",
        ));
    };
    // Without a mode, the organization's worker settings on the provider decide.
    let mode = match body.mode.clone() {
        Some(m) => m,
        None => {
            inventiv_store::worker_settings::load(&state.db, org, &body.provider)
                .await?
                .unwrap_or_default()
                .mode
        }
    };
    let mode = mode.as_str();
    if !["mono", "multi"].contains(&mode) {
        return Err(invalid("VALIDATION_ERROR", "mode: mono or multi"));
    }
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
        return Err(invalid(
            "VALIDATION_ERROR",
            "name: at most 100 printable characters",
        ));
    }
    let provider_active = sqlx::query_scalar!(
        "SELECT active FROM providers WHERE code = $1",
        body.provider
    )
    .fetch_optional(&state.db)
    .await?;
    if provider_active != Some(true) {
        return Err(invalid(
            "UNKNOWN_PROVIDER",
            format!("no active provider {:?}", body.provider),
        ));
    }
    // The mock provider runs its "VMs" as root processes of this host.
    if body.provider == "mock" && !state.config.mock_provider {
        return Err(refuse(
            "MOCK_PROVIDER_DISABLED",
            "the mock provider is for development: enabled with INVENTIV_MOCK_PROVIDER=true",
        ));
    }
    let model = sqlx::query_as!(
        ModelRow,
        "SELECT id, hf_id, display_name, required_vram_gb, active, gated FROM models WHERE id::text = $1 OR hf_id = $1",
        model_ref,
    )
    .fetch_optional(&state.db)
    .await?
    .filter(|m: &ModelRow| m.active)
    .ok_or_else(|| invalid("MISSING_MODEL", format!("no active catalog model {model_ref:?}")))?;
    let resolved = sqlx::query_as!(
        Resolved,
        r#"SELECT z.id AS zone_id, z.active AS zone_active, t.id AS type_id, t.active AS type_active,
                t.gpu_count * t.vram_per_gpu_gb AS "total_vram!", t.gpu_count, t.price_eur_per_hour::text AS "price!",
                COALESCE((SELECT available FROM instance_type_zones WHERE instance_type_id = t.id AND zone_id = z.id), false) AS "available!"
           FROM zones z JOIN instance_types t ON t.provider_code = z.provider_code
          WHERE z.provider_code = $1 AND z.code = $2 AND t.code = $3"#,
        body.provider,
        body.zone,
        body.instance_type,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| invalid("UNKNOWN_ZONE_OR_TYPE", format!("{} has no zone {:?} with type {:?}", body.provider, body.zone, body.instance_type)))?;
    if !(resolved.available && resolved.zone_active && resolved.type_active) {
        return Err(refuse(
            "ZONE_NOT_AVAILABLE",
            format!("{} is not available in {}", body.instance_type, body.zone),
        ));
    }
    if model.required_vram_gb > resolved.total_vram {
        return Err(invalid(
            "INCOMPATIBLE_MODEL_INSTANCE",
            format!(
                "{} needs {} GB of VRAM; {} has {} GB",
                model.hf_id, model.required_vram_gb, body.instance_type, resolved.total_vram
            ),
        ));
    }
    let items = [
        ("provider", body.provider.clone()),
        ("zone", resolved.zone_id.to_string()),
        ("instance_type", resolved.type_id.to_string()),
        ("model", model.id.to_string()),
    ];
    let missing = missing_activations(&state, org, &items).await?;
    if !missing.is_empty() {
        return Err(refuse(
            "NOT_ACTIVATED",
            format!(
                "not activated for this organization: {}",
                missing.join("; ")
            ),
        ));
    }
    if !provider_configured(&state, org, &body.provider).await? {
        return Err(refuse(
            "PROVIDER_NOT_CONFIGURED",
            format!("set the organization's {} credentials first", body.provider),
        ));
    }
    if model.gated
        && inventiv_store::huggingface::status(&state.db, org)
            .await?
            .is_none()
    {
        return Err(refuse(
            "HUGGINGFACE_TOKEN_REQUIRED",
            format!(
                "{} is a gated model: set the organization's Hugging Face token (of an account that accepted its terms) first",
                model.hf_id
            ),
        ));
    }
    let id = Uuid::new_v4();
    let name = name.map_or_else(
        || format!("{} on {}", model.display_name, body.instance_type),
        str::to_owned,
    );
    let rid = request_id::current();
    let mut tx = state.db.begin().await?;
    // One deployment at a time per organization past this point, so two
    // concurrent ones cannot both fit in the last place of the quota.
    sqlx::query!("SELECT id FROM organizations WHERE id = $1 FOR UPDATE", org)
        .fetch_optional(&mut *tx)
        .await?;
    let (max_instances, max_gpus) = crate::routes::quotas::limits(&state, &mut tx, org).await?;
    let (instances, gpus) = crate::routes::quotas::usage(&mut tx, org).await?;
    if instances + 1 > max_instances || gpus + i64::from(resolved.gpu_count) > max_gpus {
        return Err(refuse(
            "QUOTA_EXCEEDED",
            format!(
                "the organization's quota is {max_instances} instance(s) and {max_gpus} GPU(s); \
                 it holds {instances} and {gpus}, this deployment needs 1 and {}: terminate \
                 an instance or ask a platform administrator for more",
                resolved.gpu_count
            ),
        ));
    }
    if let Some((used, limit)) = crate::budgets::gpu_limit_reached(&state.db, org).await? {
        return Err(refuse(
            "BUDGET_EXCEEDED",
            format!(
                "the organization's GPU-hour budget is {limit} GPU hours this month and {used:.2} \
                 are used: no new deployment until next month, unless an owner or admin raises it"
            ),
        ));
    }
    sqlx::query!(
        "INSERT INTO instances (id, organization_id, created_by, name, provider, zone, instance_type, model_id, mode, status,
                                model_catalog_id, instance_type_id, zone_id, price_eur_per_hour)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::text::numeric)",
        id,
        org,
        caller.user_id as UserId,
        name.chars().take(100).collect::<String>(),
        body.provider,
        body.zone,
        body.instance_type,
        model.hf_id,
        mode,
        InstanceStatus::Provisioning.as_str(),
        model.id,
        resolved.type_id,
        resolved.zone_id,
        resolved.price,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO instance_state_history (instance_id, organization_id, from_status, to_status, actor, request_id)
         VALUES ($1, $2, 'new', 'provisioning', 'user', $3)",
        id,
        org,
        rid.as_deref(),
    )
    .execute(&mut *tx)
    .await?;
    enqueue(&mut tx, org, id, CommandKind::Provision, rid.as_deref()).await?;
    let instance = load(&mut *tx, org, id).await?;
    tx.commit().await?;
    state.outbox.notify_one();
    crate::routes::instances::publish_instance(&state, org, &instance).await;
    tracing::info!(instance_id = %id, model = %model.hf_id, "deployment requested");
    Ok((StatusCode::ACCEPTED, Json(instance)))
}
