//! Shares of offerings between organizations. The provider shares an
//! offering with a consumer organization, optionally at its own price
//! (`POST .../offerings/{id}/shares`), then pauses, resumes or revokes it
//! (`PATCH .../shares/{share_id}`; revoked is final). The consumer lists
//! what it may use (`GET /organizations/current/available-offerings`:
//! public offerings and offerings shared with it) and accepts one (its
//! manager's economic activation) before its keys can call it; its manager
//! also sets its discovery preferences (hide public, hide paid offerings).
//! Every change is announced so the proxies' tables follow within a second.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::Action;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::offerings::{announce, insert_price, load};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_share, list_shares))
        .routes(routes!(update_share))
        .routes(routes!(available_offerings))
        .routes(routes!(accept_offering))
        .routes(routes!(get_preferences, set_preferences))
}

/// A share as its provider sees it.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Share {
    pub id: Uuid,
    pub offering_id: Uuid,
    pub consumer_org_slug: String,
    /// `active`, `paused` or `revoked`.
    pub status: String,
    pub accepted_at: Option<DateTime<Utc>>,
    /// The share's own price in force now, if it has one.
    pub input_eur_per_1k: Option<String>,
    pub output_eur_per_1k: Option<String>,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT s.id, s.offering_id, c.slug AS consumer_org_slug, s.status, s.accepted_at,
        p.input_eur_per_1k::text AS input_eur_per_1k, p.output_eur_per_1k::text AS output_eur_per_1k, s.created_at
   FROM offering_shares s JOIN organizations c ON c.id = s.consumer_organization_id
   LEFT JOIN LATERAL (SELECT input_eur_per_1k, output_eur_per_1k FROM offering_prices v
                       WHERE v.share_id = s.id AND v.effective_at <= now() ORDER BY v.effective_at DESC LIMIT 1) p ON true";

async fn load_share(db: &sqlx::PgPool, offering: Uuid, id: Uuid) -> ApiResult<Share> {
    sqlx::query_as(&format!("{SELECT} WHERE s.id = $1 AND s.offering_id = $2"))
        .bind(id)
        .bind(offering)
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
}

/// Shares one of the organization's offerings with another organization.
#[utoipa::path(post, path = "/organizations/current/offerings/{offering_id}/shares", tag = "offerings", security(("bearer" = [])),
    request_body = CreateShare, params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 201, body = Share), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(offering): Path<Uuid>,
    Json(body): Json<CreateShare>,
) -> ApiResult<(StatusCode, Json<Share>)> {
    caller.require(Action::SellOfferings)?;
    let price = match (&body.input_eur_per_1k, &body.output_eur_per_1k) {
        (Some(i), Some(o)) => Some((i.as_str(), o.as_str())),
        (None, None) => None,
        _ => {
            return Err(ApiError::validation(
                "INVALID_PRICE",
                "give both input_eur_per_1k and output_eur_per_1k, or neither",
            ))
        }
    };
    load(&state.db, caller.org_id.0, offering).await?;
    let consumer: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM organizations WHERE slug = $1 AND deleted_at IS NULL")
            .bind(body.consumer_org_slug.trim())
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
    let inserted = sqlx::query(
        "INSERT INTO offering_shares (id, offering_id, consumer_organization_id, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (offering_id, consumer_organization_id) DO NOTHING",
    )
    .bind(id)
    .bind(offering)
    .bind(consumer)
    .bind(caller.user_id.0)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "SHARE_EXISTS",
            "this offering is already shared with that organization",
        ));
    }
    if let Some((input, output)) = price {
        insert_price(&mut tx, &caller, offering, Some(id), input, output, None).await?;
    }
    let entry = audit::Entry {
        org: caller.org_id,
        actor: Some(caller.user_id),
        action: "share.created",
        target_type: "offering_share",
        target_id: id.to_string(),
        details: serde_json::json!({ "offering_id": offering, "consumer_org_slug": body.consumer_org_slug.trim() }),
    };
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
    let list = sqlx::query_as(&format!(
        "{SELECT} WHERE s.offering_id = $1 ORDER BY s.created_at"
    ))
    .bind(offering)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(list))
}

/// The new state of a share.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShare {
    /// `active` (resume), `paused` or `revoked` (final).
    status: String,
}

