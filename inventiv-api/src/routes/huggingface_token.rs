//! The current organization's Hugging Face token (owners and admins), which
//! deployments of gated models need. It is stored only encrypted
//! (`inventiv_store::huggingface`) and never returned: reading it says
//! whether it is set, a masked hint and when it was written.
//!
//! The permission is `ManageProviders`, the one of provider credentials: it
//! is the same kind of thing (an outside account's secret that deployments
//! use) held by the same people (the technical side: owners and admins).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use inventiv_common::Action;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(
        get_huggingface_token,
        put_huggingface_token,
        delete_huggingface_token
    ))
}

/// Whether a token is set, never the token itself.
#[derive(Serialize, ToSchema)]
pub struct HuggingFaceTokenStatus {
    pub configured: bool,
    /// Masked: `hf_…` and the last 4 characters.
    pub hint: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A Hugging Face access token (read access is enough) of an account that
/// accepted the terms of the gated models to deploy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HuggingFaceTokenBody {
    /// `hf_` followed by 20 to 200 letters or digits.
    #[schema(value_type = String)]
    token: SecretString,
}

const PREFIX: &str = "hf_";

/// The token without surrounding blanks (a pasted newline), if it has the
/// shape of a Hugging Face token. The message never repeats the value.
fn parse_token(raw: &SecretString) -> ApiResult<SecretString> {
    let token = raw.expose_secret().trim();
    let body = token.strip_prefix(PREFIX).unwrap_or_default();
    let ok = (20..=200).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(ApiError::validation(
            "VALIDATION_ERROR",
            "token: a Hugging Face access token, hf_ followed by 20 to 200 letters or digits",
        ));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// `hf_…` and the last 4 characters: enough to recognize a token, far too
/// little to use it.
fn hint(token: &SecretString) -> String {
    let t = token.expose_secret();
    format!("{PREFIX}…{}", &t[t.len() - 4..])
}

async fn status(state: &AppState, caller: &Caller) -> ApiResult<HuggingFaceTokenStatus> {
    let row = inventiv_store::huggingface::status(&state.db, caller.org_id.0).await?;
    Ok(HuggingFaceTokenStatus {
        configured: row.is_some(),
        hint: row.as_ref().map(|r| r.hint.clone()),
        created_at: row.as_ref().map(|r| r.created_at),
        updated_at: row.as_ref().map(|r| r.updated_at),
    })
}

/// Says whether the organization's Hugging Face token is set.
#[utoipa::path(get, path = "/organizations/current/huggingface-token", tag = "organizations",
    security(("bearer" = [])),
    responses((status = 200, body = HuggingFaceTokenStatus), (status = 403, body = ErrorBody)))]
async fn get_huggingface_token(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<HuggingFaceTokenStatus>> {
    caller.require(Action::ManageProviders)?;
    Ok(Json(status(&state, &caller).await?))
}

/// Sets (or replaces) the organization's Hugging Face token.
#[utoipa::path(put, path = "/organizations/current/huggingface-token", tag = "organizations",
    security(("bearer" = [])), request_body = HuggingFaceTokenBody,
    responses((status = 200, body = HuggingFaceTokenStatus), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_huggingface_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<HuggingFaceTokenBody>,
) -> ApiResult<Json<HuggingFaceTokenStatus>> {
    caller.require(Action::ManageProviders)?;
    let token = parse_token(&body.token)?;
    let hint = hint(&token);
    let mut tx = state.db.begin().await?;
    inventiv_store::huggingface::save(
        &mut *tx,
        &state.config.keyring,
        caller.org_id.0,
        &token,
        &hint,
    )
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    audit::record(
        &mut *tx,
        audit::Entry::by(
            &caller,
            "huggingface_token.set",
            "organization",
            caller.org_id.0.to_string(),
        )
        .details(serde_json::json!({ "hint": hint })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(status(&state, &caller).await?))
}

/// Removes the organization's Hugging Face token. Running instances keep
/// the copy on their node until they are reinstalled or terminated; new
/// deployments of gated models are refused until a token is set again.
#[utoipa::path(delete, path = "/organizations/current/huggingface-token", tag = "organizations",
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ErrorBody)))]
async fn delete_huggingface_token(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    caller.require(Action::ManageProviders)?;
    let mut tx = state.db.begin().await?;
    if inventiv_store::huggingface::delete(&mut *tx, caller.org_id.0).await? {
        audit::record(
            &mut *tx,
            audit::Entry::by(
                &caller,
                "huggingface_token.deleted",
                "organization",
                caller.org_id.0.to_string(),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_hinted_without_their_value() {
        let good = format!("hf_{}", "a1B2".repeat(9));
        let parsed = parse_token(&SecretString::from(format!("  {good}\n")))
            .unwrap_or_else(|_| unreachable!("a well-formed token"));
        assert_eq!(parsed.expose_secret(), good);
        assert_eq!(hint(&parsed), "hf_…a1B2");
        for bad in [
            "",
            "hf_",
            "hf_short",
            "api_0123456789012345678901234",
            "HF_0123456789012345678901234",
            "hf_0123456789 012345678901234",
            "hf_01234567890123456789-01234",
            &format!("hf_{}", "a".repeat(201)),
        ] {
            match parse_token(&SecretString::from(bad.to_owned())) {
                Err(e) => assert!(bad.len() < 8 || !e.to_string().contains(bad)),
                Ok(_) => unreachable!("accepted {bad:?}"),
            }
        }
    }
}
