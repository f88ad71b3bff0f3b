//! One module per resource, each with its handlers, types and SQL. `router`
//! assembles them; every route is registered through `routes!` so the
//! OpenAPI document and the router cannot disagree.

pub mod activations;
pub mod api_keys;
pub mod audit_logs;
pub mod auth;
pub mod available_offerings;
pub mod budget_alerts;
pub mod budget_limits;
pub mod budgets;
pub mod catalog;
pub mod catalog_admin;
pub mod catalog_sync;
pub mod deployments;
pub mod disputes;
pub mod events;
pub mod finops;
pub mod health;
pub mod host_actions;
pub mod hosts;
pub mod huggingface_token;
pub mod instance_logs;
pub mod instances;
pub mod invitations;
pub mod members;
pub mod metrics;
pub mod offerings;
pub mod organizations;
pub mod password_reset;
pub mod provider_credentials;
pub mod quotas;
pub mod reconciliation;
pub mod request_log;
pub mod runtime;
pub mod service_actions;
pub mod service_policy;
pub mod services;
pub mod sessions;
pub mod shares;
pub mod statement_months;
pub mod statements;
pub mod system_prompts;
pub mod usage;
pub mod users;
pub mod worker_settings;
pub mod workers;

use utoipa_axum::router::OpenApiRouter;

/// Tells "absent" from "null" in a PATCH body, for fields that can be
/// cleared: `#[serde(default, with = "double_option")]` on an
/// `Option<Option<T>>` gives `None` (absent: unchanged), `Some(None)` (null:
/// clear) and `Some(Some(v))` (set).
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

use crate::state::AppState;

/// Offset paging of list routes: `limit` 1 to 1000 (default 500),
/// `offset` up to 1000000. Without it a list had no bound.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Rows per page: 1 to 1000, default 500.
    limit: Option<u16>,
    /// Rows to skip: 0 to 1000000, default 0.
    offset: Option<u32>,
}

impl Paging {
    /// The page size, within bounds.
    pub fn limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(500).clamp(1, 1000))
    }

    /// The rows skipped, within bounds.
    pub fn offset(&self) -> i64 {
        i64::from(self.offset.unwrap_or(0).min(1_000_000))
    }
}

/// Every control-plane route, documented (the `/v1` data plane's are in
/// [`crate::proxy::router`]).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(auth::router())
        .merge(password_reset::router())
        .merge(sessions::router())
        .merge(users::router())
        .merge(quotas::router())
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
        .merge(services::router())
        .merge(hosts::router())
        .merge(host_actions::router())
        .merge(service_actions::router())
        .merge(instance_logs::router())
        .merge(events::router())
        .merge(api_keys::router())
        .merge(system_prompts::router())
        .merge(provider_credentials::router())
        .merge(huggingface_token::router())
        .merge(reconciliation::router())
        .merge(worker_settings::router())
        .merge(usage::router())
        .merge(request_log::router())
        .merge(runtime::router())
        .merge(finops::router())
        .merge(statements::router())
        .merge(statement_months::router())
        .merge(disputes::router())
        .merge(offerings::router())
        .merge(shares::router())
        .merge(available_offerings::router())
        .merge(budgets::router())
        .merge(budget_alerts::router())
}