/// Pauses, resumes or revokes a share. A paused share answers 403
/// `share_paused` on `/v1`; a revoked one disappears from the consumer.
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
    if !["active", "paused", "revoked"].contains(&body.status.as_str()) {
        return Err(ApiError::validation(
            "INVALID_STATUS",
            "status: active, paused or revoked",
        ));
    }
    load(&state.db, caller.org_id.0, offering).await?;
    let current = load_share(&state.db, offering, id).await?;
    if current.status == "revoked" {
        return Err(ApiError::conflict(
            "SHARE_REVOKED",
            "a revoked share stays revoked",
        ));
    }
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE offering_shares SET status = $3, updated_at = now() WHERE id = $1 AND offering_id = $2")
        .bind(id)
        .bind(offering)
        .bind(&body.status)
        .execute(&mut *tx)
        .await?;
    let entry = audit::Entry {
        org: caller.org_id,
        actor: Some(caller.user_id),
        action: "share.status_changed",
        target_type: "offering_share",
        target_id: id.to_string(),
        details: serde_json::json!({ "from": current.status, "to": body.status }),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, caller.org_id.0, offering).await;
    Ok(Json(load_share(&state.db, offering, id).await?))
}

/// Discovery filters; absent ones follow the organization's preferences.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AvailableQuery {
    /// Leave out public offerings not shared with the organization.
    hide_public: Option<bool>,
    /// Leave out offerings with a price above zero.
    hide_paid: Option<bool>,
}

/// The organization's discovery preferences: what its listing of available
/// offerings leaves out unless the query says otherwise.
#[derive(Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    pub hide_public: bool,
    pub hide_paid: bool,
}

async fn preferences(db: &sqlx::PgPool, org: Uuid) -> ApiResult<Preferences> {
    let stored: Option<Preferences> = sqlx::query_as(
        "SELECT hide_public, hide_paid FROM offering_preferences WHERE organization_id = $1",
    )
    .bind(org)
    .fetch_optional(db)
    .await?;
    Ok(stored.unwrap_or(Preferences {
        hide_public: false,
        hide_paid: false,
    }))
}

/// The current organization's discovery preferences.
#[utoipa::path(get, path = "/organizations/current/offering-preferences", tag = "offerings", security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
async fn get_preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Preferences>> {
    caller.require(Action::ViewCatalog)?;
    Ok(Json(preferences(&state.db, caller.org_id.0).await?))
}

/// Sets the current organization's discovery preferences (managers).
#[utoipa::path(put, path = "/organizations/current/offering-preferences", tag = "offerings", security(("bearer" = [])),
    request_body = Preferences, responses((status = 200, body = Preferences), (status = 403, body = ErrorBody)))]
async fn set_preferences(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Preferences>,
) -> ApiResult<Json<Preferences>> {
    caller.require(Action::AcceptShares)?;
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO offering_preferences (organization_id, hide_public, hide_paid, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (organization_id) DO UPDATE
            SET hide_public = $2, hide_paid = $3, updated_by = $4, updated_at = now()",
    )
    .bind(caller.org_id.0)
    .bind(body.hide_public)
    .bind(body.hide_paid)
    .bind(caller.user_id.0)
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry {
        org: caller.org_id,
        actor: Some(caller.user_id),
        action: "offering_preferences.updated",
        target_type: "organization",
        target_id: caller.org_id.0.to_string(),
        details: serde_json::json!({ "hide_public": body.hide_public, "hide_paid": body.hide_paid }),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// An offering the current organization may use.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Available {
    pub offering_id: Uuid,
    /// What to put in `model`.
    pub address: String,
    pub provider_org_slug: String,
    pub visibility: String,
    /// The organization's share, once shared or accepted.
    pub share_id: Option<Uuid>,
    /// `active`, `paused`, or none before acceptance of a public offering.
    pub share_status: Option<String>,
    pub accepted: bool,
    /// The price that applies to this organization now (EUR per 1k tokens).
    pub input_eur_per_1k: Option<String>,
    pub output_eur_per_1k: Option<String>,
}

const AVAILABLE: &str = "SELECT o.id AS offering_id, p.slug || '/' || o.model_code AS address, p.slug AS provider_org_slug, o.visibility,
        s.id AS share_id, s.status AS share_status, s.accepted_at IS NOT NULL AS accepted,
        v.input_eur_per_1k::text AS input_eur_per_1k, v.output_eur_per_1k::text AS output_eur_per_1k
   FROM offerings o JOIN organizations p ON p.id = o.organization_id
   LEFT JOIN offering_shares s ON s.offering_id = o.id AND s.consumer_organization_id = $1
   LEFT JOIN LATERAL (SELECT input_eur_per_1k, output_eur_per_1k FROM offering_prices x
                       WHERE x.offering_id = o.id AND (x.share_id = s.id OR x.share_id IS NULL) AND x.effective_at <= now()
                       ORDER BY x.share_id IS NULL, x.effective_at DESC LIMIT 1) v ON true
  WHERE o.technical_active AND o.economic_active AND o.organization_id <> $1 AND p.deleted_at IS NULL
    AND (s.id IS NULL OR s.status <> 'revoked')";

/// What the current organization may use: public offerings and offerings
/// shared with it (never revoked ones), filtered by its discovery
/// preferences unless the query overrides them.
#[utoipa::path(get, path = "/organizations/current/available-offerings", tag = "offerings", security(("bearer" = [])),
    params(AvailableQuery), responses((status = 200, body = [Available]), (status = 400, body = ErrorBody)))]
