//! The error answers of the OpenAPI document, added to every operation from
//! what it declares, so that a new route is documented without a word:
//!
//! | the operation has               | it may answer                          |
//! |---------------------------------|----------------------------------------|
//! | a request body                  | 400 (malformed, invalid), 413, 415     |
//! | a path or query parameter       | 400 (`INVALID_PATH`, `INVALID_QUERY`)  |
//! | a path parameter                | 404 (no such object, or another organization's) |
//! | a security requirement          | 401                                    |
//! | a session (`bearer`, `cookie`)  | 403 (the caller's role does not allow it) |
//!
//! 409 and 429 depend on what the handler does: routes declare them in their
//! own `responses(...)`, and an answer a route declares itself is kept as it
//! is. `/v1` answers in OpenAI's error shape, everything else in [`ErrorBody`].
//!
//! [`ErrorBody`]: crate::error::ErrorBody

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::Modify;

/// The security schemes of a session (as opposed to an API key or a worker token).
const SESSION_SCHEMES: [&str; 2] = ["bearer", "cookie"];

/// One documented error answer: its status and what it means, in each shape.
struct Answer {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    openai_description: &'static str,
}

const BAD_REQUEST: Answer = Answer {
    status: "400",
    name: "BadRequest",
    description: "The body is malformed or a value is invalid (`MALFORMED_BODY`, `VALIDATION_ERROR`), or a path or query parameter cannot be parsed (`INVALID_PATH`, `INVALID_QUERY`)",
    openai_description: "The body is not JSON or not a valid request (`invalid_request`)",
};
const UNAUTHENTICATED: Answer = Answer {
    status: "401",
    name: "Unauthenticated",
    description: "No valid credentials, or the session has ended (`UNAUTHENTICATED`)",
    openai_description: "No valid API key or session (`invalid_api_key`)",
};
const FORBIDDEN: Answer = Answer {
    status: "403",
    name: "Forbidden",
    description: "The caller's role in the current organization does not allow this (`FORBIDDEN`)",
    openai_description: "The caller may not use this (`permission_error`)",
};
const NOT_FOUND: Answer = Answer {
    status: "404",
    name: "NotFound",
    description: "No such object for the caller; another organization's object answers the same (`NOT_FOUND`)",
    openai_description: "No such model for the caller (`model_not_found`)",
};
const PAYLOAD_TOO_LARGE: Answer = Answer {
    status: "413",
    name: "PayloadTooLarge",
    description: "The body exceeds `INVENTIV_MAX_BODY_BYTES` (`PAYLOAD_TOO_LARGE`)",
    openai_description: "The body exceeds `INVENTIV_MAX_BODY_BYTES` (`payload_too_large`)",
};
const UNSUPPORTED_MEDIA_TYPE: Answer = Answer {
    status: "415",
    name: "UnsupportedMediaType",
    description: "The body is not sent as `application/json` (`UNSUPPORTED_MEDIA_TYPE`)",
    openai_description: "The body is not sent as `application/json` (`unsupported_media_type`)",
};

/// Adds the error answers derivable from each operation (see the module doc).
pub struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let mut used: BTreeMap<String, Response> = BTreeMap::new();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let openai = path.starts_with("/v1/");
            for operation in operations(item) {
                for answer in applicable(operation) {
                    let Entry::Vacant(slot) = operation
                        .responses
                        .responses
                        .entry(answer.status.to_owned())
                    else {
                        continue;
                    };
                    let (name, response) = component(answer, openai);
                    slot.insert(RefOr::Ref(Ref::from_response_name(name.clone())));
                    used.insert(name, response);
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, response) in used {
            components.responses.insert(name, RefOr::T(response));
        }
    }
}

/// The reusable response (`#/components/responses/<name>`) of an answer.
fn component(answer: &Answer, openai: bool) -> (String, Response) {
    let (name, description, schema) = if openai {
        (
            format!("OpenAi{}", answer.name),
            answer.openai_description,
            "OpenAiErrorBody",
        )
    } else {
        (answer.name.to_owned(), answer.description, "ErrorBody")
    };
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(schema))),
        )
        .build();
    (name, response)
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The answers an operation can give, from its body, parameters and security.
fn applicable(operation: &Operation) -> Vec<&'static Answer> {
    let params = operation.parameters.as_deref().unwrap_or_default();
    let has_path = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_query = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let has_body = operation.request_body.is_some();
    let schemes = security_schemes(operation);
    let mut out = Vec::new();
    if has_body || has_path || has_query {
        out.push(&BAD_REQUEST);
    }
    if !schemes.is_empty() {
        out.push(&UNAUTHENTICATED);
    }
    if schemes
        .iter()
        .any(|s| SESSION_SCHEMES.contains(&s.as_str()))
    {
        out.push(&FORBIDDEN);
    }
    if has_path {
        out.push(&NOT_FOUND);
    }
    if has_body {
        out.push(&PAYLOAD_TOO_LARGE);
        out.push(&UNSUPPORTED_MEDIA_TYPE);
    }
    out
}

/// The names of the security schemes an operation accepts. An empty
/// requirement (`{}`, optional credentials) adds none.
fn security_schemes(operation: &Operation) -> Vec<String> {
    operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| serde_json::to_value(requirement).ok())
        .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .collect()
}
