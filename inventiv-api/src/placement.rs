//! What a deployment and a service's replicas must pass before an instance
//! is written, and the writing itself: the model of the catalog, the mode,
//! the name, each placement (provider, zone, instance type: availability,
//! compatibility, double activation, provider configuration, a Hugging
//! Face token for a gated model), the organization's quota and GPU-hour
//! budget, then the instance row with its provision command. `POST
//! /deployments` and the service routes both go through here, so a
//! placement is checked the same way whatever asks for it. A refusal
//! stores nothing.

use inventiv_common::messages::CommandKind;
use inventiv_common::{InstanceStatus, UserId};
use inventiv_store::outbox::enqueue;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Where to run a replica: a provider's zone and instance type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Provider code, e.g. `mock` or `scaleway`.
    pub provider: String,
    /// Zone code, e.g. `fr-par-2`.
    pub zone: String,
    /// Instance type code, e.g. `L4-1-24G`.
    pub instance_type: String,
}

/// An active catalog model.
pub struct Model {
    pub id: Uuid,
    pub hf_id: String,
    pub display_name: String,
    required_vram_gb: i32,
    active: bool,
    gated: bool,
}

/// A placement that passed every check for a model and an organization.
pub struct Checked {
    pub placement: Placement,
    pub zone_id: Uuid,
    pub type_id: Uuid,
    pub gpu_count: i32,
    /// EUR per hour of the type (exact decimal).
    pub price: String,
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

fn refuse(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::conflict(code, message)
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::validation(code, message)
}

/// The catalog model a request names (its id or its Hugging Face id):
/// mandatory, and active.
pub async fn model(state: &AppState, model_ref: Option<&str>) -> ApiResult<Model> {
    let Some(model_ref) = model_ref.map(str::trim).filter(|m| !m.is_empty()) else {
        return Err(invalid(
            "MISSING_MODEL",
            "model_id is mandatory: choose a model of the catalog",
        ));
    };
    sqlx::query_as!(
        Model,
        "SELECT id, hf_id, display_name, required_vram_gb, active, gated FROM models WHERE id::text = $1 OR hf_id = $1",
        model_ref,
    )
    .fetch_optional(&state.db)
    .await?
    .filter(|m: &Model| m.active)
    .ok_or_else(|| invalid("MISSING_MODEL", format!("no active catalog model {model_ref:?}")))
}

/// The engine mode: the one asked for, else the organization's worker
/// settings on `provider`; `mono` or `multi`.
pub async fn mode(
    state: &AppState,
    org: Uuid,
    requested: Option<String>,
    provider: &str,
) -> ApiResult<String> {
    let mode = match requested {
        Some(m) => m,
        None => {
            inventiv_store::worker_settings::load(&state.db, org, provider)
                .await?
                .unwrap_or_default()
                .mode
        }
    };
    if !["mono", "multi"].contains(&mode.as_str()) {
        return Err(invalid("VALIDATION_ERROR", "mode: mono or multi"));
    }
    Ok(mode)
}

/// A name given by the caller: trimmed, absent when empty, at most 100
/// printable characters.
pub fn name(raw: Option<&str>) -> ApiResult<Option<String>> {
    let name = raw.map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
        return Err(invalid(
            "VALIDATION_ERROR",
            "name: at most 100 printable characters",
        ));
    }
    Ok(name.map(str::to_owned))
}

