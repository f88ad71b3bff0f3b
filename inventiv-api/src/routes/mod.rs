//! One module per resource, each with its handlers, types and SQL. `router`
//! assembles them; every route is registered through `routes!` so the
//! OpenAPI document and the router cannot disagree.

pub mod activations;
pub mod api_keys;
pub mod audit_logs;
pub mod auth;
pub mod catalog;
pub mod catalog_admin;
pub mod catalog_sync;
pub mod deployments;
pub mod events;
pub mod health;
pub mod instances;
pub mod invitations;
pub mod members;
pub mod metrics;
pub mod organizations;
pub mod password_reset;
pub mod provider_credentials;
pub mod reconciliation;
pub mod sessions;
pub mod usage;
pub mod users;
pub mod worker_settings;
pub mod workers;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every API route, documented.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(password_reset::router())
        .merge(sessions::router())
        .merge(users::router())
        .merge(organizations::router())
        .merge(members::router())
        .merge(invitations::router())
        .merge(audit_logs::router())
        .merge(workers::router())
        .merge(catalog::router())
        .merge(catalog_admin::router())
        .merge(catalog_sync::router())
        .merge(activations::router())
        .merge(deployments::router())
        .merge(instances::router())
        .merge(events::router())
        .merge(metrics::router())
        .merge(api_keys::router())
        .merge(provider_credentials::router())
        .merge(reconciliation::router())
        .merge(worker_settings::router())
        .merge(usage::router())
        .merge(crate::proxy::router())
}
