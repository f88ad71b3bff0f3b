//! The current organization's cloud provider credentials (owners and
//! admins). They are stored only encrypted (`inventiv_store::credentials`)
//! and never returned: reading them says whether they are set, a masked
//! hint and the last verification. Only providers that take credentials
//! (Scaleway) are addressable here; any other name is a 404.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId};
use inventiv_providers::scaleway::{self, ScalewayProvider};
use secrecy::{ExposeSecret, SecretString};
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
        .routes(routes!(
            get_credentials,
            put_credentials,
            delete_credentials
        ))
        .routes(routes!(verify_credentials))
}

/// The only provider that takes credentials today.
const SCALEWAY: &str = "scaleway";

/// The organization's Scaleway provider, built from its stored credentials;
/// 409 `PROVIDER_NOT_CONFIGURED` without them.
pub(crate) async fn organization_provider(
    state: &AppState,
    org: Uuid,
    provider: &str,
) -> ApiResult<ScalewayProvider> {
    let stored = inventiv_store::credentials::load(&state.db, &state.config.keyring, org, provider)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| {
            ApiError::conflict(
                "PROVIDER_NOT_CONFIGURED",
                format!("set the organization's {provider} credentials first"),
            )
        })?;
    let creds: scaleway::Credentials = serde_json::from_str(stored.document.expose_secret())
        .map_err(|_| {
            ApiError::Internal(anyhow::anyhow!(
                "stored {provider} credentials do not parse"
            ))
        })?;
    let settings = scaleway::Settings {
        base_url: state.config.scaleway_api_url.clone(),
        ..scaleway::Settings::default()
    };
    Ok(ScalewayProvider::new(
        state.cloud_http.clone(),
        settings,
        creds,
    ))
}

/// The provider code when it takes credentials; 404 otherwise.
pub(crate) fn credentialed(provider: &str) -> ApiResult<&'static str> {
    match provider {
        SCALEWAY => Ok(SCALEWAY),
        _ => Err(ApiError::NotFound),
    }
}

/// Whether credentials are set, never the credentials themselves.
#[derive(Serialize, ToSchema)]
pub struct CredentialsStatus {
    pub provider: String,
    pub configured: bool,
    /// Masked: the access key's first characters and the project id.
    pub hint: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub last_verification: Option<Verification>,
}

/// The outcome of the last check against the provider's API.
#[derive(Serialize, ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// Scaleway credentials (an API key of the project that will host the
/// organization's servers).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScalewayCredentialsBody {
    /// `SCW` followed by 17 letters or digits.
    access_key: String,
    /// The API key's secret (a UUID).
    #[schema(value_type = String)]
    secret_key: SecretString,
    project_id: Uuid,
    organization_id: Uuid,
    /// A Scaleway zone of the catalog, e.g. `fr-par-2`.
    default_zone: String,
}

struct StatusRow {
    hint: String,
    updated_at: DateTime<Utc>,
    verified_at: Option<DateTime<Utc>>,
    verified_ok: Option<bool>,
    verify_message: Option<String>,
}

async fn status(state: &AppState, org: Uuid, provider: &str) -> ApiResult<CredentialsStatus> {
    let row = sqlx::query_as!(
        StatusRow,
        "SELECT hint, updated_at, verified_at, verified_ok, verify_message FROM provider_credentials
          WHERE organization_id = $1 AND provider_code = $2",
        org,
        provider,
    )
    .fetch_optional(&state.db)
    .await?;
    Ok(CredentialsStatus {
        provider: provider.to_owned(),
        configured: row.is_some(),
        hint: row.as_ref().map(|r| r.hint.clone()),
        updated_at: row.as_ref().map(|r| r.updated_at),
        last_verification: row.and_then(|r| {
            Some(Verification {
                ok: r.verified_ok?,
                message: r.verify_message.unwrap_or_default(),
                at: r.verified_at?,
            })
        }),
    })
}

/// Says whether the organization's credentials for a provider are set.
#[utoipa::path(get, path = "/organizations/current/providers/{provider}/credentials", tag = "providers",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    responses((status = 200, body = CredentialsStatus), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Json<CredentialsStatus>> {
    caller.require(Action::ManageProviders)?;
    let provider = credentialed(&provider)?;
    Ok(Json(status(&state, caller.org_id.0, provider).await?))
}

