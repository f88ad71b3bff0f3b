//! Budgets off the request path: each budget's consumption this month (the
//! usage rows in Postgres, raised by what Redis already settled for hard
//! budgets; GPU hours from the cost minutes) with a linear forecast to the
//! month's end, and the watcher that every `INVENTIV_BUDGET_REFRESH_SECS`
//! reloads the hard budgets into the replica's admission cache, records
//! crossed thresholds (once per budget, metric, threshold and month: a
//! unique key, so replicas may race), mails them to the owners, and stops
//! an organization's instances past its GPU-hour limit when its budget
//! says so. Level-triggered: a missed round is caught up by the next.

use chrono::{DateTime, Utc};
use inventiv_common::messages::CommandKind;
use inventiv_common::{InstanceId, InstanceStatus, OrgId};
use inventiv_store::instances::{apply, Change};
use inventiv_store::outbox::enqueue;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::budget_levels::Level;
use crate::proxy::budgets::{self, month_of, Target};
use crate::state::AppState;

/// A stored budget.
#[derive(Clone)]
pub struct Row {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub scope: String,
    pub api_key_id: Option<Uuid>,
    pub share_id: Option<Uuid>,
    pub monthly_eur: Option<String>,
    pub monthly_tokens: Option<i64>,
    pub monthly_gpu_hours: Option<String>,
    pub thresholds: Vec<i16>,
    pub hard_limit: bool,
    pub stop_running: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The organization's budgets, or only the one with `id` (at most 1000,
/// oldest first).
pub async fn of_organization(
    db: &sqlx::PgPool,
    org: OrgId,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as!(
        Row,
        "SELECT id, organization_id, scope, api_key_id, share_id, monthly_eur::text AS monthly_eur,
                monthly_tokens, monthly_gpu_hours::text AS monthly_gpu_hours, thresholds, hard_limit, stop_running,
                created_at, updated_at
           FROM budgets WHERE organization_id = $1 AND ($2::uuid IS NULL OR id = $2)
          ORDER BY created_at, id LIMIT 1000",
        org as OrgId,
        id,
    )
    .fetch_all(db)
    .await
}

/// Every budget, for the watcher's round (the same columns as
/// [`of_organization`]).
async fn all(db: &sqlx::PgPool) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as!(
        Row,
        "SELECT id, organization_id, scope, api_key_id, share_id, monthly_eur::text AS monthly_eur,
                monthly_tokens, monthly_gpu_hours::text AS monthly_gpu_hours, thresholds, hard_limit, stop_running,
                created_at, updated_at
           FROM budgets",
    )
    .fetch_all(db)
    .await
}

impl Row {
    pub fn target(&self) -> Target {
        match (self.api_key_id, self.share_id) {
            (Some(k), _) => Target::ApiKey(k),
            (_, Some(s)) => Target::Share(s),
            _ => Target::Organization,
        }
    }
}

/// A budget's consumption in the current calendar month (UTC).
#[derive(Serialize, ToSchema, Clone, Debug)]
pub struct Consumption {
    /// `YYYY-MM`.
    pub month: String,
    /// EUR charged (usage_records.charged_eur: requests through shares; own
    /// models cost 0 per request), a decimal string.
    pub eur: String,
    /// Prompt + completion tokens.
    pub tokens: i64,
    /// GPU hours of the organization's instances (organization budgets).
    pub gpu_hours: f64,
    /// Held by requests in flight (hard budgets).
    pub reserved_eur: String,
    pub reserved_tokens: i64,
    /// Linear forecast to the month's end at this month's pace so far.
    pub forecast_eur: String,
    pub forecast_tokens: i64,
    pub forecast_gpu_hours: f64,
}

/// Nano-EUR as a decimal string with 4 decimals, rounded up.
pub fn eur(nano: i64) -> String {
    let tenths_of_milli = (i128::from(nano.max(0)) + 99_999) / 100_000;
    format!(
        "{}.{:04}",
        tenths_of_milli / 10_000,
        tenths_of_milli % 10_000
    )
}

/// The consumption at the month's end if it goes on at the pace so far
/// (at least one hour of the month counts as elapsed).
pub fn forecast(
    consumed: f64,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> f64 {
    let elapsed = (now - from).num_seconds().max(3600) as f64;
    let total = (until - from).num_seconds().max(1) as f64;
    if elapsed >= total {
        return consumed;
    }
    consumed * total / elapsed
}

/// The organization's GPU hours between `from` and `until` (cost minutes x GPUs).
pub async fn gpu_hours(
    db: &sqlx::PgPool,
    org: Uuid,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<f64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(c.seconds * COALESCE(t.gpu_count, 1)), 0)::float8 / 3600 AS "hours!"
             FROM cost_buckets c
             JOIN instances i ON i.id = c.instance_id
             LEFT JOIN instance_types t ON t.id = i.instance_type_id
            WHERE c.organization_id = $1 AND c.minute >= $2 AND c.minute < $3"#,
        org,
        from,
        until,
    )
    .fetch_one(db)
    .await
}

