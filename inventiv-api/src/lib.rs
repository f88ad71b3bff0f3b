//! The Inventiv control-plane API: identity, organizations, roles and
//! invitations, served by axum over Postgres and Redis.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod browser;
pub mod budget_levels;
pub mod budgets;
pub mod client_ip;
pub mod config;
pub mod drain;
pub mod drift;
pub mod error;
pub mod events;
pub mod extract;
pub mod finops;
pub mod front;
pub mod frontend;
pub mod heartbeat_limit;
pub mod heartbeats;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod openapi_errors;
pub mod outbox;
pub mod placement;
pub mod proxy;
pub mod ratelimit;
pub mod replicas;
pub mod request_id;
pub mod rollout;
pub mod routes;
pub mod services;
pub mod startup;
pub mod state;
pub mod system_prompts;
