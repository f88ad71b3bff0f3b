//! `POST /providers/{provider}/catalog-sync` (platform administrators):
//! reads what Scaleway offers in each catalog zone, with the credentials of
//! the administrator's current organization, and brings the catalog up to
//! date: new GPU server types are added, the size and price of known ones
//! refreshed unless a platform admin edited them (`edited_by_admin`), and
//! the availability per zone recorded.

use axum::extract::State;
use inventiv_providers::scaleway::Offer;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::routes::provider_credentials::{credentialed, organization_provider};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync))
}

/// What the sync changed.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SyncReport {
    pub zones: usize,
    /// Server types new to the catalog.
    pub added: Vec<String>,
    /// Known types whose size or price was refreshed.
    pub updated: Vec<String>,
    /// Types left as a platform admin edited them.
    pub kept_edited: Vec<String>,
}

/// Writes one offer of one zone; says what happened to the type.
async fn apply(
    tx: &mut sqlx::PgConnection,
    zone_id: Uuid,
    o: &Offer,
) -> sqlx::Result<&'static str> {
    let to_i32 = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
    let written = sqlx::query!(
        r#"INSERT INTO instance_types (id, provider_code, code, gpu_count, vram_per_gpu_gb, vcpu, ram_gb, price_eur_per_hour, allocation)
         VALUES (gen_random_uuid(), 'scaleway', $1, $2, $3, $4, $5, $6::text::numeric, '{"image": "ubuntu_jammy_gpu_os_12"}')
         ON CONFLICT (provider_code, code) DO UPDATE
            SET gpu_count = EXCLUDED.gpu_count, vram_per_gpu_gb = EXCLUDED.vram_per_gpu_gb, vcpu = EXCLUDED.vcpu,
                ram_gb = EXCLUDED.ram_gb, price_eur_per_hour = EXCLUDED.price_eur_per_hour
          WHERE NOT instance_types.edited_by_admin
         RETURNING id, xmax = 0 AS "inserted!""#,
        o.code,
        to_i32(o.gpu_count.into()),
        to_i32(o.vram_per_gpu_gb),
        to_i32(o.vcpu.into()),
        to_i32(o.ram_gb),
        o.hourly_price,
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| (r.id, r.inserted));
    let (type_id, outcome) = match written {
        Some((id, true)) => (id, "added"),
        Some((id, false)) => (id, "updated"),
        None => {
            let id = sqlx::query_scalar!(
                "SELECT id FROM instance_types WHERE provider_code = 'scaleway' AND code = $1",
                o.code,
            )
            .fetch_one(&mut *tx)
            .await?;
            (id, "kept_edited")
        }
    };
    sqlx::query!(
        "INSERT INTO instance_type_zones (instance_type_id, zone_id, available) VALUES ($1, $2, $3)
         ON CONFLICT (instance_type_id, zone_id) DO UPDATE SET available = EXCLUDED.available",
        type_id,
        zone_id,
        o.available,
    )
    .execute(&mut *tx)
    .await?;
    Ok(outcome)
}

fn note(list: &mut Vec<String>, code: &str) {
    if !list.iter().any(|c| c == code) {
        list.push(code.to_owned());
    }
}

/// Brings the provider's part of the catalog up to date.
#[utoipa::path(post, path = "/providers/{provider}/catalog-sync", tag = "catalog",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    responses((status = 200, body = SyncReport), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn sync(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Json<SyncReport>> {
    caller.require_platform_admin()?;
    let code = credentialed(&provider)?;
    let cloud = organization_provider(&state, caller.org_id.0, code).await?;
    let zones: Vec<(Uuid, String)> = sqlx::query!(
        "SELECT id, code FROM zones WHERE provider_code = $1 ORDER BY code",
        code,
    )
    .fetch_all(&state.db)
    .await?
    .into_iter()
    .map(|z| (z.id, z.code))
    .collect();
    // Read everything first: a provider failure changes nothing.
    let mut offers = Vec::new();
    for (zone_id, zone) in &zones {
        let found = cloud.offers(zone).await.map_err(|e| {
            ApiError::Unavailable(format!("{code} did not answer for {zone}: {}", e.code()))
        })?;
        offers.push((*zone_id, found));
    }
    let mut report = SyncReport {
        zones: zones.len(),
        ..SyncReport::default()
    };
    let mut tx = state.db.begin().await?;
    for (zone_id, found) in &offers {
        for offer in found {
            let outcome = apply(&mut tx, *zone_id, offer).await?;
            let list = match outcome {
                "added" if !report.updated.contains(&offer.code) => &mut report.added,
                "kept_edited" => &mut report.kept_edited,
                _ if report.added.contains(&offer.code) => continue,
                _ => &mut report.updated,
            };
            note(list, &offer.code);
        }
    }
    tx.commit().await?;
    Ok(Json(report))
}
