//! The autoscaler's loop: every interval, the orchestrator holding the
//! lease reads the API replicas' load, adds it to each active service's
//! history, decides, and writes a change of `desired_replicas` with its
//! reason in the service's timeline (the API's replica convergence then
//! creates or terminates replicas). A change is written only if the
//! service still wants what the decision started from, so a route's
//! concurrent change wins. A refusal by the budget cap is written once per
//! episode, not at every tick.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use inventiv_common::messages::Event;
use inventiv_common::{ServiceEventKind, ServiceState};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{decide, lease, Decision, History, Lease, Policy, Reader, Replicas};
use crate::config::AutoscalerConfig;
use crate::context::Orchestrator;

/// What the loop remembers between ticks (forgotten when the lease is lost:
/// a new holder starts its windows afresh).
#[derive(Default)]
struct Memory {
    histories: HashMap<Uuid, History>,
    capped: HashSet<Uuid>,
}

/// Runs until shutdown; acts only while holding the lease.
pub async fn run(o: Arc<Orchestrator>, shutdown: CancellationToken) {
    let cfg = o.config.autoscaler.clone();
    let mut lease = Lease::new(lease::autoscaler_key(&o.config.redis_prefix), cfg.lease);
    let mut reader = Reader::default();
    let mut memory = Memory::default();
    let mut redis = o.redis.clone();
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let held = lease.hold(&mut redis).await;
        o.metrics
            .autoscaler_leader
            .store(i64::from(lease.held()), Ordering::Relaxed);
        match held {
            Ok(true) => {}
            Ok(false) => {
                memory = Memory::default();
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "autoscaler lease not renewed; will retry");
                continue;
            }
        }
        match pass(&o, &cfg, &mut reader, &mut memory, &lease).await {
            Ok(()) => o.metrics.autoscaler_passes.inc(),
            Err(e) => tracing::warn!(error = %e, "autoscaler pass failed; will retry"),
        }
    }
    if lease.held() {
        if let Err(e) = lease.release(&mut redis).await {
            tracing::warn!(error = %e, "autoscaler lease not released; it expires on its own");
        }
    }
    o.metrics.autoscaler_leader.store(0, Ordering::Relaxed);
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// An active service as the autoscaler reads it.
struct Row {
    id: Uuid,
    organization_id: Uuid,
    model_id: String,
    min_replicas: i32,
    max_replicas: i32,
    desired_replicas: i32,
    target_outstanding: Option<f64>,
    target_ttft_p95_ms: Option<i32>,
    idle_window_s: i32,
    scale_down_cooldown_s: i32,
    last_scaled_at: Option<DateTime<Utc>>,
    gpu_hours_cap: Option<f64>,
    eur_cap: Option<f64>,
    ready: i64,
    starting: i64,
    draining: i64,
}

