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
//! Per budget and month (`YYYYMM` in the key, so a month starts empty):
//! a hash `bud:<id>:<month>` (`spent_eur` in nano-EUR, `spent_tok`,
//! `res_eur`, `res_tok`, `seeded`), the reservations `…:r` (id → amounts)
//! and their expiries `…:x` (sorted set). A reservation its replica never
//! settles (it died) expires after `INVENTIV_BUDGET_RESERVATION_TTL_SECS`;
//! the next admission on that budget drops it. The spent counters are
//! seeded from this month's usage rows in Postgres on first use, and the
//! budget watcher raises them to the database's sum when it is higher
//! (never lowers them: settled requests reach the database later).
//! Organizations without hard budgets cost no Redis round trip.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use uuid::Uuid;

use super::error::OpenAiError;
use super::plausible::Bounds;
use crate::state::AppState;

/// How long a month's counters are kept (past the month's end).
const MONTH_TTL_SECS: i64 = 40 * 86_400;

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
    pub output: i64,
}

impl Price {
    /// The charge of (prompt, completion) tokens in nano-EUR, rounded up.
    pub fn charge(self, prompt: i64, completion: i64) -> i64 {
        let total = i128::from(prompt) * i128::from(self.input)
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
        let prices: Vec<(Uuid, i64, i64)> = sqlx::query_as(
            "SELECT s.id,
                    ceil(LEAST(v.input_eur_per_1k, COALESCE(s.max_input_eur_per_1k, v.input_eur_per_1k)) * 1000000000)::bigint,
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
            .map(|(id, input, output)| (id, Price { input, output }))
            .collect();
        if let Ok(mut t) = self.0.write() {
            *t = Arc::new(table);
        }
        Ok(())
    }
}

/// The calendar month of `at`: its key part (`YYYYMM`) and its bounds.
pub fn month_of(at: DateTime<Utc>) -> (String, DateTime<Utc>, DateTime<Utc>) {
    let start = Utc
        .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(at);
    let (y, m) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(at);
    (start.format("%Y%m").to_string(), start, end)
}

fn keys(state: &AppState, budget: Uuid, month: &str) -> [String; 3] {
    let base = state.redis_key(&format!("bud:{budget}:{month}"));
    [format!("{base}:r"), format!("{base}:x"), base]
}

/// Drops expired reservations, then checks and reserves in every budget.
/// ARGV: now, expiry, reservation id, key ttl, then per budget: EUR limit,
/// token limit (-1: none), EUR amount, token amount.
/// Returns {1} (reserved), {-2, i} (budget i not seeded) or
/// {-1, i, metric (1 EUR, 2 tokens), spent, reserved}.
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local now = tonumber(ARGV[1])
local n = #KEYS / 3
for i = 1, n do
  local r, x, h = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  if redis.call('HEXISTS', h, 'seeded') == 0 then return {-2, i} end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', x, '-inf', now)) do
    local v = redis.call('HGET', r, id)
    if v then
      local e, t = string.match(v, '(%d+) (%d+)')
      redis.call('HINCRBY', h, 'res_eur', 0 - tonumber(e))
      redis.call('HINCRBY', h, 'res_tok', 0 - tonumber(t))
      redis.call('HDEL', r, id)
    end
    redis.call('ZREM', x, id)
  end
  local b = 4 + 4 * (i - 1)
  local lim_eur, lim_tok = tonumber(ARGV[b+1]), tonumber(ARGV[b+2])
  local amt_eur, amt_tok = tonumber(ARGV[b+3]), tonumber(ARGV[b+4])
  local s = redis.call('HMGET', h, 'spent_eur', 'spent_tok', 'res_eur', 'res_tok')
  local se, st = tonumber(s[1] or '0'), tonumber(s[2] or '0')
  local re, rt = tonumber(s[3] or '0'), tonumber(s[4] or '0')
  if lim_eur >= 0 and amt_eur > 0 and se + re + amt_eur > lim_eur then return {-1, i, 1, se, re} end
  if lim_tok >= 0 and st + rt + amt_tok > lim_tok then return {-1, i, 2, st, rt} end
end
for i = 1, n do
  local r, x, h = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local b = 4 + 4 * (i - 1)
  redis.call('HINCRBY', h, 'res_eur', ARGV[b+3])
  redis.call('HINCRBY', h, 'res_tok', ARGV[b+4])
  redis.call('HSET', r, ARGV[3], ARGV[b+3] .. ' ' .. ARGV[b+4])
  redis.call('ZADD', x, ARGV[2], ARGV[3])
  for _, k in ipairs({r, x, h}) do redis.call('EXPIRE', k, ARGV[4]) end
end
return {1}
",
    )
});