/// The organization's hard GPU-hour limit when it is reached this month:
/// (GPU hours used, the limit). New deployments are refused then.
pub async fn gpu_limit_reached(
    db: &sqlx::PgPool,
    org: Uuid,
) -> sqlx::Result<Option<(f64, String)>> {
    let limit = sqlx::query_scalar!(
        r#"SELECT monthly_gpu_hours::text AS "limit!" FROM budgets
            WHERE organization_id = $1 AND scope = 'organization' AND hard_limit AND monthly_gpu_hours IS NOT NULL"#,
        org,
    )
    .fetch_optional(db)
    .await?;
    let Some(limit) = limit else {
        return Ok(None);
    };
    let (_, from, until) = month_of(Utc::now());
    let used = gpu_hours(db, org, from, until).await?;
    Ok((used >= limit.parse::<f64>().unwrap_or(0.0)).then_some((used, limit)))
}

/// A budget's consumption now.
pub async fn consumption(state: &AppState, row: &Row) -> sqlx::Result<Consumption> {
    let now = Utc::now();
    let (month, from, until) = month_of(now);
    let (mut spent_eur, mut spent_tok) =
        budgets::metered(&state.db, row.organization_id, row.target(), from, until).await?;
    let (mut reserved_eur, mut reserved_tok) = (0, 0);
    if row.hard_limit {
        // What Redis settled and holds; unreachable Redis leaves the database's view.
        match budgets::raise(state, row.id, &month, (spent_eur, spent_tok)).await {
            Ok([e, t, re, rt]) => {
                (spent_eur, spent_tok) = (e, t);
                (reserved_eur, reserved_tok) = (re.max(0), rt.max(0));
            }
            Err(e) => tracing::warn!(error = %e, budget_id = %row.id, "budget counters unreadable"),
        }
    }
    let gpu = if row.scope == "organization" {
        gpu_hours(&state.db, row.organization_id, from, until).await?
    } else {
        0.0
    };
    let ahead = |v: f64| forecast(v, now, from, until);
    Ok(Consumption {
        month: from.format("%Y-%m").to_string(),
        eur: eur(spent_eur),
        tokens: spent_tok,
        gpu_hours: gpu,
        reserved_eur: eur(reserved_eur),
        reserved_tokens: reserved_tok,
        forecast_eur: eur(ahead(spent_eur as f64) as i64),
        forecast_tokens: ahead(spent_tok as f64) as i64,
        forecast_gpu_hours: ahead(gpu),
    })
}

/// (metric, consumed, monthly limit) for each limit the budget sets.
fn metrics(row: &Row, c: &Consumption) -> Vec<(&'static str, f64, f64)> {
    let number = |s: &str| s.parse::<f64>().unwrap_or(0.0);
    let mut out = Vec::new();
    if let Some(limit) = &row.monthly_eur {
        out.push(("eur", number(&c.eur), number(limit)));
    }
    if let Some(limit) = row.monthly_tokens {
        out.push(("tokens", c.tokens as f64, limit as f64));
    }
    if let Some(limit) = &row.monthly_gpu_hours {
        out.push(("gpu_hours", c.gpu_hours, number(limit)));
    }
    out
}

/// The share of a limit consumed, in percent (a zero limit is 100 % as
/// soon as anything is consumed).
pub fn percent(consumed: f64, limit: f64) -> f64 {
    if limit > 0.0 {
        consumed / limit * 100.0
    } else if consumed > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Records the thresholds a budget crossed this month (once each).
async fn record_alerts(state: &AppState, row: &Row, c: &Consumption) -> anyhow::Result<()> {
    let (_, from, _) = month_of(Utc::now());
    for (metric, consumed, limit) in metrics(row, c) {
        let pct = percent(consumed, limit);
        for threshold in row.thresholds.iter().filter(|t| pct >= f64::from(**t)) {
            let inserted = sqlx::query_scalar!(
                "INSERT INTO budget_alerts (budget_id, organization_id, month, metric, threshold, consumed, monthly_limit)
                 VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7::text::numeric)
                 ON CONFLICT (budget_id, month, metric, threshold) DO NOTHING RETURNING id",
                row.id,
                row.organization_id,
                from.date_naive(),
                metric,
                *threshold,
                format!("{consumed:.4}"),
                format!("{limit:.4}"),
            )
            .fetch_optional(&state.db)
            .await?;
            if let Some(id) = inserted {
                tracing::info!(budget_id = %row.id, metric, threshold, "budget threshold crossed");
                // Every member's live stream gets it: it says only that
                // an alert exists (the figures are for those who may read budgets).
                let event = inventiv_common::messages::Event::BudgetAlert {
                    organization_id: row.organization_id,
                    alert_id: id,
                };
                crate::events::publish(state, &event).await;
            }
        }
    }
    Ok(())
}

