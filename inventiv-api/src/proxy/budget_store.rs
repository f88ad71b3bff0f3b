//! The Redis side of budgets: per budget and month (`YYYYMM` in the
//! key, so a month starts empty) a hash `bud:<id>:<month>` (`spent_eur`
//! in nano-EUR, `spent_tok`, `res_eur`, `res_tok`, `seeded`), the
//! reservations `…:r` (id → amounts) and their expiries `…:x` (a sorted
//! set), changed only by the three Lua scripts below so that every change
//! is atomic across replicas; and this month's metered sums in Postgres,
//! the counters' baseline.

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use uuid::Uuid;

use super::budgets::Target;
use crate::state::AppState;

/// How long a month's counters are kept (past the month's end).
pub const MONTH_TTL_SECS: i64 = 40 * 86_400;

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

pub fn keys(state: &AppState, budget: Uuid, month: &str) -> [String; 3] {
    let base = state.redis_key(&format!("bud:{budget}:{month}"));
    [format!("{base}:r"), format!("{base}:x"), base]
}

/// Drops expired reservations, then checks and reserves in every budget.
/// ARGV: now, expiry, reservation id, key ttl, then per budget: EUR limit,
/// token limit (-1: none), EUR amount, token amount.
/// Returns {1} (reserved), {-2, i} (budget i not seeded) or
/// {-1, i, metric (1 EUR, 2 tokens), spent, reserved}.
pub static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
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
pub static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
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
pub static RAISE: LazyLock<redis::Script> = LazyLock::new(|| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_at_the_year_end() {
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).single();
        let (key, from, until) = month_of(at.unwrap_or_default());
        assert_eq!(key, "202612");
        assert_eq!(from.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
