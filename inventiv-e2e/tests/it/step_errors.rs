//! Steps that fail with an error they do not handle themselves: the driver
//! ends the instance's stage with the error's code when running the step
//! again cannot help (a booting or installing instance without its server),
//! and, in a status without a failure status (terminating without
//! credentials), tries again only after a long pause.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::scaleway::instance;
use crate::support::Stack;
use inventiv_testkit::fake_scaleway::FakeScaleway;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_that_cannot_succeed_ends_the_stage_with_its_code() {
    let fake =
        FakeScaleway::start(IpAddr::V4(Ipv4Addr::new(127, 0, 140, 110)), Duration::ZERO).await;
    let h = Stack::start_with_scaleway(&fake.url).await;
    h.scaleway_team("Serverless", &fake).await;
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM provider_credentials")
        .fetch_one(&h.db)
        .await
        .unwrap();
    // Neither has the server the provisioning records.
    let booting = instance(&h, org, "booting").await;
    let installing = instance(&h, org, "installing").await;
    h.in_process(Ipv4Addr::new(127, 0, 148, 1)).await;

    for (id, failed, step) in [
        (booting, "provisioning_failed", "booting"),
        (installing, "startup_failed", "installing"),
    ] {
        let (code, message) = h
            .until(failed, Duration::from_secs(30), || {
                let db = h.db.clone();
                async move {
                    sqlx::query_as::<_, (String, String)>(
                        "SELECT error_code, error_message FROM instances WHERE id = $1 AND status = $2",
                    )
                    .bind(id)
                    .bind(failed)
                    .fetch_optional(&db)
                    .await
                    .unwrap()
                }
            })
            .await;
        assert_eq!(code, "SERVER_MISSING", "{}", h.describe(id).await);
        assert_eq!(message, format!("{step} without a server"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminating_without_credentials_is_retried_after_a_pause() {
    let fake =
        FakeScaleway::start(IpAddr::V4(Ipv4Addr::new(127, 0, 140, 120)), Duration::ZERO).await;
    let h = Stack::start_with_scaleway(&fake.url).await;
    h.scaleway_team("Forgetful", &fake).await;
    let org: Uuid =
        sqlx::query_scalar("DELETE FROM provider_credentials RETURNING organization_id")
            .fetch_one(&h.db)
            .await
            .unwrap();
    let id = instance(&h, org, "terminating").await;
    h.in_process(Ipv4Addr::new(127, 0, 149, 1)).await;

    // Not every 2 s as a transient failure would be.
    let wait: f64 = h
        .until("the next attempt", Duration::from_secs(30), || {
            let db = h.db.clone();
            async move {
                sqlx::query_scalar::<_, f64>(
                    "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM instances
                      WHERE id = $1 AND next_attempt_at IS NOT NULL",
                )
                .bind(id)
                .fetch_optional(&db)
                .await
                .unwrap()
            }
        })
        .await;
    assert!(
        wait > 20.0,
        "next attempt in {wait} s\n{}",
        h.describe(id).await
    );
    assert_eq!(h.status(id).await, "terminating");
}