/// Terminates the organization's instances (its GPU-hour limit is reached
/// and its budget says to stop them), through the usual termination path.
async fn stop_instances(state: &AppState, org: Uuid) -> anyhow::Result<()> {
    let ids = sqlx::query_scalar!(
        "SELECT id FROM instances WHERE organization_id = $1
            AND status NOT IN ('terminating', 'terminated', 'archived')",
        org,
    )
    .fetch_all(&state.db)
    .await?;
    for id in ids {
        let mut tx = state.db.begin().await?;
        let change = Change {
            instance_id: InstanceId(id),
            to: InstanceStatus::Terminating,
            error: None,
            actor: "budget",
            request_id: None,
        };
        match apply(&mut tx, change).await {
            Ok((_, inventiv_common::instance::Transition::Changed)) => {
                enqueue(&mut tx, org, id, CommandKind::Terminate, None).await?;
                tx.commit().await?;
                tracing::warn!(instance_id = %id, organization_id = %org, "GPU-hour budget reached; instance terminated");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(instance_id = %id, error = %e, "instance not stopped for its budget")
            }
        }
    }
    state.outbox.notify_one();
    Ok(())
}

/// Mail attempts of an alert before it is given up (`mail_failed_at`).
const MAIL_ATTEMPTS: i32 = 8;

/// The wait in minutes before the next attempt after `attempts` failed
/// ones: 1, doubling, at most 6 h (eight attempts span about 4 h).
fn mail_backoff_minutes(attempts: i32) -> i32 {
    (1i32 << (attempts - 1).clamp(0, 9)).min(6 * 60)
}

