//! Deployment quotas per organization (instances and GPUs not yet
//! terminated), set by platform admins; `POST /deployments` refuses beyond
//! them with 409 `QUOTA_EXCEEDED`. Unset values take the platform defaults.

use axum::extract::State;
use inventiv_common::{OrgId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_quotas, set_quotas))
}

/// An organization's quotas and what it uses now.
#[derive(Serialize, ToSchema)]
pub struct Quotas {
    pub organization_id: Uuid,
    /// Instances not terminated at once; null: the platform default.
    pub max_instances: Option<i32>,
    /// GPUs of those instances; null: the platform default.
    pub max_gpus: Option<i32>,
    /// The limits in force (the organization's, else the defaults).
    pub effective_max_instances: i64,
    pub effective_max_gpus: i64,
    pub instances_used: i64,
    pub gpus_used: i64,
}

/// New quotas; null (or absent) returns to the platform default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuotas {
    max_instances: Option<i32>,
    max_gpus: Option<i32>,
}

/// (instances, GPUs) the organization holds: every instance not yet
/// terminated or archived.
pub async fn usage(db: &mut PgConnection, org: Uuid) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "instances!", COALESCE(sum(t.gpu_count), 0)::bigint AS "gpus!"
             FROM instances i LEFT JOIN instance_types t ON t.id = i.instance_type_id
            WHERE i.organization_id = $1 AND i.status NOT IN ('terminated', 'archived')"#,
        org,
    )
    .fetch_one(db)
    .await?;
    Ok((row.instances, row.gpus))
}

/// The limits in force for `org`: (instances, GPUs).
pub async fn limits(
    state: &AppState,
    db: &mut PgConnection,
    org: Uuid,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        "SELECT max_instances, max_gpus FROM organization_quotas WHERE organization_id = $1",
        org,
    )
    .fetch_optional(db)
    .await?;
    let (instances, gpus) = row.map_or((None, None), |r| (r.max_instances, r.max_gpus));
    Ok((
        instances.map_or(state.config.default_max_instances, i64::from),
        gpus.map_or(state.config.default_max_gpus, i64::from),
    ))
}

async fn load(state: &AppState, org: Uuid) -> ApiResult<Quotas> {
    let mut conn = state.db.acquire().await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1 AND deleted_at IS NULL) AS "exists!""#,
        org,
    )
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Err(ApiError::NotFound);
    }
    let row = sqlx::query!(
        "SELECT max_instances, max_gpus FROM organization_quotas WHERE organization_id = $1",
        org,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (max_instances, max_gpus) = row.map_or((None, None), |r| (r.max_instances, r.max_gpus));
    let (effective_max_instances, effective_max_gpus) = limits(state, &mut conn, org).await?;
    let (instances_used, gpus_used) = usage(&mut conn, org).await?;
    Ok(Quotas {
        organization_id: org,
        max_instances,
        max_gpus,
        effective_max_instances,
        effective_max_gpus,
        instances_used,
        gpus_used,
    })
}

/// An organization's deployment quotas and usage (platform admins).
#[utoipa::path(get, path = "/admin/organizations/{organization_id}/quotas", tag = "users", security(("bearer" = [])),
    params(("organization_id" = Uuid, Path, description = "organization id")),
    responses((status = 200, body = Quotas), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn get_quotas(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<Uuid>,
) -> ApiResult<Json<Quotas>> {
    caller.require_platform_admin()?;
    load(&state, org).await.map(Json)
}

/// Sets an organization's deployment quotas (platform admins). Lowering a
/// quota below the usage stops nothing; it refuses the next deployments.
#[utoipa::path(put, path = "/admin/organizations/{organization_id}/quotas", tag = "users", security(("bearer" = [])),
    params(("organization_id" = Uuid, Path, description = "organization id")), request_body = SetQuotas,
    responses((status = 200, body = Quotas), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_quotas(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<Uuid>,
    Json(body): Json<SetQuotas>,
) -> ApiResult<Json<Quotas>> {
    caller.require_platform_admin()?;
    let bad = |v: Option<i32>| v.is_some_and(|v| !(0..=100_000).contains(&v));
    if bad(body.max_instances) || bad(body.max_gpus) {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "max_instances, max_gpus: 0 to 100000, or null for the platform default",
        ));
    }
    load(&state, org).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "INSERT INTO organization_quotas (organization_id, max_instances, max_gpus, updated_by)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (organization_id) DO UPDATE
            SET max_instances = $2, max_gpus = $3, updated_by = $4, updated_at = now()",
        org,
        body.max_instances,
        body.max_gpus,
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry {
        org: OrgId(org),
        actor: Some(caller.user_id),
        action: "organization.quotas_set",
        target_type: "organization",
        target_id: org.to_string(),
        details: serde_json::json!({ "max_instances": body.max_instances, "max_gpus": body.max_gpus }),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    load(&state, org).await.map(Json)
}
