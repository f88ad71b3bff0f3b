//! Services' data: reading a service with its placements, its timeline
//! (`service_events`) and live event, creating its replicas on its first
//! placement not avoided (placement fallback) and taking them away. The routes (`routes/services.rs`),
//! `POST /deployments` and the instance terminate route share these, so a
//! replica is made and ended one way.
//!
//! Who moves `desired_replicas`: the API on create (`min`), pause (0),
//! resume (`min`), PATCH (clamped into `[min, max]`) and when a replica is
//! terminated by hand (one fewer, not below `min`); the autoscaler within
//! `[min, max]`. The API creates the replicas a raise asks for at once (so
//! a service serves without the autoscaler); replacing failed replicas,
//! removing replicas beyond `desired_replicas` (after draining them) and
//! moving `deleting` to `deleted` are the replica convergence's
//! (`replicas.rs`).

use chrono::{DateTime, Utc};
use inventiv_common::instance::Transition;
use inventiv_common::messages;
use inventiv_common::{ServiceEventKind, ServiceState, UserId};
use inventiv_providers::error::CAPACITY_CODES;
use serde::Serialize;
use sqlx::types::Json as SqlJson;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::drain;
use crate::error::{ApiError, ApiResult};
use crate::placement::{self, NewInstance, Placement};
use crate::routes::instances::Instance;
use crate::state::AppState;

/// A service as its organization sees it.
#[derive(Serialize, ToSchema)]
pub struct Service {
    pub id: Uuid,
    pub name: String,
    /// Hugging Face id of the model it serves.
    pub model_id: String,
    pub mode: String,
    pub state: ServiceState,
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// What the replicas converge to: `min` to `max` while active, 0 otherwise.
    pub desired_replicas: i32,
    /// Replicas neither terminating nor ended (`terminating`, `terminated`, `archived`).
    pub active_replicas: i64,
    /// Raised by each rollout; a replica records the revision it was made at.
    pub revision: i32,
    /// Replicas serving or on their way (`provisioning` … `ready`) made at
    /// an older revision, replaced one at a time (a rollout is under way
    /// while any is left).
    pub outdated_replicas: i64,
    /// Outstanding requests per replica past which it scales up.
    pub target_outstanding: Option<f64>,
    /// Time-to-first-token p95 (ms) past which it scales up.
    pub target_ttft_p95_ms: Option<i32>,
    /// Seconds without a request before it scales down to `min`.
    pub idle_window_s: i32,
    /// Seconds after a scaling before it may scale down.
    pub scale_down_cooldown_s: i32,
    /// GPU hours per calendar month (decimal string); null: no cap.
    pub gpu_hours_cap: Option<String>,
    /// EUR per calendar month (decimal string); null: no cap.
    pub eur_cap: Option<String>,
    /// Where replicas go, first preferred.
    pub placements: Vec<Placement>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_scaled_at: Option<DateTime<Utc>>,
}

struct Row {
    id: Uuid,
    name: String,
    model_id: String,
    model_catalog_id: Option<Uuid>,
    mode: String,
    state: ServiceState,
    min_replicas: i32,
    max_replicas: i32,
    desired_replicas: i32,
    active_replicas: i64,
    revision: i32,
    outdated_replicas: i64,
    target_outstanding: Option<f64>,
    target_ttft_p95_ms: Option<i32>,
    idle_window_s: i32,
    scale_down_cooldown_s: i32,
    gpu_hours_cap: Option<String>,
    eur_cap: Option<String>,
    placements: SqlJson<Vec<Placement>>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_scaled_at: Option<DateTime<Utc>>,
}

/// A service with what the routes need besides its answer.
pub struct Loaded {
    pub service: Service,
    pub model_catalog_id: Option<Uuid>,
}

