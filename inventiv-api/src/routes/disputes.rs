//! Usage disputes (`GET /finops/disputes`): the requests whose worker
//! reported more tokens than the request made plausible (or negative ones),
//! billed at the bound instead. Both sides see them: the consumer that was
//! billed and, for a call through a share, the provider whose worker
//! reported. Owners and managers, like the rest of FinOps.

use axum::extract::State;
use chrono::{DateTime, Utc};
use inventiv_common::{Action, OrgId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::finops::range;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_disputes))
}

/// The time range (default the last 30 days, at most 366).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DisputeQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// One implausible usage report and what was billed for it.
#[derive(Serialize, ToSchema)]
pub struct Dispute {
    pub usage_id: Uuid,
    pub at: DateTime<Utc>,
    /// `consumer` (the current organization was billed) or `provider` (its
    /// worker reported).
    pub side: String,
    /// The organization that was billed.
    pub consumer_org_slug: Option<String>,
    /// The organization whose worker reported; none for its own model.
    pub provider_org_slug: Option<String>,
    pub share_id: Option<Uuid>,
    pub instance_id: Option<Uuid>,
    pub model: String,
    pub reported_prompt_tokens: i64,
    pub reported_completion_tokens: i64,
    pub billed_prompt_tokens: i32,
    pub billed_completion_tokens: i32,
}

/// The disputes of the current organization, as consumer or provider, newest first (at most 1000).
#[utoipa::path(get, path = "/finops/disputes", tag = "finops", security(("bearer" = [])), params(DisputeQuery),
    responses((status = 200, body = [Dispute]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn list_disputes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DisputeQuery>,
) -> ApiResult<Json<Vec<Dispute>>> {
    caller.require(Action::ViewFinOps)?;
    let (from, to) = range(q.from, q.to, 30, 366)?;
    let rows = sqlx::query_as!(
        Dispute,
        r#"SELECT d.usage_id, d.at, CASE WHEN d.organization_id = $1 THEN 'consumer' ELSE 'provider' END AS "side!",
                c.slug AS consumer_org_slug, p.slug AS provider_org_slug, d.share_id, d.instance_id, d.model,
                d.reported_prompt_tokens, d.reported_completion_tokens, d.billed_prompt_tokens, d.billed_completion_tokens
           FROM usage_disputes d
           LEFT JOIN organizations c ON c.id = d.organization_id
           LEFT JOIN organizations p ON p.id = d.provider_organization_id
          WHERE (d.organization_id = $1 OR d.provider_organization_id = $1) AND d.at >= $2 AND d.at < $3
          ORDER BY d.at DESC LIMIT 1000"#,
        caller.org_id as OrgId,
        from,
        to,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}
