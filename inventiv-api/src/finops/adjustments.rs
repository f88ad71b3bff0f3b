//! Adjustments: the visible record of every change to amounts already
//! counted. Two reconcilers, both idempotent, run after each cost job pass:
//!
//! - A termination (any end time) recorded after the cost minutes past it
//!   were written reopens those minutes: the buckets are corrected (removed,
//!   or shortened to the end time) and, in the same transaction, one
//!   `late_termination` adjustment per affected month records who, what
//!   (the instance, the statement line), why, the amount and the period.
//! - The true-up compares each closed month (of the last
//!   [`TRUE_UP_MONTHS`]) with its snapshot: usage or cost minutes that
//!   arrived after the close become a `late_record` adjustment.
//!
//! An adjustment of an open month is already in that month's live lines; one
//! of a closed month lands in the first open month after it
//! (`statement_open_month`), chosen under the organization's statement lock
//! so that a month being closed cannot miss it.

use chrono::{DateTime, Months, Utc};
use inventiv_common::OrgId;
use sqlx::{PgConnection, PgPool};

use super::cost_job::LOCK_KEY;

/// Closed months older than this are no longer trued up (each pass reads
/// the usage of every month still in the window; late end times are
/// corrected whatever their age).
pub const TRUE_UP_MONTHS: u32 = 3;

/// The first key of the per-organization statement lock.
const STATEMENT_LOCK_CLASS: i32 = 0x57a7_0001;

