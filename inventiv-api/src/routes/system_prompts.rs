//! System prompts (see `crate::system_prompts` for how the proxy applies
//! them): the organization's (owners and admins), an API key's (its
//! creator, owners and admins), a shared offering's (its provider's owners
//! and admins: for its consumers' calls) and a catalog model's (platform
//! admins), each
//! set (`PUT`, its version raised) and removed (`DELETE`), every change in
//! the audit log with its text; members read the ones that concern them.
//! Another organization's key is a 404.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::rbac::can;
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit::{self, Entry};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;
use crate::system_prompts::{Mode, MAX_CHARS};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_system_prompts))
        .routes(routes!(set_organization_prompt, clear_organization_prompt))
        .routes(routes!(set_key_prompt, clear_key_prompt))
        .routes(routes!(set_model_prompt, clear_model_prompt))
        .routes(routes!(set_offering_prompt, clear_offering_prompt))
}

/// A system prompt and what it applies to.
#[derive(Serialize, ToSchema)]
pub struct SystemPrompt {
    /// `model`, `organization`, `api_key` or `offering`: the most specific
    /// applies (key, then organization, then the offering of a shared
    /// model, then model).
    pub scope: String,
    /// The model's, the organization's, the key's or the offering's id.
    pub target_id: Uuid,
    pub content: String,
    pub mode: Mode,
    /// Raised by each change (each in the audit log with its text).
    pub version: i32,
    pub updated_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
}

/// A prompt to set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSystemPrompt {
    /// 1 to 4000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    content: String,
    /// `if_absent` (default): added when the request has no system
    /// message; `always`: put before the request's own messages.
    mode: Option<Mode>,
}

impl SetSystemPrompt {
    fn checked(&self) -> ApiResult<(&str, Mode)> {
        let content = self.content.trim();
        if content.is_empty() || content.chars().count() > MAX_CHARS || content.contains('\0') {
            return Err(ApiError::validation(
                "VALIDATION_ERROR",
                format!("content: 1 to {MAX_CHARS} characters, no NUL"),
            ));
        }
        Ok((content, self.mode.unwrap_or(Mode::IfAbsent)))
    }
}

/// Which prompt a change is about.
#[derive(Clone, Copy)]
enum Target {
    Organization(Uuid),
    Key { org: Uuid, key: Uuid },
    Offering { org: Uuid, offering: Uuid },
    Model(Uuid),
}

impl Target {
    fn scope(self) -> &'static str {
        match self {
            Target::Organization(_) => "organization",
            Target::Key { .. } => "api_key",
            Target::Offering { .. } => "offering",
            Target::Model(_) => "model",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Target::Organization(id)
            | Target::Key { key: id, .. }
            | Target::Offering { offering: id, .. }
            | Target::Model(id) => id,
        }
    }
}

/// The system prompts that concern the current organization: its own, its
/// keys', its offerings', and the catalog models'. Members read.
#[utoipa::path(get, path = "/organizations/current/system-prompts", tag = "system-prompts", security(("bearer" = [])),
    responses((status = 200, body = [SystemPrompt])))]
async fn list_system_prompts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SystemPrompt>>> {
    caller.require(Action::ViewOrganization)?;
    let rows = sqlx::query!(
        r#"SELECT p.scope, COALESCE(p.api_key_id, p.offering_id, p.organization_id, p.model_id) AS "target_id!",
                  p.content, p.mode, p.version, p.updated_by, p.updated_at
             FROM system_prompts p
            WHERE p.scope = 'model' OR p.organization_id = $1
            ORDER BY CASE p.scope WHEN 'api_key' THEN 0 WHEN 'organization' THEN 1 WHEN 'offering' THEN 2 ELSE 3 END,
                     p.updated_at DESC, p.id"#,
        caller.org_id as OrgId,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .filter_map(|r| {
                Some(SystemPrompt {
                    mode: Mode::parse(&r.mode)?,
                    scope: r.scope,
                    target_id: r.target_id,
                    content: r.content,
                    version: r.version,
                    updated_by: r.updated_by,
                    updated_at: r.updated_at,
                })
            })
            .collect(),
    ))
}

/// Sets the organization's system prompt (owners and admins).
#[utoipa::path(put, path = "/organizations/current/system-prompt", tag = "system-prompts", security(("bearer" = [])),
    request_body = SetSystemPrompt, responses((status = 200, body = SystemPrompt), (status = 400, body = ErrorBody)))]
