//! The provider side of shares: the provider shares an offering with a
//! consumer organization, optionally at its own price (`POST
//! .../offerings/{id}/shares`), then pauses, resumes or revokes it (`PATCH
//! .../shares/{share_id}`; revoked is final). Every change is announced so
//! the proxies' tables follow within a second. The consumer side is in
//! `routes/available_offerings.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::{Action, ShareStatus, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::offerings::{announce, insert_price, load, Rates};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_share, list_shares))
        .routes(routes!(update_share))
}

/// A share as its provider sees it.
#[derive(Serialize, ToSchema)]
pub struct Share {
    pub id: Uuid,
    pub offering_id: Uuid,
    pub consumer_org_slug: String,
    pub status: ShareStatus,
    pub accepted_at: Option<DateTime<Utc>>,
    /// The share's own price in force now, if it has one.
    pub input_eur_per_1k: Option<String>,
    pub output_eur_per_1k: Option<String>,
    /// Its cached prompt tokens' rate (its input rate unless set).
    pub cached_input_eur_per_1k: Option<String>,
    /// The consumer's weight on the deployment when it is saturated,
    /// against the provider's own traffic's 100.
    pub weight: i32,
    pub created_at: DateTime<Utc>,
}

async fn load_share(db: &sqlx::PgPool, offering: Uuid, id: Uuid) -> ApiResult<Share> {
    sqlx::query_as!(
        Share,
        r#"SELECT s.id, s.offering_id, c.slug AS consumer_org_slug, s.status AS "status: ShareStatus", s.accepted_at,
                  p.input_eur_per_1k::text AS "input_eur_per_1k?", p.output_eur_per_1k::text AS "output_eur_per_1k?",
                  COALESCE(p.cached_input_eur_per_1k, p.input_eur_per_1k)::text AS "cached_input_eur_per_1k?", s.weight, s.created_at
             FROM offering_shares s JOIN organizations c ON c.id = s.consumer_organization_id
             LEFT JOIN LATERAL (SELECT input_eur_per_1k, output_eur_per_1k, cached_input_eur_per_1k FROM offering_prices v
                                 WHERE v.share_id = s.id AND v.effective_at <= now() ORDER BY v.effective_at DESC LIMIT 1) p ON true
            WHERE s.id = $1 AND s.offering_id = $2"#,
        id,
        offering,
    )
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound)
}

/// Whom to share with, and optionally at which price.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShare {
    consumer_org_slug: String,
    /// The share's own price (EUR per 1k tokens); both or neither.
    input_eur_per_1k: Option<String>,
    output_eur_per_1k: Option<String>,
    /// Cached prompt tokens' rate, at most the input rate (needs the pair
    /// above); default: the input rate.
    cached_input_eur_per_1k: Option<String>,
    /// The consumer's weight on a saturated deployment, 1 to 1000; the
    /// provider's own traffic weighs 100 (the default).
    #[schema(minimum = 1, maximum = 1000)]
    weight: Option<i32>,
}

/// A share's weight, within its bounds.
fn check_weight(weight: Option<i32>) -> ApiResult<()> {
    if weight.is_some_and(|w| !(1..=1000).contains(&w)) {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "weight: 1 to 1000 (the provider's own traffic weighs 100)",
        ));
    }
    Ok(())
}

/// Shares one of the organization's offerings with another organization.
#[utoipa::path(post, path = "/organizations/current/offerings/{offering_id}/shares", tag = "offerings", security(("bearer" = [])),
    request_body = CreateShare, params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 201, body = Share), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody, description = "too many objects created; see Retry-After")))]
