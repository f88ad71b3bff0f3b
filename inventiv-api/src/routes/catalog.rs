//! The catalog as an organization sees it: providers, zones, instance types
//! and models, each with the organization's double activation (technical by
//! an admin, economic by a manager; usable only when both are on).

use axum::extract::State;
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use sqlx::types::Json as SqlJson;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_providers))
        .routes(routes!(list_zones))
        .routes(routes!(list_instance_types))
        .routes(routes!(compatible_models))
        .routes(routes!(list_models))
        .routes(routes!(recommended_data_volume))
}

/// An organization's activation of one item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activation {
    pub technical: bool,
    pub economic: bool,
    /// Both on: the item can be used.
    pub operational: bool,
    /// What is still off: `technical` (an admin's switch) and/or `economic` (a manager's).
    pub missing: Vec<&'static str>,
}

impl Activation {
    pub fn new(technical: bool, economic: bool) -> Activation {
        let mut missing = Vec::new();
        if !technical {
            missing.push("technical");
        }
        if !economic {
            missing.push("economic");
        }
        Activation {
            technical,
            economic,
            operational: technical && economic,
            missing,
        }
    }
}

/// A cloud provider.
#[derive(Serialize, ToSchema)]
pub struct Provider {
    pub code: String,
    pub name: String,
    pub active: bool,
    pub activation: Activation,
}

/// Every provider, with the organization's activation.
#[utoipa::path(get, path = "/providers", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = [Provider]), (status = 401, body = ErrorBody)))]
async fn list_providers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Provider>>> {
    caller.require(Action::ViewCatalog)?;
    let rows = sqlx::query!(
        r#"SELECT x.code, x.name, x.active, COALESCE(a.technical, false) AS "technical!", COALESCE(a.economic, false) AS "economic!"
             FROM providers x
             LEFT JOIN organization_activations a
               ON a.organization_id = $1 AND a.item_kind = 'provider' AND a.item_id = x.code
            ORDER BY x.code"#,
        caller.org_id as OrgId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| Provider {
                code: r.code,
                name: r.name,
                active: r.active,
                activation: Activation::new(r.technical, r.economic),
            })
            .collect(),
    ))
}

/// Filter by provider.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ZoneFilter {
    provider: Option<String>,
}

/// A zone of a provider.
#[derive(Serialize, ToSchema)]
pub struct Zone {
    pub id: Uuid,
    pub provider: String,
    pub code: String,
    pub region: String,
    pub name: String,
    pub active: bool,
    pub activation: Activation,
}

/// Zones, optionally of one provider.
#[utoipa::path(get, path = "/zones", tag = "catalog", security(("bearer" = [])), params(ZoneFilter),
    responses((status = 200, body = [Zone]), (status = 401, body = ErrorBody)))]
async fn list_zones(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<ZoneFilter>,
) -> ApiResult<Json<Vec<Zone>>> {
    caller.require(Action::ViewCatalog)?;
    let rows = sqlx::query!(
        r#"SELECT x.id, x.provider_code, x.code, x.region, x.name, x.active,
                  COALESCE(a.technical, false) AS "technical!", COALESCE(a.economic, false) AS "economic!"
             FROM zones x
             LEFT JOIN organization_activations a
               ON a.organization_id = $1 AND a.item_kind = 'zone' AND a.item_id = x.id::text
            WHERE ($2::text IS NULL OR x.provider_code = $2)
              AND (x.provider_code <> 'ssh' OR EXISTS (SELECT 1 FROM host_shapes s
                                                        WHERE s.organization_id = $1 AND s.zone_id = x.id))
            ORDER BY x.provider_code, x.code"#,
        caller.org_id as OrgId,
        f.provider,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| Zone {
                id: r.id,
                provider: r.provider_code,
                code: r.code,
                region: r.region,
                name: r.name,
                active: r.active,
                activation: Activation::new(r.technical, r.economic),
            })
            .collect(),
    ))
}

/// Filter by provider and zone (code).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TypeFilter {
    provider: Option<String>,
    zone: Option<String>,
}