async fn set_organization_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SetSystemPrompt>,
) -> ApiResult<Json<SystemPrompt>> {
    caller.require(Action::UpdateOrganization)?;
    set(
        &state,
        &caller,
        Target::Organization(caller.org_id.0),
        &body,
    )
    .await
}

/// Removes the organization's system prompt (owners and admins).
#[utoipa::path(delete, path = "/organizations/current/system-prompt", tag = "system-prompts", security(("bearer" = [])),
    responses((status = 204)))]
async fn clear_organization_prompt(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    caller.require(Action::UpdateOrganization)?;
    clear(&state, &caller, Target::Organization(caller.org_id.0)).await
}

/// The key of the current organization that `caller` may change, as
/// `PATCH /api-keys/{id}` decides: 404 when the caller cannot see it
/// (another organization's, or another member's for a member who sees
/// only their own), 409 when revoked, 403 unless the caller made it or
/// manages every key.
async fn own_key(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Target> {
    caller.require(Action::UseApiKeys)?;
    let key = sqlx::query!(
        "SELECT created_by, revoked_at FROM api_keys WHERE id = $1 AND organization_id = $2",
        id,
        caller.org_id as OrgId,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    let mine = key.created_by == caller.user_id.0;
    let sees_all =
        can(caller.role, Action::ManageAllApiKeys) || can(caller.role, Action::ActivateEconomic);
    if !mine && !sees_all {
        return Err(ApiError::NotFound);
    }
    if key.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "API_KEY_REVOKED",
            "a revoked key cannot change",
        ));
    }
    if !mine && !can(caller.role, Action::ManageAllApiKeys) {
        return Err(ApiError::forbidden(
            "only the key's creator, an owner or an admin may change this key",
        ));
    }
    Ok(Target::Key {
        org: caller.org_id.0,
        key: id,
    })
}

/// Sets an API key's system prompt (its creator, owners and admins).
#[utoipa::path(put, path = "/api-keys/{api_key_id}/system-prompt", tag = "system-prompts", security(("bearer" = [])),
    params(("api_key_id" = Uuid, Path, description = "API key id")), request_body = SetSystemPrompt,
    responses((status = 200, body = SystemPrompt), (status = 404, body = ErrorBody),
              (status = 409, description = "the key is revoked (`API_KEY_REVOKED`)", body = ErrorBody)))]
async fn set_key_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SetSystemPrompt>,
) -> ApiResult<Json<SystemPrompt>> {
    let target = own_key(&state, &caller, id).await?;
    set(&state, &caller, target, &body).await
}

/// Removes an API key's system prompt (its creator, owners and admins).
#[utoipa::path(delete, path = "/api-keys/{api_key_id}/system-prompt", tag = "system-prompts", security(("bearer" = [])),
    params(("api_key_id" = Uuid, Path, description = "API key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn clear_key_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let target = own_key(&state, &caller, id).await?;
    clear(&state, &caller, target).await
}

/// An offering of the current organization (owners and admins); another
/// organization's is a 404.
async fn offering(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Target> {
    caller.require(Action::PublishOfferings)?;
    sqlx::query_scalar!(
        "SELECT id FROM offerings WHERE id = $1 AND organization_id = $2",
        id,
        caller.org_id as OrgId,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Target::Offering {
        org: caller.org_id.0,
        offering: id,
    })
}

/// Sets a shared offering's system prompt, applied to its consumers' calls
/// when their key and organization have none (the provider's owners and admins).
#[utoipa::path(put, path = "/organizations/current/offerings/{offering_id}/system-prompt", tag = "system-prompts",
    security(("bearer" = [])), params(("offering_id" = Uuid, Path, description = "offering id")),
    request_body = SetSystemPrompt, responses((status = 200, body = SystemPrompt), (status = 404, body = ErrorBody)))]
async fn set_offering_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SetSystemPrompt>,
) -> ApiResult<Json<SystemPrompt>> {
    let target = offering(&state, &caller, id).await?;
    set(&state, &caller, target, &body).await
}

/// Removes a shared offering's system prompt (the provider's owners and admins).
#[utoipa::path(delete, path = "/organizations/current/offerings/{offering_id}/system-prompt", tag = "system-prompts",
    security(("bearer" = [])), params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn clear_offering_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let target = offering(&state, &caller, id).await?;
    clear(&state, &caller, target).await
}

