//! Usage drift: the proxy's own metering reconciled, per instance, with the
//! engines' token counters (`vllm:prompt_tokens_total`,
//! `vllm:generation_tokens_total`) that the worker agent reports in its
//! heartbeats (`instance_token_counters`).
//!
//! A pass runs under a transaction-scoped advisory lock (one replica at a
//! time) over the window `[now - settle - window, now - settle]`: it ends a
//! little in the past because usage rows are written by a batching writer
//! after the answer. The counters are cut into spans over which one series
//! only grew (a new agent boot, an engine restart or a counter that went
//! down starts a new span; what happened between two spans is unknown to
//! both sides and left out), and the proxy's `usage_records` of the
//! instance are summed over exactly those spans. The counters are the
//! tenant's word: this is a detection signal, never a billing input.
//!
//! The latest result per instance is kept in
//! `instance_usage_reconciliations`; a move into `alert` (or out of it) is
//! recorded in the instance's action log and published as an
//! `instance.usage_drift` event. The clock is a parameter so tests drive it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::UsageDrift;
use crate::state::AppState;

mod verdict;
pub use verdict::{judge, spans, Counts, DriftStatus, Sample, Span};

/// The advisory lock key of the drift job (any constant unique to it).
pub const LOCK_KEY: i64 = 0x1f1a_c057_0b0c_0002;

/// How long counter samples are kept: two windows, so a window always
/// finds the samples it starts with.
pub fn counter_retention(window: Duration, settle: Duration) -> Duration {
    window * 2 + settle
}

/// The latest reconciliation of an instance, as the instance answer carries it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageReconciliation {
    pub checked_at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Seconds of the window covered by counter spans.
    pub covered_seconds: f64,
    /// Prompt tokens the engines counted over the covered spans.
    pub engine_prompt: i64,
    /// Tokens the engines generated over the covered spans.
    pub engine_generation: i64,
    /// Prompt tokens the proxy metered over the same spans.
    pub proxy_prompt: i64,
    /// Completion tokens the proxy metered over the same spans.
    pub proxy_completion: i64,
    /// `|engine - proxy| / max(engine, 1)`, the larger of prompt and generation.
    pub drift_ratio: f64,
    pub status: DriftStatus,
    /// Times this instance went into `alert`.
    pub alerts: i64,
}

/// What a pass concluded for one instance.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub instance_id: Uuid,
    pub organization_id: Uuid,
    pub reconciliation: UsageReconciliation,
    /// The status before this pass (None: first reconciliation).
    pub previous: Option<DriftStatus>,
}

