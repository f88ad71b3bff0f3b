//! The consumer side of sharing: the current organization lists what it may
//! use (`GET /organizations/current/available-offerings`: public offerings
//! and offerings shared with it, filtered by its discovery preferences) and
//! accepts one (`POST .../available-offerings/{id}/accept`, its manager's
//! economic activation) before its keys can call it; its manager sets the
//! discovery preferences (hide public, hide paid offerings), may cap the
//! price of a share (`PUT .../available-offerings/{id}/max-price`) and leave
//! it (`DELETE .../available-offerings/{id}`: the acceptance is withdrawn, the
//! keys' calls are refused at once; it may be accepted again while offered).
//!
//! A provider's price increase reaches an accepted share only after the
//! notice period (`INVENTIV_PRICE_NOTICE_DAYS`) or once the consumer
//! accepts again, which agrees to the prices announced so far.

use axum::extract::State;
use axum::http::StatusCode;
use inventiv_common::{Action, OrgId, ShareStatus, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::routes::offerings::{announce, parse_price};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(available_offerings))
        .routes(routes!(accept_offering))
        .routes(routes!(leave_offering))
        .routes(routes!(set_max_price))
        .routes(routes!(get_preferences, set_preferences))
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
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    pub hide_public: bool,
    pub hide_paid: bool,
}

