//! Double activation of catalog items for the current organization: the
//! technical switch belongs to admins, the economic one to managers, both
//! to owners. An item is operational only when both are on.

use axum::extract::State;
use inventiv_common::{can, Action, OrgId, UserId};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::catalog::Activation;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_activation))
}

/// The switches to set; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetActivation {
    technical: Option<bool>,
    economic: Option<bool>,
}

/// Whether `item` of `kind` exists in the catalog.
async fn exists(state: &AppState, kind: &str, item: &str) -> ApiResult<bool> {
    let db = &state.db;
    let exists = match kind {
        "provider" => {
            sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM providers WHERE code = $1) AS "exists!""#,
                item
            )
            .fetch_one(db)
            .await?
        }
        "zone" => {
            sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM zones WHERE id::text = $1) AS "exists!""#,
                item
            )
            .fetch_one(db)
            .await?
        }
        "instance_type" => {
            sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM instance_types WHERE id::text = $1)
                     AS "exists!""#,
                item
            )
            .fetch_one(db)
            .await?
        }
        "model" => {
            sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM models WHERE id::text = $1) AS "exists!""#,
                item
            )
            .fetch_one(db)
            .await?
        }
        _ => false,
    };
    Ok(exists)
}

/// Switches the current organization's activation of a catalog item
/// (`kind`: provider, zone, instance_type, model; `item_id`: the provider
/// code or the item's id).
#[utoipa::path(put, path = "/organizations/current/activations/{kind}/{item_id}", tag = "catalog",
    security(("bearer" = [])), request_body = SetActivation,
    params(("kind" = String, Path, description = "provider, zone, instance_type or model"),
           ("item_id" = String, Path, description = "provider code or item id")),
    responses((status = 200, body = Activation), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_activation(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, item)): Path<(String, String)>,
    Json(body): Json<SetActivation>,
) -> ApiResult<Json<Activation>> {
    caller.require(Action::ViewCatalog)?;
    // An empty change would pass every role check below and still write an
    // activation row and an audit entry.
    if body.technical.is_none() && body.economic.is_none() {
        if !can(caller.role, Action::ActivateTechnical)
            && !can(caller.role, Action::ActivateEconomic)
        {
            return Err(ApiError::forbidden(
                "only owners, admins and managers switch activations",
            ));
        }
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "set technical and/or economic",
        ));
    }
    if body.technical.is_some() {
        caller.require(Action::ActivateTechnical)?;
    }
    if body.economic.is_some() {
        caller.require(Action::ActivateEconomic)?;
    }
    if item.len() > 64 || !exists(&state, &kind, &item).await? {
        return Err(ApiError::NotFound);
    }
    let mut tx = state.db.begin().await?;
    let row = sqlx::query!(
        "INSERT INTO organization_activations (organization_id, item_kind, item_id, technical, economic, technical_by, economic_by)
         VALUES ($1, $2, $3, COALESCE($4, false), COALESCE($5, false),
                 CASE WHEN $4 IS NULL THEN NULL ELSE $6::uuid END, CASE WHEN $5 IS NULL THEN NULL ELSE $6::uuid END)
         ON CONFLICT (organization_id, item_kind, item_id) DO UPDATE SET
            technical = COALESCE($4, organization_activations.technical),
            economic = COALESCE($5, organization_activations.economic),
            technical_by = CASE WHEN $4 IS NULL THEN organization_activations.technical_by ELSE $6::uuid END,
            economic_by = CASE WHEN $5 IS NULL THEN organization_activations.economic_by ELSE $6::uuid END,
            updated_at = now()
         RETURNING technical, economic",
        caller.org_id as OrgId,
        kind,
        item,
        body.technical,
        body.economic,
        caller.user_id as UserId,
    )
    .fetch_one(&mut *tx)
    .await?;
    let entry = audit::Entry::by(
        &caller,
        "catalog.activation_changed",
        "catalog_item",
        format!("{kind}:{item}"),
    )
    .details(serde_json::json!({ "technical": body.technical, "economic": body.economic }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    Ok(Json(Activation::new(row.technical, row.economic)))
}