async fn available_offerings(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AvailableQuery>,
) -> ApiResult<Json<Vec<Available>>> {
    caller.require(Action::ViewCatalog)?;
    let stored = preferences(&state.db, caller.org_id.0).await?;
    let list = sqlx::query_as(&format!(
        "{AVAILABLE} AND (s.id IS NOT NULL OR (o.visibility = 'public' AND NOT $2))
           AND NOT ($3 AND COALESCE(v.input_eur_per_1k + v.output_eur_per_1k, 0) > 0)
         ORDER BY 2"
    ))
    .bind(caller.org_id.0)
    .bind(q.hide_public.unwrap_or(stored.hide_public))
    .bind(q.hide_paid.unwrap_or(stored.hide_paid))
    .fetch_all(&state.db)
    .await?;
    Ok(Json(list))
}

/// Accepts an offering for the current organization (its manager's
/// economic activation): a share offered to it, or a public or unlisted
/// offering (which creates the organization's share). Its keys may then
/// call `address`.
#[utoipa::path(post, path = "/organizations/current/available-offerings/{offering_id}/accept", tag = "offerings", security(("bearer" = [])),
    params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 200, body = Available), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn accept_offering(
    State(state): State<AppState>,
    caller: Caller,
    Path(offering): Path<Uuid>,
) -> ApiResult<Json<Available>> {
    caller.require(Action::AcceptShares)?;
    let org = caller.org_id.0;
    let mut tx = state.db.begin().await?;
    // A share offered to us, or a public/unlisted offering of another organization.
    let provider: Option<Uuid> = sqlx::query_scalar(
        "SELECT o.organization_id FROM offerings o
          WHERE o.id = $1 AND o.organization_id <> $2 AND o.technical_active AND o.economic_active
            AND EXISTS (SELECT 1 FROM organizations p WHERE p.id = o.organization_id AND p.deleted_at IS NULL)
            AND (o.visibility IN ('public', 'unlisted')
                 OR EXISTS (SELECT 1 FROM offering_shares s WHERE s.offering_id = o.id AND s.consumer_organization_id = $2 AND s.status <> 'revoked'))",
    )
    .bind(offering)
    .bind(org)
    .fetch_optional(&mut *tx)
    .await?;
    let provider = provider.ok_or(ApiError::NotFound)?;
    let accepted = sqlx::query(
        "INSERT INTO offering_shares (id, offering_id, consumer_organization_id, created_by, accepted_at, accepted_by)
         VALUES ($1, $2, $3, $4, now(), $4)
         ON CONFLICT (offering_id, consumer_organization_id) DO UPDATE
            SET accepted_at = COALESCE(offering_shares.accepted_at, now()),
                accepted_by = COALESCE(offering_shares.accepted_by, $4), updated_at = now()
          WHERE offering_shares.status <> 'revoked'",
    )
    .bind(Uuid::new_v4())
    .bind(offering)
    .bind(org)
    .bind(caller.user_id.0)
    .execute(&mut *tx)
    .await?;
    if accepted.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    let entry = audit::Entry {
        org: caller.org_id,
        actor: Some(caller.user_id),
        action: "share.accepted",
        target_type: "offering",
        target_id: offering.to_string(),
        details: serde_json::json!({}),
    };
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, provider, offering).await;
    let available = sqlx::query_as(&format!("{AVAILABLE} AND o.id = $2"))
        .bind(org)
        .bind(offering)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(available))
}