/// Replaces a reservation by the exact charge (0, 0 to release it).
/// ARGV: reservation id, then per budget: EUR, tokens.
static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
for i = 1, #KEYS / 3 do
  local r, x, h = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local v = redis.call('HGET', r, ARGV[1])
  if v then
    local e, t = string.match(v, '(%d+) (%d+)')
    redis.call('HINCRBY', h, 'res_eur', 0 - tonumber(e))
    redis.call('HINCRBY', h, 'res_tok', 0 - tonumber(t))
    redis.call('HDEL', r, ARGV[1])
    redis.call('ZREM', x, ARGV[1])
  end
  if redis.call('HEXISTS', h, 'seeded') == 1 then
    redis.call('HINCRBY', h, 'spent_eur', ARGV[2*i])
    redis.call('HINCRBY', h, 'spent_tok', ARGV[2*i+1])
  end
end
return 1
",
    )
});

/// Raises a budget's spent counters to the database's sums (never lowers
/// them) and marks it seeded. ARGV: EUR, tokens, key ttl.
/// Returns {spent EUR, spent tokens, reserved EUR, reserved tokens}.
static RAISE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local h = KEYS[1]
local s = redis.call('HMGET', h, 'spent_eur', 'spent_tok', 'res_eur', 'res_tok')
local se, st = tonumber(s[1] or '0'), tonumber(s[2] or '0')
if s[1] == false or se < tonumber(ARGV[1]) then redis.call('HSET', h, 'spent_eur', ARGV[1]); se = tonumber(ARGV[1]) end
if s[2] == false or st < tonumber(ARGV[2]) then redis.call('HSET', h, 'spent_tok', ARGV[2]); st = tonumber(ARGV[2]) end
redis.call('HSET', h, 'seeded', 1)
redis.call('EXPIRE', h, ARGV[3])
return {se, st, tonumber(s[3] or '0'), tonumber(s[4] or '0')}
",
    )
});

/// This month's metered consumption of one scope in the database:
/// (nano-EUR charged, tokens).
pub async fn metered(
    db: &sqlx::PgPool,
    org: Uuid,
    target: Target,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<(i64, i64)> {
    let (key, share) = match target {
        Target::Organization => (None, None),
        Target::ApiKey(k) => (Some(k), None),
        Target::Share(s) => (None, Some(s)),
    };
    sqlx::query_as(
        "SELECT COALESCE(ceil(sum(charged_eur) * 1000000000), 0)::bigint,
                COALESCE(sum(prompt_tokens::bigint + completion_tokens), 0)::bigint
           FROM usage_records
          WHERE organization_id = $1 AND at >= $2 AND at < $3
            AND ($4::uuid IS NULL OR api_key_id = $4) AND ($5::uuid IS NULL OR share_id = $5)",
    )
    .bind(org)
    .bind(from)
    .bind(until)
    .bind(key)
    .bind(share)
    .fetch_one(db)
    .await
}

/// A budget's live counters: (spent nano-EUR, spent tokens, reserved
/// nano-EUR, reserved tokens), after raising them to `metered`.
pub async fn raise(
    state: &AppState,
    budget: Uuid,
    month: &str,
    metered: (i64, i64),
) -> redis::RedisResult<[i64; 4]> {
    let [_, _, h] = keys(state, budget, month);
    let mut redis = state.redis.clone();
    let v: Vec<i64> = RAISE
        .key(h)
        .arg(metered.0)
        .arg(metered.1)
        .arg(MONTH_TTL_SECS)
        .invoke_async(&mut redis)
        .await?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Ok([at(0), at(1), at(2), at(3)])
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
    bounds: Bounds,
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
    let eur = price.map_or(0, |p| p.charge(prompt, completion));
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
                    bounds: request.bounds,
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
}

fn eur(nano: i64) -> String {
    format!("{:.4} EUR", nano as f64 / 1e9)
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
            tracing::warn!(error = %e, "budget reservation not settled");
        }
    }
}

impl Reservation {
    /// Replaces the reservation by the exact charge of what the worker
    /// reported, billed as the meter bills it.
    pub async fn settle(mut self, prompt: i64, completion: i64, answer_bytes: usize) {
        if let Some(held) = self.0.take() {
            let billed = held.bounds.bill(prompt, completion, answer_bytes);
            let eur = held
                .price
                .map_or(0, |p| p.charge(billed.prompt, billed.completion));
            held.finish(eur, billed.prompt + billed.completion).await;
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
            output: 3_000_000,
        };
        assert_eq!(p.charge(1000, 1000), 4_000_000);
        assert_eq!(
            Price {
                input: 1,
                output: 0
            }
            .charge(1, 0),
            1
        );
        assert_eq!(p.charge(0, 0), 0);
    }

    #[test]
    fn months_roll_over_at_the_year_end() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).single();
        let (key, from, until) = month_of(at.unwrap_or_default());
        assert_eq!(key, "202612");
        assert_eq!(from.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
