//! The journal's writer: one thread that appends what the handlers hand
//! over and makes it durable in groups. It takes every record waiting,
//! writes them with one `write` and one `fdatasync`, then acknowledges
//! each; the records that arrive meanwhile form the next group. So the
//! serving threads never touch the disk, and the rate of syncs adapts to
//! the load.
//!
//! A sync costs the process tens of microseconds of CPU whatever it
//! carries, so under load a group is worth gathering (like PostgreSQL's
//! `commit_delay` with `commit_siblings`, which counts the transactions
//! open, not only those committing): while other requests are being
//! answered (admitted, their record not handed over yet: each will hand
//! one over), the writer waits for more records until the group holds
//! [`GATHER_RECORDS`], or nobody else is answering, or the company wait
//! has passed. A lone request is synced at once; under load an answer's
//! end waits a little more, and a sync's cost is shared by up to
//! [`GATHER_RECORDS`] requests.
//!
//! How long is "a little" follows the answers themselves: by Little's law
//! a wait of a fraction of the typical answer's duration gathers that
//! fraction of the requests being answered. Short answers (chat at c=64
//! takes ≈ 5 ms) wait the configured [`GATHER_WAIT`]; long ones (streams)
//! wait up to half their typical duration, at most [`GATHER_WAIT_MAX`], so
//! a sync carries about as many streams as it carries short answers and
//! an answer's end waits in proportion to its length.
//!
//! Records are handed over through a [`Queue`], not a channel: a handler
//! wakes the writer only when the writer waits for it (the first record of
//! a group, or the one that completes the group), so a group of 32 costs
//! one wake-up rather than one each.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use super::fresh::{Fresh, Kept};
use super::segment::{self, Pos};
use crate::proxy::usage::UsageRecord;

/// Records acknowledged by one sync at most, so a flood still gets acks.
const MAX_GROUP: usize = 4096;
/// How long `/v1` is refused after the journal failed to write.
const FAILURE_HOLD_MS: u64 = 1000;
/// A group this large is synced without waiting for more: at c=64 a
/// group then carries about 50 answers (with 32 it carried 31, and the
/// writer thread cost 8.3 µs per answer against 5.1).
pub(super) const GATHER_RECORDS: usize = 64;
/// The longest a group waits for company (what it adds to an answer's end
/// under load, on top of the sync itself).
pub const GATHER_WAIT: Duration = Duration::from_millis(4);
/// The longest a group waits for company because answers are long.
pub(super) const GATHER_WAIT_MAX: Duration = Duration::from_millis(25);

/// How long a group waits for company: the configured wait, or half the
/// typical answer's duration (capped) when that is longer.
pub(super) fn company_wait(configured: Duration, typical_answer: Duration) -> Duration {
    configured.max((typical_answer / 2).min(GATHER_WAIT_MAX))
}

/// A record and who to tell once it is durable (`false`: it is not).
type Entry = (UsageRecord, oneshot::Sender<bool>);

/// What the writer is waiting for, so a handler knows when to wake it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Busy writing, or not started: nobody to wake.
    Nothing,
    /// Asleep until the first record of the next group.
    First,
    /// Asleep until the group is full or nobody else is being answered.
    Company,
}

/// Records handed over and not taken by the writer yet.
struct Pending {
    entries: Vec<Entry>,
    waiting: Waiting,
    /// Write what was handed over, then stop (and refuse what comes after).
    stop: bool,
    /// The writer is gone: nothing handed over is written any more.
    stopped: bool,
    /// Handles that can still hand records over; the writer stops at none.
    senders: usize,
}

/// The hand-over between the handlers and the writer thread.
pub struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the writer when it waits for something that now holds.
    fn wake_if(&self, mut pending: MutexGuard<'_, Pending>, now: bool) {
        if now {
            pending.waiting = Waiting::Nothing;
            drop(pending);
            self.wake.notify_one();
        }
    }
}

/// A handle that hands records over to the writer (counted: the writer
/// stops once every one is dropped, as a channel's receiver would).
pub struct Sender {
    queue: Arc<Queue>,
    shared: Arc<Shared>,
}

