//! The OpenAPI document as a whole: every operation has its own id (code
//! generators name functions after them), and the copy the dashboard
//! generates its types from (`inventiv-frontend/openapi.json`) is this
//! document.

use std::collections::BTreeMap;

use serde_json::Value;

fn document() -> Value {
    let (_, doc) = inventiv_api::startup::api();
    serde_json::to_value(doc).unwrap()
}

#[test]
fn every_operation_id_is_unique() {
    let doc = document();
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            ids.entry(id.to_owned())
                .or_default()
                .push(format!("{method} {path}"));
        }
    }
    let duplicated: Vec<_> = ids.iter().filter(|(_, ops)| ops.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "operationIds given to several operations (set `operation_id` in #[utoipa::path]): {duplicated:?}"
    );
}

#[test]
fn the_dashboards_copy_is_the_served_document() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../inventiv-frontend/openapi.json"
    );
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(
        committed == document(),
        "inventiv-frontend/openapi.json differs from the API's document: \
         run `npm run gen:api` in inventiv-frontend and commit openapi.json and src/api/schema.ts"
    );
}
