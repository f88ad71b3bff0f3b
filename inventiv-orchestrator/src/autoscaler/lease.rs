//! One autoscaler acts at a time: a lease in Redis, a key holding the
//! holder's random token with an expiry. Taking it is `SET NX PX`;
//! renewing it is a compare-and-set (a Lua script extends the expiry only
//! while the key still holds this token); releasing it deletes the key only
//! if it is still ours. The holder believes it holds the lease only until
//! the time it asked plus nine tenths of the duration: Redis counts the
//! duration from a later instant (when it ran the command), so the old
//! holder has stopped believing before anyone else can take over, and a
//! holder cut off from Redis stops acting on its own. Renew well within
//! the duration (every third of it, say).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Renews the lease if it is still ours (1), else 0.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
              redis.call('PEXPIRE', KEYS[1], ARGV[2])
              return 1
          end
          return 0",
    )
});

/// Deletes the lease if it is still ours.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
              return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// The autoscaler lease's key under the deployment's Redis prefix.
pub fn autoscaler_key(prefix: &str) -> String {
    format!("{prefix}autoscaler:lease")
}

/// One contender for a lease.
#[derive(Debug)]
pub struct Lease {
    key: String,
    token: String,
    duration: Duration,
    /// Until when this contender may act; None when it does not hold it.
    valid_until: Option<Instant>,
}

impl Lease {
    /// A contender for the lease at `key` lasting `duration` (at least 100 ms).
    pub fn new(key: String, duration: Duration) -> Lease {
        Lease {
            key,
            token: uuid::Uuid::new_v4().simple().to_string(),
            duration: duration.max(Duration::from_millis(100)),
            valid_until: None,
        }
    }

    /// Whether this contender holds the lease now and may act.
    pub fn held(&self) -> bool {
        self.valid_until.is_some_and(|t| Instant::now() < t)
    }

    /// Renews the lease when held, else tries to take it; answers whether
    /// it is held now. A renewal refused (someone else holds it) lets go at
    /// once; on a Redis error the belief runs out at its own time.
    pub async fn hold(
        &mut self,
        redis: &mut redis::aio::ConnectionManager,
    ) -> redis::RedisResult<bool> {
        let asked = Instant::now();
        let ms = u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX);
        let ours = if self.valid_until.is_some() {
            let renewed: i64 = RENEW
                .key(&self.key)
                .arg(&self.token)
                .arg(ms)
                .invoke_async(redis)
                .await?;
            renewed == 1
        } else {
            let set: Option<String> = redis::cmd("SET")
                .arg(&self.key)
                .arg(&self.token)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(redis)
                .await?;
            set.is_some()
        };
        let was = self.valid_until.is_some();
        self.valid_until = ours.then(|| asked + self.duration.mul_f64(0.9));
        match (was, ours) {
            (false, true) => tracing::info!(key = %self.key, "lease taken"),
            (true, false) => {
                tracing::warn!(key = %self.key, "lease lost (it expired, or another holder has it)")
            }
            _ => {}
        }
        Ok(self.held())
    }

    /// Gives the lease up (if still ours) so another contender takes it at
    /// once rather than after it expires.
    pub async fn release(
        &mut self,
        redis: &mut redis::aio::ConnectionManager,
    ) -> redis::RedisResult<()> {
        self.valid_until = None;
        let _: i64 = RELEASE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(redis)
            .await?;
        Ok(())
    }
}
