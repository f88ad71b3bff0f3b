//! The journal's writer: one thread that appends what the handlers hand
//! over and makes it durable in groups. It takes every record waiting,
//! writes them with one `write` and one `fdatasync`, then acknowledges
//! each; the records that arrive meanwhile form the next group. So the
//! serving threads never touch the disk, and the rate of syncs adapts to
//! the load.
//!
//! A sync costs the process tens of microseconds of CPU whatever it
//! carries, so under load a group is worth gathering (like PostgreSQL's
//! `commit_delay` with `commit_siblings`): while other requests are being
//! answered (each will hand a record over), the writer waits for more
//! records until the group holds [`GATHER_RECORDS`], or nobody else is
//! answering, or [`GATHER_WAIT`] has passed. A lone request is synced at
//! once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use super::segment::{self, Pos};
use crate::proxy::usage::UsageRecord;

/// Records acknowledged by one sync at most, so a flood still gets acks.
const MAX_GROUP: usize = 4096;
/// How long `/v1` is refused after the journal failed to write.
const FAILURE_HOLD_MS: u64 = 1000;
/// A group this large is synced without waiting for more.
const GATHER_RECORDS: usize = 32;
/// The longest a group waits for company (what it adds to an answer's end
/// under load, on top of the sync itself).
pub const GATHER_WAIT: Duration = Duration::from_millis(4);

/// What the handlers send to the writer.
#[expect(
    clippy::large_enum_variant,
    reason = "records move by value: boxing would cost an allocation per request, for a Stop sent once"
)]
pub enum Msg {
    /// A record and who to tell once it is durable (`false`: it is not).
    Record(UsageRecord, oneshot::Sender<bool>),
    /// Write what came before, then stop.
    Stop,
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
    /// Syncs done and records they made durable, for `/metrics`.
    syncs: AtomicU64,
    records: AtomicU64,
}

/// A request being answered, counted until its record is handed over
/// (or it ends without one): the writer waits for it to join a group.
pub struct Answering(Arc<Shared>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    pub fn new(durable: Pos, pending: u64, max_bytes: u64) -> Shared {
        Shared {
            durable: Mutex::new(durable),
            wake: Notify::new(),
            written: AtomicU64::new(pending),
            shipped: AtomicU64::new(0),
            max_bytes,
            started: Instant::now(),
            failed_at: AtomicU64::new(0),
            answering: AtomicUsize::new(0),
            syncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
        }
    }

    /// Counts a request being answered until the guard drops.
    pub fn answering(self: &Arc<Self>) -> Answering {
        self.answering.fetch_add(1, Ordering::Relaxed);
        Answering(self.clone())
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
    stop: bool,
}

impl Group {
    fn add(&mut self, msg: Msg) {
        match msg {
            Msg::Record(record, ack) => match segment::encode(&mut self.buf, &record) {
                Ok(()) => self.acks.push(ack),
                Err(e) => {
                    tracing::error!(error = %e, usage_id = %record.usage_id, "usage record not encodable");
                    let _ = ack.send(false);
                }
            },
            Msg::Stop => self.stop = true,
        }
    }
}

/// The live segment and where the next frames go.
pub struct Writer {
    dir: PathBuf,
    segment: u64,
    file: File,
    size: u64,
    segment_bytes: u64,
    /// How long a group waits for company (see [`GATHER_WAIT`]).
    gather_wait: Duration,
    shared: Arc<Shared>,
    /// Held while the writer lives: the directory is this journal's.
    _lock: Arc<File>,
}

fn create(dir: &std::path::Path, n: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
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
            segment_bytes,
            gather_wait,
            shared,
            _lock: lock,
        })
    }

    /// Writes groups until `Stop` or until every sender is gone.
    pub fn run(mut self, rx: Receiver<Msg>) {
        let mut group = Group {
            buf: Vec::with_capacity(256 * 1024),
            acks: Vec::with_capacity(256),
            stop: false,
        };
        while !group.stop {
            let Ok(first) = rx.recv() else { break };
            let started = Instant::now();
            group.add(first);
            // Everything already waiting joins.
            while !group.stop && group.acks.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(msg) => group.add(msg),
                    Err(_) => break,
                }
            }
            // Then, while others are being answered, company for a while.
            while !group.stop
                && group.acks.len() < GATHER_RECORDS
                && self.shared.answering.load(Ordering::Relaxed) > 0
            {
                let left = self.gather_wait.saturating_sub(started.elapsed());
                match rx.recv_timeout(left) {
                    Ok(msg) => group.add(msg),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            let durable = group.buf.is_empty() || self.append(&group.buf, group.acks.len());
            group.buf.clear();
            for ack in group.acks.drain(..) {
                // A client gone meanwhile changes nothing: the record is written.
                let _ = ack.send(durable);
            }
        }
    }

    fn append(&mut self, bytes: &[u8], records: usize) -> bool {
        let len = bytes.len() as u64;
        match self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
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

    fn rotate(&mut self) -> io::Result<()> {
        let next = self.segment + 1;
        self.file = create(&self.dir, next)?;
        self.segment = next;
        self.size = 0;
        // The shipper reads the previous segment as closed from now on.
        self.shared.set_durable(Pos {
            segment: next,
            offset: 0,
        });
        self.shared.wake.notify_one();
        Ok(())
    }
}
