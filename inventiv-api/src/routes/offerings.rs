//! The provider side of model sharing: the current organization publishes a
//! deployed model as an offering addressed `org_slug/model_code`
//! (`POST /organizations/current/offerings`), switches it (visibility and
//! the technical switch by admins, the economic switch by managers) and
//! prices it with versions that take effect at a time, never in the past
//! (`POST .../offerings/{id}/prices`): a charge already written never moves.
//! A version may price cached prompt tokens (served from the engine's prefix
//! cache) at their own rate, at most the input rate; by default the input rate.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_offering, list_offerings))
        .routes(routes!(update_offering))
        .routes(routes!(add_price))
}

/// An offering as its provider sees it.
#[derive(Serialize, ToSchema)]
pub struct Offering {
    pub id: Uuid,
    /// What consumers put in `model`: `org_slug/model_code`.
    pub address: String,
    pub model_code: String,
    pub visibility: String,
    pub technical_active: bool,
    pub economic_active: bool,
    /// The offering's price in force now (EUR per 1k tokens), if any.
    pub input_eur_per_1k: Option<String>,
    pub output_eur_per_1k: Option<String>,
    /// The rate of cached prompt tokens in force now (the input rate unless set).
    pub cached_input_eur_per_1k: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Whether a ready instance of the organization serves the model now
    /// (the consumers' calls answer `model_not_found` while none does).
    pub serving: bool,
}

/// The organization's offerings, oldest first, or only the one with `id`.
async fn of_organization(
    db: &sqlx::PgPool,
    org: Uuid,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<Offering>> {
    sqlx::query_as!(
        Offering,
        r#"SELECT o.id, org.slug || '/' || o.model_code AS "address!", o.model_code, o.visibility, o.technical_active,
                  o.economic_active, p.input_eur_per_1k::text AS input_eur_per_1k,
                  p.output_eur_per_1k::text AS output_eur_per_1k,
                  COALESCE(p.cached_input_eur_per_1k, p.input_eur_per_1k)::text AS cached_input_eur_per_1k, o.created_at,
                  EXISTS (SELECT 1 FROM instances i WHERE i.organization_id = o.organization_id
                             AND i.model_id = o.model_code AND i.status = 'ready') AS "serving!"
             FROM offerings o JOIN organizations org ON org.id = o.organization_id
             LEFT JOIN LATERAL (SELECT input_eur_per_1k, output_eur_per_1k, cached_input_eur_per_1k FROM offering_prices v
                                 WHERE v.offering_id = o.id AND v.share_id IS NULL AND v.effective_at <= now()
                                 ORDER BY v.effective_at DESC LIMIT 1) p ON true
            WHERE o.organization_id = $1 AND ($2::uuid IS NULL OR o.id = $2)
            ORDER BY o.created_at"#,
        org,
        id,
    )
    .fetch_all(db)
    .await
}

/// One of the organization's offerings, or 404.
pub async fn load(db: &sqlx::PgPool, org: Uuid, id: Uuid) -> ApiResult<Offering> {
    of_organization(db, org, Some(id))
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
}

/// Tells every replica's routing table that shares or offerings changed.
pub async fn announce(state: &AppState, org: Uuid, offering: Uuid) {
    let event = inventiv_common::messages::Event::OfferingChanged {
        organization_id: org,
        subject: offering,
    };
    crate::events::publish(state, &event).await;
}

/// A price in EUR per 1k tokens: a decimal string, at most 6 decimals.
pub fn parse_price(field: &str, value: &str) -> ApiResult<String> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || int.len() > 6
        || frac.len() > 6
        || !digits(int)
        || !digits(frac)
        || value.ends_with('.')
    {
        return Err(ApiError::validation(
            "INVALID_PRICE",
            format!("{field}: a decimal like \"0.002\" (EUR per 1k tokens, at most 6 decimals)"),
        ));
    }
    Ok(value.to_owned())
}

/// `a <= b` for two prices that passed [`parse_price`] (exact, no float).
fn decimal_at_most(a: &str, b: &str) -> bool {
    let split = |v: &str| {
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        let int = int.trim_start_matches('0');
        (int.len(), int.to_owned(), format!("{frac:0<6}"))
    };
    split(a) <= split(b)
}

fn parse_visibility(value: &str) -> ApiResult<&str> {
    match value {
        "public" | "unlisted" | "private" => Ok(value),
        _ => Err(ApiError::validation(
            "INVALID_VISIBILITY",
            "visibility: public, unlisted or private",
        )),
    }
}

/// What to publish.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOffering {
    /// The model id served by the organization's instances.
    model_code: String,
    /// `public` (listed to every organization), `unlisted` (callable once
    /// accepted by address) or `private` (only through shares).
    visibility: String,
}