async fn create_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(offering): Path<Uuid>,
    Json(body): Json<CreateShare>,
) -> ApiResult<(StatusCode, Json<Share>)> {
    caller.require(Action::SellOfferings)?;
    crate::ratelimit::creation(&state, caller.user_id).await?;
    check_weight(body.weight)?;
    let price = match (&body.input_eur_per_1k, &body.output_eur_per_1k) {
        (Some(i), Some(o)) => Some(Rates {
            input: i,
            output: o,
            cached_input: body.cached_input_eur_per_1k.as_deref(),
        }),
        (None, None) if body.cached_input_eur_per_1k.is_none() => None,
        _ => {
            return Err(ApiError::validation(
                "INVALID_PRICE",
                "give both input_eur_per_1k and output_eur_per_1k (and optionally cached_input_eur_per_1k), or none",
            ))
        }
    };
    load(&state.db, caller.org_id.0, offering).await?;
    let consumer = sqlx::query_scalar!(
        "SELECT id FROM organizations WHERE slug = $1 AND deleted_at IS NULL",
        body.consumer_org_slug.trim(),
    )
    .fetch_optional(&state.db)
    .await?;
    let consumer = consumer.filter(|c| *c != caller.org_id.0).ok_or_else(|| {
        ApiError::validation(
            "UNKNOWN_ORGANIZATION",
            "consumer_org_slug: no other organization has this slug",
        )
    })?;
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO offering_shares (id, offering_id, consumer_organization_id, created_by, weight) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (offering_id, consumer_organization_id) DO NOTHING",
        id,
        offering,
        consumer,
        caller.user_id as UserId,
        body.weight.unwrap_or(100),
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "SHARE_EXISTS",
            "this offering is already shared with that organization",
        ));
    }
    if let Some(rates) = price {
        insert_price(&mut tx, &caller, offering, Some(id), rates, None).await?;
    }
    let details = serde_json::json!({ "offering_id": offering, "consumer_org_slug": body.consumer_org_slug.trim() });
    let entry = audit::Entry::by(&caller, "share.created", "offering_share", id.to_string())
        .details(details);
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, caller.org_id.0, offering).await;
    Ok((
        StatusCode::CREATED,
        Json(load_share(&state.db, offering, id).await?),
    ))
}

/// The shares of one of the organization's offerings.
#[utoipa::path(get, path = "/organizations/current/offerings/{offering_id}/shares", tag = "offerings", security(("bearer" = [])),
    params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 200, body = [Share]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_shares(
    State(state): State<AppState>,
    caller: Caller,
    Path(offering): Path<Uuid>,
) -> ApiResult<Json<Vec<Share>>> {
    caller.require(Action::ViewOfferings)?;
    load(&state.db, caller.org_id.0, offering).await?;
    let list = sqlx::query_as!(
        Share,
        r#"SELECT s.id, s.offering_id, c.slug AS consumer_org_slug, s.status AS "status: ShareStatus", s.accepted_at,
                  p.input_eur_per_1k::text AS "input_eur_per_1k?", p.output_eur_per_1k::text AS "output_eur_per_1k?",
                  COALESCE(p.cached_input_eur_per_1k, p.input_eur_per_1k)::text AS "cached_input_eur_per_1k?", s.weight, s.created_at
             FROM offering_shares s JOIN organizations c ON c.id = s.consumer_organization_id
             LEFT JOIN LATERAL (SELECT input_eur_per_1k, output_eur_per_1k, cached_input_eur_per_1k FROM offering_prices v
                                 WHERE v.share_id = s.id AND v.effective_at <= now() ORDER BY v.effective_at DESC LIMIT 1) p ON true
            WHERE s.offering_id = $1 ORDER BY s.created_at"#,
        offering,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(list))
}

/// The new state of a share (at least one field).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShare {
    /// `active` resumes; `revoked` is final.
    status: Option<ShareStatus>,
    /// The consumer's weight on a saturated deployment, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    weight: Option<i32>,
}

/// Pauses, resumes or revokes a share, or changes its weight. A paused
/// share answers 403 `share_paused` on `/v1`; a revoked one disappears
/// from the consumer.
#[utoipa::path(patch, path = "/organizations/current/offerings/{offering_id}/shares/{share_id}", tag = "offerings", security(("bearer" = [])),
    request_body = UpdateShare,
    params(("offering_id" = Uuid, Path, description = "offering id"), ("share_id" = Uuid, Path, description = "share id")),
    responses((status = 200, body = Share), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_share(
    State(state): State<AppState>,
    caller: Caller,
    Path((offering, id)): Path<(Uuid, Uuid)>,
    Json(body): Json<UpdateShare>,
) -> ApiResult<Json<Share>> {
    caller.require(Action::SellOfferings)?;
    check_weight(body.weight)?;
    if body.status.is_none() && body.weight.is_none() {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "give a status, a weight, or both",
        ));
    }
    load(&state.db, caller.org_id.0, offering).await?;
    let current = load_share(&state.db, offering, id).await?;
    if current.status == ShareStatus::Revoked {
        return Err(ApiError::conflict(
            "SHARE_REVOKED",
            "a revoked share stays revoked",
        ));
    }
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE offering_shares SET status = COALESCE($3, status), weight = COALESCE($4, weight), updated_at = now()
          WHERE id = $1 AND offering_id = $2",
        id,
        offering,
        body.status.map(ShareStatus::as_str),
        body.weight,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(
        &caller,
        "share.status_changed",
        "offering_share",
        id.to_string(),
    )
    .details(serde_json::json!({
        "from": current.status, "to": body.status.unwrap_or(current.status),
        "weight_from": current.weight, "weight_to": body.weight.unwrap_or(current.weight),
    }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, caller.org_id.0, offering).await;
    Ok(Json(load_share(&state.db, offering, id).await?))
}
