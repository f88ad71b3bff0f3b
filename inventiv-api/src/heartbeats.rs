//! Heartbeats off the request path: the handler only queues what it
//! accepted; a timer (`INVENTIV_HEARTBEAT_FLUSH_MS`, 1 s by default) writes
//! each replica's queue in one transaction: the latest state per instance
//! as one multi-row `UPDATE` (never older than what is stored, so
//! `last_heartbeat_at` cannot go back), and the GPU, system and engine
//! token samples as multi-row `INSERT`s. Heartbeats are stamped on arrival,
//! so the watchdog sees each one with its arrival time, at most one flush
//! interval late. On a crash (`kill -9`) the queue (≤ one interval of
//! heartbeats) is lost: telemetry, repaired by the next heartbeat. On
//! shutdown it is written before the process ends. A worker that
//! heartbeats too often is refused before anything is queued
//! (`crate::heartbeat_limit`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use inventiv_common::worker::{GpuSample, Heartbeat, SystemSample, TokenCounters};
use sqlx::types::Json as SqlJson;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Heartbeats kept at most while the database refuses writes: past it the
/// oldest are dropped (the latest state comes again with the next ones).
pub const MAX_PENDING: usize = 200_000;

/// One accepted heartbeat, stamped on arrival.
pub struct Received {
    pub instance_id: Uuid,
    pub organization_id: Uuid,
    pub at: DateTime<Utc>,
    pub body: Heartbeat,
}

/// This replica's queue of accepted heartbeats.
#[derive(Default)]
pub struct Queue {
    pending: Mutex<Vec<Received>>,
    /// Held while a batch is written: a flush returns once what was queued
    /// before it is in the database, even when the timer's flush took it.
    writing: tokio::sync::Mutex<()>,
}

impl Queue {
    /// Queues an accepted heartbeat for the next flush.
    pub fn push(&self, heartbeat: Received) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.push(heartbeat);
        }
    }

    /// Heartbeats waiting for the next flush.
    fn len(&self) -> usize {
        self.pending.lock().map_or(0, |p| p.len())
    }

    /// Writes what is queued (what the timer does; tests call it to skip the
    /// wait); returns how many heartbeats were written. On an error they go back to the queue
    /// (within [`MAX_PENDING`]) for the next flush.
    pub async fn flush(&self, db: &PgPool) -> sqlx::Result<usize> {
        let _writing = self.writing.lock().await;
        let batch = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Ok(0),
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match write(db, &batch).await {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                if let Ok(mut pending) = self.pending.lock() {
                    let newer = std::mem::replace(&mut *pending, batch);
                    pending.extend(newer);
                    let excess = pending.len().saturating_sub(MAX_PENDING);
                    if excess > 0 {
                        tracing::warn!(
                            dropped = excess,
                            "heartbeat queue full; oldest heartbeats dropped"
                        );
                        pending.drain(..excess);
                    }
                }
                Err(e)
            }
        }
    }
}

/// Flushes the queue every `every` until `stop`, then once more.
pub async fn run(state: crate::state::AppState, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        if let Err(e) = state.heartbeats.flush(&state.db).await {
            tracing::warn!(error = %e, queued = state.heartbeats.len(), "writing heartbeats failed; will retry");
        }
        if stopping {
            return;
        }
    }
}

/// The latest heartbeat of each instance in `batch`, by instance id (the
/// order every replica locks rows in).
fn latest(batch: &[Received]) -> Vec<&Received> {
    let mut by_instance: HashMap<Uuid, &Received> = HashMap::new();
    for r in batch {
        by_instance
            .entry(r.instance_id)
            .and_modify(|kept| {
                if r.at >= kept.at {
                    *kept = r;
                }
            })
            .or_insert(r);
    }
    let mut latest: Vec<&Received> = by_instance.into_values().collect();
    latest.sort_by_key(|r| r.instance_id);
    latest
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// One transaction: the latest states, then the samples.
async fn write(db: &PgPool, batch: &[Received]) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    update_latest(&mut tx, &latest(batch)).await?;
    insert_gpus(&mut tx, batch).await?;
    insert_systems(&mut tx, batch).await?;
    insert_counters(&mut tx, batch).await?;
    tx.commit().await
}

/// The latest state on each instance, unless a later one is there already
/// (registration, or another replica's flush).
async fn update_latest(tx: &mut sqlx::PgConnection, latest: &[&Received]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = latest.iter().map(|r| r.instance_id).collect();
    let at: Vec<DateTime<Utc>> = latest.iter().map(|r| r.at).collect();
    let status: Vec<&str> = latest.iter().map(|r| r.body.status.as_str()).collect();
    let boot: Vec<&str> = latest.iter().map(|r| r.body.boot_id.as_str()).collect();
    let version: Vec<&str> = latest
        .iter()
        .map(|r| r.body.agent.version.as_str())
        .collect();
    let bundle: Vec<&str> = latest
        .iter()
        .map(|r| r.body.agent.bundle_sha256.as_str())
        .collect();
    let ready: Vec<bool> = latest.iter().map(|r| r.body.engine.ready).collect();
    let running: Vec<i32> = latest
        .iter()
        .map(|r| clamp_i32(r.body.engine.requests_running))
        .collect();
    let waiting: Vec<i32> = latest
        .iter()
        .map(|r| clamp_i32(r.body.engine.requests_waiting))
        .collect();
    let restarts: Vec<i32> = latest
        .iter()
        .map(|r| clamp_i32(r.body.engine.restarts))
        .collect();
    let gpus: Vec<Option<SqlJson<&Vec<GpuSample>>>> = latest
        .iter()
        .map(|r| r.body.gpus.as_ref().map(SqlJson))
        .collect();
    let system: Vec<Option<SqlJson<&SystemSample>>> = latest
        .iter()
        .map(|r| r.body.system.as_ref().map(SqlJson))
        .collect();
    sqlx::query!(
        "UPDATE instances i
            SET worker_status = b.status, worker_boot_id = b.boot_id, worker_agent_version = b.version,
                worker_bundle_sha256 = b.bundle, worker_engine_ready = b.ready, worker_requests_running = b.running,
                worker_requests_waiting = b.waiting, worker_engine_restarts = b.restarts, worker_gpus = b.gpus,
                worker_system = COALESCE(b.system, i.worker_system), last_heartbeat_at = b.at, updated_at = now()
           FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],
                       $8::int4[], $9::int4[], $10::int4[], $11::jsonb[], $12::jsonb[])
                AS b(id, at, status, boot_id, version, bundle, ready, running, waiting, restarts, gpus, system)
          WHERE i.id = b.id AND (i.last_heartbeat_at IS NULL OR i.last_heartbeat_at < b.at)",
        &ids,
        &at,
        &status as _,
        &boot as _,
        &version as _,
        &bundle as _,
        &ready,
        &running,
        &waiting,
        &restarts,
        &gpus as _,
        &system as _,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One row per GPU per heartbeat.