/// Publishes a model the organization has deployed (technically on; a
/// manager prices it and switches it on economically).
#[utoipa::path(post, path = "/organizations/current/offerings", tag = "offerings", security(("bearer" = [])),
    request_body = CreateOffering,
    responses((status = 201, body = Offering), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "too many objects created; see Retry-After")))]
async fn create_offering(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateOffering>,
) -> ApiResult<(StatusCode, Json<Offering>)> {
    caller.require(Action::PublishOfferings)?;
    crate::ratelimit::creation(&state, caller.user_id).await?;
    let visibility = parse_visibility(&body.visibility)?;
    let code = body.model_code.trim();
    let valid = (1..=128).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/:-".contains(&b))
        && code.as_bytes()[0].is_ascii_alphanumeric();
    if !valid {
        return Err(ApiError::validation(
            "INVALID_MODEL_CODE",
            "model_code: the model id your instances serve",
        ));
    }
    let deployed = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM instances WHERE organization_id = $1 AND model_id = $2 AND status <> 'archived')
             AS "deployed!""#,
        caller.org_id as OrgId,
        code,
    )
    .fetch_one(&state.db)
    .await?;
    if !deployed {
        return Err(ApiError::conflict(
            "MODEL_NOT_DEPLOYED",
            "the organization has no instance of this model",
        ));
    }
    let id = Uuid::new_v4();
    let mut tx = state.db.begin().await?;
    let inserted = sqlx::query!(
        "INSERT INTO offerings (id, organization_id, model_code, visibility, technical_active, created_by)
         VALUES ($1, $2, $3, $4, true, $5) ON CONFLICT (organization_id, model_code) DO NOTHING",
        id,
        caller.org_id as OrgId,
        code,
        visibility,
        caller.user_id as UserId,
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "OFFERING_EXISTS",
            "this model is already offered",
        ));
    }
    let entry = audit::Entry::by(&caller, "offering.published", "offering", id.to_string())
        .details(serde_json::json!({ "model_code": code, "visibility": visibility }));
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, caller.org_id.0, id).await;
    Ok((
        StatusCode::CREATED,
        Json(load(&state.db, caller.org_id.0, id).await?),
    ))
}

/// The organization's offerings.
#[utoipa::path(get, path = "/organizations/current/offerings", tag = "offerings", security(("bearer" = [])),
    responses((status = 200, body = [Offering]), (status = 403, body = ErrorBody)))]
async fn list_offerings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Offering>>> {
    caller.require(Action::ViewOfferings)?;
    Ok(Json(
        of_organization(&state.db, caller.org_id.0, None).await?,
    ))
}

/// The switches to change; absent ones stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOffering {
    visibility: Option<String>,
    technical_active: Option<bool>,
    economic_active: Option<bool>,
}

/// Changes an offering's visibility (admins), technical switch (admins) or
/// economic switch (managers). Switching off stops every share's calls.
#[utoipa::path(patch, path = "/organizations/current/offerings/{offering_id}", tag = "offerings", security(("bearer" = [])),
    request_body = UpdateOffering, params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 200, body = Offering), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_offering(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateOffering>,
) -> ApiResult<Json<Offering>> {
    caller.require(Action::ViewOfferings)?;
    if body.visibility.is_some() || body.technical_active.is_some() {
        caller.require(Action::PublishOfferings)?;
    }
    if body.economic_active.is_some() {
        caller.require(Action::SellOfferings)?;
    }
    let visibility = body
        .visibility
        .as_deref()
        .map(parse_visibility)
        .transpose()?;
    let mut tx = state.db.begin().await?;
    let updated = sqlx::query!(
        "UPDATE offerings SET visibility = COALESCE($3, visibility), technical_active = COALESCE($4, technical_active),
                economic_active = COALESCE($5, economic_active)
          WHERE id = $1 AND organization_id = $2",
        id,
        caller.org_id as OrgId,
        visibility,
        body.technical_active,
        body.economic_active,
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    let details = serde_json::json!({ "visibility": visibility, "technical_active": body.technical_active, "economic_active": body.economic_active });
    let entry =
        audit::Entry::by(&caller, "offering.updated", "offering", id.to_string()).details(details);
    audit::record(&mut *tx, entry).await?;
    tx.commit().await?;
    announce(&state, caller.org_id.0, id).await;
    Ok(Json(load(&state.db, caller.org_id.0, id).await?))
}

/// A new price version.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrice {
    /// EUR per 1k input (prompt) tokens, e.g. "0.002".
    input_eur_per_1k: String,
    /// EUR per 1k output (completion) tokens.
    output_eur_per_1k: String,
    /// EUR per 1k cached prompt tokens (served from the engine's prefix
    /// cache), at most `input_eur_per_1k`; default: the input rate.
    cached_input_eur_per_1k: Option<String>,
    /// When it takes effect (RFC 3339), default now; never in the past.
    effective_at: Option<DateTime<Utc>>,
}

