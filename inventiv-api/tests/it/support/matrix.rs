//! The route table shared by the authorization matrix and the bad-input
//! tests: every documented route, a valid body template, and the expected
//! status per caller. To extend: add a row.

use inventiv_common::OrgRole;

use super::fixture::{Org, Person, PASSWORD};

/// Callers in column order.
pub const CALLERS: [Option<OrgRole>; 5] = [
    None,
    Some(OrgRole::Owner),
    Some(OrgRole::Admin),
    Some(OrgRole::Manager),
    Some(OrgRole::User),
];

pub struct Row {
    pub method: &'static str,
    pub path: &'static str,
    pub body: Option<&'static str>,
    /// Expected status per caller (anonymous, owner, admin, manager, user)
    /// when the path names an object of the caller's organization.
    pub own: [u16; 5],
    /// The same when it names organization B's object; None when the route
    /// names no object.
    pub foreign: Option<[u16; 5]>,
}

const fn row(
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    own: [u16; 5],
    foreign: Option<[u16; 5]>,
) -> Row {
    Row {
        method,
        path,
        body,
        own,
        foreign,
    }
}

const ALL_200: [u16; 5] = [200, 200, 200, 200, 200];
const MEMBERS_200: [u16; 5] = [401, 200, 200, 200, 200];
const PLATFORM_ONLY: [u16; 5] = [401, 403, 403, 403, 403];
const HIDDEN: [u16; 5] = [401, 404, 404, 404, 404];

