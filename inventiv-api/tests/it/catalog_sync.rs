//! Catalog sync from (fake) Scaleway: new GPU types added with their
//! availability, known ones refreshed with exact prices, CPU types
//! ignored, a platform admin's edit never overwritten; a product list and
//! an availability list paged as Scaleway pages them (over 100 types)
//! imported whole.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::support::TestApp;
use inventiv_testkit::fake_scaleway::{FakeOffer, FakeScaleway};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

fn offer(code: &str, gpu: u32, price: &str, availability: &str) -> FakeOffer {
    FakeOffer {
        code: code.into(),
        gpu,
        gpu_memory_gib: if gpu > 0 { 80 } else { 0 },
        ncpus: 32,
        ram_gib: 240,
        hourly_price: price.into(),
        availability: availability.into(),
    }
}

async fn price(app: &TestApp, code: &str) -> Option<String> {
    sqlx::query_scalar("SELECT price_eur_per_hour::text FROM instance_types WHERE provider_code = 'scaleway' AND code = $1")
        .bind(code)
        .fetch_optional(&app.state.db)
        .await
        .unwrap()
}

/// A fake Scaleway, the API pointed at it, and a platform admin's token
/// with Scaleway credentials the fake accepts.
async fn connected(address: Ipv4Addr) -> (FakeScaleway, TestApp, String) {
    let fake = FakeScaleway::start(IpAddr::V4(address), Duration::ZERO).await;
    let app = TestApp::spawn_with(&[("INVENTIV_SCALEWAY_API_URL", &fake.url)]).await;
    let admin = app
        .login_full(support::ADMIN_EMAIL, support::ADMIN_PASSWORD)
        .await;
    let token = admin["access_token"].as_str().unwrap().to_owned();
    let (secret, project) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    fake.accept(&secret, &project);
    let (s, _, body) = app
        .call(
            Method::PUT,
            "/organizations/current/providers/scaleway/credentials",
            Some(&token),
            Some(&json!({ "access_key": "SCWSYNCSYNCSYNCSYNC1", "secret_key": secret, "project_id": project,
                          "organization_id": Uuid::new_v4(), "default_zone": "fr-par-2" })),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    (fake, app, token)
}

#[tokio::test]
async fn sync_adds_refreshes_and_keeps_admin_edits() {
    let (fake, app, token) = connected(Ipv4Addr::new(127, 0, 140, 60)).await;
    fake.set_offers(vec![
        offer("L4-1-24G", 1, "0.8", "available"),
        offer("H100-SXM-2-80G", 2, "6.0123", "shortage"),
        offer("DEV1-S", 0, "0.0099", "available"),
    ]);

    let (s, report) = app
        .post("/providers/scaleway/catalog-sync", Some(&token), json!({}))
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["added"], json!(["H100-SXM-2-80G"]), "{report}");
    assert_eq!(report["updated"], json!(["L4-1-24G"]), "{report}");
    assert_eq!(price(&app, "L4-1-24G").await.as_deref(), Some("0.8000"));
    assert_eq!(
        price(&app, "H100-SXM-2-80G").await.as_deref(),
        Some("6.0123")
    );
    assert_eq!(
        price(&app, "DEV1-S").await,
        None,
        "CPU types are not GPU offers"
    );
    let (gpus, vram, available): (i32, i32, bool) = sqlx::query_as(
        "SELECT t.gpu_count, t.vram_per_gpu_gb, bool_or(tz.available) FROM instance_types t
           JOIN instance_type_zones tz ON tz.instance_type_id = t.id
          WHERE t.code = 'H100-SXM-2-80G' GROUP BY t.id",
    )
    .fetch_one(&app.state.db)
    .await
    .unwrap();
    assert_eq!((gpus, vram, available), (2, 80, false));

    // A platform admin's price stands against later syncs.
    let id: Uuid = sqlx::query_scalar("SELECT id FROM instance_types WHERE code = 'L4-1-24G'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let (s, body) = app
        .patch(
            &format!("/instance_types/{id}"),
            Some(&token),
            json!({ "price_eur_per_hour": "0.9000" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    fake.set_offers(vec![offer("L4-1-24G", 1, "0.85", "available")]);
    let (_, report) = app
        .post("/providers/scaleway/catalog-sync", Some(&token), json!({}))
        .await;
    assert_eq!(report["kept_edited"], json!(["L4-1-24G"]), "{report}");
    assert_eq!(price(&app, "L4-1-24G").await.as_deref(), Some("0.9000"));
}

/// fr-par-1 offers over 100 server types; Scaleway pages both the product
/// list and the availability list (50 per page by default, 100 at most).
/// Every GPU type is imported with its VRAM, exact price and availability.
#[tokio::test]
async fn sync_over_paged_lists_imports_every_gpu_type() {
    let (fake, app, token) = connected(Ipv4Addr::new(127, 0, 140, 61)).await;
    let gpu_types: Vec<FakeOffer> = (0..130u32)
        .map(|i| FakeOffer {
            code: format!("GPU{i:03}-{}-{}G", 1 + i % 8, [24, 48, 80][i as usize % 3]),
            gpu: 1 + i % 8,
            gpu_memory_gib: [24, 48, 80][i as usize % 3],
            ncpus: 8 + i % 64,
            ram_gib: 64 + u64::from(i),
            hourly_price: format!("{}.{:04}", i / 10, (i * 37) % 10_000),
            availability: if i % 5 == 0 { "shortage" } else { "available" }.into(),
        })
        .collect();
    let mut all = gpu_types.clone();
    all.extend((0..15).map(|i| offer(&format!("CPU-{i:02}"), 0, "0.01", "available")));
    fake.set_offers(all);

    let (s, report) = app
        .post("/providers/scaleway/catalog-sync", Some(&token), json!({}))
        .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(
        report["added"].as_array().unwrap().len(),
        gpu_types.len(),
        "{report}"
    );
    for t in &gpu_types {
        let row: Option<(i32, i32, String, bool)> = sqlx::query_as(
            "SELECT t.gpu_count, t.vram_per_gpu_gb, t.price_eur_per_hour::text, bool_or(tz.available)
               FROM instance_types t JOIN instance_type_zones tz ON tz.instance_type_id = t.id
              WHERE t.provider_code = 'scaleway' AND t.code = $1 GROUP BY t.id",
        )
        .bind(&t.code)
        .fetch_optional(&app.state.db)
        .await
        .unwrap();
        let (gpus, vram, price, available) =
            row.unwrap_or_else(|| panic!("{} was not imported", t.code));
        assert_eq!(gpus, i32::try_from(t.gpu).unwrap(), "{}", t.code);
        assert_eq!(vram, i32::try_from(t.gpu_memory_gib).unwrap(), "{}", t.code);
        assert_eq!(price, t.hourly_price, "{}", t.code);
        assert_eq!(available, t.availability != "shortage", "{}", t.code);
    }
    // The fake was asked for several pages of each list.
    let calls = fake.calls();
    let pages = |suffix: &str| {
        calls
            .iter()
            .filter(|c| c.method == "GET" && c.path.ends_with(suffix))
            .count()
    };
    assert!(pages("/products/servers") >= 2, "{calls:?}");
    assert!(pages("/products/servers/availability") >= 2, "{calls:?}");
}
