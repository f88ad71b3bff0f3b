//! The API's integration tests, one test binary: the real application on
//! `127.0.0.1:0` against a fresh database and its own Redis key prefix per
//! test (see `support`), talked to over HTTP; the replica processes, mock
//! engines and SMTP sink some tests need are theirs alone. One module per
//! subject.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod support;

mod api_keys;
mod auth_flows;
mod authz_matrix;
mod bad_input;
mod basics;
mod budgets;
mod cached_tokens;
mod catalog;
mod catalog_sync;
mod chargeback;
mod deployments;
mod events;
mod fair_sharing;
mod finops_cost;
mod heartbeat_limit;
mod held;
mod hosts;
mod huggingface_token;
mod instance_logs;
mod instance_volumes;
mod invitations;
mod leave_share;
mod metering_crash;
mod metering_journal;
mod month_costs;
mod openai_sdk;
mod openapi_document;
mod openapi_errors;
mod partial_answers;
mod prefix_routing;
mod provider_credentials;
mod proxy;
mod relay;
mod request_log;
mod rollout;
mod runtime;
mod secrets;
mod security_identity;
mod service_migration;
mod services;
mod sharing;
mod signals;
mod statement_close;
mod status_enums;
mod system_prompts;
mod tenant_worker;
mod usage_drift;
mod worker_settings;
mod workers;
