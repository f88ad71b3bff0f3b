//! The records the writer made durable, kept in memory (bounded) until the
//! shipper commits them, so that the shipper need not read its own journal
//! back: reading, checking and decoding a record again costs the serving
//! core a few microseconds each. The journal on disk stays the truth: what
//! is not kept here (the last run's records, the overflow while the
//! database was away) the shipper reads from disk, up to the first record
//! kept here, and goes on from memory once it reaches it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::segment::{Batch, Pos};
use crate::proxy::usage::UsageRecord;

/// Records kept at most: a few MiB. Beyond it (the database away for
/// long) new groups are not kept and are read back from disk later.
pub const MAX_KEPT: usize = 16_384;

/// A durable record and where its frame lies in the journal.
pub struct Kept {
    /// The end of the frame written before it: where a reader is when this
    /// record comes next (also across a segment rotation).
    pub follows: Pos,
    pub start: Pos,
    pub end: Pos,
    pub record: UsageRecord,
}

/// The kept records, in journal order.
pub struct Fresh {
    kept: Mutex<VecDeque<Kept>>,
    max: usize,
}

impl Fresh {
    pub fn new(max: usize) -> Fresh {
        Fresh {
            kept: Mutex::new(VecDeque::new()),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a durable group's records, or none of them when they do not
    /// all fit: what is kept always continues the journal without a hole
    /// inside a group.
    pub fn keep(&self, group: Vec<Kept>) {
        let mut kept = self.lock();
        if kept.len() + group.len() <= self.max {
            kept.extend(group);
        }
    }

    /// Where the first kept record starts: a read from disk stops there.
    pub fn first(&self) -> Option<Pos> {
        self.lock().front().map(|k| k.start)
    }

    /// Up to `max` kept records that continue the journal from `from`, as
    /// a batch (empty when the next record is not kept). Records before
    /// `from` (committed from disk meanwhile) are dropped on the way.
    pub fn take(&self, from: Pos, max: usize) -> Batch {
        let mut kept = self.lock();
        while kept.front().is_some_and(|k| k.end <= from) {
            kept.pop_front();
        }
        let mut batch = Batch {
            end: from,
            ..Batch::default()
        };
        while batch.records.len() < max {
            let next = kept
                .front()
                .is_some_and(|k| k.start == batch.end || k.follows == batch.end);
            if !next {
                break;
            }
            let Some(k) = kept.pop_front() else {
                break;
            };
            batch.consumed += k.end.offset.saturating_sub(k.start.offset);
            batch.end = k.end;
            batch.records.push(k.record);
        }
        batch
    }
}