/// Serializes the close of an organization's months with the adjustments
/// recorded for it (until the transaction ends).
pub async fn lock_org(tx: &mut PgConnection, org: OrgId) -> sqlx::Result<()> {
    sqlx::query!(
        r#"SELECT pg_advisory_xact_lock($1, hashtext($2::uuid::text)) AS "locked: ()""#,
        STATEMENT_LOCK_CLASS,
        org as OrgId,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Runs both reconcilers for every organization that needs them. Returns
/// the adjustments recorded; 0 also when the cost job holds its lock (the
/// next pass does the work).
pub async fn reconcile(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<u64> {
    let orgs = sqlx::query_scalar!(
        r#"SELECT i.organization_id AS "organization_id!" FROM instances i
          WHERE i.terminated_at IS NOT NULL
            AND EXISTS (SELECT 1 FROM cost_buckets b
                         WHERE b.instance_id = i.id AND b.minute + interval '1 minute' > i.terminated_at
                           AND b.seconds > greatest(extract(epoch FROM i.terminated_at - greatest(b.minute, i.started_at)), 0))
         UNION
         SELECT organization_id FROM statement_closes WHERE month >= $1"#,
        cutoff(now),
    )
    .fetch_all(db)
    .await?;
    let mut recorded = 0;
    for org in orgs {
        let mut tx = db.begin().await?;
        let locked = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
            LOCK_KEY
        )
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            return Ok(recorded);
        }
        lock_org(&mut tx, OrgId(org)).await?;
        recorded += correct_late_terminations(&mut tx, OrgId(org)).await?;
        recorded += true_up_org(&mut tx, OrgId(org), now).await?;
        tx.commit().await?;
    }
    Ok(recorded)
}

/// The first month still trued up at `now`.
fn cutoff(now: DateTime<Utc>) -> chrono::NaiveDate {
    let today = now.date_naive();
    today
        .checked_sub_months(Months::new(TRUE_UP_MONTHS))
        .unwrap_or(today)
}

/// Corrects the buckets of the organization's instances that run past
/// their recorded end, each correction with its adjustment (call under the
/// cost job's lock and the organization's statement lock).
async fn correct_late_terminations(tx: &mut PgConnection, org: OrgId) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"WITH fixed AS (
            SELECT b.instance_id, b.minute, b.provider, b.instance_type, i.terminated_at,
                   b.seconds AS old_seconds, b.cost_eur AS old_cost, n.seconds AS new_seconds,
                   round(b.price_eur_per_hour * n.seconds / 3600, 12) AS new_cost
              FROM instances i
              JOIN cost_buckets b ON b.instance_id = i.id AND b.minute + interval '1 minute' > i.terminated_at
              CROSS JOIN LATERAL (SELECT greatest(extract(epoch FROM i.terminated_at - greatest(b.minute, i.started_at)), 0)) AS n(seconds)
             WHERE i.organization_id = $1 AND i.terminated_at IS NOT NULL AND b.seconds > n.seconds
         ),
         removed AS (
            DELETE FROM cost_buckets b USING fixed f
             WHERE b.instance_id = f.instance_id AND b.minute = f.minute AND f.new_seconds = 0
         ),
         shortened AS (
            UPDATE cost_buckets b SET seconds = f.new_seconds, cost_eur = f.new_cost
              FROM fixed f
             WHERE b.instance_id = f.instance_id AND b.minute = f.minute AND f.new_seconds > 0
         ),
         months AS (
            SELECT instance_id, provider, instance_type, terminated_at,
                   date_trunc('month', minute AT TIME ZONE 'UTC')::date AS period_month,
                   greatest(min(minute), terminated_at) AS period_start, max(minute) + interval '1 minute' AS period_end,
                   sum(new_seconds - old_seconds) AS seconds, sum(new_cost - old_cost) AS amount
              FROM fixed GROUP BY 1, 2, 3, 4, 5
         )
         INSERT INTO statement_adjustments (organization_id, kind, line_key, label, instance_id, period_start, period_end,
                                            period_month, statement_month, gpu_seconds, amount_eur, reason, recorded_by)
         SELECT $1, 'late_termination', 'gpu:' || provider || ':' || instance_type, 'GPU time, ' || provider || ' ' || instance_type,
                instance_id, period_start, period_end, period_month, statement_open_month($1, period_month), seconds, amount,
                format('instance %s ended at %s: its end time was recorded after its cost minutes up to %s had been counted; those minutes are reopened and corrected',
                       instance_id, to_char(terminated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                'cost job'
           FROM months"#,
        org as OrgId,
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// Records, for each closed month of the organization (of the last
/// [`TRUE_UP_MONTHS`]), what its live lines hold beyond its snapshot and the
/// adjustments already carried from it (call under the organization's
/// statement lock). Running it twice records nothing more.
pub async fn true_up_org(
    tx: &mut PgConnection,
    org: OrgId,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "WITH closed AS (
            SELECT month FROM statement_closes WHERE organization_id = $1 AND month >= $2
         ),
         parts AS (
            SELECT c.month, l.key, l.label, l.exact_eur AS amount, l.gpu_seconds AS seconds
              FROM closed c
              CROSS JOIN LATERAL statement_live_lines($1, c.month::timestamp AT TIME ZONE 'UTC',
                                                      (c.month + interval '1 month')::timestamp AT TIME ZONE 'UTC') l
            UNION ALL
            SELECT s.month, s.line_key, s.label, -s.exact_eur, -s.gpu_seconds
              FROM statement_lines s JOIN closed c ON c.month = s.month
             WHERE s.organization_id = $1 AND s.kind <> 'adjustment'
            UNION ALL
            SELECT a.period_month, a.line_key, a.label, -a.amount_eur, -a.gpu_seconds
              FROM statement_adjustments a JOIN closed c ON c.month = a.period_month
             WHERE a.organization_id = $1 AND a.statement_month <> a.period_month
         ),
         missing AS (
            SELECT month, key, max(label) AS label, sum(amount) AS amount, sum(seconds) AS seconds
              FROM parts GROUP BY month, key HAVING sum(amount) <> 0
         )
         INSERT INTO statement_adjustments (organization_id, kind, line_key, label, period_start, period_end,
                                            period_month, statement_month, gpu_seconds, amount_eur, reason, recorded_by)
         SELECT $1, 'late_record', key, label, month::timestamp AT TIME ZONE 'UTC', (month + interval '1 month')::timestamp AT TIME ZONE 'UTC',
                month, statement_open_month($1, month), seconds, amount,
                format('recorded after %s was closed: usage or cost minutes of that month that its statement does not hold', to_char(month, 'YYYY-MM')),
                'statement true-up'
           FROM missing",
        org as OrgId,
        cutoff(now),
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}
