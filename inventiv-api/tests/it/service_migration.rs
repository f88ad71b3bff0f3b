//! The migration that introduced services, on a database that already
//! holds instances (migrated up to the one before it): each live instance
//! gets a service of one replica with its placement and a timeline entry;
//! ended ones keep none.

use std::borrow::Cow;

use sqlx::{Connection, Executor};
use uuid::Uuid;

use crate::support::db;
use crate::support::matrix::{MOCK_INSTANCE_TYPE, MOCK_ZONE};

/// The migration on a database that already holds instances: each live
/// one gets a service of one replica with its placement and a timeline
/// entry; ended ones keep none.
#[tokio::test]
async fn the_migration_gives_every_live_instance_a_service() {
    const SERVICES: i64 = 20261211001001;
    let name = format!("inventiv_test_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&db::url_for("postgres"))
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&db::url_for(&name))
        .await
        .unwrap();
    let before = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            inventiv_store::MIGRATOR
                .iter()
                .filter(|m| m.version < SERVICES)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&mut conn).await.unwrap();
    let (user, org) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query("INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, 'm@example.com', 'M', 'x')")
        .bind(user)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO organizations (id, name, slug, kind, created_by) VALUES ($1, 'O', 'o-mig', 'team', $2)")
        .bind(org)
        .bind(user)
        .execute(&mut conn)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for status in ["ready", "worker_dead", "terminated", "provisioning_failed"] {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO instances (id, organization_id, created_by, name, provider, zone, instance_type, model_id, mode, status)
             VALUES ($1, $2, $3, $4, 'mock', 'mock-zone-1', 'mock-1gpu-24g', 'Qwen/Qwen2.5-0.5B-Instruct', 'multi', $4)",
        )
        .bind(id)
        .bind(org)
        .bind(user)
        .bind(status)
        .execute(&mut conn)
        .await
        .unwrap();
        ids.push(id);
    }
    inventiv_store::MIGRATOR.run(&mut conn).await.unwrap();
    for (id, live) in ids.iter().zip([true, true, false, false]) {
        let row: (Option<Uuid>,) = sqlx::query_as("SELECT service_id FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.0.is_some(), live, "instance {id}");
        let Some(service) = row.0 else { continue };
        let s: (String, String, i32, i32, i32, String, Option<Uuid>) = sqlx::query_as(
            "SELECT name, mode, min_replicas, max_replicas, desired_replicas, state, created_by FROM services WHERE id = $1",
        )
        .bind(service)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(s.1, "multi");
        assert_eq!(
            (s.2, s.3, s.4, s.5.as_str(), s.6),
            (1, 1, 1, "active", Some(user))
        );
        let p: (String, Option<Uuid>, Option<Uuid>) = sqlx::query_as(
            "SELECT zone, zone_id, instance_type_id FROM service_placements WHERE service_id = $1 AND position = 0",
        )
        .bind(service)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(p.0, "mock-zone-1");
        assert_eq!(p.1.map(|z| z.to_string()).as_deref(), Some(MOCK_ZONE));
        assert_eq!(
            p.2.map(|t| t.to_string()).as_deref(),
            Some(MOCK_INSTANCE_TYPE)
        );
        let kind: String =
            sqlx::query_scalar("SELECT kind FROM service_events WHERE service_id = $1")
                .bind(service)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(kind, "created");
    }
    conn.close().await.unwrap();
    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
}