impl From<Row> for Loaded {
    fn from(row: Row) -> Loaded {
        Loaded {
            model_catalog_id: row.model_catalog_id,
            service: Service {
                id: row.id,
                name: row.name,
                model_id: row.model_id,
                mode: row.mode,
                state: row.state,
                min_replicas: row.min_replicas,
                max_replicas: row.max_replicas,
                desired_replicas: row.desired_replicas,
                active_replicas: row.active_replicas,
                revision: row.revision,
                outdated_replicas: row.outdated_replicas,
                target_outstanding: row.target_outstanding,
                target_ttft_p95_ms: row.target_ttft_p95_ms,
                idle_window_s: row.idle_window_s,
                scale_down_cooldown_s: row.scale_down_cooldown_s,
                gpu_hours_cap: row.gpu_hours_cap,
                eur_cap: row.eur_cap,
                placements: row.placements.0,
                created_by: row.created_by,
                created_at: row.created_at,
                updated_at: row.updated_at,
                last_scaled_at: row.last_scaled_at,
            },
        }
    }
}

/// Which services [`fetch`] reads.
enum Which {
    One(Uuid),
    /// A page, newest first: those in a state, or all but the deleted ones.
    Page {
        state: Option<ServiceState>,
        limit: i64,
        offset: i64,
    },
}

/// The services of `org` that `which` names, each with its placements and
/// its count of active replicas, in one statement.
async fn fetch(db: &mut PgConnection, org: Uuid, which: Which) -> sqlx::Result<Vec<Row>> {
    let (id, state, limit, offset) = match which {
        Which::One(id) => (Some(id), None, 1, 0),
        Which::Page {
            state,
            limit,
            offset,
        } => (None, state, limit, offset),
    };
    sqlx::query_as!(
        Row,
        r#"SELECT s.id, s.name, s.model_id, s.model_catalog_id, s.mode, s.state AS "state: ServiceState",
                  s.min_replicas, s.max_replicas, s.desired_replicas,
                  (SELECT count(*) FROM instances i WHERE i.service_id = s.id
                    AND i.status NOT IN ('terminating', 'terminated', 'archived')) AS "active_replicas!",
                  s.revision,
                  (SELECT count(*) FROM instances i WHERE i.service_id = s.id AND i.service_revision < s.revision
                    AND i.status IN ('provisioning', 'booting', 'installing', 'starting', 'ready')) AS "outdated_replicas!",
                  s.target_outstanding, s.target_ttft_p95_ms, s.idle_window_s, s.scale_down_cooldown_s,
                  s.gpu_hours_cap::text AS gpu_hours_cap, s.eur_cap::text AS eur_cap,
                  (SELECT COALESCE(jsonb_agg(jsonb_build_object('provider', p.provider, 'zone', p.zone,
                                                                'instance_type', p.instance_type)
                                             ORDER BY p.position), '[]'::jsonb)
                     FROM service_placements p WHERE p.service_id = s.id) AS "placements!: SqlJson<Vec<Placement>>",
                  s.created_by, s.created_at, s.updated_at, s.last_scaled_at
             FROM services s
            WHERE s.organization_id = $1
              AND CASE WHEN $2::uuid IS NOT NULL THEN s.id = $2
                       WHEN $3::text IS NOT NULL THEN s.state = $3
                       ELSE s.state <> 'deleted' END
            ORDER BY s.created_at DESC, s.id LIMIT $4 OFFSET $5"#,
        org,
        id,
        state.map(ServiceState::as_str),
        limit,
        offset,
    )
    .fetch_all(db)
    .await
}

/// Loads a service of `org` (404 otherwise); `lock` holds its row until
/// the transaction ends, so changes to one service are serialized.
pub async fn load(db: &mut PgConnection, org: Uuid, id: Uuid, lock: bool) -> ApiResult<Loaded> {
    if lock {
        sqlx::query!(
            "SELECT id FROM services WHERE id = $1 AND organization_id = $2 FOR UPDATE",
            id,
            org
        )
        .fetch_optional(&mut *db)
        .await?
        .ok_or(ApiError::NotFound)?;
    }
    fetch(db, org, Which::One(id))
        .await?
        .pop()
        .map(Loaded::from)
        .ok_or(ApiError::NotFound)
}

