//! The catalog and double activation: seeded providers, zones, types and
//! models; compatibility by VRAM; technical activation by admins, economic
//! by managers, usable only with both; platform admins edit prices exactly.

use crate::support;

use crate::support::matrix::{MOCK_INSTANCE_TYPE, SMALL_MODEL};
use crate::support::{error_code, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn codes(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_seeded_catalog_and_compatibility() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let t = Some(a.user.token.as_str());
    assert_eq!(
        codes(&app.get("/providers", t).await.1, "code"),
        ["mock", "scaleway", "ssh"]
    );
    // The `ssh` provider's zones and types are an organization's own hosts':
    // none without hosts.
    assert!(codes(&app.get("/zones?provider=ssh", t).await.1, "code").is_empty());
    assert!(codes(&app.get("/instance_types?provider=ssh", t).await.1, "code").is_empty());
    let zones = codes(&app.get("/zones?provider=scaleway", t).await.1, "code");
    assert_eq!(zones, ["fr-par-1", "fr-par-2", "nl-ams-1", "pl-waw-2"]);
    let types = app
        .get("/instance_types?provider=scaleway&zone=nl-ams-1", t)
        .await
        .1;
    let names = codes(&types, "code");
    assert!(
        names.contains(&"L4-1-24G".to_owned()) && !names.contains(&"H100-1-80G".to_owned()),
        "{names:?}"
    );
    let h100 = app.get("/instance_types?provider=scaleway", t).await.1;
    let h100 = h100
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["code"] == "H100-2-80G")
        .unwrap()
        .clone();
    assert_eq!(
        (
            h100["total_vram_gb"].as_i64(),
            h100["price_eur_per_hour"].as_str()
        ),
        (Some(160), Some("5.4600"))
    );

    // A 24 GB card fits small models, not the 70B.
    let fits = codes(
        &app.get(&format!("/instance_types/{MOCK_INSTANCE_TYPE}/models"), t)
            .await
            .1,
        "hf_id",
    );
    assert!(
        fits.contains(&"Qwen/Qwen2.5-0.5B-Instruct".to_owned())
            && fits.contains(&"BAAI/bge-m3".to_owned()),
        "{fits:?}"
    );
    assert!(
        !fits.iter().any(|m| m.contains("70B") || m.contains("32B")),
        "{fits:?}"
    );
    let h100_fits = codes(
        &app.get(
            &format!("/instance_types/{}/models", h100["id"].as_str().unwrap()),
            t,
        )
        .await
        .1,
        "hf_id",
    );
    assert!(h100_fits.contains(&"meta-llama/Llama-3.1-70B-Instruct".to_owned()));
    let (status, vol) = app
        .get(&format!("/models/{SMALL_MODEL}/recommended-data-volume"), t)
        .await;
    assert_eq!(
        (status.as_u16(), vol["recommended_data_volume_gb"].as_i64()),
        (200, Some(50))
    );
    let (status, _) = app
        .get(
            &format!("/models/{}/recommended-data-volume", uuid::Uuid::new_v4()),
            t,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn double_activation_needs_both_sides() {
    let app = TestApp::spawn().await;
    let a = app.org("a").await;
    let b = app.org("b").await;
    let path = format!("/organizations/current/activations/model/{SMALL_MODEL}");
    let put = |token: String, body: Value| {
        let app = &app;
        let path = path.clone();
        async move {
            let (s, _, b) = app
                .call(Method::PUT, &path, Some(&token), Some(&body))
                .await;
            (s.as_u16(), b)
        }
    };
    let activation = |token: String| {
        let app = &app;
        async move {
            let models = app.get("/models", Some(&token)).await.1;
            models
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == SMALL_MODEL)
                .unwrap()["activation"]
                .clone()
        }
    };
    assert_eq!(
        activation(a.user.token.clone()).await["missing"],
        json!(["technical", "economic"])
    );
    // Each role holds its own switch only.
    let (s, body) = put(a.manager.token.clone(), json!({ "technical": true })).await;
    assert_eq!((s, error_code(&body)), (403, "FORBIDDEN"));
    let (s, body) = put(a.admin.token.clone(), json!({ "economic": true })).await;
    assert_eq!((s, error_code(&body)), (403, "FORBIDDEN"));
    let (s, body) = put(a.admin.token.clone(), json!({ "technical": true })).await;
    assert_eq!((s, body["operational"].as_bool()), (200, Some(false)));
    assert_eq!(body["missing"], json!(["economic"]));
    let (s, body) = put(a.manager.token.clone(), json!({ "economic": true })).await;
    assert_eq!((s, body["operational"].as_bool()), (200, Some(true)));
    assert_eq!(activation(a.user.token.clone()).await["operational"], true);
    // Another organization is unaffected.
    assert_eq!(
        activation(b.owner.token.clone()).await["operational"],
        false
    );
    // The owner holds both switches.
    let (s, body) = put(
        b.owner.token.clone(),
        json!({ "technical": true, "economic": true }),
    )
    .await;
    assert_eq!((s, body["operational"].as_bool()), (200, Some(true)));
    // Unknown items and kinds are 404.
    let (s, _) = app
        .put(
            "/organizations/current/activations/model/nope",
            Some(&a.owner.token),
            json!({ "technical": true }),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .put(
            &format!("/organizations/current/activations/planet/{SMALL_MODEL}"),
            Some(&a.owner.token),
            json!({ "technical": true }),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn platform_admins_edit_the_catalog_exactly() {
    let app = TestApp::spawn().await;
    let admin = app
        .login(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let (s, t) = app
        .patch(
            &format!("/instance_types/{MOCK_INSTANCE_TYPE}"),
            Some(&admin),
            json!({ "price_eur_per_hour": "2.1000" }),
        )
        .await;
    assert_eq!(
        (s.as_u16(), t["price_eur_per_hour"].as_str()),
        (200, Some("2.1000")),
        "{t}"
    );
    for bad in ["2.10001", "-1", "abc", "1e3"] {
        let (s, _) = app
            .patch(
                &format!("/instance_types/{MOCK_INSTANCE_TYPE}"),
                Some(&admin),
                json!({ "price_eur_per_hour": bad }),
            )
            .await;
        assert_eq!(s, 400, "{bad}");
    }
    let edited: bool =
        sqlx::query_scalar("SELECT edited_by_admin FROM instance_types WHERE id = $1::uuid")
            .bind(MOCK_INSTANCE_TYPE)
            .fetch_one(&app.state.db)
            .await
            .unwrap();
    assert!(edited, "a catalog sync must leave it alone");
    let body = json!({ "hf_id": "acme/tiny-1B", "display_name": "Tiny", "required_vram_gb": 4, "context_length": 8192, "recommended_data_volume_gb": 20 });
    let (s, m) = app.post("/models", Some(&admin), body.clone()).await;
    assert_eq!(s, 201, "{m}");
    let (s, again) = app.post("/models", Some(&admin), body).await;
    assert_eq!((s.as_u16(), error_code(&again)), (409, "MODEL_EXISTS"));
    let (s, m2) = app
        .patch(
            &format!("/models/{}", m["id"].as_str().unwrap()),
            Some(&admin),
            json!({ "active": false }),
        )
        .await;
    assert_eq!((s.as_u16(), m2["active"].as_bool()), (200, Some(false)));
}
