//! Waiting on a condition with a deadline: the one polling helper of the
//! workspace's tests (never a bare sleep).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Polls `check` every `every` until it yields a value; `None` once
/// `within` has passed (for tests that assert something never happens).
pub async fn poll<T, F, Fut>(within: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every 20 ms until it yields a value, failing the test
/// with `what` once `within` has passed.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll(within, Duration::from_millis(20), check).await {
        Some(value) => value,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}
