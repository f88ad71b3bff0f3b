//! The OpenAPI document: metadata and security schemes; paths come from the
//! router itself (`utoipa_axum`), so every served route is documented, and
//! their error answers from [`crate::openapi_errors`].

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::proxy::error::OpenAiErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(title = "Inventiv Agents API", description = "Control plane for LLM inference on cloud GPUs."),
    modifiers(&Security),
    components(schemas(ErrorBody, OpenAiErrorBody)),
    tags(
        (name = "health", description = "Probes"),
        (name = "auth", description = "Login, sessions, profile, password reset"),
        (name = "users", description = "Platform administration of accounts"),
        (name = "organizations", description = "Organizations and the current organization"),
        (name = "members", description = "Members and roles of the current organization"),
        (name = "invitations", description = "Invitations by email"),
        (name = "catalog", description = "Providers, zones, instance types, models and their double activation"),
        (name = "instances", description = "Deployments and instances of the current organization"),
        (name = "services", description = "Services: a model served by replicas that scale between bounds, their policy and timeline"),
        (name = "hosts", description = "The organization's own GPU servers (the ssh provider): registration, verification over SSH, drain, removal"),
        (name = "api-keys", description = "API keys of the current organization"),
        (name = "system-prompts", description = "System prompts the proxy applies to chat completions: per API key, organization and catalog model"),
        (name = "openai", description = "OpenAI-compatible inference endpoints (API key)"),
        (name = "usage", description = "Token usage and instance metrics"),
        (name = "finops", description = "GPU costs, usage series, chargeback statements and cost recovery"),
        (name = "offerings", description = "Models offered to other organizations, their prices and shares"),
        (name = "budgets", description = "Monthly budgets (EUR, tokens, GPU hours), their consumption, forecast and alerts"),
        (name = "workers", description = "Worker agents: registration and heartbeats (worker token)"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "worker",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("per-instance worker token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("an organization API key, inv_..."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::caller::ACCESS_COOKIE,
            ))),
        );
    }
}
