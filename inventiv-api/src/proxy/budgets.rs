//! Hard budgets at `/v1` admission, shared by every replica through Redis.
//!
//! A request reserves its worst case (see [`Bounds::worst_case`]) against
//! every hard budget that applies to it (its organization's, its API
//! key's, its share's): tokens for token limits, tokens × the share's price
//! for EUR limits (own models cost 0 per request, so EUR limits only see
//! shared models). One Lua script checks `spent + reserved + this ≤ limit`
//! for all of them and reserves in all of them, atomically; a refusal is a
//! 429 `insufficient_quota` naming the budget. At completion the
//! reservation is replaced by the exact charge; a request that fails or is
//! dropped releases it. So the month's spending never exceeds a limit by
//! more than what the requests in flight reserved (and not at all while
//! each request's charge stays within its reservation, which the plausible
//! bounds guarantee when the request sets `max_tokens` or the model's
//! context length is known).
//!
//! A reservation its replica never settles (it died) expires after
//! `INVENTIV_BUDGET_RESERVATION_TTL_SECS`; the next admission on that
//! budget drops it. The spent counters (`budget_store.rs`) are seeded from
//! this month's usage rows in Postgres on first use, and the budget
//! watcher raises them to the database's sum when it is higher (never
//! lowers them: settled requests reach the database later).
//! Organizations without hard budgets cost no Redis round trip.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use uuid::Uuid;

use super::budget_store::{keys, ADMIT, MONTH_TTL_SECS, SETTLE};
pub use super::budget_store::{metered, month_of, raise};
use super::error::OpenAiError;
use super::plausible::Bounds;
use crate::state::AppState;

/// What a hard budget covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Organization,
    ApiKey(Uuid),
    Share(Uuid),
}

impl Target {
    /// How a refusal names the budget.
    fn describe(self) -> String {
        match self {
            Target::Organization => "the organization's budget".to_owned(),
            Target::ApiKey(k) => format!("the budget of API key {k}"),
            Target::Share(s) => format!("the budget of share {s}"),
        }
    }
}

/// A hard budget as admission sees it.
#[derive(Debug, Clone)]
pub struct HardBudget {
    pub id: Uuid,
    pub target: Target,
    /// Monthly limits: nano-EUR and tokens.
    pub eur_nano: Option<i64>,
    pub tokens: Option<i64>,
}

/// A share's price in nano-EUR per 1k tokens (capped by the consumer's maximum).
#[derive(Debug, Clone, Copy)]
pub struct Price {
    pub input: i64,
    /// Cached prompt tokens' rate (the input rate when the price sets none).
    pub cached: i64,
    pub output: i64,
}

impl Price {
    /// The charge of `prompt` tokens (`cached` of them at the cached rate)
    /// and `completion` tokens in nano-EUR, rounded up.
    pub fn charge(self, prompt: i64, cached: i64, completion: i64) -> i64 {
        let cached = cached.clamp(0, prompt.max(0));
        let total = i128::from(prompt - cached) * i128::from(self.input)
            + i128::from(cached) * i128::from(self.cached)
            + i128::from(completion) * i128::from(self.output);
        i64::try_from((total + 999) / 1000).unwrap_or(i64::MAX)
    }
}

#[derive(Default)]
struct Table {
    /// Hard budgets per organization.
    hard: HashMap<Uuid, Vec<HardBudget>>,
    /// Prices of the shares consumed by organizations with EUR budgets.
    prices: HashMap<Uuid, Price>,
}

/// The replica's copy of the hard budgets, reloaded by the budget watcher.
#[derive(Clone, Default)]
pub struct BudgetCache(Arc<RwLock<Arc<Table>>>);

type BudgetRow = (
    Uuid,
    Uuid,
    String,
    Option<Uuid>,
    Option<Uuid>,
    Option<i64>,
    Option<i64>,
);