/// A page of the services of `org`, newest first: those in `state`, or
/// all but the deleted ones.
pub async fn list(
    db: &mut PgConnection,
    org: Uuid,
    state: Option<ServiceState>,
    limit: i64,
    offset: i64,
) -> ApiResult<Vec<Service>> {
    let rows = fetch(
        db,
        org,
        Which::Page {
            state,
            limit,
            offset,
        },
    )
    .await?;
    Ok(rows.into_iter().map(|r| Loaded::from(r).service).collect())
}

/// Replaces a service's placements with `list` (checked by the caller).
pub async fn set_placements(
    tx: &mut PgConnection,
    id: Uuid,
    list: &[placement::Checked],
) -> ApiResult<()> {
    sqlx::query!("DELETE FROM service_placements WHERE service_id = $1", id)
        .execute(&mut *tx)
        .await?;
    for (position, p) in (0i16..).zip(list) {
        sqlx::query!(
            "INSERT INTO service_placements (service_id, position, provider, zone, instance_type, zone_id, instance_type_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            id,
            position,
            p.placement.provider,
            p.placement.zone,
            p.placement.instance_type,
            p.zone_id,
            p.type_id,
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// An entry of a service's timeline, to record and announce.
pub struct Note {
    pub kind: ServiceEventKind,
    pub from_replicas: Option<i32>,
    pub to_replicas: Option<i32>,
    pub reason: String,
}

/// Records `note` in the service's timeline (in the caller's transaction).
pub async fn record(tx: &mut PgConnection, org: Uuid, id: Uuid, note: &Note) -> ApiResult<()> {
    sqlx::query!(
        "INSERT INTO service_events (service_id, organization_id, kind, from_replicas, to_replicas, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        org,
        note.kind.as_str(),
        note.from_replicas,
        note.to_replicas,
        note.reason.chars().take(1000).collect::<String>(),
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Announces a service's change (after commit) to the organization's live views.
pub async fn publish(state: &AppState, org: Uuid, service: &Service, note: &Note) {
    let event = messages::Event::ServiceUpdated {
        organization_id: org,
        service_id: service.id,
        state: service.state,
        desired_replicas: service.desired_replicas,
        kind: note.kind,
        reason: note.reason.clone(),
    };
    crate::events::publish(state, &event).await;
}

/// Sets a service's state and desired replicas and records `note`.
pub async fn set_state(
    tx: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    to: ServiceState,
    desired: i32,
    note: &Note,
) -> ApiResult<Service> {
    sqlx::query!(
        "UPDATE services SET state = $2, desired_replicas = $3, updated_at = now() WHERE id = $1",
        id,
        to.as_str(),
        desired,
    )
    .execute(&mut *tx)
    .await?;
    record(tx, org, id, note).await?;
    Ok(load(tx, org, id, false).await?.service)
}

/// Creates `count` replicas of a service on its first placement not
/// avoided ([`placement_for`]), checked as a deployment is and admitted
/// against the quota, in the caller's transaction; returns their ids.
pub async fn add_replicas(
    state: &AppState,
    tx: &mut PgConnection,
    org: Uuid,
    by: UserId,
    loaded: &Loaded,
    count: i32,
    request_id: Option<&str>,
) -> ApiResult<Vec<Uuid>> {
    if count <= 0 {
        return Ok(Vec::new());
    }
    let service = &loaded.service;
    let model_ref = loaded.model_catalog_id.map(|m| m.to_string());
    let model = placement::model(
        state,
        Some(model_ref.as_deref().unwrap_or(&service.model_id)),
    )
    .await?;
    let first = placement_for(tx, service, state.config.placement_avoid).await?;
    let at = placement::check(state, org, &model, first).await?;
    placement::admit(state, tx, org, i64::from(count), at.gpu_count).await?;
    let made: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM instances WHERE service_id = $1"#,
        service.id
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut ids = Vec::new();
    for n in 1..=i64::from(count) {
        let base: String = service.name.chars().take(90).collect();
        let name = format!("{base} #{}", made + n);
        let id = placement::create_instance(
            tx,
            NewInstance {
                org,
                created_by: by,
                name: &name,
                model: &model,
                mode: &service.mode,
                at: &at,
                service_id: service.id,
                service_revision: service.revision,
                request_id,
            },
        )
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// Where a service's next replica goes: the first of its placements where
/// no replica failed for lack of capacity or quota (the provider's
/// [`CAPACITY_CODES`]) in the last `avoid` (its state history, which
/// keeps the reason after the replica is terminated); the first
/// placement when every one failed lately. Read from the database, so every
/// API replica avoids the same placements.
async fn placement_for<'a>(
    tx: &mut PgConnection,
    service: &'a Service,
    avoid: std::time::Duration,
) -> ApiResult<&'a Placement> {
    let first = service.placements.first().ok_or_else(|| {
        ApiError::conflict(
            "NO_PLACEMENT",
            "the service has no placement to create replicas on",
        )
    })?;
    let failed = sqlx::query!(
        "SELECT DISTINCT i.provider, i.zone, i.instance_type
           FROM instances i JOIN instance_state_history h ON h.instance_id = i.id
          WHERE i.service_id = $1 AND h.to_status = 'provisioning_failed' AND h.error_code = ANY($2)
            AND h.at > now() - make_interval(secs => $3)",
        service.id,
        &CAPACITY_CODES.map(str::to_owned),
        avoid.as_secs_f64(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let avoided = |p: &Placement| {
        failed.iter().any(|f| {
            f.provider == p.provider && f.zone == p.zone && f.instance_type == p.instance_type
        })
    };
    Ok(service
        .placements
        .iter()
        .find(|p| !avoided(p))
        .unwrap_or(first))
}

/// Takes away every replica of a service not already ending (pause,
/// delete): those serving drain first ([`crate::drain`]), the others are
/// terminated through the instance terminate path, in the caller's
/// transaction; returns those that changed (to announce after commit).
pub async fn terminate_replicas(
    tx: &mut PgConnection,
    org: Uuid,
    id: Uuid,
    request_id: Option<&str>,
) -> ApiResult<Vec<Instance>> {
    let ids = sqlx::query_scalar!(
        "SELECT id FROM instances WHERE service_id = $1 AND organization_id = $2
            AND status NOT IN ('terminating', 'terminated', 'archived') ORDER BY created_at, id",
        id,
        org,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut ended = Vec::new();
    for replica in ids {
        let (instance, outcome) = drain::take_away(tx, org, replica, request_id).await?;
        if outcome == Transition::Changed {
            ended.push(instance);
        }
    }
    Ok(ended)
}

/// Whether any replica of the service still exists (not terminated or archived).
pub async fn any_replica_left(tx: &mut PgConnection, id: Uuid) -> ApiResult<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM instances WHERE service_id = $1 AND status NOT IN ('terminated', 'archived')) AS "left!""#,
        id
    )
    .fetch_one(tx)
    .await?)
}

/// A replica was terminated by hand (`DELETE /instances/{id}`): its service
/// wants one fewer, not below its floor; when that was the last replica of
/// a service with a floor (a deployment, a service of one replica), the
/// service ends with it, as terminating a deployment always did. Returns
/// the note to announce, if the service changed.
pub async fn replica_terminated_by_hand(
    tx: &mut PgConnection,
    org: Uuid,
    service_id: Uuid,
    replica: Uuid,
    who: &str,
) -> ApiResult<Option<(Service, Note)>> {
    let loaded = load(tx, org, service_id, true).await?;
    let s = &loaded.service;
    if s.state != ServiceState::Active {
        return Ok(None);
    }
    let (state, desired, kind, reason) = if s.active_replicas == 0 && s.min_replicas >= 1 {
        (
            ServiceState::Deleting,
            0,
            ServiceEventKind::Deleting,
            format!("its last replica {replica} was terminated by {who}: the service ends with it"),
        )
    } else {
        let to = (s.desired_replicas - 1).max(s.min_replicas);
        (
            ServiceState::Active,
            to,
            ServiceEventKind::ReplicaTerminated,
            format!(
                "replica {replica} terminated by {who}: desired {} → {to}",
                s.desired_replicas
            ),
        )
    };
    let note = Note {
        kind,
        from_replicas: Some(s.desired_replicas),
        to_replicas: Some(desired),
        reason,
    };
    let after = set_state(tx, org, service_id, state, desired, &note).await?;
    Ok(Some((after, note)))
}
