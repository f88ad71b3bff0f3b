//! Platform administration of the global catalog: models and instance
//! types (prices, availability switch).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::types::Json as SqlJson;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::accounts::is_unique_violation;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::catalog::{InstanceType, InstanceTypeRow, Model, ModelRow};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_model))
        .routes(routes!(update_model))
        .routes(routes!(update_instance_type))
}

fn bounded(field: &str, v: i32, max: i32) -> ApiResult<i32> {
    if (1..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::validation(
            "VALIDATION_ERROR",
            format!("{field}: 1 to {max}"),
        ))
    }
}

fn text(field: &str, v: &str, max: usize) -> ApiResult<String> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            format!("{field}: 1 to {max} printable characters"),
        ));
    }
    Ok(t.to_owned())
}

/// A model to add to the catalog.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    /// Hugging Face id, e.g. `Qwen/Qwen2.5-7B-Instruct`.
    hf_id: String,
    display_name: String,
    required_vram_gb: i32,
    context_length: i32,
    recommended_data_volume_gb: i32,
    /// `chat` (default) or `embedding`.
    kind: Option<String>,
    /// Gated on Hugging Face (default false): deployments then need the
    /// organization's Hugging Face token.
    gated: Option<bool>,
}

/// Adds a model to the global catalog (platform admins).
#[utoipa::path(post, path = "/models", tag = "catalog", security(("bearer" = [])), request_body = CreateModel,
    responses((status = 201, body = Model), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_model(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateModel>,
) -> ApiResult<(StatusCode, Json<Model>)> {
    caller.require_platform_admin()?;
    let hf_id = text("hf_id", &body.hf_id, 200)?;
    let kind = body.kind.unwrap_or_else(|| "chat".into());
    if !["chat", "embedding"].contains(&kind.as_str()) {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "kind: chat or embedding",
        ));
    }
    let display_name = text("display_name", &body.display_name, 100)?;
    let required_vram_gb = bounded("required_vram_gb", body.required_vram_gb, 10_000)?;
    let context_length = bounded("context_length", body.context_length, 10_000_000)?;
    let volume_gb = bounded(
        "recommended_data_volume_gb",
        body.recommended_data_volume_gb,
        100_000,
    )?;
    // A new model is activated for no organization.
    let model = sqlx::query_as!(
        ModelRow,
        r#"INSERT INTO models (id, hf_id, display_name, required_vram_gb, context_length, recommended_data_volume_gb, kind, gated)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, hf_id, display_name, required_vram_gb, context_length, recommended_data_volume_gb, kind, active, gated,
                     metadata AS "metadata: SqlJson<serde_json::Value>",
                     false AS "technical!", false AS "economic!""#,
        Uuid::new_v4(),
        hf_id,
        display_name,
        required_vram_gb,
        context_length,
        volume_gb,
        kind,
        body.gated.unwrap_or(false),
    )
    .fetch_one(&state.db)
    .await
    .map_err(|e| if is_unique_violation(&e) { ApiError::conflict("MODEL_EXISTS", format!("{hf_id} is already in the catalog")) } else { e.into() })?;
    Ok((StatusCode::CREATED, Json(Model::from(model))))
}

/// Changes to a catalog model.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    display_name: Option<String>,
    required_vram_gb: Option<i32>,
    context_length: Option<i32>,
    recommended_data_volume_gb: Option<i32>,
    active: Option<bool>,
    gated: Option<bool>,
}

/// Edits a catalog model (platform admins).
#[utoipa::path(patch, path = "/models/{model_id}", tag = "catalog", security(("bearer" = [])), request_body = UpdateModel,
    params(("model_id" = Uuid, Path, description = "model id")),
    responses((status = 200, body = Model), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_model(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateModel>,
) -> ApiResult<Json<Model>> {
    caller.require_platform_admin()?;
    let display_name = body
        .display_name
        .as_deref()
        .map(|n| text("display_name", n, 100))
        .transpose()?;
    let required_vram_gb = body
        .required_vram_gb
        .map(|v| bounded("required_vram_gb", v, 10_000))
        .transpose()?;
    let context_length = body
        .context_length
        .map(|v| bounded("context_length", v, 10_000_000))
        .transpose()?;
    let volume_gb = body
        .recommended_data_volume_gb
        .map(|v| bounded("recommended_data_volume_gb", v, 100_000))
        .transpose()?;
    // The platform view: no organization's activation.
    let model = sqlx::query_as!(
        ModelRow,
        r#"UPDATE models SET display_name = COALESCE($2, display_name), required_vram_gb = COALESCE($3, required_vram_gb),
                context_length = COALESCE($4, context_length),
                recommended_data_volume_gb = COALESCE($5, recommended_data_volume_gb), active = COALESCE($6, active),
                gated = COALESCE($7, gated)
          WHERE id = $1
          RETURNING id, hf_id, display_name, required_vram_gb, context_length, recommended_data_volume_gb, kind, active, gated,
                    metadata AS "metadata: SqlJson<serde_json::Value>",
                    false AS "technical!", false AS "economic!""#,
        id,
        display_name,
        required_vram_gb,
        context_length,
        volume_gb,
        body.active,
        body.gated,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(Model::from(model)))
}

/// Changes to an instance type.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstanceType {
    /// Exact decimal as a string, e.g. `"2.7300"`.
    price_eur_per_hour: Option<String>,
    active: Option<bool>,
}

fn price(value: &str) -> ApiResult<&str> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    let ok = !int.is_empty()
        && int.len() <= 8
        && frac.len() <= 4
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
    if ok {
        Ok(value)
    } else {
        Err(ApiError::validation(
            "VALIDATION_ERROR",
            "price_eur_per_hour: a decimal like \"2.7300\" (at most 4 decimals)",
        ))
    }
}

/// Edits an instance type's price or availability (platform admins). The
/// row is marked as edited so a catalog sync leaves it alone.
#[utoipa::path(patch, path = "/instance_types/{instance_type_id}", tag = "catalog", security(("bearer" = [])),
    request_body = UpdateInstanceType, params(("instance_type_id" = Uuid, Path, description = "instance type id")),
    responses((status = 200, body = InstanceType), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_instance_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateInstanceType>,
) -> ApiResult<Json<InstanceType>> {
    caller.require_platform_admin()?;
    let price = body.price_eur_per_hour.as_deref().map(price).transpose()?;
    let updated = sqlx::query!(
        "UPDATE instance_types SET price_eur_per_hour = COALESCE($2::text::numeric, price_eur_per_hour),
                active = COALESCE($3, active), edited_by_admin = true WHERE id = $1",
        id,
        price,
        body.active,
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(ApiError::NotFound);
    }
    // The platform view: no organization's activation.
    let t = sqlx::query_as!(
        InstanceTypeRow,
        r#"SELECT x.id, x.provider_code AS provider, x.code, x.gpu_count, x.vram_per_gpu_gb,
                x.gpu_count * x.vram_per_gpu_gb AS "total_vram_gb!", x.vcpu, x.ram_gb,
                x.price_eur_per_hour::text AS "price_eur_per_hour!",
                x.allocation AS "allocation: SqlJson<serde_json::Value>", x.active,
                ARRAY(SELECT z.code FROM instance_type_zones tz JOIN zones z ON z.id = tz.zone_id
                       WHERE tz.instance_type_id = x.id AND tz.available ORDER BY z.code) AS "zones!",
                false AS "technical!", false AS "economic!"
           FROM instance_types x WHERE x.id = $1"#,
        id,
    )
    .fetch_one(&state.db)
    .await?;
    Ok(Json(InstanceType::from(t)))
}