impl BudgetCache {
    fn snapshot(&self) -> Arc<Table> {
        self.0.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Reloads the hard budgets and the prices they need.
    pub async fn refresh(&self, state: &AppState) -> sqlx::Result<()> {
        let rows: Vec<BudgetRow> = sqlx::query_as(
            "SELECT id, organization_id, scope, api_key_id, share_id,
                    ceil(monthly_eur * 1000000000)::bigint, monthly_tokens
               FROM budgets
              WHERE hard_limit AND (monthly_eur IS NOT NULL OR monthly_tokens IS NOT NULL)",
        )
        .fetch_all(&state.db)
        .await?;
        let prices: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
            "SELECT s.id,
                    ceil(LEAST(v.input_eur_per_1k, COALESCE(s.max_input_eur_per_1k, v.input_eur_per_1k)) * 1000000000)::bigint,
                    ceil(LEAST(v.cached_input_eur_per_1k, COALESCE(s.max_input_eur_per_1k, v.cached_input_eur_per_1k)) * 1000000000)::bigint,
                    ceil(LEAST(v.output_eur_per_1k, COALESCE(s.max_output_eur_per_1k, v.output_eur_per_1k)) * 1000000000)::bigint
               FROM offering_shares s
               JOIN LATERAL share_price(s.id, now(), make_interval(secs => $1)) v ON true
              WHERE s.consumer_organization_id IN
                    (SELECT organization_id FROM budgets WHERE hard_limit AND monthly_eur IS NOT NULL)",
        )
        .bind(state.config.price_notice.as_secs_f64())
        .fetch_all(&state.db)
        .await?;
        let mut table = Table::default();
        for (id, org, scope, key, share, eur_nano, tokens) in rows {
            let target = match (scope.as_str(), key, share) {
                ("api_key", Some(k), _) => Target::ApiKey(k),
                ("share", _, Some(s)) => Target::Share(s),
                _ => Target::Organization,
            };
            table.hard.entry(org).or_default().push(HardBudget {
                id,
                target,
                eur_nano,
                tokens,
            });
        }
        table.prices = prices
            .into_iter()
            .map(|(id, input, cached, output)| {
                (
                    id,
                    Price {
                        input,
                        cached,
                        output,
                    },
                )
            })
            .collect();
        if let Ok(mut t) = self.0.write() {
            *t = Arc::new(table);
        }
        Ok(())
    }
}

/// What one request is held to.
pub struct Request {
    pub organization_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub share_id: Option<Uuid>,
    pub bounds: Bounds,
    pub context_length: Option<i64>,
}

struct Held {
    state: AppState,
    id: String,
    month: String,
    budgets: Vec<Uuid>,
    price: Option<Price>,
}

/// A request's reservation: settled with the exact charge, or released
/// when dropped unsettled (the request failed, the client went away).
#[derive(Default)]
pub struct Reservation(Option<Held>);

/// Admits a request against its hard budgets, or answers 429
/// `insufficient_quota` naming the budget that would be exceeded.
pub async fn admit(state: &AppState, request: Request) -> Result<Reservation, OpenAiError> {
    let table = state.budgets.snapshot();
    let Some(all) = table.hard.get(&request.organization_id) else {
        return Ok(Reservation::default());
    };
    let price = request.share_id.and_then(|s| table.prices.get(&s).copied());
    let default = request
        .context_length
        .filter(|c| *c > 0)
        .unwrap_or(state.config.budget_default_max_tokens);
    let (prompt, completion) = request.bounds.worst_case(default);
    // The worst case: no prompt token cached.
    let eur = price.map_or(0, |p| p.charge(prompt, 0, completion));
    let tokens = prompt.saturating_add(completion);
    let applies: Vec<&HardBudget> = all
        .iter()
        .filter(|b| match b.target {
            Target::Organization => true,
            Target::ApiKey(k) => request.api_key_id == Some(k),
            Target::Share(s) => request.share_id == Some(s),
        })
        .filter(|b| b.tokens.is_some() || (b.eur_nano.is_some() && eur > 0))
        .collect();
    if applies.is_empty() {
        return Ok(Reservation::default());
    }
    // Boxed: the round trips' state is kilobytes, and most requests have
    // no budget that applies (the proxy's future stays small to move).
    Box::pin(async move {
        let now = Utc::now();
        let (month, from, until) = month_of(now);
        let id = Uuid::new_v4().simple().to_string();
        let expiry = now.timestamp()
            + i64::try_from(state.config.budget_reservation_ttl.as_secs()).unwrap_or(3600);
        let redis_error = |e: redis::RedisError| OpenAiError::from(crate::error::ApiError::from(e));
        // At most one seeding per budget, then the answer stands.
        for _ in 0..=applies.len() {
            let mut invocation = ADMIT.prepare_invoke();
            for b in &applies {
                for k in keys(state, b.id, &month) {
                    invocation.key(k);
                }
            }
            invocation
                .arg(now.timestamp())
                .arg(expiry)
                .arg(&id)
                .arg(MONTH_TTL_SECS);
            for b in &applies {
                invocation
                    .arg(b.eur_nano.unwrap_or(-1))
                    .arg(b.tokens.unwrap_or(-1))
                    .arg(eur)
                    .arg(tokens);
            }
            let mut redis = state.redis.clone();
            let answer: Vec<i64> = invocation
                .invoke_async(&mut redis)
                .await
                .map_err(redis_error)?;
            let index = answer
                .get(1)
                .and_then(|i| usize::try_from(*i).ok())
                .and_then(|i| i.checked_sub(1));
            let budget = index.and_then(|i| applies.get(i));
            match (answer.first().copied(), budget) {
                (Some(1), _) => {
                    return Ok(Reservation(Some(Held {
                        state: state.clone(),
                        id,
                        month,
                        budgets: applies.iter().map(|b| b.id).collect(),
                        price,
                    })))
                }
                (Some(-2), Some(b)) => {
                    let sums = metered(&state.db, request.organization_id, b.target, from, until)
                        .await
                        .map_err(|e| OpenAiError::from(crate::error::ApiError::from(e)))?;
                    raise(state, b.id, &month, sums)
                        .await
                        .map_err(redis_error)?;
                }
                (Some(-1), Some(b)) => {
                    let at = |i: usize| answer.get(i).copied().unwrap_or(0);
                    return Err(refusal(b, at(2) == 1, at(3), at(4)));
                }
                _ => break,
            }
        }
        Err(OpenAiError::from(crate::error::ApiError::Internal(
            anyhow::anyhow!("budget admission gave no answer"),
        )))
    })
    .await
}