#[rustfmt::skip]
pub const MATRIX: &[Row] = &[
    row("GET", "/healthz", None, ALL_200, None),
    row("GET", "/readyz", None, ALL_200, None),
    row("POST", "/auth/register", Some(r#"{"email":"{fresh_email}","display_name":"New","password":"a-long-password"}"#), [403; 5], None),
    row("POST", "/auth/login", Some(r#"{"email":"{caller_email}","password":"{password}"}"#), ALL_200, None),
    row("POST", "/auth/refresh", Some(r#"{"refresh_token":"{refresh_token}"}"#), [401, 200, 200, 200, 200], None),
    row("POST", "/auth/logout", None, [401, 204, 204, 204, 204], None),
    row("GET", "/auth/me", None, MEMBERS_200, None),
    row("PUT", "/auth/me", Some(r#"{"display_name":"Renamed"}"#), MEMBERS_200, None),
    row("PUT", "/auth/me/password", Some(r#"{"current_password":"{password}","new_password":"another-long-password"}"#), [401, 204, 204, 204, 204], None),
    row("POST", "/auth/password-reset/request", Some(r#"{"email":"{caller_email}"}"#), [202; 5], None),
    row("POST", "/auth/password-reset/reset", Some(r#"{"token":"{bogus_token}","new_password":"another-long-password"}"#), [400; 5], None),
    row("GET", "/auth/sessions", None, MEMBERS_200, None),
    row("POST", "/auth/sessions/{session_id}/revoke", None, [401, 204, 204, 204, 204], Some(HIDDEN)),
    row("GET", "/users", None, PLATFORM_ONLY, None),
    row("POST", "/users", Some(r#"{"email":"{fresh_email}","display_name":"X","password":"a-long-password"}"#), PLATFORM_ONLY, None),
    row("PATCH", "/users/{user_id}", Some(r#"{"display_name":"X"}"#), PLATFORM_ONLY, None),
    row("GET", "/admin/organizations/{organization_id}/quotas", None, PLATFORM_ONLY, None),
    row("PUT", "/admin/organizations/{organization_id}/quotas", Some(r#"{"max_instances":5,"max_gpus":8}"#), PLATFORM_ONLY, None),
    row("POST", "/organizations", Some(r#"{"name":"New team"}"#), [401, 201, 201, 201, 201], None),
    row("GET", "/organizations", None, MEMBERS_200, None),
    row("GET", "/organizations/current", None, MEMBERS_200, None),
    row("PUT", "/organizations/current", Some(r#"{"organization_id":"{organization_id}"}"#), MEMBERS_200, Some(HIDDEN)),
    row("PATCH", "/organizations/current", Some(r##"{"name":"Renamed","sidebar_color":"#112233"}"##), [401, 200, 200, 403, 403], None),
    row("DELETE", "/organizations/{organization_id}", None, [401, 204, 403, 403, 403], Some(HIDDEN)),
    row("GET", "/organizations/current/members", None, MEMBERS_200, None),
    row("PUT", "/organizations/current/members/{user_id}", Some(r#"{"role":"user"}"#), [401, 200, 200, 200, 403], Some([401, 404, 404, 404, 403])),
    row("DELETE", "/organizations/current/members/{user_id}", None, [401, 204, 204, 204, 403], Some([401, 404, 404, 404, 403])),
    row("POST", "/organizations/current/leave", None, [401, 409, 204, 204, 204], None),
    row("POST", "/organizations/current/invitations", Some(r#"{"email":"{fresh_email}","role":"user"}"#), [401, 201, 201, 201, 403], None),
    row("GET", "/organizations/current/invitations", None, [401, 200, 200, 200, 403], None),
    row("DELETE", "/organizations/current/invitations/{invitation_id}", None, [401, 204, 204, 204, 403], Some([401, 404, 404, 404, 403])),
    row("GET", "/organizations/invitations/{token}", None, ALL_200, Some(ALL_200)),
    row("POST", "/organizations/invitations/{token}/accept", Some("{}"), [400, 403, 403, 403, 403], Some([400, 403, 403, 403, 403])),
    // Worker routes take a worker token, never a user's session.
    row("POST", "/internal/workers/register", Some(REGISTER), [401; 5], None),
    row("POST", "/internal/workers/heartbeat", Some(HEARTBEAT), [401; 5], None),
    // The catalog: everyone reads; platform admins edit; activations per role.
    row("GET", "/providers", None, MEMBERS_200, None),
    row("GET", "/zones", None, MEMBERS_200, None),
    row("GET", "/instance_types", None, MEMBERS_200, None),
    row("GET", "/instance_types/{instance_type_id}/models", None, MEMBERS_200, None),
    row("PATCH", "/instance_types/{instance_type_id}", Some(r#"{"active":true}"#), PLATFORM_ONLY, None),
    row("GET", "/models", None, MEMBERS_200, None),
    row("POST", "/models", Some(r#"{"hf_id":"org/{fresh_email}","display_name":"M","required_vram_gb":4,"context_length":4096,"recommended_data_volume_gb":20}"#), PLATFORM_ONLY, None),
    row("PATCH", "/models/{model_id}", Some(r#"{"display_name":"Renamed","gated":true}"#), PLATFORM_ONLY, None),
    row("PUT", "/models/{model_id}/system-prompt", Some(r#"{"content":"Be brief."}"#), PLATFORM_ONLY, None),
    row("DELETE", "/models/{model_id}/system-prompt", None, PLATFORM_ONLY, None),
    row("GET", "/models/{model_id}/recommended-data-volume", None, MEMBERS_200, None),
    row("PUT", "/organizations/current/activations/{kind}/{item_id}", Some(r#"{"technical":true}"#), [401, 200, 200, 403, 403], None),
    // Instances: members read; owners and admins act; B's instance is hidden.
    // (Nothing is activated in the fixtures, so a deployment stops at NOT_ACTIVATED.)
    row("POST", "/deployments", Some(r#"{"provider":"mock","zone":"mock-zone-1","instance_type":"mock-1gpu-24g","model_id":"8a1f0000-0000-4000-8000-000000000001"}"#), [401, 409, 409, 403, 403], None),
    row("GET", "/instances", None, MEMBERS_200, None),
    row("GET", "/instances/{instance_id}", None, MEMBERS_200, Some(HIDDEN)),
    row("GET", "/instances/{instance_id}/actions", None, MEMBERS_200, Some(HIDDEN)),
    row("GET", "/instances/{instance_id}/history", None, MEMBERS_200, Some(HIDDEN)),
    row("GET", "/instances/{instance_id}/volumes", None, MEMBERS_200, Some(HIDDEN)),
    // The worker's log: members read it; the fixture's instance has no worker yet (409).
    row("GET", "/instances/{instance_id}/logs", None, [401, 409, 409, 409, 409], Some(HIDDEN)),
    row("DELETE", "/instances/{instance_id}", None, [401, 202, 202, 403, 403], Some([401, 404, 404, 403, 403])),
    row("POST", "/instances/{instance_id}/reinstall", None, [401, 202, 202, 403, 403], Some([401, 404, 404, 403, 403])),
    row("PUT", "/instances/{instance_id}/archive", None, [401, 409, 409, 403, 403], Some([401, 404, 404, 403, 403])),
    row("GET", "/events/stream", None, MEMBERS_200, None),
    // Services: members read; owners and admins act; B's service is hidden.
    // (Nothing is activated in the fixtures, so a creation stops at NOT_ACTIVATED;
    // the fixture's service is active with one replica, so resuming changes nothing.)
    row("POST", "/services", Some(SERVICE), [401, 409, 409, 403, 403], None),
    row("GET", "/services", None, MEMBERS_200, None),
    row("GET", "/services/{service_id}", None, MEMBERS_200, Some(HIDDEN)),
    row("PATCH", "/services/{service_id}", Some(r#"{"name":"Renamed","max_replicas":3,"target_outstanding":4.5,"eur_cap":"100"}"#), [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("POST", "/services/{service_id}/pause", None, [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("POST", "/services/{service_id}/resume", None, [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("POST", "/services/{service_id}/rollout", Some(r#"{"reason":"vLLM 0.7"}"#), [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("DELETE", "/services/{service_id}", None, [401, 202, 202, 403, 403], Some([401, 404, 404, 403, 403])),
    row("GET", "/services/{service_id}/events", None, MEMBERS_200, Some(HIDDEN)),
    // API keys: everyone makes their own; owners and admins manage all; a
    // member's key is invisible to other non-admin members (404).
    row("POST", "/api-keys", Some(r#"{"name":"k","priority":"batch"}"#), [401, 201, 201, 201, 201], None),
    row("GET", "/api-keys", None, MEMBERS_200, None),
    row("PATCH", "/api-keys/{api_key_id}", Some(r#"{"name":"renamed"}"#), [401, 200, 200, 403, 404], Some(HIDDEN)),
    row("DELETE", "/api-keys/{api_key_id}", None, [401, 204, 204, 403, 404], Some(HIDDEN)),
    // System prompts: members read those that concern them; owners and
    // admins set the organization's; a key's as its other changes.
    row("GET", "/organizations/current/system-prompts", None, MEMBERS_200, None),
    row("PUT", "/organizations/current/system-prompt", Some(r#"{"content":"Be brief.","mode":"always"}"#), [401, 200, 200, 403, 403], None),
    row("DELETE", "/organizations/current/system-prompt", None, [401, 204, 204, 403, 403], None),
    row("PUT", "/api-keys/{api_key_id}/system-prompt", Some(r#"{"content":"Be brief."}"#), [401, 200, 200, 403, 404], Some(HIDDEN)),
    row("DELETE", "/api-keys/{api_key_id}/system-prompt", None, [401, 204, 204, 403, 404], Some(HIDDEN)),
    // The OpenAI-compatible data plane also takes a session (the playground).
    row("GET", "/v1/models", None, MEMBERS_200, None),
    row("POST", "/v1/chat/completions", Some(r#"{"model":"unknown/model","messages":[{"role":"user","content":"hi"}]}"#), [401, 404, 404, 404, 404], None),
    row("POST", "/v1/completions", Some(r#"{"model":"unknown/model","prompt":"hi"}"#), [401, 404, 404, 404, 404], None),
    row("POST", "/v1/embeddings", Some(r#"{"model":"unknown/model","input":"hi"}"#), [401, 404, 404, 404, 404], None),
    row("GET", "/usage", None, MEMBERS_200, None),
    row("GET", "/usage/requests", None, MEMBERS_200, None),
    row("GET", "/usage/latency", None, MEMBERS_200, None),
    row("GET", "/runtime/models", None, MEMBERS_200, None),
    row("GET", "/instances/{instance_id}/metrics", None, MEMBERS_200, Some(HIDDEN)),
    row("GET", "/organizations/current/audit-logs", None, [401, 200, 200, 403, 403], None),
    // FinOps: owners and managers.
    row("GET", "/finops/cost/current", None, FINOPS, None),
    row("GET", "/finops/cost/series", None, FINOPS, None),
    row("GET", "/finops/usage/series", None, FINOPS, None),
    row("GET", "/finops/statements", None, FINOPS, None),
    row("GET", "/finops/statements/{month}", None, FINOPS, None),
    // Closing a month is the owner's (the statement becomes a snapshot).
    row("POST", "/finops/statements/{month}/close", Some(r#"{"note":"January books"}"#), [401, 201, 403, 403, 403], None),
    row("GET", "/finops/cost-recovery", None, FINOPS, None),
    row("GET", "/finops/disputes", None, FINOPS, None),
    // Offerings: admins publish (the model must be deployed), managers price
    // and share; B's offering is hidden. Accepting is the consumer manager's.
    row("POST", "/organizations/current/offerings", Some(r#"{"model_code":"other/model","visibility":"public"}"#), [401, 409, 409, 403, 403], None),
    row("GET", "/organizations/current/offerings", None, [401, 200, 200, 200, 403], None),
    row("PATCH", "/organizations/current/offerings/{offering_id}", Some(r#"{"visibility":"unlisted"}"#), [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("POST", "/organizations/current/offerings/{offering_id}/prices", Some(r#"{"input_eur_per_1k":"0.001","output_eur_per_1k":"0.003","cached_input_eur_per_1k":"0.0005"}"#), [401, 201, 403, 201, 403], Some([401, 404, 403, 404, 403])),
    row("GET", "/organizations/current/offerings/{offering_id}/shares", None, [401, 200, 200, 200, 403], Some([401, 404, 404, 404, 403])),
    row("PUT", "/organizations/current/offerings/{offering_id}/system-prompt", Some(r#"{"content":"Be brief."}"#), [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("DELETE", "/organizations/current/offerings/{offering_id}/system-prompt", None, [401, 204, 204, 403, 403], Some([401, 404, 404, 403, 403])),
    // The fixture already shares the offering with that organization: 409.
    row("POST", "/organizations/current/offerings/{offering_id}/shares", Some(r#"{"consumer_org_slug":"{consumer_slug}"}"#), [401, 409, 403, 409, 403], Some([401, 404, 403, 404, 403])),
    row("PATCH", "/organizations/current/offerings/{offering_id}/shares/{share_id}", Some(r#"{"status":"paused","weight":50}"#), [401, 200, 403, 200, 403], Some([401, 404, 403, 404, 403])),
    row("GET", "/organizations/current/available-offerings", None, MEMBERS_200, None),
    row("GET", "/organizations/current/offering-preferences", None, MEMBERS_200, None),
    row("PUT", "/organizations/current/offering-preferences", Some(r#"{"hide_public":true,"hide_paid":false}"#), [401, 200, 403, 200, 403], None),
    // Own: an offering another organization shared with A; foreign: B's
    // private offering, not shared with A.
    row("POST", "/organizations/current/available-offerings/{offering_id}/accept", None, [401, 200, 403, 200, 403], Some([401, 404, 403, 404, 403])),
    // Leaving a share offered to A (not accepted in the fixture: nothing to withdraw, 204).
    row("DELETE", "/organizations/current/available-offerings/{offering_id}", None, [401, 204, 403, 204, 403], Some([401, 404, 403, 404, 403])),
    // The consumer manager's cap on a share offered to A (settable before accepting).
    row("PUT", "/organizations/current/available-offerings/{offering_id}/max-price", Some(r#"{"max_input_eur_per_1k":"1","max_output_eur_per_1k":"2"}"#), [401, 200, 403, 200, 403], Some([401, 404, 403, 404, 403])),
    // Provider credentials of the current organization: owners and admins.
    // (None are set in the fixtures, so verifying stops at PROVIDER_NOT_CONFIGURED.)
    row("GET", "/organizations/current/providers/{provider}/credentials", None, [401, 200, 200, 403, 403], None),
    row("PUT", "/organizations/current/providers/{provider}/credentials", Some(SCALEWAY_CREDENTIALS), [401, 200, 200, 403, 403], None),
    row("DELETE", "/organizations/current/providers/{provider}/credentials", None, [401, 204, 204, 403, 403], None),
    row("POST", "/organizations/current/providers/{provider}/credentials/verify", None, [401, 409, 409, 403, 403], None),
    // The Hugging Face token of the current organization: owners and admins.
    row("GET", "/organizations/current/huggingface-token", None, [401, 200, 200, 403, 403], None),
    row("PUT", "/organizations/current/huggingface-token", Some(r#"{"token":"hf_MatrixCellToken0123456789abcdefgh"}"#), [401, 200, 200, 403, 403], None),
    row("DELETE", "/organizations/current/huggingface-token", None, [401, 204, 204, 403, 403], None),
    row("GET", "/providers/{provider}/reconciliation", None, [401, 409, 409, 403, 403], None),
    row("POST", "/providers/{provider}/catalog-sync", None, PLATFORM_ONLY, None),
    row("GET", "/organizations/current/providers/{provider}/worker-settings", None, [401, 200, 200, 403, 403], None),
    row("PUT", "/organizations/current/providers/{provider}/worker-settings", Some(r#"{"mode":"multi","engine_port":8100,"agent_port":8190,"startup_timeout_secs":600,"bootstrap_attempts":2}"#), [401, 200, 200, 403, 403], None),
    // Budgets: owners and admins set them, managers read them; B's are hidden.
    row("GET", "/organizations/current/budgets", None, BUDGETS_READ, None),
    row("POST", "/organizations/current/budgets", Some(r#"{"scope":"api_key","api_key_id":"{api_key_id}","monthly_tokens":100000,"thresholds":[50,100],"hard_limit":true}"#), [401, 201, 201, 403, 403], Some([401, 404, 404, 403, 403])),
    row("GET", "/organizations/current/budgets/{budget_id}", None, BUDGETS_READ, Some([401, 404, 404, 404, 403])),
    row("PUT", "/organizations/current/budgets/{budget_id}", Some(r#"{"monthly_eur":"25.50","monthly_gpu_hours":"100","thresholds":[80],"hard_limit":false,"stop_running":false}"#), [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("DELETE", "/organizations/current/budgets/{budget_id}", None, [401, 204, 204, 403, 403], Some([401, 404, 404, 403, 403])),
    row("GET", "/organizations/current/budget-alerts", None, BUDGETS_READ, None),
    // Hosts (the organization's own GPU servers): members read; owners and
    // admins act; B's host is hidden. The fixture's host answers nowhere, so
    // verifying it records it unreachable (200); it is not draining (409).
    row("GET", "/organizations/current/ssh-key", None, [401, 200, 200, 403, 403], None),
    row("POST", "/hosts", Some(HOST), [401, 201, 201, 403, 403], None),
    row("GET", "/hosts", None, MEMBERS_200, None),
    row("GET", "/hosts/{host_id}", None, MEMBERS_200, Some(HIDDEN)),
    row("GET", "/hosts/{host_id}/history", None, MEMBERS_200, Some(HIDDEN)),
    row("POST", "/hosts/{host_id}/verify", None, [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("POST", "/hosts/{host_id}/drain", None, [401, 200, 200, 403, 403], Some([401, 404, 404, 403, 403])),
    row("POST", "/hosts/{host_id}/undrain", None, [401, 409, 409, 403, 403], Some([401, 404, 404, 403, 403])),
    row("DELETE", "/hosts/{host_id}", None, [401, 204, 204, 403, 403], Some([401, 404, 404, 403, 403])),
];

const HOST: &str = r#"{"address":"10.1.2.3","ssh_port":2222,"ssh_user":"ubuntu","label":"gpu-1","pool":"paris-rack-2","gpu_count":2,"gpu_model":"NVIDIA L4","gpu_vram_mib":23034,"hourly_cost_eur":"0.35"}"#;

const BUDGETS_READ: [u16; 5] = [401, 200, 200, 200, 403];
const FINOPS: [u16; 5] = [401, 200, 403, 200, 403];

const SERVICE: &str = r#"{"model_id":"8a1f0000-0000-4000-8000-000000000001","placements":[{"provider":"mock","zone":"mock-zone-1","instance_type":"mock-1gpu-24g"}],"min_replicas":1,"max_replicas":3,"target_outstanding":4,"target_ttft_p95_ms":2000,"idle_window_s":600,"scale_down_cooldown_s":120,"gpu_hours_cap":"100","eur_cap":"250.50"}"#;

const SCALEWAY_CREDENTIALS: &str = r#"{"access_key":"SCWABCDEFGHIJ1234567","secret_key":"0b7e4a52-1c33-4c61-9d7e-3b0f5e6a7c11","project_id":"6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f","organization_id":"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d","default_zone":"fr-par-2"}"#;

const REGISTER: &str = r#"{"schema_version":2,"instance_id":"{instance_id}","boot_id":"b","agent":{"version":"0.1.0","bundle_sha256":"0000000000000000000000000000000000000000000000000000000000000000"},"model_id":"mock/model","mode":"mono","agent_port":8090,"engine_port":8000}"#;
const HEARTBEAT: &str = r#"{"schema_version":2,"instance_id":"{instance_id}","boot_id":"b","agent":{"version":"0.1.0","bundle_sha256":"0000000000000000000000000000000000000000000000000000000000000000"},"status":"ready","model_id":"mock/model","engine":{"ready":true,"requests_running":0,"requests_waiting":0,"restarts":0},"system":{"cpu_pct":1.0,"load1":0.1,"memory_used_mib":1.0,"memory_total_mib":2.0},"sent_at":"2026-11-23T00:00:00Z"}"#;

/// The token a caller presents on a route: worker routes take the
/// organization's worker token, every other route the member's session.
pub fn token_for<'a>(path: &str, org: &'a Org, caller: &'a Person) -> &'a str {
    if path.starts_with("/internal/workers/") {
        &org.worker_token
    } else {
        &caller.token
    }
}

/// Seeded catalog items (see the catalog migration).
pub const MOCK_ZONE: &str = "8a1d0000-0000-4000-8000-000000000001";
pub const MOCK_INSTANCE_TYPE: &str = "8a1e0000-0000-4000-8000-000000000001";
pub const SMALL_MODEL: &str = "8a1f0000-0000-4000-8000-000000000001";

/// Whether a row's cells need the offering fixtures in each organization.
pub fn needs_offerings(row: &Row) -> bool {
    row.path.contains("offering")
}

/// Whether a row's cells need a host in each organization.
pub fn needs_host(row: &Row) -> bool {
    row.path.contains("{host_id}")
}

/// Whether a row's cells need a service in each organization.
pub fn needs_service(row: &Row) -> bool {
    row.path.starts_with("/services/")
}

/// Whether a row's cells need an instance in each organization.
pub fn needs_instance(row: &Row) -> bool {
    row.path.contains("{instance_id}")
        || row.path.starts_with("/internal/workers/")
        || row.path.starts_with("/instances")
}

/// Fills the placeholders of a path or body for one cell.
pub fn fill(
    template: &str,
    a: &Org,
    b: &Org,
    caller: Option<&Person>,
    extra_session: uuid::Uuid,
    foreign: bool,
) -> String {
    let target = if foreign { b } else { a };
    let session = if foreign {
        b.user.session_id
    } else {
        extra_session
    };
    let someone = caller.unwrap_or(&a.user);
    let available = if foreign {
        b.offering_id
    } else {
        a.incoming_offering_id
    };
    template
        .replace(
            "available-offerings/{offering_id}",
            &format!("available-offerings/{available}"),
        )
        .replace("{user_id}", &target.spare.user_id.to_string())
        .replace("{session_id}", &session.to_string())
        .replace("{invitation_id}", &target.invitation_id.to_string())
        .replace("{instance_id}", &target.instance_id.to_string())
        .replace("{api_key_id}", &target.api_key_id.to_string())
        .replace("{budget_id}", &target.budget_id.to_string())
        .replace("{service_id}", &target.service_id.to_string())
        .replace("{host_id}", &target.host_id.to_string())
        .replace("{offering_id}", &target.offering_id.to_string())
        .replace("{share_id}", &target.share_id.to_string())
        .replace(
            "{incoming_offering_id}",
            &a.incoming_offering_id.to_string(),
        )
        .replace("{consumer_slug}", &a.share_consumer_slug)
        .replace("{instance_type_id}", MOCK_INSTANCE_TYPE)
        .replace("{model_id}", SMALL_MODEL)
        .replace("{kind}", "model")
        .replace("{month}", "2026-01")
        .replace("{provider}", "scaleway")
        .replace("{item_id}", SMALL_MODEL)
        .replace("{organization_id}", &target.id.to_string())
        .replace("{token}", &target.invitation_token)
        .replace(
            "{fresh_email}",
            &format!("new-{}@example.com", uuid::Uuid::new_v4().simple()),
        )
        .replace("{caller_email}", &someone.email)
        .replace("{password}", PASSWORD)
        .replace(
            "{refresh_token}",
            &caller.map_or_else(|| "x".repeat(43), |c| c.refresh_token.clone()),
        )
        .replace("{bogus_token}", &"y".repeat(43))
}
