//! API keys of the current organization. Every member may create keys for
//! themselves; owners and admins see and manage all of them, managers see
//! them all to approve their spending. A key is usable only when technically
//! and economically active: its creator's role sets the switches it may
//! (admin: technical, manager: economic, owner: both), the others are turned
//! on by a member who may. A member who may not manage every key can
//! tighten their own key's limits, models and expiry, but loosening them
//! returns the key to "awaiting economic approval".

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::{can, Action, KeyPriority, OrgId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::{api_key, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::catalog::Activation;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(update_key, revoke_key))
}

/// An API key's metadata (never its secret).
#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// `inv_<public id>`: how the key starts.
    pub prefix: String,
    pub last_four: String,
    pub created_by: Uuid,
    pub created_by_email: String,
    /// Models the key may call; absent means every model of the organization.
    pub models: Option<Vec<String>>,
    pub rpm_limit: Option<i32>,
    pub tpm_limit: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub activation: Activation,
    pub status: KeyStatus,
    /// Its requests' band on a saturated deployment: `interactive` ones
    /// go first, `batch` ones wait a bounded time or get 429.
    pub priority: KeyPriority,
}

/// Whether a key can be used now (derived, not stored).
#[derive(Serialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    /// An activation of its organization is missing.
    Inactive,
    Expired,
    Revoked,
}

struct Row {
    id: Uuid,
    name: String,
    public_id: String,
    last_four: String,
    created_by: Uuid,
    created_by_email: String,
    models: Option<Vec<String>>,
    rpm_limit: Option<i32>,
    tpm_limit: Option<i32>,
    technical_active: bool,
    economic_active: bool,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    priority: KeyPriority,
}

impl From<Row> for ApiKey {
    fn from(r: Row) -> ApiKey {
        let activation = Activation::new(r.technical_active, r.economic_active);
        let status = if r.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if r.expires_at.is_some_and(|t| t <= Utc::now()) {
            KeyStatus::Expired
        } else if activation.operational {
            KeyStatus::Active
        } else {
            KeyStatus::Inactive
        };
        ApiKey {
            id: r.id,
            name: r.name,
            prefix: format!("inv_{}", r.public_id),
            last_four: r.last_four,
            created_by: r.created_by,
            created_by_email: r.created_by_email,
            models: r.models,
            rpm_limit: r.rpm_limit,
            tpm_limit: r.tpm_limit,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            created_at: r.created_at,
            activation,
            status,
            priority: r.priority,
        }
    }
}

/// Whether the caller sees every key of the organization: those who manage
/// them all, and those who approve their spending.
pub(crate) fn sees_all(caller: &Caller) -> bool {
    can(caller.role, Action::ManageAllApiKeys) || can(caller.role, Action::ActivateEconomic)
}

/// A key of the caller's organization that the caller may see.
async fn load(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<ApiKey> {
    // The same columns as the list's.
    let row = sqlx::query_as!(
        Row,
        r#"SELECT k.id, k.name, k.public_id, k.last_four, k.created_by, u.email AS created_by_email, k.models,
                k.rpm_limit, k.tpm_limit, k.technical_active, k.economic_active, k.expires_at, k.revoked_at,
                k.last_used_at, k.created_at, k.priority AS "priority: KeyPriority"
           FROM api_keys k JOIN users u ON u.id = k.created_by
          WHERE k.id = $1 AND k.organization_id = $2"#,
        id,
        caller.org_id as OrgId,
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    if row.created_by != caller.user_id.0 && !sees_all(caller) {
        return Err(ApiError::NotFound);
    }
    Ok(row.into())
}

/// A key the caller may change beyond its economic switch: their own, or
/// any with the permission to manage every key.
fn require_manage(caller: &Caller, key: &ApiKey) -> ApiResult<()> {
    if key.created_by == caller.user_id.0 || can(caller.role, Action::ManageAllApiKeys) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "only the key's creator, an owner or an admin may change this key",
    ))
}

/// Whether a change lifts a limit set on `key`: a higher or removed rate
/// limit, a model outside the current list, a later expiry.
fn loosens(key: &ApiKey, body: &UpdateKey) -> bool {
    let limit = |current: Option<i32>, new: Option<Option<i32>>| match (current, new) {
        (Some(c), Some(n)) => n.is_none_or(|n| n > c),
        _ => false,
    };
    let models = match (&key.models, &body.models) {
        (Some(current), Some(new)) => new.iter().any(|m| !current.contains(m)),
        _ => false,
    };
    let expiry = match (key.expires_at, body.expires_at) {
        (Some(current), Some(new)) => new > current,
        _ => false,
    };
    let priority =
        key.priority == KeyPriority::Batch && body.priority == Some(KeyPriority::Interactive);
    limit(key.rpm_limit, body.rpm_limit)
        || limit(key.tpm_limit, body.tpm_limit)
        || models
        || expiry
        || priority
}