/// A machine type with its price and where it is available.
#[derive(Serialize, ToSchema)]
pub struct InstanceType {
    pub id: Uuid,
    pub provider: String,
    pub code: String,
    pub gpu_count: i32,
    pub vram_per_gpu_gb: i32,
    pub total_vram_gb: i32,
    pub vcpu: i32,
    pub ram_gb: i32,
    /// Exact decimal, as a string (e.g. `"2.7300"`).
    pub price_eur_per_hour: String,
    #[schema(value_type = Object)]
    pub allocation: SqlJson<serde_json::Value>,
    pub active: bool,
    /// Zone codes where it is available.
    pub zones: Vec<String>,
    #[schema(value_type = Activation)]
    pub activation: Option<Activation>,
}

/// An instance type as read, with the organization's activation switches
/// (off when never set).
pub struct InstanceTypeRow {
    pub id: Uuid,
    pub provider: String,
    pub code: String,
    pub gpu_count: i32,
    pub vram_per_gpu_gb: i32,
    pub total_vram_gb: i32,
    pub vcpu: i32,
    pub ram_gb: i32,
    pub price_eur_per_hour: String,
    pub allocation: SqlJson<serde_json::Value>,
    pub active: bool,
    pub zones: Vec<String>,
    pub technical: bool,
    pub economic: bool,
}

impl From<InstanceTypeRow> for InstanceType {
    fn from(r: InstanceTypeRow) -> InstanceType {
        InstanceType {
            id: r.id,
            provider: r.provider,
            code: r.code,
            gpu_count: r.gpu_count,
            vram_per_gpu_gb: r.vram_per_gpu_gb,
            total_vram_gb: r.total_vram_gb,
            vcpu: r.vcpu,
            ram_gb: r.ram_gb,
            price_eur_per_hour: r.price_eur_per_hour,
            allocation: r.allocation,
            active: r.active,
            zones: r.zones,
            activation: Some(Activation::new(r.technical, r.economic)),
        }
    }
}

/// Instance types, optionally of one provider and available in one zone.
#[utoipa::path(get, path = "/instance_types", tag = "catalog", security(("bearer" = [])), params(TypeFilter),
    responses((status = 200, body = [InstanceType]), (status = 401, body = ErrorBody)))]
async fn list_instance_types(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<TypeFilter>,
) -> ApiResult<Json<Vec<InstanceType>>> {
    caller.require(Action::ViewCatalog)?;
    let rows = sqlx::query_as!(
        InstanceTypeRow,
        r#"SELECT x.id, x.provider_code AS provider, x.code, x.gpu_count, x.vram_per_gpu_gb,
                  x.gpu_count * x.vram_per_gpu_gb AS "total_vram_gb!", x.vcpu, x.ram_gb,
                  x.price_eur_per_hour::text AS "price_eur_per_hour!",
                  x.allocation AS "allocation: SqlJson<serde_json::Value>", x.active,
                  ARRAY(SELECT z.code FROM instance_type_zones tz JOIN zones z ON z.id = tz.zone_id
                         WHERE tz.instance_type_id = x.id AND tz.available
                           AND (x.provider_code <> 'ssh' OR EXISTS (SELECT 1 FROM host_shapes s
                                WHERE s.organization_id = $1 AND s.instance_type_id = x.id AND s.zone_id = z.id))
                         ORDER BY z.code) AS "zones!",
                  COALESCE(a.technical, false) AS "technical!", COALESCE(a.economic, false) AS "economic!"
             FROM instance_types x
             LEFT JOIN organization_activations a
               ON a.organization_id = $1 AND a.item_kind = 'instance_type' AND a.item_id = x.id::text
            WHERE ($2::text IS NULL OR x.provider_code = $2)
              AND (x.provider_code <> 'ssh' OR EXISTS (SELECT 1 FROM host_shapes s
                                                        WHERE s.organization_id = $1 AND s.instance_type_id = x.id))
              AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM instance_type_zones tz JOIN zones z ON z.id = tz.zone_id
                                                WHERE tz.instance_type_id = x.id AND tz.available AND z.code = $3
                                                  AND (x.provider_code <> 'ssh' OR EXISTS (SELECT 1 FROM host_shapes s
                                                       WHERE s.organization_id = $1 AND s.instance_type_id = x.id
                                                         AND s.zone_id = z.id))))
            ORDER BY x.provider_code, x.price_eur_per_hour"#,
        caller.org_id as OrgId,
        f.provider,
        f.zone,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows.into_iter().map(InstanceType::from).collect()))
}