async fn pass(
    o: &Orchestrator,
    cfg: &AutoscalerConfig,
    reader: &mut Reader,
    memory: &mut Memory,
    lease: &Lease,
) -> Result<(), PassError> {
    let mut redis = o.redis.clone();
    let combined = reader.read(&mut redis, &o.config.redis_prefix).await?;
    let services = sqlx::query_as!(
        Row,
        r#"SELECT s.id, s.organization_id, s.model_id, s.min_replicas, s.max_replicas, s.desired_replicas,
                  s.target_outstanding, s.target_ttft_p95_ms, s.idle_window_s, s.scale_down_cooldown_s,
                  s.last_scaled_at, s.gpu_hours_cap::float8 AS gpu_hours_cap, s.eur_cap::float8 AS eur_cap,
                  count(i.id) FILTER (WHERE i.status = 'ready') AS "ready!",
                  count(i.id) FILTER (WHERE i.status IN ('provisioning', 'booting', 'installing', 'starting')) AS "starting!",
                  count(i.id) FILTER (WHERE i.status = 'draining') AS "draining!"
             FROM services s LEFT JOIN instances i ON i.service_id = s.id
            WHERE s.state = 'active'
            GROUP BY s.id"#,
    )
    .fetch_all(&o.db)
    .await?;
    let live: HashSet<Uuid> = services.iter().map(|s| s.id).collect();
    memory.histories.retain(|id, _| live.contains(id));
    memory.capped.retain(|id| live.contains(id));
    let now = combined.at;
    for s in services {
        let cap = cap_reached(o, &s, now).await?;
        let policy = Policy {
            min_replicas: count(s.min_replicas),
            max_replicas: count(s.max_replicas),
            target_outstanding: s.target_outstanding,
            target_ttft_p95_ms: s.target_ttft_p95_ms.map(f64::from),
            up_window: cfg.up_window,
            down_window: cfg.down_window,
            idle_window: secs(s.idle_window_s),
            scale_down_cooldown: secs(s.scale_down_cooldown_s),
            budget_cap_reached: cap.is_some(),
        };
        let keep = policy
            .up_window
            .max(policy.down_window)
            .max(policy.idle_window)
            + cfg.interval * 2;
        let history = memory
            .histories
            .entry(s.id)
            .or_insert_with(|| History::new(keep));
        history.push(combined.sample(s.organization_id, &s.model_id));
        // Replicas wanted but not made yet (the API's convergence makes
        // them within its interval) count as starting: a pass between a
        // scaling and their creation would otherwise see fewer replicas
        // than it asked for and take the step again, or undo it.
        let made = count64(s.ready).saturating_add(count64(s.starting));
        let pending = count(s.desired_replicas).saturating_sub(made);
        let replicas = Replicas {
            ready: count64(s.ready),
            starting: count64(s.starting).saturating_add(pending),
            draining: count64(s.draining),
        };
        let d = decide(&policy, replicas, history.samples(), s.last_scaled_at, now);
        if !lease.held() {
            // Gone while deciding: the next holder decides.
            return Ok(());
        }
        if d.capped {
            if memory.capped.insert(s.id) {
                note_capped(o, &s, &d, cap.as_deref().unwrap_or("")).await?;
            }
            continue;
        }
        memory.capped.remove(&s.id);
        let to = i32::try_from(d.to).unwrap_or(i32::MAX);
        if d.scales() && to != s.desired_replicas {
            scale(o, &s, to, &d).await?;
        }
    }
    Ok(())
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn count64(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn secs(n: i32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

/// Which of the service's own GPU-hour or EUR caps for this calendar
/// month (UTC) is used up, from the cost buckets of its replicas, said as
/// its timeline shows it; None while neither is.
async fn cap_reached(
    o: &Orchestrator,
    s: &Row,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<String>> {
    if s.gpu_hours_cap.is_none() && s.eur_cap.is_none() {
        return Ok(None);
    }
    let month = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let used = sqlx::query!(
        r#"SELECT COALESCE(sum(c.seconds * COALESCE(t.gpu_count, 1)), 0)::float8 / 3600 AS "gpu_hours!",
                  COALESCE(sum(c.cost_eur), 0)::float8 AS "eur!"
             FROM cost_buckets c
             JOIN instances i ON i.id = c.instance_id
             LEFT JOIN instance_types t ON t.id = i.instance_type_id
            WHERE i.service_id = $1 AND c.minute >= $2"#,
        s.id,
        month,
    )
    .fetch_one(&o.db)
    .await?;
    let gpu = s
        .gpu_hours_cap
        .filter(|cap| used.gpu_hours >= *cap)
        .map(|cap| {
            format!(
                "{:.2} of its {cap} GPU-hour cap used this month",
                used.gpu_hours
            )
        });
    let eur = s
        .eur_cap
        .filter(|cap| used.eur >= *cap)
        .map(|cap| format!("{:.2} of its {cap} EUR cap spent this month", used.eur));
    Ok(gpu.or(eur))
}

/// Writes the new wish and its reason, if the service still wants what
/// the decision started from; announces it.
async fn scale(o: &Orchestrator, s: &Row, to: i32, d: &Decision) -> sqlx::Result<()> {
    let mut tx = o.db.begin().await?;
    let changed = sqlx::query!(
        "UPDATE services SET desired_replicas = $3, last_scaled_at = now(), updated_at = now()
          WHERE id = $1 AND state = 'active' AND desired_replicas = $2
            AND $3 BETWEEN min_replicas AND max_replicas",
        s.id,
        s.desired_replicas,
        to,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(());
    }
    record(&mut tx, s, ServiceEventKind::Scaled, Some(to), &d.reason).await?;
    tx.commit().await?;
    o.metrics.autoscaler_scalings.inc();
    tracing::info!(service_id = %s.id, from = s.desired_replicas, to, reason = %d.reason, "service scaled");
    announce(o, s, to, ServiceEventKind::Scaled, &d.reason).await;
    Ok(())
}

/// Writes that the budget cap stopped a scale-up.
async fn note_capped(o: &Orchestrator, s: &Row, d: &Decision, cap: &str) -> sqlx::Result<()> {
    let reason = format!("{}: {cap}", d.reason);
    let mut tx = o.db.begin().await?;
    record(&mut tx, s, ServiceEventKind::BudgetCapped, None, &reason).await?;
    tx.commit().await?;
    o.metrics.autoscaler_capped.inc();
    announce(
        o,
        s,
        s.desired_replicas,
        ServiceEventKind::BudgetCapped,
        &reason,
    )
    .await;
    Ok(())
}

async fn record(
    tx: &mut sqlx::PgConnection,
    s: &Row,
    kind: ServiceEventKind,
    to: Option<i32>,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO service_events (service_id, organization_id, kind, from_replicas, to_replicas, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
        s.id,
        s.organization_id,
        kind.as_str(),
        s.desired_replicas,
        to.unwrap_or(s.desired_replicas),
        reason.chars().take(1000).collect::<String>(),
    )
    .execute(tx)
    .await?;
    Ok(())
}

async fn announce(o: &Orchestrator, s: &Row, desired: i32, kind: ServiceEventKind, reason: &str) {
    let event = Event::ServiceUpdated {
        organization_id: s.organization_id,
        service_id: s.id,
        state: ServiceState::Active,
        desired_replicas: desired,
        kind,
        reason: reason.to_owned(),
    };
    let mut redis = o.redis.clone();
    crate::events::publish(&mut redis, &o.config.redis_prefix, &event).await;
}