/// Nano-EUR as the API shows money: a decimal string (never a float).
fn eur(nano: i64) -> String {
    format!("{} EUR", crate::budgets::eur(nano))
}

fn refusal(b: &HardBudget, is_eur: bool, spent: i64, reserved: i64) -> OpenAiError {
    let (limit, spent, reserved) = if is_eur {
        (eur(b.eur_nano.unwrap_or(0)), eur(spent), eur(reserved))
    } else {
        let t = |n: i64| format!("{n} tokens");
        (t(b.tokens.unwrap_or(0)), t(spent), t(reserved))
    };
    OpenAiError::insufficient_quota(format!(
        "{} ({}) would be exceeded: its monthly limit is {limit}; {spent} used this month and \
         {reserved} reserved by requests in flight, and this request may cost more than what is left",
        b.target.describe(),
        b.id
    ))
}

impl Held {
    async fn finish(self, eur: i64, tokens: i64) {
        let mut invocation = SETTLE.prepare_invoke();
        for b in &self.budgets {
            for k in keys(&self.state, *b, &self.month) {
                invocation.key(k);
            }
        }
        invocation.arg(&self.id);
        for _ in &self.budgets {
            invocation.arg(eur).arg(tokens);
        }
        let mut redis = self.state.redis.clone();
        let done: redis::RedisResult<i64> = invocation.invoke_async(&mut redis).await;
        if let Err(e) = done {
            // The reservation expires on its own; the watcher raises the
            // spent counters to the database's sums.
            tracing::warn!(error = %e, request_id = %crate::request_id::shown(), "budget reservation not settled");
        }
    }
}

impl Reservation {
    /// Replaces the reservation by the exact charge of what the meter
    /// billed (its bounded counts, `cached` of the prompt at the cached rate).
    pub async fn settle(mut self, prompt: i64, cached: i64, completion: i64) {
        if let Some(held) = self.0.take() {
            let eur = held
                .price
                .map_or(0, |p| p.charge(prompt, cached, completion));
            Box::pin(held.finish(eur, prompt + completion)).await;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(held) = self.0.take() {
            let tasks = held.state.tasks.clone();
            tasks.spawn(held.finish(0, 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_round_up_to_the_nano_euro() {
        let p = Price {
            input: 1_000_000,
            cached: 250_000,
            output: 3_000_000,
        };
        assert_eq!(p.charge(1000, 0, 1000), 4_000_000);
        // 600 cached of 1000: 400 x input + 600 x cached + 1000 x output.
        assert_eq!(p.charge(1000, 600, 1000), 3_550_000);
        // A cached count above the prompt is the whole prompt, never more.
        assert_eq!(p.charge(1000, 5000, 0), 250_000);
        assert_eq!(
            Price {
                input: 1,
                cached: 1,
                output: 0
            }
            .charge(1, 0, 0),
            1
        );
        assert_eq!(p.charge(0, 0, 0), 0);
    }
}
