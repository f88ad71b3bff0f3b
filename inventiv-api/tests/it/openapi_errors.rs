//! The error answers of the OpenAPI document: every operation lists the
//! 400/401/403/404/413/415 it can give (derived from its body, parameters and
//! security), each with the error body the API really sends; what a route
//! declares itself is kept.

use serde_json::Value;

fn document() -> Value {
    let (_, doc) = inventiv_api::startup::api();
    serde_json::to_value(doc).unwrap()
}

/// The statuses an operation documents.
fn statuses(doc: &Value, method: &str, path: &str) -> Vec<String> {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The error schema a documented answer points to, through its `$ref`s.
fn error_schema(doc: &Value, method: &str, path: &str, status: &str) -> String {
    let mut response = &doc["paths"][path][method]["responses"][status];
    if let Some(r) = response["$ref"].as_str() {
        let name = r.strip_prefix("#/components/responses/").unwrap();
        response = &doc["components"]["responses"][name];
    }
    let schema = response["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status}: no schema in {response}"));
    let name = schema.strip_prefix("#/components/schemas/").unwrap();
    assert!(
        doc["components"]["schemas"][name].is_object(),
        "{name} is not a schema"
    );
    name.to_owned()
}

#[test]
fn answers_follow_body_parameters_and_security() {
    let doc = document();
    // A body and a session: malformed, unauthenticated, forbidden, too large,
    // not JSON; no path parameter, so no 404.
    let s = statuses(&doc, "post", "/api-keys");
    for status in ["201", "400", "401", "403", "413", "415"] {
        assert!(
            s.contains(&status.to_owned()),
            "POST /api-keys lacks {status}: {s:?}"
        );
    }
    assert!(!s.contains(&"404".to_owned()), "POST /api-keys: {s:?}");
    assert_eq!(error_schema(&doc, "post", "/api-keys", "415"), "ErrorBody");
    // A path parameter: unparsable (400) or not the caller's (404).
    let s = statuses(&doc, "delete", "/api-keys/{api_key_id}");
    for status in ["400", "401", "403", "404"] {
        assert!(
            s.contains(&status.to_owned()),
            "DELETE /api-keys/{{id}} lacks {status}: {s:?}"
        );
    }
    assert!(!s.contains(&"415".to_owned()), "no body, no 415: {s:?}");
    // Public and without input: nothing to refuse.
    assert_eq!(statuses(&doc, "get", "/healthz"), ["200"]);
    // A worker token is not a session: no role to forbid with.
    let s = statuses(&doc, "post", "/internal/workers/heartbeat");
    assert!(
        s.contains(&"401".to_owned()) && s.contains(&"413".to_owned()),
        "{s:?}"
    );
}

#[test]
fn v1_answers_in_openai_shape_and_declared_answers_are_kept() {
    let doc = document();
    let s = statuses(&doc, "post", "/v1/embeddings");
    for status in ["400", "401", "413", "415"] {
        assert!(
            s.contains(&status.to_owned()),
            "POST /v1/embeddings lacks {status}: {s:?}"
        );
    }
    assert_eq!(
        error_schema(&doc, "post", "/v1/embeddings", "415"),
        "OpenAiErrorBody"
    );
    // The route's own 401 (its own words) is not replaced.
    let declared = &doc["paths"]["/v1/chat/completions"]["post"]["responses"]["401"];
    assert_eq!(declared["description"], "invalid key", "{declared}");
    // Every forwarding route answers what forwarding can (POST /v1/completions
    // answered an undocumented 404 for an unknown model), and its body is
    // documented with the `model` the proxy routes on.
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        let s = statuses(&doc, "post", path);
        for status in ["403", "404", "429", "502", "503"] {
            assert!(
                s.contains(&status.to_owned()),
                "POST {path} lacks {status}: {s:?}"
            );
        }
        let body =
            &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/V1Request", "{body}");
    }
    assert_eq!(
        doc["components"]["schemas"]["V1Request"]["required"][0],
        "model"
    );
    // Changing a revoked key is a conflict (schemathesis' stateful run found
    // the answer undocumented).
    let s = statuses(&doc, "patch", "/api-keys/{api_key_id}");
    assert!(s.contains(&"409".to_owned()), "{s:?}");
}

#[test]
fn every_operation_lists_what_its_shape_implies() {
    let doc = document();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |s: &str| responses.contains_key(s);
            let secured = op["security"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
            });
            let path_param = op["parameters"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p["in"] == "path"));
            let body = op.get("requestBody").is_some();
            let what = format!("{} {path}", method.to_uppercase());
            assert!(!secured || has("401"), "{what}: no 401");
            assert!(
                !path_param || (has("400") && has("404")),
                "{what}: no 400/404"
            );
            assert!(
                !body || (has("400") && has("413") && has("415")),
                "{what}: no 400/413/415"
            );
            checked += 1;
        }
    }
    assert!(checked >= 90, "only {checked} operations");
}