/// Mails the alerts not yet mailed to their organization's owners. Sent
/// inside the transaction that marks them, so an alert is mailed at least
/// once, and twice only if the replica dies between sending and commit.
/// An alert whose mail fails is tried again later (see [`mail_backoff_minutes`])
/// and given up after [`MAIL_ATTEMPTS`]; the others are mailed meanwhile.
async fn mail_alerts(state: &AppState) -> anyhow::Result<()> {
    for _ in 0..100 {
        let mut tx = state.db.begin().await?;
        let pending = sqlx::query!(
            r#"SELECT a.id, a.organization_id, o.name, a.metric, a.threshold, a.consumed::text AS "consumed!",
                      a.monthly_limit::text AS "limit!",
                      CASE b.scope WHEN 'organization' THEN 'organization' WHEN 'api_key' THEN 'API key' ELSE 'share' END
                          AS "scope!",
                      a.budget_id, a.mail_attempts
                 FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id JOIN organizations o ON o.id = a.organization_id
                WHERE a.mailed_at IS NULL AND a.mail_failed_at IS NULL
                  AND (a.mail_next_at IS NULL OR a.mail_next_at <= now())
                ORDER BY a.id LIMIT 1 FOR UPDATE OF a SKIP LOCKED"#,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(a) = pending else {
            return Ok(());
        };
        let owners = sqlx::query_scalar!(
            "SELECT u.email FROM organization_memberships m JOIN users u ON u.id = m.user_id
              WHERE m.organization_id = $1 AND m.role = 'owner'",
            a.organization_id,
        )
        .fetch_all(&mut *tx)
        .await?;
        let unit = match a.metric.as_str() {
            "eur" => "EUR",
            "tokens" => "tokens",
            _ => "GPU hours",
        };
        let subject = format!(
            "Budget alert: {}% of a monthly {} budget used",
            a.threshold, a.scope
        );
        let text = format!(
            "The {} budget {} of the organization {} reached {}% of its \
             monthly limit: {} of {} {unit} used this month.\n\n\
             See the budgets: {}/budgets\n",
            a.scope,
            a.budget_id,
            crate::mail::quoted_name(&a.name),
            a.threshold,
            a.consumed,
            a.limit,
            state.config.public_url.trim_end_matches('/'),
        );
        let mut sent = Ok(());
        for to in owners {
            sent = state.mailer.send(&to, &subject, text.clone()).await;
            if sent.is_err() {
                break;
            }
        }
        match sent {
            Ok(()) => {
                sqlx::query!(
                    "UPDATE budget_alerts SET mailed_at = now() WHERE id = $1",
                    a.id
                )
                .execute(&mut *tx)
                .await?;
            }
            Err(e) => {
                let attempts = a.mail_attempts.saturating_add(1);
                let gave_up = attempts >= MAIL_ATTEMPTS;
                if gave_up {
                    tracing::error!(alert_id = a.id, budget_id = %a.budget_id, attempts, error = %e,
                                    "budget alert mail given up");
                } else {
                    tracing::warn!(alert_id = a.id, budget_id = %a.budget_id, attempts, error = %e,
                                   "budget alert mail failed; tried again later");
                }
                let error: String = e.to_string().chars().take(500).collect();
                sqlx::query!(
                    "UPDATE budget_alerts SET mail_attempts = $2, mail_error = $3,
                            mail_next_at = now() + make_interval(mins => $4),
                            mail_failed_at = CASE WHEN $5 THEN now() END
                      WHERE id = $1",
                    a.id,
                    attempts,
                    error,
                    mail_backoff_minutes(attempts),
                    gave_up,
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// One round: reload, measure, alert, stop, mail.
pub async fn reconcile(state: &AppState) -> anyhow::Result<()> {
    state.budgets.refresh(state).await?;
    let rows = all(&state.db).await?;
    let mut levels = Vec::with_capacity(rows.len());
    for row in &rows {
        // One budget's failure leaves the others their round.
        match watch(state, row).await {
            Ok(measured) => levels.extend(measured),
            Err(e) => {
                tracing::warn!(error = %e, budget_id = %row.id, "budget not watched this round")
            }
        }
    }
    state.metrics.budgets.set(levels);
    mail_alerts(state).await
}

/// Alerts and stops for one budget; its levels, for the metrics.
async fn watch(state: &AppState, row: &Row) -> anyhow::Result<Vec<Level>> {
    let c = consumption(state, row).await?;
    record_alerts(state, row, &c).await?;
    let number = |s: &str| s.parse::<f64>().unwrap_or(0.0);
    let forecasts = [
        ("eur", number(&c.forecast_eur)),
        ("tokens", c.forecast_tokens as f64),
        ("gpu_hours", c.forecast_gpu_hours),
    ];
    let levels = metrics(row, &c)
        .into_iter()
        .map(|(metric, consumed, limit)| {
            let ahead = forecasts
                .iter()
                .find(|(m, _)| *m == metric)
                .map_or(consumed, |(_, f)| *f);
            Level {
                organization_id: row.organization_id,
                budget_id: row.id,
                metric,
                ratio: percent(consumed, limit) / 100.0,
                forecast_ratio: percent(ahead, limit) / 100.0,
            }
        })
        .collect();
    let over = row
        .monthly_gpu_hours
        .as_deref()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|limit| c.gpu_hours >= limit);
    if over && row.stop_running {
        stop_instances(state, row.organization_id).await?;
    }
    Ok(levels)
}

/// Runs the watcher until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.budget_refresh);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = reconcile(&state).await {
            tracing::warn!(error = %e, "budget round failed; next round retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn failed_alert_mails_wait_longer_each_time_up_to_six_hours() {
        let waits: Vec<i32> = (1..=MAIL_ATTEMPTS).map(mail_backoff_minutes).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128]);
        assert_eq!(mail_backoff_minutes(40), 360);
    }

    #[test]
    fn nano_euros_print_with_four_decimals_rounded_up() {
        assert_eq!(eur(0), "0.0000");
        assert_eq!(eur(1), "0.0001");
        assert_eq!(eur(12_345_600_000), "12.3456");
        assert_eq!(eur(-5), "0.0000");
    }

    #[test]
    fn the_forecast_is_linear_to_the_month_end() {
        let from = Utc
            .with_ymd_and_hms(2026, 4, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let until = Utc
            .with_ymd_and_hms(2026, 5, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let mid = Utc
            .with_ymd_and_hms(2026, 4, 16, 0, 0, 0)
            .single()
            .unwrap_or_default();
        assert!((forecast(10.0, mid, from, until) - 20.0).abs() < 1e-9);
        assert!((forecast(10.0, until, from, until) - 10.0).abs() < 1e-9);
        // The first hour counts as one hour, not as a division by zero.
        assert!(forecast(1.0, from, from, until).is_finite());
        assert!(percent(1.0, 0.0).is_infinite());
        assert!((percent(5.0, 10.0) - 50.0).abs() < 1e-9);
    }
}