fn check_scaleway(body: &ScalewayCredentialsBody) -> ApiResult<()> {
    let access_ok = body.access_key.len() == 20
        && body.access_key.starts_with("SCW")
        && body.access_key[3..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !access_ok {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "access_key: SCW followed by 17 capital letters or digits",
        ));
    }
    if Uuid::parse_str(body.secret_key.expose_secret()).is_err() {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "secret_key: the API key's secret, a UUID",
        ));
    }
    Ok(())
}

/// Sets (or replaces) the organization's credentials for a provider.
#[utoipa::path(put, path = "/organizations/current/providers/{provider}/credentials", tag = "providers",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    request_body = ScalewayCredentialsBody,
    responses((status = 200, body = CredentialsStatus), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
    Json(body): Json<ScalewayCredentialsBody>,
) -> ApiResult<Json<CredentialsStatus>> {
    caller.require(Action::ManageProviders)?;
    let provider = credentialed(&provider)?;
    check_scaleway(&body)?;
    let zone_known = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM zones WHERE provider_code = $1 AND code = $2) AS "exists!""#,
        provider,
        body.default_zone,
    )
    .fetch_one(&state.db)
    .await?;
    if !zone_known {
        return Err(ApiError::validation(
            "UNKNOWN_ZONE",
            format!(
                "default_zone: {provider} has no zone {:?}",
                body.default_zone
            ),
        ));
    }
    let document = serde_json::json!({
        "access_key": body.access_key,
        "secret_key": body.secret_key.expose_secret(),
        "project_id": body.project_id,
        "organization_id": body.organization_id,
        "default_zone": body.default_zone,
    });
    let document = SecretString::from(document.to_string());
    let hint = format!(
        "{}… (project {})",
        &body.access_key[..7],
        &body.project_id.simple().to_string()[..8]
    );
    let mut tx = state.db.begin().await?;
    inventiv_store::credentials::save(
        &mut *tx,
        &state.config.keyring,
        caller.org_id.0,
        provider,
        &document,
        &hint,
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    audit::record(
        &mut *tx,
        audit::Entry::by(
            &caller,
            "provider_credentials.set",
            "provider",
            provider.to_owned(),
        )
        .details(serde_json::json!({ "hint": hint })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(status(&state, caller.org_id.0, provider).await?))
}

/// Removes the credentials; refused while instances still use them.
#[utoipa::path(delete, path = "/organizations/current/providers/{provider}/credentials", tag = "providers",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageProviders)?;
    let provider = credentialed(&provider)?;
    let mut tx = state.db.begin().await?;
    // Locks the row so no deployment slips in between the check and the delete.
    sqlx::query_scalar!(
        "SELECT 1 FROM provider_credentials WHERE organization_id = $1 AND provider_code = $2 FOR UPDATE",
        caller.org_id as OrgId,
        provider,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let in_use = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM instances
          WHERE organization_id = $1 AND provider = $2 AND status NOT IN ('terminated', 'archived')"#,
        caller.org_id as OrgId,
        provider,
    )
    .fetch_one(&mut *tx)
    .await?;
    if in_use > 0 {
        return Err(ApiError::conflict(
            "CREDENTIALS_IN_USE",
            format!("{in_use} instance(s) still use these credentials: terminate them first"),
        ));
    }
    let deleted = sqlx::query!(
        "DELETE FROM provider_credentials WHERE organization_id = $1 AND provider_code = $2",
        caller.org_id as OrgId,
        provider,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if deleted > 0 {
        audit::record(
            &mut *tx,
            audit::Entry::by(
                &caller,
                "provider_credentials.deleted",
                "provider",
                provider.to_owned(),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the stored credentials against the provider's API and records
/// the outcome (also when they are rejected).
#[utoipa::path(post, path = "/organizations/current/providers/{provider}/credentials/verify", tag = "providers",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    responses((status = 200, body = CredentialsStatus), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn verify_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Json<CredentialsStatus>> {
    caller.require(Action::ManageProviders)?;
    let provider = credentialed(&provider)?;
    let org = caller.org_id.0;
    let outcome = organization_provider(&state, org, provider)
        .await?
        .verify()
        .await;
    let (ok, message) = match outcome {
        Ok(()) => (true, "accepted by the provider".to_owned()),
        Err(e) => (false, format!("{}: {e}", e.code())),
    };
    inventiv_store::credentials::record_verification(&state.db, org, provider, ok, &message)
        .await?;
    Ok(Json(status(&state, org, provider).await?))
}
