//! The engine's prefill queue: a prompt's tokens not found in the prefix
//! cache take `tokens / rate` seconds to prefill, one prompt after the
//! other (a GPU's compute is shared: vLLM's scheduler spends a token budget
//! per step, so prefill throughput is about constant), so a request's first
//! token waits for the prefills queued before its own. Decoding is not
//! modelled as competing. Plain time arithmetic under a short lock: no
//! task, no timer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Queue {
    /// When the last prefill queued ends.
    busy_until: Option<Instant>,
    /// When each queued prefill that has not started yet starts.
    starts: VecDeque<Instant>,
}

impl Queue {
    fn forget_started(&mut self, now: Instant) {
        while self.starts.front().is_some_and(|s| *s <= now) {
            self.starts.pop_front();
        }
    }
}

/// Prefills, first come first served, at `rate` tokens per second.
#[derive(Debug)]
pub struct PrefillQueue {
    rate: f64,
    queue: Mutex<Queue>,
}

impl PrefillQueue {
    /// `rate` tokens per second; 0 (or less) prefills instantly.
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            queue: Mutex::new(Queue {
                busy_until: None,
                starts: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A poisoned lock only means a panic mid-update of plain instants.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues the prefill of `tokens` uncached tokens of a request arrived
    /// at `now`; returns when it ends (its first token is due then).
    pub fn reserve(&self, now: Instant, tokens: u32) -> Instant {
        if self.rate <= 0.0 || tokens == 0 {
            return now;
        }
        let took =
            Duration::try_from_secs_f64(f64::from(tokens) / self.rate).unwrap_or(Duration::MAX);
        let mut queue = self.lock();
        queue.forget_started(now);
        let start = queue.busy_until.filter(|b| *b > now).unwrap_or(now);
        let end = start.checked_add(took).unwrap_or(start);
        queue.busy_until = Some(end);
        if start > now {
            queue.starts.push_back(start);
        }
        end
    }

    /// Requests whose prefill has not started at `now` (vLLM's waiting).
    pub fn waiting(&self, now: Instant) -> usize {
        let mut queue = self.lock();
        queue.forget_started(now);
        queue.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefills_queue_one_after_the_other_at_the_rate() {
        let q = PrefillQueue::new(1000.0);
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        // 100 tokens: 100 ms; the next one waits for it.
        assert_eq!(q.reserve(t0, 100), t0 + ms(100));
        assert_eq!(q.reserve(t0 + ms(10), 50), t0 + ms(150));
        assert_eq!(q.waiting(t0 + ms(10)), 1, "the second has not started");
        assert_eq!(q.waiting(t0 + ms(100)), 0);
        // Idle again: no wait.
        assert_eq!(q.reserve(t0 + ms(500), 20), t0 + ms(520));
        // Fewer uncached tokens, sooner: a prefix cache hit shows in TTFT.
        assert_eq!(q.reserve(t0 + ms(1000), 1), t0 + ms(1001));
    }

    #[test]
    fn a_zero_rate_is_instant() {
        let q = PrefillQueue::new(0.0);
        let t0 = Instant::now();
        assert_eq!(q.reserve(t0, 100_000), t0);
        assert_eq!(q.waiting(t0), 0);
    }
}