fn check_models(models: &Option<Vec<String>>) -> ApiResult<()> {
    if let Some(list) = models {
        let bad = list.len() > 50
            || list
                .iter()
                .any(|m| m.is_empty() || m.len() > 200 || m.chars().any(char::is_control));
        if bad {
            return Err(ApiError::validation(
                "VALIDATION_ERROR",
                "models: at most 50 model ids of 1 to 200 characters",
            ));
        }
    }
    Ok(())
}

fn check_limit(field: &str, v: Option<i32>) -> ApiResult<()> {
    if v.is_some_and(|v| !(1..=100_000_000).contains(&v)) {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            format!("{field}: 1 to 100000000"),
        ));
    }
    Ok(())
}

/// A new key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Restrict the key to these model ids.
    models: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    /// Requests per minute.
    rpm_limit: Option<i32>,
    /// Tokens (in + out) per minute.
    tpm_limit: Option<i32>,
    /// Its requests' band on a saturated deployment (default `interactive`).
    priority: Option<KeyPriority>,
}

/// The key, shown this once, and its metadata.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    /// The whole key: store it now, it is never shown again.
    pub key: String,
    pub api_key: ApiKey,
}

/// Creates a key for the caller in the current organization.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", security(("bearer" = [])), request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody, description = "too many objects created; see Retry-After")))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    caller.require(Action::UseApiKeys)?;
    crate::ratelimit::creation(&state, caller.user_id).await?;
    let name = inventiv_common::OrgName::parse(&body.name).map_err(|_| {
        ApiError::validation("VALIDATION_ERROR", "name: 1 to 100 printable characters")
    })?;
    check_models(&body.models)?;
    check_limit("rpm_limit", body.rpm_limit)?;
    check_limit("tpm_limit", body.tpm_limit)?;
    if body.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "expires_at: a time in the future",
        ));
    }
    let new = api_key::generate();
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "INSERT INTO api_keys (id, organization_id, created_by, name, public_id, secret_hash, last_four, models, rpm_limit, tpm_limit,
                               technical_active, economic_active, expires_at, priority)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        id,
        caller.org_id as OrgId,
        caller.user_id as UserId,
        name.as_str(),
        new.public_id,
        new.hash,
        new.last_four,
        body.models.as_deref(),
        body.rpm_limit,
        body.tpm_limit,
        can(caller.role, Action::ActivateTechnical),
        can(caller.role, Action::ActivateEconomic),
        body.expires_at,
        body.priority.unwrap_or(KeyPriority::Interactive) as KeyPriority,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(&caller, "api_key.created", "api_key", id.to_string()).details(
        serde_json::json!({ "name": name.as_str(), "prefix": format!("inv_{}", new.public_id) }),
    );
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    let api_key = load(&state, &caller, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: new.key,
            api_key,
        }),
    ))
}

/// The caller's keys (owners, admins and managers: every key of the organization).
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", security(("bearer" = [])),
    params(super::Paging),
    responses((status = 200, body = [ApiKey]), (status = 400, body = ErrorBody)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<super::Paging>,
) -> ApiResult<Json<Vec<ApiKey>>> {
    caller.require(Action::UseApiKeys)?;
    let all = sees_all(&caller);
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT k.id, k.name, k.public_id, k.last_four, k.created_by, u.email AS created_by_email, k.models,
                k.rpm_limit, k.tpm_limit, k.technical_active, k.economic_active, k.expires_at, k.revoked_at,
                k.last_used_at, k.created_at, k.priority AS "priority: KeyPriority"
           FROM api_keys k JOIN users u ON u.id = k.created_by
          WHERE k.organization_id = $1 AND ($2 OR k.created_by = $3)
          ORDER BY k.created_at DESC, k.id LIMIT $4 OFFSET $5"#,
        caller.org_id as OrgId,
        all,
        caller.user_id as UserId,
        page.limit(),
        page.offset(),
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows.into_iter().map(ApiKey::from).collect()))
}

