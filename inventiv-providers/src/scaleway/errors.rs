//! How a Scaleway error answer becomes a [`ProviderError`]: from the JSON
//! body first (`type`, `message` and the details each type carries, as
//! recorded and as the official SDK reads them), from the HTTP status when
//! the body says nothing (a 429 comes with an empty body). The text keeps
//! Scaleway's own message: it is shown to users.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ProviderError;

/// The error body of every Scaleway API (all fields optional: each type
/// carries its own).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    /// `invalid_arguments`: `{argument_name, reason, help_message}`;
    /// `quotas_exceeded`: `{resource, quota, current}`.
    #[serde(default)]
    pub details: Vec<Value>,
    /// The Instance API's `invalid_request_error`: field → messages.
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub help_message: Option<String>,
}

/// The error for an answer with `status` (not 2xx) and `body`.
pub fn classify(status: u16, body: &[u8]) -> ProviderError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let text = parsed
        .as_ref()
        .map(describe)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("HTTP {status}"));
    if status == 429 {
        return ProviderError::Transient(format!("rate limited by Scaleway: {text}"));
    }
    if status >= 500 {
        return ProviderError::Transient(text);
    }
    let kind = parsed
        .as_ref()
        .and_then(|b| b.kind.as_deref())
        .unwrap_or_default();
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.as_deref())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if kind == "quotas_exceeded"
        || message.contains("quota exceeded")
        || message.contains("quotas exceeded")
    {
        return ProviderError::Quota(text);
    }
    if kind == "out_of_stock" || message.contains("out of stock") {
        return ProviderError::OutOfStock(text);
    }
    match kind {
        "denied_authentication" | "permissions_denied" | "authentication_error" => {
            ProviderError::Unauthorized(text)
        }
        "not_found" | "unknown_resource" => ProviderError::NotFound(text),
        "transient_state" => ProviderError::Transient(text),
        "invalid_arguments" | "invalid_request_error" => ProviderError::InvalidRequest(text),
        "locked" | "resource_locked" | "conflict" | "precondition_failed" => {
            ProviderError::Refused(text)
        }
        _ => match status {
            401 | 403 => ProviderError::Unauthorized(text),
            404 => ProviderError::NotFound(text),
            409 | 412 | 423 => ProviderError::Refused(text),
            _ => ProviderError::InvalidRequest(text),
        },
    }
}

/// Scaleway's message with the details its type carries.
fn describe(body: &ErrorBody) -> String {
    let mut text = body.message.clone().unwrap_or_default();
    let mut extra: Vec<String> = Vec::new();
    if let Some(resource) = &body.resource {
        let id = body.resource_id.as_deref().unwrap_or_default();
        extra.push(format!("{resource} {id}").trim_end().to_owned());
    }
    for d in &body.details {
        let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
        if let Some(arg) = d.get("argument_name").and_then(Value::as_str) {
            let help = field("help_message");
            extra.push(format!(
                "{arg}: {}",
                if help.is_empty() {
                    field("reason")
                } else {
                    help
                }
            ));
        } else if let Some(resource) = d.get("resource").and_then(Value::as_str) {
            let count = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
            extra.push(format!(
                "{resource}: {} of {} used",
                count("current"),
                count("quota")
            ));
        }
    }
    for (field, messages) in &body.fields {
        extra.push(format!("{field}: {}", messages.join(", ")));
    }
    if let Some(help) = &body.help_message {
        extra.push(help.clone());
    }
    if !extra.is_empty() {
        if text.is_empty() {
            text = extra.join("; ");
        } else {
            text = format!("{text} ({})", extra.join("; "));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_classify_before_statuses() {
        let table: Vec<(u16, &str, &str, &str)> = vec![
            (
                403,
                r#"{"type":"quotas_exceeded","message":"Quotas exceeded: gpu","details":[{"resource":"instances_l4","quota":1,"current":1}]}"#,
                "PROVIDER_QUOTA_EXCEEDED",
                "Quotas exceeded: gpu (instances_l4: 1 of 1 used)",
            ),
            (
                403,
                r#"{"type": "invalid_request_error", "message": "Quota exceeded for this resource.", "resource": "compute_snapshots_type_b_ssd_available"}"#,
                "PROVIDER_QUOTA_EXCEEDED",
                "Quota exceeded for this resource. (compute_snapshots_type_b_ssd_available)",
            ),
            (
                400,
                r#"{"type":"out_of_stock","message":"L4-1-24G is out of stock","resource":"L4-1-24G"}"#,
                "PROVIDER_OUT_OF_STOCK",
                "L4-1-24G is out of stock (L4-1-24G)",
            ),
            (
                401,
                r#"{"type":"denied_authentication","message":"authentication is denied"}"#,
                "PROVIDER_CREDENTIALS_REJECTED",
                "authentication is denied",
            ),
            (
                404,
                r#"{"type": "not_found", "message": "resource is not found", "resource": "instance_server", "resource_id": "abc"}"#,
                "PROVIDER_NOT_FOUND",
                "resource is not found (instance_server abc)",
            ),
            (
                400,
                r#"{"fields":{"volumes.5.id":["92 is not a valid UUID."]},"message":"Validation Error","type":"invalid_request_error"}"#,
                "PROVIDER_INVALID_REQUEST",
                "Validation Error (volumes.5.id: 92 is not a valid UUID.)",
            ),
            (
                409,
                r#"{"message": "Group is in use. You cannot delete it.", "type": "conflict"}"#,
                "PROVIDER_REFUSED",
                "Group is in use. You cannot delete it.",
            ),
            (
                429,
                "",
                "PROVIDER_UNAVAILABLE",
                "rate limited by Scaleway: HTTP 429",
            ),
            (503, "<html>", "PROVIDER_UNAVAILABLE", "HTTP 503"),
            (403, "", "PROVIDER_CREDENTIALS_REJECTED", "HTTP 403"),
        ];
        for (status, body, code, text) in table {
            let e = classify(status, body.as_bytes());
            assert_eq!(e.code(), code, "{body}");
            assert!(e.to_string().ends_with(text), "{e} / {text}");
        }
    }
}
