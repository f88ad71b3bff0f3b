//! `GET /providers/{provider}/reconciliation` (owners and admins): a
//! dry run of the orchestrator's cloud reconciliation for the current
//! organization. It lists the organization's tagged servers and volumes
//! with its own credentials, compares them with the database by the same
//! rules (`inventiv_providers::reconcile`) and says what would be deleted,
//! kept or is missing; it changes nothing.

use axum::extract::State;
use chrono::{DateTime, Utc};
use inventiv_common::Action;
use inventiv_providers::reconcile::{classify, vanished, Facts};

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
    OpenApiRouter::new().routes(routes!(report))
}

/// One cloud resource and what reconciliation does with it.
#[derive(Serialize, ToSchema)]
pub struct Resource {
    /// `server`, `volume` or `security_group`.
    pub kind: String,
    pub provider_id: String,
    pub zone: String,
    pub instance_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// `delete` (orphan older than the grace window), `keep_young` (orphan
    /// inside it), `owned`, `attached` (goes with its server),
    /// `other_organization`, `untagged` (never touched).
    pub verdict: String,
}

/// The dry-run report.
#[derive(Serialize, ToSchema)]
pub struct Report {
    pub provider: String,
    pub generated_at: DateTime<Utc>,
    pub grace_seconds: u64,
    pub resources: Vec<Resource>,
    /// Live instances whose server the provider no longer has.
    pub vanished_instances: Vec<Uuid>,
    /// Recorded volumes of live instances the provider no longer has.
    pub missing_volumes: Vec<String>,
}

fn text<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What reconciliation would do now with the organization's resources.
#[utoipa::path(get, path = "/providers/{provider}/reconciliation", tag = "providers",
    security(("bearer" = [])), params(("provider" = String, Path, description = "provider code, e.g. scaleway")),
    responses((status = 200, body = Report), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Json<Report>> {
    caller.require(Action::ManageProviders)?;
    let code = credentialed(&provider)?;
    let org = caller.org_id.0;
    let cloud = organization_provider(&state, org, code).await?;
    let unavailable = |e: inventiv_providers::ProviderError| {
        ApiError::Unavailable(format!("{code} did not answer: {}", e.code()))
    };
    let inv = inventiv_store::inventory::load(&state.db, org, code).await?;
    let listed = inventiv_providers::reconcile::list_managed(&cloud, &inv.zones)
        .await
        .map_err(unavailable)?;
    let facts = Facts {
        organization_id: org,
        live_instances: inv.live_instances,
        live_volumes: inv.live_volumes,
        dead_volumes: inv.dead_volumes,
        live_servers: inv.live_servers,
    };
    let now = Utc::now();
    let grace = state.config.orphan_grace;
    let (vanished_instances, missing_volumes) = vanished(&listed.servers, &listed.volumes, &facts);
    let resources = classify(&listed, &facts, now, grace)
        .into_iter()
        .map(|f| Resource {
            kind: text(f.kind),
            provider_id: f.provider_id,
            zone: f.zone,
            instance_id: f.instance_id,
            created_at: f.created_at,
            verdict: text(f.verdict),
        })
        .collect();
    Ok(Json(Report {
        provider: code.to_owned(),
        generated_at: now,
        grace_seconds: grace.as_secs(),
        resources,
        vanished_instances,
        missing_volumes,
    }))
}
