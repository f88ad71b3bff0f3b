//! The catalog as an organization sees it: providers, zones, instance types
//! and models, each with the organization's double activation (technical by
//! an admin, economic by a manager; usable only when both are on).

use axum::extract::State;
use inventiv_common::Action;
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

/// The activation join, for a catalog table aliased `x` whose item id is `id_sql`.
fn activation_join(kind: &str, id_sql: &str) -> String {
    format!(
        "LEFT JOIN organization_activations a ON a.organization_id = $1 AND a.item_kind = '{kind}' AND a.item_id = {id_sql}"
    )
}

/// Every provider, with the organization's activation.
#[utoipa::path(get, path = "/providers", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = [Provider]), (status = 401, body = ErrorBody)))]
async fn list_providers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Provider>>> {
    caller.require(Action::ViewCatalog)?;
    type Row = (String, String, bool, Option<bool>, Option<bool>);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT x.code, x.name, x.active, a.technical, a.economic FROM providers x {} ORDER BY x.code",
        activation_join("provider", "x.code")
    ))
    .bind(caller.org_id.0)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(code, name, active, t, e)| Provider {
                code,
                name,
                active,
                activation: Activation::new(t.unwrap_or(false), e.unwrap_or(false)),
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
    type Row = (
        Uuid,
        String,
        String,
        String,
        String,
        bool,
        Option<bool>,
        Option<bool>,
    );
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT x.id, x.provider_code, x.code, x.region, x.name, x.active, a.technical, a.economic
           FROM zones x {} WHERE ($2::text IS NULL OR x.provider_code = $2) ORDER BY x.provider_code, x.code",
        activation_join("zone", "x.id::text")
    ))
    .bind(caller.org_id.0)
    .bind(f.provider)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, provider, code, region, name, active, t, e)| Zone {
                id,
                provider,
                code,
                region,
                name,
                active,
                activation: Activation::new(t.unwrap_or(false), e.unwrap_or(false)),
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
#[derive(Serialize, ToSchema, sqlx::FromRow)]
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
    #[sqlx(skip)]
    #[schema(value_type = Activation)]
    pub activation: Option<Activation>,
    #[serde(skip)]
    pub technical: Option<bool>,
    #[serde(skip)]
    pub economic: Option<bool>,
}

const TYPE_SELECT: &str = "SELECT x.id, x.provider_code AS provider, x.code, x.gpu_count, x.vram_per_gpu_gb,
        x.gpu_count * x.vram_per_gpu_gb AS total_vram_gb, x.vcpu, x.ram_gb, x.price_eur_per_hour::text AS price_eur_per_hour,
        x.allocation, x.active,
        ARRAY(SELECT z.code FROM instance_type_zones tz JOIN zones z ON z.id = tz.zone_id
               WHERE tz.instance_type_id = x.id AND tz.available ORDER BY z.code) AS zones,
        a.technical, a.economic
   FROM instance_types x";

/// Instance types, optionally of one provider and available in one zone.
#[utoipa::path(get, path = "/instance_types", tag = "catalog", security(("bearer" = [])), params(TypeFilter),
    responses((status = 200, body = [InstanceType]), (status = 401, body = ErrorBody)))]
async fn list_instance_types(
    State(state): State<AppState>,
    caller: Caller,
    Query(f): Query<TypeFilter>,
) -> ApiResult<Json<Vec<InstanceType>>> {
    caller.require(Action::ViewCatalog)?;
    let mut rows: Vec<InstanceType> = sqlx::query_as(&format!(
        "{TYPE_SELECT} {} WHERE ($2::text IS NULL OR x.provider_code = $2)
            AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM instance_type_zones tz JOIN zones z ON z.id = tz.zone_id
                                              WHERE tz.instance_type_id = x.id AND tz.available AND z.code = $3))
          ORDER BY x.provider_code, x.price_eur_per_hour",
        activation_join("instance_type", "x.id::text")
    ))
    .bind(caller.org_id.0)
    .bind(f.provider)
    .bind(f.zone)
    .fetch_all(&state.db)
    .await?;
    for t in &mut rows {
        t.activation = Some(Activation::new(
            t.technical.unwrap_or(false),
            t.economic.unwrap_or(false),
        ));
    }
    Ok(Json(rows))
}

/// A model of the catalog.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
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
    #[sqlx(skip)]
    #[schema(value_type = Activation)]
    pub activation: Option<Activation>,
    #[serde(skip)]
    pub technical: Option<bool>,
    #[serde(skip)]
    pub economic: Option<bool>,
}

const MODEL_SELECT: &str = "SELECT x.id, x.hf_id, x.display_name, x.required_vram_gb, x.context_length,
        x.recommended_data_volume_gb, x.kind, x.active, x.gated, x.metadata, a.technical, a.economic FROM models x";

fn with_activation(mut models: Vec<Model>) -> Vec<Model> {
    for m in &mut models {
        m.activation = Some(Activation::new(
            m.technical.unwrap_or(false),
            m.economic.unwrap_or(false),
        ));
    }
    models
}

/// Every model of the catalog.
#[utoipa::path(get, path = "/models", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = [Model]), (status = 401, body = ErrorBody)))]
async fn list_models(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Model>>> {
    caller.require(Action::ViewCatalog)?;
    let rows = sqlx::query_as(&format!(
        "{MODEL_SELECT} {} ORDER BY x.required_vram_gb, x.hf_id",
        activation_join("model", "x.id::text")
    ))
    .bind(caller.org_id.0)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(with_activation(rows)))
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
    let vram: i32 =
        sqlx::query_scalar("SELECT gpu_count * vram_per_gpu_gb FROM instance_types WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db)
            .await?
            .ok_or(ApiError::NotFound)?;
    let rows = sqlx::query_as(&format!(
        "{MODEL_SELECT} {} WHERE x.active AND x.required_vram_gb <= $2 ORDER BY x.required_vram_gb, x.hf_id",
        activation_join("model", "x.id::text")
    ))
    .bind(caller.org_id.0)
    .bind(vram)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(with_activation(rows)))
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
    let gb: i32 = sqlx::query_scalar("SELECT recommended_data_volume_gb FROM models WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(DataVolume {
        model_id: id,
        recommended_data_volume_gb: gb,
    }))
}