/// Changes to a key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    models: Option<Vec<String>>,
    /// Requests per minute; null removes the limit, absent keeps it.
    #[serde(default, with = "super::double_option")]
    #[schema(value_type = Option<i32>)]
    rpm_limit: Option<Option<i32>>,
    /// Tokens (in + out) per minute; null removes the limit, absent keeps it.
    #[serde(default, with = "super::double_option")]
    #[schema(value_type = Option<i32>)]
    tpm_limit: Option<Option<i32>>,
    expires_at: Option<DateTime<Utc>>,
    /// Technical activation (owners and admins).
    technical: Option<bool>,
    /// Economic activation (owners and managers).
    economic: Option<bool>,
    /// Its requests' band; `batch` to `interactive` lifts a limit.
    priority: Option<KeyPriority>,
}

/// Renames a key, changes its limits, or switches its activations.
#[utoipa::path(patch, path = "/api-keys/{api_key_id}", tag = "api-keys", security(("bearer" = [])), request_body = UpdateKey,
    params(("api_key_id" = Uuid, Path, description = "API key id")),
    responses((status = 200, body = ApiKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "the key is revoked (`API_KEY_REVOKED`)", body = ErrorBody)))]
async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateKey>,
) -> ApiResult<Json<ApiKey>> {
    caller.require(Action::UseApiKeys)?;
    let current = load(&state, &caller, id).await?;
    if current.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "API_KEY_REVOKED",
            "a revoked key cannot change",
        ));
    }
    if body.technical.is_some() {
        caller.require(Action::ActivateTechnical)?;
    }
    if body.economic.is_some() {
        caller.require(Action::ActivateEconomic)?;
    }
    let only_economic = body.name.is_none()
        && body.models.is_none()
        && body.rpm_limit.is_none()
        && body.tpm_limit.is_none()
        && body.expires_at.is_none()
        && body.technical.is_none()
        && body.priority.is_none();
    if !only_economic {
        require_manage(&caller, &current)?;
    }
    // Lifting a limit an owner set needs the right to manage every key;
    // without it the key waits for economic approval again (unless the
    // caller approves it in the same request).
    let economic = if loosens(&current, &body) && !can(caller.role, Action::ManageAllApiKeys) {
        Some(body.economic == Some(true))
    } else {
        body.economic
    };
    let name = body
        .name
        .as_deref()
        .map(inventiv_common::OrgName::parse)
        .transpose()
        .map_err(|_| {
            ApiError::validation("VALIDATION_ERROR", "name: 1 to 100 printable characters")
        })?;
    check_models(&body.models)?;
    check_limit("rpm_limit", body.rpm_limit.flatten())?;
    check_limit("tpm_limit", body.tpm_limit.flatten())?;
    sqlx::query!(
        "UPDATE api_keys SET name = COALESCE($2, name), models = COALESCE($3, models),
                rpm_limit = CASE WHEN $4 THEN $5 ELSE rpm_limit END,
                tpm_limit = CASE WHEN $6 THEN $7 ELSE tpm_limit END, expires_at = COALESCE($8, expires_at),
                technical_active = COALESCE($9, technical_active), economic_active = COALESCE($10, economic_active),
                priority = COALESCE($11, priority)
          WHERE id = $1",
        id,
        name.as_ref().map(inventiv_common::OrgName::as_str),
        body.models.as_deref(),
        body.rpm_limit.is_some(),
        body.rpm_limit.flatten(),
        body.tpm_limit.is_some(),
        body.tpm_limit.flatten(),
        body.expires_at,
        body.technical,
        economic,
        body.priority.map(KeyPriority::as_str),
    )
    .execute(&state.db)
    .await?;
    let updated = load(&state, &caller, id).await?;
    changed(&state, caller.org_id.0, &updated).await;
    Ok(Json(updated))
}

/// Revokes a key; it stops working at once on this replica and within the
/// key cache's lifetime on the others.
#[utoipa::path(delete, path = "/api-keys/{api_key_id}", tag = "api-keys", security(("bearer" = [])),
    params(("api_key_id" = Uuid, Path, description = "API key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(Action::UseApiKeys)?;
    let key = load(&state, &caller, id).await?;
    require_manage(&caller, &key)?;
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(&caller, "api_key.revoked", "api_key", id.to_string());
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    changed(&state, caller.org_id.0, &key).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Drops a changed key from every replica's cache (here at once, elsewhere
/// through the event; the cache TTL bounds it if Redis is unreachable).
async fn changed(state: &AppState, org: Uuid, key: &ApiKey) {
    let public_id = key.prefix.trim_start_matches("inv_");
    state.keys.forget(public_id);
    let event = inventiv_common::messages::Event::ApiKeyChanged {
        organization_id: org,
        subject: public_id.to_owned(),
    };
    crate::events::publish(state, &event).await;
}
