//! Worker settings of the current organization per provider (owners and
//! admins): GPU mode by default, node ports, start-up timeout, bootstrap
//! attempts, the nodes' dead-man switch (delay, and on Scaleway the opt-in
//! power-off through its API). Unset means the defaults; a PUT replaces them
//! all (a field left out takes its default) after checking the bounds.

use axum::extract::State;
use inventiv_common::worker_settings::WorkerSettings;
use inventiv_common::Action;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

/// The provider's code when the catalog has it; 404 otherwise.
async fn known(state: &AppState, provider: &str) -> ApiResult<()> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM providers WHERE code = $1) AS "exists!""#,
        provider
    )
    .fetch_one(&state.db)
    .await?;
    exists.then_some(()).ok_or(ApiError::NotFound)
}

/// The organization's worker settings on a provider (defaults when unset).
#[utoipa::path(get, path = "/organizations/current/providers/{provider}/worker-settings", tag = "providers",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    responses((status = 200, body = WorkerSettings), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Json<WorkerSettings>> {
    caller.require(Action::ManageProviders)?;
    known(&state, &provider).await?;
    let settings =
        inventiv_store::worker_settings::load(&state.db, caller.org_id.0, &provider).await?;
    Ok(Json(settings.unwrap_or_default()))
}

/// Replaces the organization's worker settings on a provider.
#[utoipa::path(put, path = "/organizations/current/providers/{provider}/worker-settings", tag = "providers",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    request_body = WorkerSettings,
    responses((status = 200, body = WorkerSettings), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Json<WorkerSettings>> {
    caller.require(Action::ManageProviders)?;
    known(&state, &provider).await?;
    // Only an object: serde would also read a struct from an array.
    if !body.is_object() {
        return Err(ApiError::MalformedBody(
            "the body must be a JSON object".into(),
        ));
    }
    let settings: WorkerSettings =
        serde_json::from_value(body).map_err(|e| ApiError::MalformedBody(e.to_string()))?;
    settings
        .validate()
        .map_err(|m| ApiError::validation("VALIDATION_ERROR", m))?;
    let mut tx = state.db.begin().await?;
    inventiv_store::worker_settings::save(&mut *tx, caller.org_id.0, &provider, &settings).await?;
    audit::record(
        &mut *tx,
        audit::Entry::by(&caller, "worker_settings.set", "provider", provider.clone())
            .details(serde_json::to_value(&settings).unwrap_or_default()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(settings))
}