/// Reconciles every instance with counters in the window (and those whose
/// last verdict was not `insufficient_data`, so a stale alert clears).
/// Returns the outcomes; none when another replica holds the lock.
pub async fn run_once(state: &AppState, now: DateTime<Utc>) -> sqlx::Result<Vec<Outcome>> {
    let settings = &state.config.usage_drift;
    let end = now - to_chrono(settings.settle);
    let start = end - to_chrono(settings.window);
    let mut tx = state.db.begin().await?;
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
        LOCK_KEY
    )
    .fetch_one(&mut *tx)
    .await?;
    if !locked {
        return Ok(Vec::new());
    }
    let instances = sqlx::query!(
        r#"SELECT instance_id AS "instance_id!", organization_id AS "organization_id!"
             FROM instance_token_counters WHERE sampled_at BETWEEN $1 AND $2
           UNION
           SELECT instance_id, organization_id FROM instance_usage_reconciliations WHERE status <> 'insufficient_data'
           ORDER BY 1"#,
        start,
        end,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut outcomes = Vec::with_capacity(instances.len());
    for i in instances {
        let outcome = reconcile(
            &mut tx,
            settings,
            i.instance_id,
            i.organization_id,
            start,
            end,
            now,
        )
        .await?;
        outcomes.push(outcome);
    }
    tx.commit().await?;
    for o in &outcomes {
        announce(state, o).await;
    }
    Ok(outcomes)
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// One instance: spans, both counts, the verdict, stored; a move into or
/// out of `alert` is written to the action log in the same transaction.
async fn reconcile(
    tx: &mut sqlx::PgConnection,
    settings: &UsageDrift,
    instance_id: Uuid,
    organization_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<Outcome> {
    let samples = sqlx::query_as!(
        Sample,
        "SELECT sampled_at, series, prompt_total, generation_total FROM instance_token_counters
          WHERE instance_id = $1 AND sampled_at BETWEEN $2 AND $3 ORDER BY sampled_at",
        instance_id,
        start,
        end,
    )
    .fetch_all(&mut *tx)
    .await?;
    let spans = spans(&samples);
    let (from, to): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) =
        spans.iter().map(|s| (s.from, s.to)).unzip();
    let proxy = sqlx::query!(
        r#"SELECT COALESCE(sum(u.prompt_tokens), 0)::bigint AS "prompt!",
                  COALESCE(sum(u.completion_tokens), 0)::bigint AS "completion!"
             FROM unnest($2::timestamptz[], $3::timestamptz[]) AS s(f, t)
             JOIN usage_records u ON u.instance_id = $1 AND u.at >= s.f AND u.at < s.t"#,
        instance_id,
        &from[..],
        &to[..],
    )
    .fetch_one(&mut *tx)
    .await?;
    let counts = Counts {
        engine_prompt: spans.iter().map(|s| s.prompt).sum(),
        engine_generation: spans.iter().map(|s| s.generation).sum(),
        proxy_prompt: proxy.prompt,
        proxy_completion: proxy.completion,
    };
    let covered: f64 = spans
        .iter()
        .map(|s| (s.to - s.from).num_milliseconds() as f64 / 1000.0)
        .sum();
    let (drift, status) = judge(counts, settings.threshold, settings.min_tokens);
    let previous = sqlx::query_scalar!(
        "SELECT status FROM instance_usage_reconciliations WHERE instance_id = $1 FOR UPDATE",
        instance_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let previous = previous.as_deref().map(|p| match p {
        "ok" => DriftStatus::Ok,
        "alert" => DriftStatus::Alert,
        _ => DriftStatus::InsufficientData,
    });
    let raised = status == DriftStatus::Alert && previous != Some(DriftStatus::Alert);
    let alerts = sqlx::query_scalar!(
        "INSERT INTO instance_usage_reconciliations (instance_id, organization_id, checked_at, window_start, window_end,
                covered_seconds, engine_prompt, engine_generation, proxy_prompt, proxy_completion, drift_ratio, status, alerts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::int)
         ON CONFLICT (instance_id) DO UPDATE SET checked_at = EXCLUDED.checked_at, window_start = EXCLUDED.window_start,
                window_end = EXCLUDED.window_end, covered_seconds = EXCLUDED.covered_seconds,
                engine_prompt = EXCLUDED.engine_prompt, engine_generation = EXCLUDED.engine_generation,
                proxy_prompt = EXCLUDED.proxy_prompt, proxy_completion = EXCLUDED.proxy_completion,
                drift_ratio = EXCLUDED.drift_ratio, status = EXCLUDED.status,
                alerts = instance_usage_reconciliations.alerts + $13::int
         RETURNING alerts",
        instance_id,
        organization_id,
        now,
        start,
        end,
        covered,
        counts.engine_prompt,
        counts.engine_generation,
        counts.proxy_prompt,
        counts.proxy_completion,
        drift,
        status.as_str(),
        i32::from(raised),
    )
    .fetch_one(&mut *tx)
    .await?;
    let reconciliation = UsageReconciliation {
        checked_at: now,
        window_start: start,
        window_end: end,
        covered_seconds: covered,
        engine_prompt: counts.engine_prompt,
        engine_generation: counts.engine_generation,
        proxy_prompt: counts.proxy_prompt,
        proxy_completion: counts.proxy_completion,
        drift_ratio: drift,
        status,
        alerts,
    };
    let outcome = Outcome {
        instance_id,
        organization_id,
        reconciliation,
        previous,
    };
    if let Some((action, log_status, message)) = transition(&outcome, settings.threshold) {
        let failed = log_status == "failed";
        sqlx::query!(
            "INSERT INTO action_logs (organization_id, instance_id, action_type, status, started_at, finished_at,
                                      duration_ms, error_code, error_message, metadata)
             VALUES ($1, $2, $3, $4, $5, $5, 0, $6, $7, $8)",
            organization_id,
            instance_id,
            action,
            log_status,
            now,
            failed.then_some("USAGE_DRIFT"),
            failed.then_some(message.as_str()),
            serde_json::json!({ "message": message, "usage_reconciliation": outcome.reconciliation }),
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(outcome)
}

/// The action-log line of a move into or out of `alert`: (action type,
/// status, message); None when nothing changed that way.
fn transition(o: &Outcome, threshold: f64) -> Option<(&'static str, &'static str, String)> {
    let r = &o.reconciliation;
    match (o.previous, r.status) {
        (Some(DriftStatus::Alert), DriftStatus::Alert) => None,
        (_, DriftStatus::Alert) => Some((
            "USAGE_DRIFT_ALERT",
            "failed",
            format!(
                "metered tokens differ from the engines' counters by {:.2} % (threshold {:.2} %): engines {} prompt / {} generated, proxy {} / {}",
                r.drift_ratio * 100.0,
                threshold * 100.0,
                r.engine_prompt,
                r.engine_generation,
                r.proxy_prompt,
                r.proxy_completion
            ),
        )),
        (Some(DriftStatus::Alert), DriftStatus::Ok) => Some((
            "USAGE_DRIFT_CLEARED",
            "success",
            format!(
                "metered tokens agree with the engines' counters again ({:.2} %)",
                r.drift_ratio * 100.0
            ),
        )),
        (Some(DriftStatus::Alert), DriftStatus::InsufficientData) => Some((
            "USAGE_DRIFT_CLEARED",
            "success",
            "too few tokens (or no engine counters) in the window to conclude".to_owned(),
        )),
        _ => None,
    }
}

/// Publishes an `instance.usage_drift` event when the verdict moved into
/// or out of `alert`.
async fn announce(state: &AppState, o: &Outcome) {
    let moved =
        (o.previous == Some(DriftStatus::Alert)) != (o.reconciliation.status == DriftStatus::Alert);
    if !moved {
        return;
    }
    if o.reconciliation.status == DriftStatus::Alert {
        tracing::warn!(instance_id = %o.instance_id, drift_ratio = o.reconciliation.drift_ratio,
                       "metered usage drifts from the engines' counters");
    } else {
        tracing::info!(instance_id = %o.instance_id, "usage drift cleared");
    }
    let usage_reconciliation = match serde_json::to_value(&o.reconciliation) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, instance_id = %o.instance_id, "drift event not encoded");
            return;
        }
    };
    let event = inventiv_common::messages::Event::UsageDrift {
        organization_id: o.organization_id,
        instance_id: o.instance_id,
        usage_reconciliation,
    };
    crate::events::publish(state, &event).await;
}

/// Runs a pass every interval until shutdown (when configured).
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let Some(interval) = state.config.usage_drift.interval else {
        return;
    };
    let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match run_once(&state, Utc::now()).await {
            Ok(outcomes) => {
                tracing::debug!(instances = outcomes.len(), "usage drift reconciled");
            }
            Err(e) => tracing::warn!(error = %e, "usage drift job failed; will retry"),
        }
    }
}