/// Whether the organization can use this provider (credentials when needed).
async fn provider_configured(state: &AppState, org: Uuid, provider: &str) -> ApiResult<bool> {
    // The mock provider runs locally and needs nothing, the `ssh` one the
    // organization's hosts (the zone and type checks found one); cloud
    // providers need the organization's credentials.
    if provider == "mock" || provider == "ssh" {
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

/// Checks one placement for `model` in `org`: the provider is active (the
/// mock one only when enabled), the type exists in the zone and is
/// available there, its VRAM fits the model, every item is activated on
/// both sides, the provider is configured, and a gated model has the
/// organization's Hugging Face token.
pub async fn check(
    state: &AppState,
    org: Uuid,
    model: &Model,
    placement: &Placement,
) -> ApiResult<Checked> {
    let Placement {
        provider,
        zone,
        instance_type,
    } = placement;
    let provider_active =
        sqlx::query_scalar!("SELECT active FROM providers WHERE code = $1", provider)
            .fetch_optional(&state.db)
            .await?;
    if provider_active != Some(true) {
        return Err(invalid(
            "UNKNOWN_PROVIDER",
            format!("no active provider {provider:?}"),
        ));
    }
    // The mock provider runs its "VMs" as root processes of this host.
    if provider == "mock" && !state.config.mock_provider {
        return Err(refuse(
            "MOCK_PROVIDER_DISABLED",
            "the mock provider is for development: enabled with INVENTIV_MOCK_PROVIDER=true",
        ));
    }
    let resolved = sqlx::query_as!(
        Resolved,
        r#"SELECT z.id AS zone_id, z.active AS zone_active, t.id AS type_id, t.active AS type_active,
                t.gpu_count * t.vram_per_gpu_gb AS "total_vram!", t.gpu_count, t.price_eur_per_hour::text AS "price!",
                COALESCE((SELECT available FROM instance_type_zones WHERE instance_type_id = t.id AND zone_id = z.id), false) AS "available!"
           FROM zones z JOIN instance_types t ON t.provider_code = z.provider_code
          WHERE z.provider_code = $1 AND z.code = $2 AND t.code = $3
            AND (z.provider_code <> 'ssh' OR EXISTS (SELECT 1 FROM host_shapes s
                 WHERE s.organization_id = $4 AND s.zone_id = z.id AND s.instance_type_id = t.id))"#,
        provider,
        zone,
        instance_type,
        org,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| invalid("UNKNOWN_ZONE_OR_TYPE", format!("{provider} has no zone {zone:?} with type {instance_type:?}")))?;
    if !(resolved.available && resolved.zone_active && resolved.type_active) {
        return Err(refuse(
            "ZONE_NOT_AVAILABLE",
            format!("{instance_type} is not available in {zone}"),
        ));
    }
    if model.required_vram_gb > resolved.total_vram {
        return Err(invalid(
            "INCOMPATIBLE_MODEL_INSTANCE",
            format!(
                "{} needs {} GB of VRAM; {instance_type} has {} GB",
                model.hf_id, model.required_vram_gb, resolved.total_vram
            ),
        ));
    }
    let items = [
        ("provider", provider.clone()),
        ("zone", resolved.zone_id.to_string()),
        ("instance_type", resolved.type_id.to_string()),
        ("model", model.id.to_string()),
    ];
    let missing = missing_activations(state, org, &items).await?;
    if !missing.is_empty() {
        return Err(refuse(
            "NOT_ACTIVATED",
            format!(
                "not activated for this organization: {}",
                missing.join("; ")
            ),
        ));
    }
    if !provider_configured(state, org, provider).await? {
        return Err(refuse(
            "PROVIDER_NOT_CONFIGURED",
            format!("set the organization's {provider} credentials first"),
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
    Ok(Checked {
        placement: placement.clone(),
        zone_id: resolved.zone_id,
        type_id: resolved.type_id,
        gpu_count: resolved.gpu_count,
        price: resolved.price,
    })
}

/// Admits `count` more instances of `gpus_each` GPUs in `org`, inside the
/// transaction that writes them: one admission at a time per organization
/// (the organization row is locked until the transaction ends, so two
/// concurrent ones cannot both fit in the last place of the quota), within
/// the quota and the hard GPU-hour budget.
pub async fn admit(
    state: &AppState,
    tx: &mut PgConnection,
    org: Uuid,
    count: i64,
    gpus_each: i32,
) -> ApiResult<()> {
    sqlx::query!("SELECT id FROM organizations WHERE id = $1 FOR UPDATE", org)
        .fetch_optional(&mut *tx)
        .await?;
    let (max_instances, max_gpus) = crate::routes::quotas::limits(state, tx, org).await?;
    let (instances, gpus) = crate::routes::quotas::usage(tx, org).await?;
    let needed_gpus = count * i64::from(gpus_each);
    if instances + count > max_instances || gpus + needed_gpus > max_gpus {
        return Err(refuse(
            "QUOTA_EXCEEDED",
            format!(
                "the organization's quota is {max_instances} instance(s) and {max_gpus} GPU(s); \
                 it holds {instances} and {gpus}, this needs {count} and {needed_gpus}: terminate \
                 an instance or ask a platform administrator for more"
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
    Ok(())
}

/// What an instance is made of.
pub struct NewInstance<'a> {
    pub org: Uuid,
    pub created_by: UserId,
    pub name: &'a str,
    pub model: &'a Model,
    pub mode: &'a str,
    pub at: &'a Checked,
    /// The service it is a replica of, and the service's revision it is made at.
    pub service_id: Uuid,
    pub service_revision: i32,
    pub request_id: Option<&'a str>,
}

/// Writes an instance in `provisioning` with its history row and its
/// provision command, in the caller's transaction; returns its id.
pub async fn create_instance(tx: &mut PgConnection, new: NewInstance<'_>) -> ApiResult<Uuid> {
    let id = Uuid::new_v4();
    let at = new.at;
    sqlx::query!(
        "INSERT INTO instances (id, organization_id, created_by, name, provider, zone, instance_type, model_id, mode, status,
                                model_catalog_id, instance_type_id, zone_id, price_eur_per_hour, service_id, service_revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::text::numeric, $15, $16)",
        id,
        new.org,
        new.created_by as UserId,
        new.name.chars().take(100).collect::<String>(),
        at.placement.provider,
        at.placement.zone,
        at.placement.instance_type,
        new.model.hf_id,
        new.mode,
        InstanceStatus::Provisioning.as_str(),
        new.model.id,
        at.type_id,
        at.zone_id,
        at.price,
        new.service_id,
        new.service_revision,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO instance_state_history (instance_id, organization_id, from_status, to_status, actor, request_id)
         VALUES ($1, $2, 'new', 'provisioning', 'user', $3)",
        id,
        new.org,
        new.request_id,
    )
    .execute(&mut *tx)
    .await?;
    enqueue(tx, new.org, id, CommandKind::Provision, new.request_id).await?;
    Ok(id)
}