/// A model of the catalog.
#[derive(Serialize, ToSchema)]
pub struct Model {
    pub id: Uuid,
    pub hf_id: String,
    pub display_name: String,
    pub required_vram_gb: i32,
    pub context_length: i32,
    pub recommended_data_volume_gb: i32,
    /// `chat` or `embedding`.
    pub kind: String,
    pub active: bool,
    /// Gated on Hugging Face: deploying it needs the organization's
    /// Hugging Face token.
    pub gated: bool,
    #[schema(value_type = Object)]
    pub metadata: SqlJson<serde_json::Value>,
    #[schema(value_type = Activation)]
    pub activation: Option<Activation>,
}

/// A model as read, with the organization's activation switches (off
/// when never set).
pub struct ModelRow {
    pub id: Uuid,
    pub hf_id: String,
    pub display_name: String,
    pub required_vram_gb: i32,
    pub context_length: i32,
    pub recommended_data_volume_gb: i32,
    pub kind: String,
    pub active: bool,
    pub gated: bool,
    pub metadata: SqlJson<serde_json::Value>,
    pub technical: bool,
    pub economic: bool,
}

impl From<ModelRow> for Model {
    fn from(r: ModelRow) -> Model {
        Model {
            id: r.id,
            hf_id: r.hf_id,
            display_name: r.display_name,
            required_vram_gb: r.required_vram_gb,
            context_length: r.context_length,
            recommended_data_volume_gb: r.recommended_data_volume_gb,
            kind: r.kind,
            active: r.active,
            gated: r.gated,
            metadata: r.metadata,
            activation: Some(Activation::new(r.technical, r.economic)),
        }
    }
}

/// The models of the catalog with `org`'s activation: all of them, or the
/// active ones that fit in `vram` GB.
async fn models(state: &AppState, org: OrgId, vram: Option<i32>) -> ApiResult<Vec<Model>> {
    let rows = sqlx::query_as!(
        ModelRow,
        r#"SELECT x.id, x.hf_id, x.display_name, x.required_vram_gb, x.context_length,
                  x.recommended_data_volume_gb, x.kind, x.active, x.gated,
                  x.metadata AS "metadata: SqlJson<serde_json::Value>",
                  COALESCE(a.technical, false) AS "technical!", COALESCE(a.economic, false) AS "economic!"
             FROM models x
             LEFT JOIN organization_activations a
               ON a.organization_id = $1 AND a.item_kind = 'model' AND a.item_id = x.id::text
            WHERE $2::int IS NULL OR (x.active AND x.required_vram_gb <= $2)
            ORDER BY x.required_vram_gb, x.hf_id"#,
        org as OrgId,
        vram,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(rows.into_iter().map(Model::from).collect())
}

/// Every model of the catalog.
#[utoipa::path(get, path = "/models", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = [Model]), (status = 401, body = ErrorBody)))]
async fn list_models(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Model>>> {
    caller.require(Action::ViewCatalog)?;
    models(&state, caller.org_id, None).await.map(Json)
}

/// The models that fit an instance type (its total VRAM covers their need).
#[utoipa::path(get, path = "/instance_types/{instance_type_id}/models", tag = "catalog", security(("bearer" = [])),
    params(("instance_type_id" = Uuid, Path, description = "instance type id")),
    responses((status = 200, body = [Model]), (status = 404, body = ErrorBody)))]
async fn compatible_models(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<Model>>> {
    caller.require(Action::ViewCatalog)?;
    let vram = sqlx::query_scalar!(
        r#"SELECT gpu_count * vram_per_gpu_gb AS "vram!" FROM instance_types WHERE id = $1"#,
        id,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    models(&state, caller.org_id, Some(vram)).await.map(Json)
}

/// How big the data volume should be for a model.
#[derive(Serialize, ToSchema)]
pub struct DataVolume {
    pub model_id: Uuid,
    pub recommended_data_volume_gb: i32,
}

/// The data volume size recommended for a model (weights plus cache).
#[utoipa::path(get, path = "/models/{model_id}/recommended-data-volume", tag = "catalog", security(("bearer" = [])),
    params(("model_id" = Uuid, Path, description = "model id")),
    responses((status = 200, body = DataVolume), (status = 404, body = ErrorBody)))]
async fn recommended_data_volume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DataVolume>> {
    caller.require(Action::ViewCatalog)?;
    let gb = sqlx::query_scalar!(
        "SELECT recommended_data_volume_gb FROM models WHERE id = $1",
        id,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(DataVolume {
        model_id: id,
        recommended_data_volume_gb: gb,
    }))
}
