//! Seating engines on an organization's hosts (the `ssh` provider): the
//! catalog rows a host offers (its pool as a zone, its shapes as instance
//! types), the seat an instance takes (GPUs and a port slot, chosen by
//! [`inventiv_common::host::seat`] under a lock on the candidate hosts),
//! its release, and the host status that follows (`verified` ↔ `in_use`).

use inventiv_common::host::{seat, Seat, Shape};
use inventiv_common::HostStatus;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::hosts::{record, Change};

/// A seat with the host it is on, as the provider and the install need it.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub instance_id: Uuid,
    pub organization_id: Uuid,
    pub host_id: Uuid,
    pub label: String,
    pub pool: String,
    pub address: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    /// The host key pinned at the host's verification.
    pub known_hosts: Option<String>,
    pub gpus: Vec<i32>,
    pub slot: i32,
    pub install_dir: String,
    pub releasing: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Why no seat was taken.
#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    /// No host of the pool has the GPUs free (or none is usable now).
    #[error("{0}")]
    NoFreeHost(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Makes sure the catalog has the zone and instance types `host` offers
/// (rows shared by every organization; each sees only its own through the
/// `host_shapes` view). Idempotent.
pub async fn offer(conn: &mut PgConnection, host_id: Uuid) -> Result<(), sqlx::Error> {
    let Some(h) = sqlx::query!(
        "SELECT pool, gpu_count, gpu_model, gpu_vram_mib FROM hosts WHERE id = $1 AND status <> 'removed'",
        host_id,
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    sqlx::query!(
        "INSERT INTO zones (id, provider_code, code, region, name) VALUES ($1, 'ssh', $2, 'own', $2)
         ON CONFLICT (provider_code, code) DO NOTHING",
        Uuid::new_v4(),
        h.pool,
    )
    .execute(&mut *conn)
    .await?;
    let (Some(model), Some(vram)) = (h.gpu_model, h.gpu_vram_mib) else {
        return Ok(());
    };
    for shape in Shape::offered(h.gpu_count, &model, vram) {
        sqlx::query!(
            "INSERT INTO instance_types (id, provider_code, code, gpu_count, vram_per_gpu_gb, vcpu, ram_gb,
                                         price_eur_per_hour, allocation)
             VALUES ($1, 'ssh', $2, $3, $4, 1, 1, 0, jsonb_build_object('gpu_model', $5::text))
             ON CONFLICT (provider_code, code) DO NOTHING",
            Uuid::new_v4(),
            shape.code(),
            shape.count,
            shape.vram_gb,
            shape.gpu_model,
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!(
            "INSERT INTO instance_type_zones (instance_type_id, zone_id, available)
             SELECT t.id, z.id, true FROM instance_types t, zones z
              WHERE t.provider_code = 'ssh' AND t.code = $1 AND z.provider_code = 'ssh' AND z.code = $2
             ON CONFLICT (instance_type_id, zone_id) DO NOTHING",
            shape.code(),
            h.pool,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

struct Candidate {
    id: Uuid,
    label: String,
    gpu_count: i32,
    home_dir: String,
}

/// The shape an instance type of the `ssh` provider stands for.
async fn shape(conn: &mut PgConnection, type_code: &str) -> Result<Option<Shape>, sqlx::Error> {
    Ok(sqlx::query!(
        r#"SELECT gpu_count, vram_per_gpu_gb, allocation ->> 'gpu_model' AS gpu_model
             FROM instance_types WHERE provider_code = 'ssh' AND code = $1"#,
        type_code,
    )
    .fetch_optional(&mut *conn)
    .await?
    .and_then(|t| {
        Some(Shape {
            count: t.gpu_count,
            gpu_model: t.gpu_model?,
            vram_gb: t.vram_per_gpu_gb,
        })
    }))
}

/// The usable hosts of `pool` with GPUs of the shape, locked until the
/// transaction ends: verified or in use, host key pinned, home directory
/// known.
async fn candidates(
    conn: &mut PgConnection,
    org: Uuid,
    pool: &str,
    shape: &Shape,
) -> Result<Vec<Candidate>, sqlx::Error> {
    sqlx::query_as!(
        Candidate,
        r#"SELECT id, label, gpu_count, home_dir AS "home_dir!" FROM hosts
            WHERE organization_id = $1 AND pool = $2 AND status IN ('verified', 'in_use')
              AND ssh_known_hosts IS NOT NULL AND home_dir IS NOT NULL
              AND gpu_model = $3 AND gpu_vram_mib / 1024 = $4 AND gpu_count >= $5
            ORDER BY created_at, id FOR UPDATE"#,
        org,
        pool,
        shape.gpu_model,
        shape.vram_gb,
        shape.count,
    )
    .fetch_all(&mut *conn)
    .await
}

async fn seats(conn: &mut PgConnection, host_id: Uuid) -> Result<Vec<Seat>, sqlx::Error> {
    Ok(sqlx::query!(
        "SELECT gpus, slot FROM host_allocations WHERE host_id = $1",
        host_id
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| Seat {
        gpus: r.gpus,
        slot: r.slot,
    })
    .collect())
}

fn no_free_host(pool: &str, type_code: &str) -> AllocateError {
    AllocateError::NoFreeHost(format!(
        "no usable host of pool {pool} has {type_code} free (verified, not draining, GPUs not taken)"
    ))
}

/// The first host of `pool` (oldest first) with a seat of the shape
/// `type_code` free, and that seat; `None` when none has.
async fn first_fit(
    conn: &mut PgConnection,
    org: Uuid,
    pool: &str,
    type_code: &str,
) -> Result<Option<(Candidate, Seat)>, AllocateError> {
    let shape = shape(conn, type_code)
        .await?
        .ok_or_else(|| no_free_host(pool, type_code))?;
    for host in candidates(conn, org, pool, &shape).await? {
        let taken = seats(conn, host.id).await?;
        if let Some(s) = seat(host.gpu_count, shape.count, &taken) {
            return Ok(Some((host, s)));
        }
    }
    Ok(None)
}

/// Whether a seat of `type_code` is free in `pool` now (nothing taken).
pub async fn fits(
    db: &PgPool,
    org: Uuid,
    pool: &str,
    type_code: &str,
) -> Result<(), AllocateError> {
    let mut tx = db.begin().await?;
    let found = first_fit(&mut tx, org, pool, type_code).await?;
    tx.rollback().await?;
    found
        .map(|_| ())
        .ok_or_else(|| no_free_host(pool, type_code))
}

/// Seats `instance` on the first host of `pool` with the GPUs of
/// `type_code` free; records the instance's price (the host's hourly cost
/// in proportion of its GPUs taken, zero without a cost) and the host key
/// it must present (the host's, under the instance's alias). Returns the
/// seat the instance already has when it has one.
pub async fn allocate(
    db: &PgPool,
    instance: Uuid,
    org: Uuid,
    pool: &str,
    type_code: &str,
) -> Result<Allocation, AllocateError> {
    if let Some(a) = find(db, instance).await? {
        return Ok(a);
    }
    let mut tx = db.begin().await?;
    let (host, s) = first_fit(&mut tx, org, pool, type_code)
        .await?
        .ok_or_else(|| no_free_host(pool, type_code))?;
    let install_dir = format!(
        "{}/.inventiv/instances/{}",
        host.home_dir.trim_end_matches('/'),
        instance.simple()
    );
    sqlx::query!(
        "INSERT INTO host_allocations (instance_id, host_id, organization_id, gpus, slot, install_dir)
         VALUES ($1, $2, $3, $4, $5, $6)",
        instance,
        host.id,
        org,
        &s.gpus,
        s.slot,
        install_dir,
    )
    .execute(&mut *tx)
    .await?;
    let taken = i32::try_from(s.gpus.len()).unwrap_or(i32::MAX);
    sqlx::query!(
        "UPDATE instances i
            SET price_eur_per_hour = round(COALESCE(h.hourly_cost_eur, 0) * $3::integer / GREATEST(h.gpu_count, 1), 4),
                ssh_known_hosts = replace(h.ssh_known_hosts, 'inventiv-' || h.id::text, 'inventiv-' || i.id::text)
           FROM hosts h WHERE i.id = $1 AND h.id = $2",
        instance,
        host.id,
        taken,
    )
    .execute(&mut *tx)
    .await?;
    let gpus: Vec<String> = s.gpus.iter().map(ToString::to_string).collect();
    settle(
        &mut tx,
        host.id,
        org,
        &format!(
            "instance {instance} seated on GPU(s) {} (slot {})",
            gpus.join(","),
            s.slot
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%instance, host = %host.id, label = %host.label, ?s, "seated on a host");
    find(db, instance)
        .await?
        .ok_or_else(|| AllocateError::Db(sqlx::Error::RowNotFound))
}

/// The instance's seat, if it has one.
pub async fn find(db: &PgPool, instance: Uuid) -> Result<Option<Allocation>, sqlx::Error> {
    Ok(list(db, Seats::Instance(instance))
        .await?
        .into_iter()
        .next())
}

/// Whose seats to list.
#[derive(Debug, Clone, Copy)]
pub enum Seats {
    Organization(Uuid),
    Instance(Uuid),
    Host(Uuid),
}

/// The seats of an organization, an instance or a host.
pub async fn list(db: &PgPool, which: Seats) -> Result<Vec<Allocation>, sqlx::Error> {
    let (org, instance, host) = match which {
        Seats::Organization(id) => (Some(id), None, None),
        Seats::Instance(id) => (None, Some(id), None),
        Seats::Host(id) => (None, None, Some(id)),
    };
    sqlx::query_as!(
        Allocation,
        r#"SELECT a.instance_id, a.organization_id, a.host_id, h.label, h.pool, h.address, h.ssh_port, h.ssh_user,
                  h.ssh_known_hosts AS known_hosts, a.gpus, a.slot, a.install_dir,
                  a.releasing_since IS NOT NULL AS "releasing!", a.created_at
             FROM host_allocations a JOIN hosts h ON h.id = a.host_id
            WHERE ($1::uuid IS NULL OR a.organization_id = $1) AND ($2::uuid IS NULL OR a.instance_id = $2)
              AND ($3::uuid IS NULL OR a.host_id = $3)
            ORDER BY a.created_at, a.instance_id"#,
        org,
        instance,
        host,
    )
    .fetch_all(db)
    .await
}

/// The seats of a host being given back (termination asked for them).
pub async fn releasing_on(db: &PgPool, host: Uuid) -> Result<Vec<Allocation>, sqlx::Error> {
    Ok(list(db, Seats::Host(host))
        .await?
        .into_iter()
        .filter(|a| a.releasing)
        .collect())
}

/// Marks the instance's seat as being given back (idempotent).
pub async fn mark_releasing(db: &PgPool, instance: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE host_allocations SET releasing_since = now() WHERE instance_id = $1 AND releasing_since IS NULL",
        instance,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks as being given back the seats of instances that ended without
/// (a crash between the end and the release, a provisioning that failed
/// after the seat was taken and released nothing).
pub async fn release_ended(db: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE host_allocations a SET releasing_since = now() FROM instances i
          WHERE i.id = a.instance_id AND a.releasing_since IS NULL
            AND (i.status IN ('terminated', 'archived') OR i.resources_released_at IS NOT NULL)",
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// The right to clean a seat up: a transaction-scoped advisory lock on the
/// instance, so that termination and the host checks never clean the same
/// seat at once; dropping the transaction gives it up. `None` when another
/// holds it, or when the seat is gone or not being given back (read under
/// the lock: a seat released by the previous holder is not cleaned again).
pub async fn claim_cleanup(
    db: &PgPool,
    instance: Uuid,
) -> Result<Option<(sqlx::Transaction<'static, sqlx::Postgres>, Allocation)>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let got = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS "got!""#,
        format!("host_seat:{instance}"),
    )
    .fetch_one(&mut *tx)
    .await?;
    if !got {
        return Ok(None);
    }
    Ok(find(db, instance)
        .await?
        .filter(|a| a.releasing)
        .map(|a| (tx, a)))
}

/// Gives the seat back once its cleanup is done: the row goes, the host
/// returns to `verified` when nothing else is seated on it.
pub async fn release(db: &PgPool, a: &Allocation) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let gone = sqlx::query!(
        "DELETE FROM host_allocations WHERE instance_id = $1",
        a.instance_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if gone > 0 {
        settle(
            &mut tx,
            a.host_id,
            a.organization_id,
            &format!(
                "instance {} released: engine stopped, install removed",
                a.instance_id
            ),
        )
        .await?;
    }
    tx.commit().await
}

/// Sets `in_use` on a verified host holding seats and `verified` on one in
/// use holding none (any other status stays), with a history row; returns
/// the host's status now (None: no such host).
pub async fn settle(
    conn: &mut PgConnection,
    host: Uuid,
    org: Uuid,
    reason: &str,
) -> Result<Option<HostStatus>, sqlx::Error> {
    let now = sqlx::query!(
        r#"SELECT status AS "status: HostStatus",
                  EXISTS (SELECT 1 FROM host_allocations a WHERE a.host_id = h.id) AS "seated!"
             FROM hosts h WHERE id = $1 FOR UPDATE"#,
        host,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(now) = now else { return Ok(None) };
    let to = match (now.status, now.seated) {
        (HostStatus::Verified, true) => HostStatus::InUse,
        (HostStatus::InUse, false) => HostStatus::Verified,
        (status, _) => return Ok(Some(status)),
    };
    let reason = format!(
        "{reason}; {}",
        if now.seated {
            "holds instances"
        } else {
            "holds no instance"
        }
    );
    record(
        conn,
        Change {
            host_id: host,
            organization_id: org,
            from: Some(now.status),
            to,
            reason: &reason,
            actor: None,
            request_id: None,
        },
    )
    .await?;
    Ok(Some(to))
}

/// How many seats a host holds (a host holding any is not removed).
pub async fn seated(db: &PgPool, host: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM host_allocations WHERE host_id = $1"#,
        host
    )
    .fetch_one(db)
    .await
}
