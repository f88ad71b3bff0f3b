//! Monthly statements you can bill on: the lines of one organization's
//! month (GPU time, calls through shares, adjustments carried from closed
//! months), live while the month is open and a stored, immutable snapshot
//! once it is closed. Each line's amount is its exact amount rounded half
//! away from zero to the cent; every total is the exact sum of those cents.
//! The line queries live in the migrations (`statement_live_lines`,
//! `statement_month_lines`, `statement_open_month`) so the close, the
//! true-up and the reads agree.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use inventiv_common::OrgId;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::adjustments;

/// A calendar month (UTC), from 2000-01 to 2999-12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month(NaiveDate);

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Month> {
        if s.len() != 7 || s.as_bytes()[4] != b'-' {
            return None;
        }
        let first = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()?;
        (2000..=2999)
            .contains(&first.year())
            .then_some(Month(first))
    }

    /// Its first day.
    pub fn first_day(self) -> NaiveDate {
        self.0
    }

    /// When it starts (inclusive) and ends (exclusive).
    pub fn bounds(self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = Utc.from_utc_datetime(&self.0.and_time(chrono::NaiveTime::MIN));
        let end = self
            .0
            .checked_add_months(chrono::Months::new(1))
            .map_or(start, |d| {
                Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
            });
        (start, end)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m"))
    }
}

/// One line of a statement. Amounts are signed as they weigh on the
/// organization: GPU time and calls to others positive, calls served to
/// others negative, an adjustment as the change it makes.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthLine {
    /// `gpu`, `debit`, `credit` or `adjustment`.
    pub kind: String,
    pub label: String,
    /// The month the amount belongs to (`YYYY-MM`); earlier than the
    /// statement's month for an adjustment carried from a closed month.
    pub source_month: String,
    /// GPU seconds (GPU lines, and adjustments of them).
    pub gpu_seconds: Option<String>,
    pub requests: Option<i64>,
    pub tokens: Option<i64>,
    /// Of the call lines' prompt tokens, those served from the engine's
    /// prefix cache (their charge is at the offering's cached rate).
    pub cached_tokens: Option<i64>,
    /// The exact amount (EUR).
    pub exact_eur: String,
    /// The exact amount rounded half away from zero to the cent (EUR).
    pub amount_eur: String,
    /// The adjustment this line carries.
    pub adjustment_id: Option<Uuid>,
    /// The instance an adjustment is about.
    pub instance_id: Option<Uuid>,
    /// Why an adjustment was recorded.
    pub reason: Option<String>,
}

/// Who closed a month, and when.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthClosure {
    pub closed_at: DateTime<Utc>,
    pub closed_by_email: String,
    pub note: Option<String>,
}

/// Sums of the lines' cents, per kind and in all (EUR, 2 decimals).
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthTotals {
    pub gpu_eur: String,
    pub debit_eur: String,
    pub credit_eur: String,
    pub adjustments_eur: String,
    /// What the month weighs on the organization: the sum of every line.
    pub total_eur: String,
}

/// A correction recorded for this month's amounts while it was open: the
/// cost minutes were corrected in place, so its amount is already in the
/// lines; listed so that no correction is silent.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthCorrection {
    pub id: Uuid,
    /// `late_termination` or `late_record`.
    pub kind: String,
    pub label: String,
    pub instance_id: Option<Uuid>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub gpu_seconds: Option<String>,
    pub amount_eur: String,
    pub reason: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// One organization's statement of one month.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthStatement {
    pub month: String,
    /// Present once the month is closed: the statement is then a snapshot
    /// that never changes.
    pub closed: Option<MonthClosure>,
    pub totals: MonthTotals,
    pub lines: Vec<MonthLine>,
    pub corrections: Vec<MonthCorrection>,
}

