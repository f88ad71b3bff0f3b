//! `GET /instances/{id}/volumes`: an instance's recorded cloud volumes, boot
//! volume first, with their size, persistence and status; members of its
//! organization read them, another organization gets a 404.

use crate::support::fixture::Org;
use crate::support::{error_code, TestApp};
use reqwest::StatusCode;
use uuid::Uuid;

/// Records a volume of `org`'s instance as the orchestrator does.
async fn volume(
    app: &TestApp,
    org: &Org,
    provider_id: &str,
    size_gb: i32,
    boot: bool,
    keep: bool,
    status: &str,
) {
    sqlx::query(
        "INSERT INTO instance_volumes (instance_id, organization_id, provider_code, zone, provider_volume_id, size_gb, is_boot, delete_on_terminate, status)
         VALUES ($1, $2, 'mock', 'mock-zone-1', $3, $4, $5, $6, $7)",
    )
    .bind(org.instance_id)
    .bind(org.id)
    .bind(provider_id)
    .bind(size_gb)
    .bind(boot)
    .bind(!keep)
    .bind(status)
    .execute(&app.state.db)
    .await
    .expect("volume");
}

#[tokio::test]
async fn members_read_their_instances_volumes_boot_first_and_others_get_404() {
    let app = TestApp::spawn().await;
    let mut a = app.org("vol-a").await;
    let mut b = app.org("vol-b").await;
    app.add_instance(&mut a).await;
    app.add_instance(&mut b).await;
    // Inserted data first: the boot volume must still come first.
    volume(&app, &a, "vol-data", 500, false, true, "missing").await;
    volume(&app, &a, "vol-boot", 200, true, false, "attached").await;
    volume(&app, &b, "vol-of-b", 20, true, false, "attached").await;

    let path = format!("/instances/{}/volumes", a.instance_id);
    let (status, body) = app.get(&path, Some(&a.user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body.as_array().expect("a list");
    let ids: Vec<&str> = rows
        .iter()
        .map(|v| v["provider_volume_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["vol-boot", "vol-data"],
        "only A's volumes, boot first"
    );
    assert_eq!(rows[0]["size_gb"], 200);
    assert_eq!(rows[0]["is_boot"], true);
    assert_eq!(rows[0]["delete_on_terminate"], true);
    assert_eq!(rows[0]["volume_type"], "block");
    assert_eq!(rows[1]["delete_on_terminate"], false, "persistent volume");
    assert_eq!(rows[1]["status"], "missing");

    // B's owner naming A's instance: not found, and nothing of A leaks.
    let (status, body) = app.get(&path, Some(&b.owner.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "NOT_FOUND");
    assert!(!body.to_string().contains("vol-boot"));

    // An unknown instance is a 404 too, an instance with no volumes an empty list.
    let (status, _) = app
        .get(
            &format!("/instances/{}/volumes", Uuid::new_v4()),
            Some(&a.owner.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sqlx::query("DELETE FROM instance_volumes WHERE instance_id = $1")
        .bind(b.instance_id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let (status, body) = app
        .get(
            &format!("/instances/{}/volumes", b.instance_id),
            Some(&b.user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!([]));
    app.stop().await;
}