/// A price version as stored.
#[derive(Serialize, ToSchema)]
pub struct PriceVersion {
    pub id: Uuid,
    pub share_id: Option<Uuid>,
    pub input_eur_per_1k: String,
    pub output_eur_per_1k: String,
    /// The cached prompt tokens' rate (the input rate unless set).
    pub cached_input_eur_per_1k: String,
    pub effective_at: DateTime<Utc>,
}

/// The rates of one price version, as given (decimal strings).
pub struct Rates<'a> {
    pub input: &'a str,
    pub output: &'a str,
    pub cached_input: Option<&'a str>,
}

/// Inserts a price version (of the offering, or of one share) from `effective_at`.
pub async fn insert_price(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    offering: Uuid,
    share: Option<Uuid>,
    rates: Rates<'_>,
    effective_at: Option<DateTime<Utc>>,
) -> ApiResult<PriceVersion> {
    let input = parse_price("input_eur_per_1k", rates.input)?;
    let output = parse_price("output_eur_per_1k", rates.output)?;
    let cached = rates
        .cached_input
        .map(|c| parse_price("cached_input_eur_per_1k", c))
        .transpose()?;
    if let Some(c) = &cached {
        if !decimal_at_most(c, &input) {
            return Err(ApiError::validation(
                "INVALID_PRICE",
                "cached_input_eur_per_1k: at most input_eur_per_1k (a cached token never costs more)",
            ));
        }
    }
    let now = Utc::now();
    let effective_at = effective_at.unwrap_or(now);
    if effective_at < now - chrono::Duration::seconds(1) {
        return Err(ApiError::validation(
            "PRICE_IN_PAST",
            "effective_at: a price takes effect now or later, never in the past",
        ));
    }
    let version = sqlx::query_as!(
        PriceVersion,
        r#"INSERT INTO offering_prices (id, offering_id, share_id, input_eur_per_1k, output_eur_per_1k, effective_at, created_by, cached_input_eur_per_1k)
         VALUES ($1, $2, $3, $4::text::numeric, $5::text::numeric, greatest($6, now()), $7, $8::text::numeric)
         RETURNING id, share_id, input_eur_per_1k::text AS "input_eur_per_1k!", output_eur_per_1k::text AS "output_eur_per_1k!",
                   COALESCE(cached_input_eur_per_1k, input_eur_per_1k)::text AS "cached_input_eur_per_1k!", effective_at"#,
        Uuid::new_v4(),
        offering,
        share,
        input,
        output,
        effective_at,
        caller.user_id as UserId,
        cached,
    )
    .fetch_one(&mut *tx)
    .await?;
    let details = serde_json::json!({ "share_id": share, "input_eur_per_1k": input, "output_eur_per_1k": output,
                                     "cached_input_eur_per_1k": cached, "effective_at": version.effective_at });
    let entry = audit::Entry::by(caller, "offering.priced", "offering", offering.to_string())
        .details(details);
    audit::record(&mut *tx, entry).await?;
    Ok(version)
}

/// Prices an offering from a time on (managers). Earlier charges keep the
/// price they were written with.
#[utoipa::path(post, path = "/organizations/current/offerings/{offering_id}/prices", tag = "offerings", security(("bearer" = [])),
    request_body = NewPrice, params(("offering_id" = Uuid, Path, description = "offering id")),
    responses((status = 201, body = PriceVersion), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_price(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<NewPrice>,
) -> ApiResult<(StatusCode, Json<PriceVersion>)> {
    caller.require(Action::SellOfferings)?;
    load(&state.db, caller.org_id.0, id).await?;
    let mut tx = state.db.begin().await?;
    let version = insert_price(
        &mut tx,
        &caller,
        id,
        None,
        Rates {
            input: &body.input_eur_per_1k,
            output: &body.output_eur_per_1k,
            cached_input: body.cached_input_eur_per_1k.as_deref(),
        },
        body.effective_at,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(version)))
}

#[cfg(test)]
mod tests {
    use super::decimal_at_most;

    #[test]
    fn prices_compare_exactly() {
        for (a, b, want) in [
            ("0.001", "0.002", true),
            ("0.002", "0.002", true),
            ("0.0020", "0.002", true),
            ("0.0021", "0.002", false),
            ("10", "9.999999", false),
            ("9.999999", "10", true),
            ("007", "7.000001", true),
            ("0", "0", true),
        ] {
            assert_eq!(decimal_at_most(a, b), want, "{a} <= {b}");
        }
    }
}