/// The statement of `month`: the snapshot when closed, else the live lines.
pub async fn load(db: &PgPool, org: OrgId, month: Month) -> sqlx::Result<MonthStatement> {
    let mut conn = db.acquire().await?;
    let head = sqlx::query!(
        r#"SELECT closed_at, closed_by_email, note, total_eur::text AS "total_eur!"
             FROM statement_closes WHERE organization_id = $1 AND month = $2"#,
        org as OrgId,
        month.first_day(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (closed, stored_total) = match head {
        Some(h) => (
            Some(MonthClosure {
                closed_at: h.closed_at,
                closed_by_email: h.closed_by_email,
                note: h.note,
            }),
            Some(h.total_eur),
        ),
        None => (None, None),
    };
    let (start, end) = month.bounds();
    // A closed month's stored lines and an open month's live ones
    // (`statement_month_lines`, what a close stores) read out alike.
    let lines = if closed.is_some() {
        sqlx::query_as!(
            MonthLine,
            r#"SELECT kind, label, to_char(source_month, 'YYYY-MM') AS "source_month!",
                      trim_scale(gpu_seconds)::text AS gpu_seconds, requests, tokens, cached_tokens,
                      trim_scale(exact_eur)::text AS "exact_eur!", amount_eur::numeric(16, 2)::text AS "amount_eur!",
                      adjustment_id, instance_id, reason
                 FROM statement_lines WHERE organization_id = $1 AND month = $2 ORDER BY position"#,
            org as OrgId,
            month.first_day(),
        )
        .fetch_all(&mut *conn)
        .await?
    } else {
        sqlx::query_as!(
            MonthLine,
            r#"SELECT kind AS "kind!", label AS "label!", to_char(source_month, 'YYYY-MM') AS "source_month!",
                      trim_scale(gpu_seconds)::text AS gpu_seconds, requests, tokens, cached_tokens,
                      trim_scale(exact_eur)::text AS "exact_eur!", amount_eur::numeric(16, 2)::text AS "amount_eur!",
                      adjustment_id, instance_id, reason
                 FROM statement_month_lines($1, $2, $3, $4) ORDER BY "position""#,
            org as OrgId,
            start,
            end,
            month.first_day(),
        )
        .fetch_all(&mut *conn)
        .await?
    };
    let mut totals = totals(&mut conn, &lines).await?;
    // A closed month answers with the total stored at its close (equal to
    // the sum of its stored lines, which the tests hold it to).
    if let Some(total) = stored_total {
        totals.total_eur = total;
    }
    let corrections = sqlx::query_as!(
        MonthCorrection,
        r#"SELECT id, kind, label, instance_id, period_start, period_end, trim_scale(gpu_seconds)::text AS gpu_seconds,
                  trim_scale(amount_eur)::text AS "amount_eur!", reason, recorded_by, recorded_at
             FROM statement_adjustments WHERE organization_id = $1 AND statement_month = $2 AND period_month = $2
            ORDER BY recorded_at, id"#,
        org as OrgId,
        month.first_day(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(MonthStatement {
        month: month.to_string(),
        closed,
        totals,
        lines,
        corrections,
    })
}

/// Sums the lines' cents exactly (numeric, in the database).
async fn totals(conn: &mut PgConnection, lines: &[MonthLine]) -> sqlx::Result<MonthTotals> {
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind.as_str()).collect();
    let amounts: Vec<&str> = lines.iter().map(|l| l.amount_eur.as_str()).collect();
    sqlx::query_as!(
        MonthTotals,
        r#"SELECT (COALESCE(sum(a::numeric) FILTER (WHERE k = 'gpu'), 0))::numeric(16, 2)::text AS "gpu_eur!",
                  (COALESCE(sum(a::numeric) FILTER (WHERE k = 'debit'), 0))::numeric(16, 2)::text AS "debit_eur!",
                  (COALESCE(sum(a::numeric) FILTER (WHERE k = 'credit'), 0))::numeric(16, 2)::text AS "credit_eur!",
                  (COALESCE(sum(a::numeric) FILTER (WHERE k = 'adjustment'), 0))::numeric(16, 2)::text AS "adjustments_eur!",
                  (COALESCE(sum(a::numeric), 0))::numeric(16, 2)::text AS "total_eur!"
             FROM unnest($1::text[], $2::text[]) AS t(k, a)"#,
        &kinds[..] as &[&str],
        &amounts[..] as &[&str],
    )
    .fetch_one(conn)
    .await
}

/// Why a month cannot be closed.
#[derive(Debug)]
pub enum CloseError {
    /// The month has not ended yet.
    NotOver,
    /// It is closed already.
    AlreadyClosed,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for CloseError {
    fn from(e: sqlx::Error) -> Self {
        CloseError::Db(e)
    }
}

/// Who closes a month, and their note.
pub struct Closer<'a> {
    pub user_id: Uuid,
    pub email: &'a str,
    pub note: Option<&'a str>,
}

/// Closes `month` for `org` in the caller's transaction: first carries into
/// it whatever arrived late for earlier closed months (as adjustments), then
/// stores its lines and total in one statement, under the organization's
/// statement lock.
pub async fn close(
    tx: &mut PgConnection,
    org: OrgId,
    month: Month,
    by: Closer<'_>,
    now: DateTime<Utc>,
) -> Result<(), CloseError> {
    let (start, end) = month.bounds();
    if end > now {
        return Err(CloseError::NotOver);
    }
    adjustments::lock_org(&mut *tx, org).await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM statement_closes WHERE organization_id = $1 AND month = $2) AS "exists!""#,
        org as OrgId,
        month.first_day(),
    )
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Err(CloseError::AlreadyClosed);
    }
    adjustments::true_up_org(&mut *tx, org, now).await?;
    sqlx::query!(
        "WITH lines AS (SELECT * FROM statement_month_lines($1, $2, $3, $4)),
         head AS (
            INSERT INTO statement_closes (organization_id, month, closed_by, closed_by_email, note, total_eur)
            SELECT $1, $4, $5, $6, $7, COALESCE(sum(amount_eur), 0) FROM lines
            RETURNING 1)
         INSERT INTO statement_lines (organization_id, month, position, kind, line_key, label, source_month, gpu_seconds,
                                      requests, tokens, cached_tokens, exact_eur, amount_eur, adjustment_id, instance_id, reason)
         SELECT $1, $4, l.position, l.kind, l.line_key, l.label, l.source_month, l.gpu_seconds, l.requests, l.tokens,
                l.cached_tokens, l.exact_eur, l.amount_eur, l.adjustment_id, l.instance_id, l.reason
           FROM lines l CROSS JOIN head",
        org as OrgId,
        start,
        end,
        month.first_day(),
        by.user_id,
        by.email,
        by.note,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