/// The catalog model (platform admins).
async fn model(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Target> {
    caller.require_platform_admin()?;
    sqlx::query_scalar!("SELECT id FROM models WHERE id = $1", id)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Target::Model(id))
}

/// Sets a catalog model's system prompt (platform admins).
#[utoipa::path(put, path = "/models/{model_id}/system-prompt", tag = "system-prompts", security(("bearer" = [])),
    params(("model_id" = Uuid, Path, description = "catalog model id")), request_body = SetSystemPrompt,
    responses((status = 200, body = SystemPrompt), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_model_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SetSystemPrompt>,
) -> ApiResult<Json<SystemPrompt>> {
    let target = model(&state, &caller, id).await?;
    set(&state, &caller, target, &body).await
}

/// Removes a catalog model's system prompt (platform admins).
#[utoipa::path(delete, path = "/models/{model_id}/system-prompt", tag = "system-prompts", security(("bearer" = [])),
    params(("model_id" = Uuid, Path, description = "catalog model id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn clear_model_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let target = model(&state, &caller, id).await?;
    clear(&state, &caller, target).await
}

/// Writes the prompt of `target` (its version raised) with its audit entry.
async fn set(
    state: &AppState,
    caller: &Caller,
    target: Target,
    body: &SetSystemPrompt,
) -> ApiResult<Json<SystemPrompt>> {
    let (content, mode) = body.checked()?;
    let (org, key, offering, model) = match target {
        Target::Organization(org) => (Some(org), None, None, None),
        Target::Key { org, key } => (Some(org), Some(key), None, None),
        Target::Offering { org, offering } => (Some(org), None, Some(offering), None),
        Target::Model(model) => (None, None, None, Some(model)),
    };
    let mut tx = state.db.begin().await?;
    // One row per target (the partial unique indexes): changes to one
    // target wait for each other, then find the one there, if any.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        format!("system_prompt:{}", target.id()),
    )
    .execute(&mut *tx)
    .await?;
    let existing = sqlx::query_scalar!(
        "SELECT id FROM system_prompts
          WHERE scope = $1 AND COALESCE(api_key_id, offering_id, organization_id, model_id) = $2 FOR UPDATE",
        target.scope(),
        target.id(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let row = match existing {
        Some(id) => {
            sqlx::query!(
                "UPDATE system_prompts SET content = $2, mode = $3, version = version + 1,
                        updated_by = $4, updated_at = now()
                  WHERE id = $1 RETURNING version, updated_at",
                id,
                content,
                mode.as_str(),
                caller.user_id.0,
            )
            .fetch_one(&mut *tx)
            .await
            .map(|r| (r.version, r.updated_at))?
        }
        None => sqlx::query!(
            "INSERT INTO system_prompts (id, scope, organization_id, model_id, api_key_id, offering_id, content, mode, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING version, updated_at",
            Uuid::new_v4(),
            target.scope(),
            org,
            model,
            key,
            offering,
            content,
            mode.as_str(),
            caller.user_id.0,
        )
        .fetch_one(&mut *tx)
        .await
        .map(|r| (r.version, r.updated_at))?,
    };
    let (version, updated_at) = row;
    let entry = Entry::by(
        caller,
        "system_prompt.set",
        "system_prompt",
        target.id().to_string(),
    )
    .details(serde_json::json!({
        "scope": target.scope(), "version": version, "mode": mode, "content": content,
    }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    state.system_prompts.clear();
    Ok(Json(SystemPrompt {
        scope: target.scope().to_owned(),
        target_id: target.id(),
        content: content.to_owned(),
        mode,
        version,
        updated_by: Some(caller.user_id.0),
        updated_at,
    }))
}

/// Removes the prompt of `target`, audited; removing none changes nothing.
async fn clear(state: &AppState, caller: &Caller, target: Target) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let removed = sqlx::query_scalar!(
        "DELETE FROM system_prompts WHERE scope = $1 AND COALESCE(api_key_id, offering_id, organization_id, model_id) = $2
         RETURNING version",
        target.scope(),
        target.id(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(version) = removed {
        let entry = Entry::by(
            caller,
            "system_prompt.removed",
            "system_prompt",
            target.id().to_string(),
        )
        .details(serde_json::json!({ "scope": target.scope(), "version": version }));
        audit::record(&mut *tx, entry).await?;
    }
    tx.commit().await?;
    state.system_prompts.clear();
    Ok(StatusCode::NO_CONTENT)
}
