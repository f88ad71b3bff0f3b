//! The cost job: every instance's running time, from provider start to
//! termination, becomes one `cost_buckets` row per minute, prorated to the
//! microsecond (`price_eur_per_hour x seconds / 3600`, rounded half away
//! from zero to 12 decimals; reported totals round to 4).
//!
//! A pass runs under a transaction-scoped Postgres advisory lock (one
//! replica at a time). For each instance it writes the closed minutes
//! between the instance's watermark and `now` (at most a day per step,
//! repeated until caught up) and moves the watermark in the same
//! statement: a crash keeps all of a step or none of it, the unique
//! (instance, minute) key makes any re-run harmless, and a job that was
//! down catches up from the watermarks without a gap. The clock is a
//! parameter so tests drive it. After each pass the adjustment reconcilers
//! run (`finops::adjustments`): late end times and late records; then every
//! replica measures the organizations' costs of the month for its metrics
//! (`finops::month_costs`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// The advisory lock key of the cost job (any constant unique to it).
pub const LOCK_KEY: i64 = 0x1f1a_c057_0b0c_0001;

/// The minute `at` falls in (minute boundaries are the same in UTC and in
/// every whole-minute time zone).
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60), 0).unwrap_or(at)
}

/// Brings every instance's buckets up to the last minute closed at `now`.
/// Returns the buckets written; 0 also when another replica holds the lock.
pub async fn run_once(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let until = minute_of(now);
    let mut written = 0;
    loop {
        let mut tx = db.begin().await?;
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
            LOCK_KEY
        )
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(written);
        }
        let (instances, buckets) = step(&mut tx, until).await?;
        tx.commit().await?;
        written += buckets;
        if instances == 0 {
            return Ok(written);
        }
    }
}

/// One step: returns (instances advanced, buckets written). A step writes
/// the buckets of up to one day per instance.
async fn step(tx: &mut sqlx::PgConnection, until: DateTime<Utc>) -> sqlx::Result<(i64, u64)> {
    let done = sqlx::query!(
        r#"WITH todo AS (
            SELECT i.id, i.organization_id, i.provider, i.instance_type, i.model_id, i.started_at, i.terminated_at, p.price, s.from_minute,
                   least(s.from_minute + interval '1 day', $1) AS to_minute
              FROM instances i
              LEFT JOIN cost_watermarks w ON w.instance_id = i.id
              CROSS JOIN LATERAL (SELECT COALESCE(i.price_eur_per_hour,
                     (SELECT t.price_eur_per_hour FROM instance_types t WHERE t.provider_code = i.provider AND t.code = i.instance_type))) AS p(price)
              CROSS JOIN LATERAL (SELECT COALESCE(w.until, to_timestamp(floor(extract(epoch FROM i.started_at) / 60) * 60))) AS s(from_minute)
             WHERE i.started_at IS NOT NULL AND p.price IS NOT NULL
               AND COALESCE(w.until, '-infinity') < least(COALESCE(i.terminated_at, $1), $1)
               AND s.from_minute < $1
         ),
         written AS (
            INSERT INTO cost_buckets (instance_id, minute, organization_id, provider, instance_type, model_id, seconds, price_eur_per_hour, cost_eur)
            SELECT t.id, m.minute, t.organization_id, t.provider, t.instance_type, t.model_id, d.seconds, t.price, round(t.price * d.seconds / 3600, 12)
              FROM todo t
              CROSS JOIN LATERAL generate_series(t.from_minute, least(t.to_minute, t.terminated_at) - interval '1 microsecond', interval '1 minute') AS m(minute)
              CROSS JOIN LATERAL (SELECT extract(epoch FROM least(m.minute + interval '1 minute', t.terminated_at)
                                                       - greatest(m.minute, t.started_at))) AS d(seconds)
             WHERE d.seconds > 0
            ON CONFLICT (instance_id, minute) DO NOTHING
            RETURNING 1
         ),
         marked AS (
            INSERT INTO cost_watermarks (instance_id, until) SELECT id, to_minute FROM todo
            ON CONFLICT (instance_id) DO UPDATE SET until = greatest(cost_watermarks.until, EXCLUDED.until)
            RETURNING 1
         )
         SELECT (SELECT count(*) FROM marked) AS "instances!", (SELECT count(*) FROM written) AS "buckets!""#,
        until,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((done.instances, u64::try_from(done.buckets).unwrap_or(0)))
}

/// Runs a pass every `interval` until shutdown (when configured).
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let Some(interval) = state.config.cost_job_interval else {
        return;
    };
    let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match run_once(&state.db, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(buckets = n, "cost buckets written"),
            Err(e) => tracing::warn!(error = %e, "cost job failed; will retry"),
        }
        match super::adjustments::reconcile(&state.db, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(adjustments = n, "statement adjustments recorded"),
            Err(e) => tracing::warn!(error = %e, "statement adjustments failed; will retry"),
        }
        if let Err(e) = state.metrics.costs.refresh(&state.db, Utc::now()).await {
            tracing::warn!(error = %e, "month costs not measured; will retry");
        }
    }
}