async fn preferences(db: &sqlx::PgPool, org: Uuid) -> ApiResult<Preferences> {
    let stored = sqlx::query_as!(
        Preferences,
        "SELECT hide_public, hide_paid FROM offering_preferences WHERE organization_id = $1",
        org,
    )
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
    sqlx::query!(
        "INSERT INTO offering_preferences (organization_id, hide_public, hide_paid, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (organization_id) DO UPDATE
            SET hide_public = $2, hide_paid = $3, updated_by = $4, updated_at = now()",
        caller.org_id as OrgId,
        body.hide_public,
        body.hide_paid,
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(
        &caller,
        "offering_preferences.updated",
        "organization",
        caller.org_id.0.to_string(),
    )
    .details(serde_json::json!({ "hide_public": body.hide_public, "hide_paid": body.hide_paid }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// An offering the current organization may use.
#[derive(Serialize, ToSchema)]
pub struct Available {
    pub offering_id: Uuid,
    /// What to put in `model`.
    pub address: String,
    pub provider_org_slug: String,
    pub visibility: String,
    /// The organization's share, once shared or accepted.
    pub share_id: Option<Uuid>,
    /// `active`, `paused`, or none before acceptance of a public offering.
    pub share_status: Option<ShareStatus>,
    pub accepted: bool,
    /// The price that applies to this organization now (EUR per 1k tokens).
    pub input_eur_per_1k: Option<String>,
    pub output_eur_per_1k: Option<String>,
    /// The applied rate of cached prompt tokens (the input rate unless the
    /// provider set one).
    pub cached_input_eur_per_1k: Option<String>,
    /// The provider's price in force now. Above the applied price: an
    /// increase waiting for its notice period or a new acceptance.
    pub announced_input_eur_per_1k: Option<String>,
    pub announced_output_eur_per_1k: Option<String>,
    /// The maximum price the organization set for its share, if any.
    pub max_input_eur_per_1k: Option<String>,
    pub max_output_eur_per_1k: Option<String>,
    /// Whether the provider has a ready instance of the model now (calls
    /// answer `model_not_found` while it has none).
    pub serving: bool,
}

/// What `org` may use, filtered by the preferences given (`hide_public`,
/// `hide_paid`), or only the offering `id`. The price applied to an
/// accepted share is the one past `notice` (seconds) of notice.
async fn available(
    state: &AppState,
    org: Uuid,
    hide_public: bool,
    hide_paid: bool,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<Available>> {
    sqlx::query_as!(
        Available,
        r#"SELECT o.id AS offering_id, p.slug || '/' || o.model_code AS "address!", p.slug AS provider_org_slug, o.visibility,
                  s.id AS "share_id?", s.status AS "share_status?: ShareStatus", s.accepted_at IS NOT NULL AS "accepted!",
                  COALESCE(a.input_eur_per_1k, v.input_eur_per_1k)::text AS input_eur_per_1k,
                  COALESCE(a.output_eur_per_1k, v.output_eur_per_1k)::text AS output_eur_per_1k,
                  COALESCE(a.cached_input_eur_per_1k, v.cached_input_eur_per_1k)::text AS cached_input_eur_per_1k,
                  v.input_eur_per_1k::text AS announced_input_eur_per_1k, v.output_eur_per_1k::text AS announced_output_eur_per_1k,
                  s.max_input_eur_per_1k::text AS max_input_eur_per_1k, s.max_output_eur_per_1k::text AS max_output_eur_per_1k,
                  EXISTS (SELECT 1 FROM instances i WHERE i.organization_id = o.organization_id
                             AND i.model_id = o.model_code AND i.status = 'ready') AS "serving!"
             FROM offerings o JOIN organizations p ON p.id = o.organization_id
             LEFT JOIN offering_shares s ON s.offering_id = o.id AND s.consumer_organization_id = $1
             LEFT JOIN LATERAL (SELECT input_eur_per_1k, output_eur_per_1k,
                                       COALESCE(cached_input_eur_per_1k, input_eur_per_1k) AS cached_input_eur_per_1k FROM offering_prices x
                                 WHERE x.offering_id = o.id AND (x.share_id = s.id OR x.share_id IS NULL) AND x.effective_at <= now()
                                 ORDER BY x.share_id IS NULL, x.effective_at DESC LIMIT 1) v ON true
             LEFT JOIN LATERAL (SELECT sp.input_eur_per_1k, sp.output_eur_per_1k, sp.cached_input_eur_per_1k
                                  FROM share_price(s.id, now(), make_interval(secs => $2)) sp
                                 WHERE s.accepted_at IS NOT NULL) a ON true
            WHERE o.technical_active AND o.economic_active AND o.organization_id <> $1 AND p.deleted_at IS NULL
              AND (s.id IS NULL OR s.status <> 'revoked')
              AND (s.id IS NOT NULL OR (o.visibility = 'public' AND NOT $3))
              AND NOT ($4 AND COALESCE(v.input_eur_per_1k + v.output_eur_per_1k, 0) > 0)
              AND ($5::uuid IS NULL OR o.id = $5)
            ORDER BY 2"#,
        org,
        state.config.price_notice.as_secs_f64(),
        hide_public,
        hide_paid,
        id,
    )
    .fetch_all(&state.db)
    .await
}

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
    let list = available(
        &state,
        caller.org_id.0,
        q.hide_public.unwrap_or(stored.hide_public),
        q.hide_paid.unwrap_or(stored.hide_paid),
        None,
    )
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
    let provider = sqlx::query_scalar!(
        "SELECT o.organization_id FROM offerings o
          WHERE o.id = $1 AND o.organization_id <> $2 AND o.technical_active AND o.economic_active
            AND EXISTS (SELECT 1 FROM organizations p WHERE p.id = o.organization_id AND p.deleted_at IS NULL)
            AND (o.visibility IN ('public', 'unlisted')
                 OR EXISTS (SELECT 1 FROM offering_shares s WHERE s.offering_id = o.id AND s.consumer_organization_id = $2 AND s.status <> 'revoked'))",
        offering,
        org,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let provider = provider.ok_or(ApiError::NotFound)?;
    let accepted = sqlx::query!(
        "INSERT INTO offering_shares (id, offering_id, consumer_organization_id, created_by, accepted_at, accepted_by, prices_accepted_at)
         VALUES ($1, $2, $3, $4, now(), $4, now())
         ON CONFLICT (offering_id, consumer_organization_id) DO UPDATE
            SET accepted_at = COALESCE(offering_shares.accepted_at, now()),
                accepted_by = COALESCE(offering_shares.accepted_by, $4),
                prices_accepted_at = now(), updated_at = now()
          WHERE offering_shares.status <> 'revoked'",
        Uuid::new_v4(),
        offering,
        org,
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    if accepted.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    let entry = audit::Entry::by(&caller, "share.accepted", "offering", offering.to_string());
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, provider, offering).await;
    Ok(Json(load_available(&state, org, offering).await?))
}

/// Leaves an offering the current organization accepted (its manager): the
/// acceptance is withdrawn, so its keys' calls of the offering are refused
/// from now on (`model_not_found`) and nothing more is charged; what was
/// used stays on the statements. The offering may be accepted again while
/// it is offered. Leaving a share not accepted changes nothing.
#[utoipa::path(delete, path = "/organizations/current/available-offerings/{offering_id}", tag = "offerings", security(("bearer" = [])),
    params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 204, description = "left (or not accepted)"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn leave_offering(
    State(state): State<AppState>,
    caller: Caller,
    Path(offering): Path<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(Action::AcceptShares)?;
    let mut tx = state.db.begin().await?;
    let share = sqlx::query!(
        r#"SELECT s.id, s.accepted_at IS NOT NULL AS "accepted!", o.organization_id AS provider
             FROM offering_shares s JOIN offerings o ON o.id = s.offering_id
            WHERE s.offering_id = $1 AND s.consumer_organization_id = $2 AND s.status <> 'revoked'
              FOR UPDATE OF s"#,
        offering,
        caller.org_id as OrgId,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    if !share.accepted {
        return Ok(StatusCode::NO_CONTENT);
    }
    sqlx::query!(
        "UPDATE offering_shares SET accepted_at = NULL, accepted_by = NULL, updated_at = now() WHERE id = $1",
        share.id,
    )
    .execute(&mut *tx)
    .await?;
    let entry = audit::Entry::by(
        &caller,
        "share.left",
        "offering_share",
        share.id.to_string(),
    )
    .details(serde_json::json!({ "offering_id": offering }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, share.provider, offering).await;
    Ok(StatusCode::NO_CONTENT)
}

/// One offering `org` has a share of (accepted, or capped), as it sees it,
/// or 404. Nothing is hidden: the organization's own share passes any
/// visibility, and a paid offering it accepted is shown.
async fn load_available(state: &AppState, org: Uuid, offering: Uuid) -> ApiResult<Available> {
    available(state, org, false, false, Some(offering))
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// The most the organization agrees to pay for a share (EUR per 1k
/// tokens); both null removes the cap.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxPrice {
    pub max_input_eur_per_1k: Option<String>,
    pub max_output_eur_per_1k: Option<String>,
}

/// Caps what the organization pays for an offering it accepted (its
/// manager): calls are refused (`403 price_above_maximum`) while the price
/// in force is above the cap, and no call is charged above it.
#[utoipa::path(put, path = "/organizations/current/available-offerings/{offering_id}/max-price", tag = "offerings", security(("bearer" = [])),
    request_body = MaxPrice, params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 200, body = Available), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_max_price(
    State(state): State<AppState>,
    caller: Caller,
    Path(offering): Path<Uuid>,
    Json(body): Json<MaxPrice>,
) -> ApiResult<Json<Available>> {
    caller.require(Action::AcceptShares)?;
    let max = match (&body.max_input_eur_per_1k, &body.max_output_eur_per_1k) {
        (Some(i), Some(o)) => Some((
            parse_price("max_input_eur_per_1k", i)?,
            parse_price("max_output_eur_per_1k", o)?,
        )),
        (None, None) => None,
        _ => {
            return Err(ApiError::validation(
                "INVALID_PRICE",
                "give both max_input_eur_per_1k and max_output_eur_per_1k, or neither",
            ))
        }
    };
    let org = caller.org_id.0;
    let mut tx = state.db.begin().await?;
    let provider = sqlx::query_scalar!(
        "UPDATE offering_shares s SET max_input_eur_per_1k = $3::text::numeric, max_output_eur_per_1k = $4::text::numeric, updated_at = now()
           FROM offerings o
          WHERE s.offering_id = $1 AND s.consumer_organization_id = $2 AND s.status <> 'revoked' AND o.id = s.offering_id
         RETURNING o.organization_id",
        offering,
        org,
        max.as_ref().map(|m| m.0.as_str()),
        max.as_ref().map(|m| m.1.as_str()),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let provider = provider.ok_or(ApiError::NotFound)?;
    let details = serde_json::json!({ "max_input_eur_per_1k": body.max_input_eur_per_1k, "max_output_eur_per_1k": body.max_output_eur_per_1k });
    let entry = audit::Entry::by(
        &caller,
        "share.max_price_set",
        "offering",
        offering.to_string(),
    )
    .details(details);
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, provider, offering).await;
    Ok(Json(load_available(&state, org, offering).await?))
}