impl Sender {
    /// Hands a record over; `false` is sent to `ack` at once when the
    /// writer is gone.
    pub fn record(&self, record: UsageRecord, ack: oneshot::Sender<bool>) {
        let mut pending = self.queue.lock();
        if pending.stopped || pending.stop {
            drop(pending);
            tracing::error!("usage journal stopped: a usage record was not kept");
            let _ = ack.send(false);
            return;
        }
        pending.entries.push((record, ack));
        let now = match pending.waiting {
            Waiting::Nothing => false,
            Waiting::First => true,
            Waiting::Company => {
                pending.entries.len() >= GATHER_RECORDS
                    || self.shared.answering.load(Ordering::Relaxed) == 0
            }
        };
        self.queue.wake_if(pending, now);
    }

    /// Asks the writer to sync what it was handed, then stop.
    pub fn stop(&self) {
        let mut pending = self.queue.lock();
        pending.stop = true;
        self.queue.wake_if(pending, true);
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        self.queue.lock().senders += 1;
        Sender {
            queue: self.queue.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut pending = self.queue.lock();
        pending.senders -= 1;
        let last = pending.senders == 0;
        if last {
            pending.stop = true;
        }
        self.queue.wake_if(pending, last);
    }
}

/// The writer's end of the hand-over.
pub struct Receiver(Arc<Queue>);

/// A hand-over for a writer sharing `shared`.
pub fn queue(shared: Arc<Shared>) -> (Sender, Receiver) {
    let queue = Arc::new(Queue {
        pending: Mutex::new(Pending {
            entries: Vec::with_capacity(256),
            waiting: Waiting::Nothing,
            stop: false,
            stopped: false,
            senders: 1,
        }),
        wake: Condvar::new(),
    });
    (
        Sender {
            queue: queue.clone(),
            shared,
        },
        Receiver(queue),
    )
}

/// State the writer, the shipper and the handlers share.
pub struct Shared {
    /// End of the durable frames in the live segment.
    durable: Mutex<Pos>,
    /// Wakes the shipper after a sync.
    pub wake: Notify,
    /// Journal bytes written (or found at start-up) and shipped since.
    written: AtomicU64,
    shipped: AtomicU64,
    pub max_bytes: u64,
    started: Instant,
    /// When the last write failed (ms since `started`, plus one; 0: never).
    failed_at: AtomicU64,
    /// Requests being answered whose record is not handed over yet.
    answering: AtomicUsize,
    /// The typical answer's duration (admission to hand-over), µs: a
    /// moving average over the last ≈ 16 answers.
    answer_us: AtomicU64,
    /// Syncs done and records they made durable, for `/metrics`.
    syncs: AtomicU64,
    records: AtomicU64,
    /// Durable records the shipper has not taken yet.
    pub fresh: Fresh,
}

/// A request being answered, counted until its record is handed over
/// (or it ends without one): the writer waits for it to join a group.
pub struct Answering {
    shared: Arc<Shared>,
    since: Instant,
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.shared.answering.fetch_sub(1, Ordering::Relaxed);
        self.shared.answered(self.since.elapsed());
    }
}

impl Shared {
    pub fn new(durable: Pos, pending: u64, max_bytes: u64, fresh: Fresh) -> Shared {
        Shared {
            durable: Mutex::new(durable),
            wake: Notify::new(),
            written: AtomicU64::new(pending),
            shipped: AtomicU64::new(0),
            max_bytes,
            started: Instant::now(),
            failed_at: AtomicU64::new(0),
            answering: AtomicUsize::new(0),
            answer_us: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            fresh,
        }
    }

    /// Counts a request being answered until the guard drops.
    pub fn answering(self: &Arc<Self>) -> Answering {
        self.answering.fetch_add(1, Ordering::Relaxed);
        Answering {
            shared: self.clone(),
            since: Instant::now(),
        }
    }

    /// Folds an answer's duration into the typical one (a concurrent
    /// update may be lost: it is an estimate).
    fn answered(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.answer_us.load(Ordering::Relaxed);
        self.answer_us
            .store((old - old / 16).saturating_add(us / 16), Ordering::Relaxed);
    }

    /// The typical answer's duration.
    pub(super) fn typical_answer(&self) -> Duration {
        Duration::from_micros(self.answer_us.load(Ordering::Relaxed))
    }