async fn insert_gpus(tx: &mut sqlx::PgConnection, batch: &[Received]) -> sqlx::Result<()> {
    let rows: Vec<(&Received, &GpuSample)> = batch
        .iter()
        .flat_map(|r| r.body.gpus.iter().flatten().map(move |g| (r, g)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&GpuSample) -> f32| rows.iter().map(|(_, g)| f(g)).collect::<Vec<f32>>();
    let optional =
        |f: fn(&GpuSample) -> Option<f32>| rows.iter().map(|(_, g)| f(g)).collect::<Vec<_>>();
    sqlx::query!(
        "INSERT INTO gpu_samples (instance_id, organization_id, sampled_at, gpu_index, utilization_pct,
                                  memory_used_mib, memory_total_mib, temperature_c, power_w)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int2[], $5::float4[], $6::float4[],
                              $7::float4[], $8::float4[], $9::float4[])",
        &rows.iter().map(|(r, _)| r.instance_id).collect::<Vec<_>>(),
        &rows.iter().map(|(r, _)| r.organization_id).collect::<Vec<_>>(),
        &rows.iter().map(|(r, _)| r.at).collect::<Vec<_>>(),
        &rows.iter().map(|(_, g)| i16::from(g.index)).collect::<Vec<_>>(),
        &column(|g| g.utilization_pct),
        &column(|g| g.memory_used_mib),
        &column(|g| g.memory_total_mib),
        &optional(|g| g.temperature_c) as _,
        &optional(|g| g.power_w) as _,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One row per heartbeat that carries system samples (version 2).
async fn insert_systems(tx: &mut sqlx::PgConnection, batch: &[Received]) -> sqlx::Result<()> {
    let rows: Vec<(&Received, &SystemSample)> = batch
        .iter()
        .filter_map(|r| r.body.system.as_ref().map(|s| (r, s)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&SystemSample) -> f32| rows.iter().map(|(_, s)| f(s)).collect::<Vec<f32>>();
    let optional =
        |f: fn(&SystemSample) -> Option<f32>| rows.iter().map(|(_, s)| f(s)).collect::<Vec<_>>();
    sqlx::query!(
        "INSERT INTO system_samples (instance_id, organization_id, sampled_at, cpu_pct, load1, memory_used_mib,
                                     memory_total_mib, disk_used_gib, disk_total_gib, net_rx_bytes_per_s, net_tx_bytes_per_s)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::float4[], $5::float4[], $6::float4[],
                              $7::float4[], $8::float4[], $9::float4[], $10::float4[], $11::float4[])",
        &rows.iter().map(|(r, _)| r.instance_id).collect::<Vec<_>>(),
        &rows.iter().map(|(r, _)| r.organization_id).collect::<Vec<_>>(),
        &rows.iter().map(|(r, _)| r.at).collect::<Vec<_>>(),
        &column(|s| s.cpu_pct),
        &column(|s| s.load1),
        &column(|s| s.memory_used_mib),
        &column(|s| s.memory_total_mib),
        &optional(|s| s.disk_used_gib) as _,
        &optional(|s| s.disk_total_gib) as _,
        &optional(|s| s.net_rx_bytes_per_s) as _,
        &optional(|s| s.net_tx_bytes_per_s) as _,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The engines' token counters (the usage drift job's input): one series
/// per agent boot and engine restart count, as a restarted engine's
/// counters start again from zero.
async fn insert_counters(tx: &mut sqlx::PgConnection, batch: &[Received]) -> sqlx::Result<()> {
    let rows: Vec<(&Received, TokenCounters)> = batch
        .iter()
        .filter_map(|r| r.body.engine.tokens.map(|t| (r, t)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let counter = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query!(
        "INSERT INTO instance_token_counters (instance_id, organization_id, sampled_at, series, prompt_total, generation_total)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::int8[], $6::int8[])",
        &rows.iter().map(|(r, _)| r.instance_id).collect::<Vec<_>>(),
        &rows.iter().map(|(r, _)| r.organization_id).collect::<Vec<_>>(),
        &rows.iter().map(|(r, _)| r.at).collect::<Vec<_>>(),
        &rows
            .iter()
            .map(|(r, _)| format!("{}:{}", r.body.boot_id, r.body.engine.restarts))
            .collect::<Vec<_>>(),
        &rows.iter().map(|(_, t)| counter(t.prompt_total)).collect::<Vec<_>>(),
        &rows.iter().map(|(_, t)| counter(t.generation_total)).collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
