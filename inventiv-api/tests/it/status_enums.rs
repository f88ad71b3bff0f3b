//! Statuses have one list each: the Rust enum. The CHECK constraint of every
//! status column lists exactly its values, so does the SQL function of the
//! computed invitation status, and the OpenAPI document describes every
//! status the API answers with as that enum.

use inventiv_api::drift::DriftStatus;
use inventiv_common::{
    ActionStatus, HostStatus, InstanceStatus, InvitationStatus, KeyPriority, ServiceEventKind,
    ServiceState, ShareStatus, VolumeStatus, WorkerStatus,
};
use serde_json::Value;
use sqlx::Connection;

fn names<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<String> {
    let mut v: Vec<String> = all.iter().map(|&s| as_str(s).to_owned()).collect();
    v.sort();
    v
}

/// The quoted literals of a CHECK constraint's definition, sorted.
fn literals(definition: &str) -> Vec<String> {
    let mut out: Vec<String> = definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn every_status_column_checks_exactly_the_enum_values() {
    let db = inventiv_testkit::db::fresh_database().await;
    let mut conn = sqlx::PgConnection::connect(&inventiv_testkit::db::url_for(&db))
        .await
        .unwrap();
    let instance = names(&InstanceStatus::ALL, InstanceStatus::as_str);
    let mut history_from = instance.clone();
    history_from.push("new".to_owned());
    history_from.sort();
    let host = names(&HostStatus::ALL, HostStatus::as_str);
    // (table, column, the enum's values): the table is the spec.
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        ("instances", "status", instance.clone()),
        (
            "instances",
            "worker_status",
            names(&WorkerStatus::ALL, WorkerStatus::as_str),
        ),
        ("instance_state_history", "from_status", history_from),
        ("instance_state_history", "to_status", instance),
        (
            "action_logs",
            "status",
            names(&ActionStatus::ALL, ActionStatus::as_str),
        ),
        (
            "instance_volumes",
            "status",
            names(&VolumeStatus::ALL, VolumeStatus::as_str),
        ),
        (
            "offering_shares",
            "status",
            names(&ShareStatus::ALL, ShareStatus::as_str),
        ),
        (
            "api_keys",
            "priority",
            names(&KeyPriority::ALL, KeyPriority::as_str),
        ),
        (
            "services",
            "state",
            names(&ServiceState::ALL, ServiceState::as_str),
        ),
        (
            "service_events",
            "kind",
            names(&ServiceEventKind::ALL, ServiceEventKind::as_str),
        ),
        (
            "instance_usage_reconciliations",
            "status",
            names(&DriftStatus::ALL, DriftStatus::as_str),
        ),
        ("hosts", "status", host.clone()),
        ("host_state_history", "from_status", host.clone()),
        ("host_state_history", "to_status", host),
    ];
    for (table, column, expected) in &cases {
        let defs: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(c.oid)
               FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
              WHERE c.contype = 'c' AND c.conrelid = $1::regclass AND a.attname = $2
                AND array_length(c.conkey, 1) = 1",
        )
        .bind(table)
        .bind(column)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(defs.len(), 1, "{table}.{column}: one CHECK, found {defs:?}");
        assert_eq!(
            &literals(&defs[0]),
            expected,
            "{table}.{column}: {}",
            defs[0]
        );
    }
    // Every text column named like a status is in the table above.
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND data_type = 'text' AND column_name LIKE '%status'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (table, column) in columns {
        assert!(
            cases.iter().any(|(t, c, _)| *t == table && *c == column),
            "{table}.{column} is a status column without a checked enum"
        );
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn the_invitation_status_function_answers_exactly_the_enum_values() {
    let db = inventiv_testkit::db::fresh_database().await;
    let mut conn = sqlx::PgConnection::connect(&inventiv_testkit::db::url_for(&db))
        .await
        .unwrap();
    let body: String =
        sqlx::query_scalar("SELECT prosrc FROM pg_proc WHERE proname = 'invitation_status'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        literals(&body),
        names(&InvitationStatus::ALL, InvitationStatus::as_str),
        "invitation_status: {body}"
    );
    conn.close().await.unwrap();
}

/// The enum values a schema property lists, following `$ref`s, `allOf`
/// and `oneOf` (nullable fields).
fn enum_of(doc: &Value, schema: &Value) -> Option<Vec<String>> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/")?;
        return enum_of(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(values) = schema["enum"].as_array() {
        let mut v: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        v.sort();
        return Some(v);
    }
    ["oneOf", "allOf", "anyOf"]
        .iter()
        .filter_map(|k| schema[*k].as_array())
        .flatten()
        .find_map(|s| enum_of(doc, s))
}

#[test]
fn the_openapi_document_lists_every_status_as_its_enum() {
    let (_, doc) = inventiv_api::startup::api();
    let doc = serde_json::to_value(doc).unwrap();
    let instance = names(&InstanceStatus::ALL, InstanceStatus::as_str);
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        ("Instance", "status", instance.clone()),
        (
            "Instance",
            "worker_status",
            names(&WorkerStatus::ALL, WorkerStatus::as_str),
        ),
        ("HistoryEntry", "from_status", instance.clone()),
        ("HistoryEntry", "to_status", instance.clone()),
        ("WorkerAck", "instance_status", instance),
        (
            "Service",
            "state",
            names(&ServiceState::ALL, ServiceState::as_str),
        ),
        (
            "ServiceEvent",
            "kind",
            names(&ServiceEventKind::ALL, ServiceEventKind::as_str),
        ),
        (
            "ActionLogEntry",
            "status",
            names(&ActionStatus::ALL, ActionStatus::as_str),
        ),
        (
            "Volume",
            "status",
            names(&VolumeStatus::ALL, VolumeStatus::as_str),
        ),
        (
            "Share",
            "status",
            names(&ShareStatus::ALL, ShareStatus::as_str),
        ),
        (
            "Available",
            "share_status",
            names(&ShareStatus::ALL, ShareStatus::as_str),
        ),
        (
            "Invitation",
            "status",
            names(&InvitationStatus::ALL, InvitationStatus::as_str),
        ),
        (
            "InvitationPreview",
            "status",
            names(&InvitationStatus::ALL, InvitationStatus::as_str),
        ),
        (
            "Host",
            "status",
            names(&HostStatus::ALL, HostStatus::as_str),
        ),
        (
            "HostHistoryEntry",
            "from_status",
            names(&HostStatus::ALL, HostStatus::as_str),
        ),
        (
            "HostHistoryEntry",
            "to_status",
            names(&HostStatus::ALL, HostStatus::as_str),
        ),
        (
            "ApiKey",
            "status",
            vec!["active", "expired", "inactive", "revoked"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
    ];
    for (schema, field, expected) in cases {
        let property = &doc["components"]["schemas"][schema]["properties"][field];
        assert!(property.is_object(), "{schema}.{field} is not documented");
        assert_eq!(
            enum_of(&doc, property).as_ref(),
            Some(&expected),
            "{schema}.{field}: {property}"
        );
    }
    // Query options are enums too: an unknown value is refused by the extractor.
    let params = doc["paths"]["/finops/cost/series"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let bucket = params.iter().find(|p| p["name"] == "bucket").unwrap();
    assert_eq!(
        enum_of(&doc, &bucket["schema"]),
        Some(vec![
            "day".to_owned(),
            "hour".to_owned(),
            "minute".to_owned()
        ])
    );
}