    pub fn durable(&self) -> Pos {
        *self.durable.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_durable(&self, pos: Pos) {
        *self.durable.lock().unwrap_or_else(PoisonError::into_inner) = pos;
    }

    /// Journal bytes not committed to the database yet.
    pub fn pending(&self) -> u64 {
        self.written
            .load(Ordering::Relaxed)
            .saturating_sub(self.shipped.load(Ordering::Relaxed))
    }

    /// Syncs done, and the records they made durable.
    pub fn syncs(&self) -> (u64, u64) {
        (
            self.syncs.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
        )
    }

    pub fn shipped(&self, bytes: u64) {
        self.shipped.fetch_add(bytes, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the journal failed to write within the last second.
    pub fn failing(&self) -> bool {
        match self.failed_at.load(Ordering::Relaxed) {
            0 => false,
            at => self.now_ms() + 1 < at + FAILURE_HOLD_MS,
        }
    }
}

/// The records of the next sync, encoded, and who to tell.
struct Group {
    buf: Vec<u8>,
    acks: Vec<oneshot::Sender<bool>>,
    /// The records, with where each one's frame starts and ends in `buf`.
    records: Vec<(UsageRecord, usize, usize)>,
}

impl Group {
    fn add(&mut self, (record, ack): Entry) {
        let start = self.buf.len();
        match segment::encode(&mut self.buf, &record) {
            Ok(()) => {
                self.acks.push(ack);
                self.records.push((record, start, self.buf.len()));
            }
            Err(e) => {
                tracing::error!(error = %e, usage_id = %record.usage_id, "usage record not encodable");
                let _ = ack.send(false);
            }
        }
    }
}

/// The live segment and where the next frames go.
pub struct Writer {
    dir: PathBuf,
    segment: u64,
    file: File,
    size: u64,
    /// The segment's length with its space allocated ahead (see
    /// [`ALLOCATE_AHEAD`]): zeros after `size`.
    allocated: u64,
    /// False once the file system refused to allocate ahead.
    allocate_ahead: bool,
    segment_bytes: u64,
    /// How long a group waits for company at least (see [`company_wait`]).
    gather_wait: Duration,
    /// The end of the last durable frame (see [`Kept::follows`]).
    last_end: Pos,
    shared: Arc<Shared>,
    /// Held while the writer lives: the directory is this journal's.
    _lock: Arc<File>,
}

/// How far ahead of its frames a segment is allocated (at most its
/// rotation size), as PostgreSQL allocates its WAL segments before writing
/// them: a sync then flushes data, with no block allocation and no file
/// size to commit, except the one sync in this many bytes that follows an
/// allocation. Measured on ext4 (300-byte appends, each synced): 146 → 94
/// µs per `fdatasync`, 57 → 33 µs of CPU. Bounded, so that a journal holds
/// little more disk (or memory, on tmpfs) than its records.
const ALLOCATE_AHEAD: u64 = 4 << 20;

fn create(dir: &std::path::Path, n: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(segment::segment_path(dir, n))?;
    segment::sync_dir(dir)?;
    Ok(file)
}

impl Writer {
    /// Starts a new segment `first` (never appending after a torn tail).
    pub fn open(
        dir: PathBuf,
        first: u64,
        segment_bytes: u64,
        gather_wait: Duration,
        shared: Arc<Shared>,
        lock: Arc<File>,
    ) -> io::Result<Writer> {
        let file = create(&dir, first)?;
        Ok(Writer {
            dir,
            segment: first,
            file,
            size: 0,
            allocated: 0,
            allocate_ahead: true,
            segment_bytes,
            gather_wait,
            last_end: Pos {
                segment: first,
                offset: 0,
            },
            shared,
            _lock: lock,
        })
    }

    /// Writes groups until stopped (or every sender is gone), then marks
    /// the queue stopped.
    pub fn run(mut self, rx: Receiver) {
        let queue = rx.0;
        let mut group = Group {
            buf: Vec::with_capacity(256 * 1024),
            acks: Vec::with_capacity(256),
            records: Vec::with_capacity(256),
        };
        let mut taken: Vec<Entry> = Vec::with_capacity(256);
        loop {
            let mut pending = queue.lock();
            while pending.entries.is_empty() && !pending.stop {
                pending.waiting = Waiting::First;
                pending = queue
                    .wake
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            // While others are being answered, company for a while.
            let started = Instant::now();
            let wait = company_wait(self.gather_wait, self.shared.typical_answer());
            while !pending.stop
                && pending.entries.len() < GATHER_RECORDS
                && self.shared.answering.load(Ordering::Relaxed) > 0
            {
                let left = wait.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                pending.waiting = Waiting::Company;
                pending = queue
                    .wake
                    .wait_timeout(pending, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            pending.waiting = Waiting::Nothing;
            let stop = pending.stop;
            if pending.entries.len() <= MAX_GROUP {
                std::mem::swap(&mut pending.entries, &mut taken);
            } else {
                taken.extend(pending.entries.drain(..MAX_GROUP));
            }
            let more = !pending.entries.is_empty();
            drop(pending);
            for entry in taken.drain(..) {
                group.add(entry);
            }
            let durable = group.buf.is_empty() || self.append(&mut group);
            group.buf.clear();
            group.records.clear();
            for ack in group.acks.drain(..) {
                // A client gone meanwhile changes nothing: the record is written.
                let _ = ack.send(durable);
            }
            if stop && !more {
                break;
            }
        }
        self.trim();
        queue.lock().stopped = true;
    }

    /// Writes and syncs the group; once durable, its records are kept for
    /// the shipper before it is told.
    fn append(&mut self, group: &mut Group) -> bool {
        let len = group.buf.len() as u64;
        let records = group.records.len();
        self.allocate(len);
        match self
            .file
            .write_all_at(&group.buf, self.size)
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
                let at = |offset: usize| Pos {
                    segment: self.segment,
                    offset: self.size + offset as u64,
                };
                let mut follows = self.last_end;
                let kept = group
                    .records
                    .drain(..)
                    .map(|(record, start, end)| {
                        let k = Kept {
                            follows,
                            start: at(start),
                            end: at(end),
                            record,
                        };
                        follows = k.end;
                        k
                    })
                    .collect();
                self.shared.fresh.keep(kept);
                self.last_end = follows;
                self.size += len;
                self.shared.written.fetch_add(len, Ordering::Relaxed);
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .records
                    .fetch_add(records as u64, Ordering::Relaxed);
                self.shared.set_durable(Pos {
                    segment: self.segment,
                    offset: self.size,
                });
                if self.size >= self.segment_bytes {
                    if let Err(e) = self.rotate() {
                        tracing::error!(error = %e, "usage journal segment not rotated; the current one grows");
                    }
                }
                self.shared.wake.notify_one();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "usage journal write failed; /v1 refused while it fails");
                let at = self.shared.now_ms() + 1;
                self.shared.failed_at.store(at, Ordering::Relaxed);
                // What a failed sync left is unknown: cut it back and go on
                // in a fresh segment.
                let _ = self.file.set_len(self.size);
                if let Err(e) = self.rotate() {
                    tracing::error!(error = %e, "usage journal segment not rotated after a failure");
                }
                false
            }
        }
    }

    /// Allocates the segment ahead of `len` bytes to write at its end.
    fn allocate(&mut self, len: u64) {
        let needed = self.size + len;
        if !self.allocate_ahead || needed <= self.allocated {
            return;
        }
        let to = needed.max((self.allocated + ALLOCATE_AHEAD).min(self.segment_bytes));
        match fs4::fs_std::FileExt::allocate(&self.file, to) {
            Ok(()) => self.allocated = to,
            Err(e) => {
                tracing::debug!(error = %e, "usage journal segments not allocated ahead; they grow as written");
                self.allocate_ahead = false;
            }
        }
    }

    /// Cuts what was allocated and not written: a segment closed (rotated,
    /// or at a clean stop) is as long as its frames. One a crash left is
    /// read to its first zero header.
    fn trim(&mut self) {
        if self.allocated > self.size {
            if let Err(e) = self.file.set_len(self.size) {
                tracing::warn!(error = %e, segment = self.segment, "usage journal segment not trimmed; its unwritten space is skipped when read");
            }
        }
        self.allocated = self.size;
    }

    fn rotate(&mut self) -> io::Result<()> {
        let next = self.segment + 1;
        let file = create(&self.dir, next)?;
        self.trim();
        self.file = file;
        self.segment = next;
        self.size = 0;
        self.allocated = 0;
        // The shipper reads the previous segment as closed from now on.
        self.shared.set_durable(Pos {
            segment: next,
            offset: 0,
        });
        self.shared.wake.notify_one();
        Ok(())
    }
}
