//! The journal's writer: one thread that appends what the handlers hand
//! over and makes it durable in groups. It takes every record waiting,
//! writes them with one `write` and one `fdatasync`, then acknowledges
//! each; the records that arrive meanwhile form the next group. So the
//! serving threads never touch the disk, and the rate of syncs adapts to
//! the load without a timer.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{oneshot, Notify};

use super::segment::{self, Pos};
use crate::proxy::usage::UsageRecord;

/// Records acknowledged by one sync at most, so a flood still gets acks.
const MAX_GROUP: usize = 4096;
/// How long `/v1` is refused after the journal failed to write.
const FAILURE_HOLD_MS: u64 = 1000;

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
        }
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

/// The live segment and where the next frames go.
pub struct Writer {
    dir: PathBuf,
    segment: u64,
    file: File,
    size: u64,
    segment_bytes: u64,
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
            shared,
            _lock: lock,
        })
    }

    /// Writes groups until `Stop` or until every sender is gone.
    pub fn run(mut self, rx: Receiver<Msg>) {
        let mut buf = Vec::with_capacity(256 * 1024);
        let mut acks = Vec::with_capacity(256);
        let mut stop = false;
        while !stop {
            let Ok(first) = rx.recv() else { break };
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    Msg::Record(record, ack) => match segment::encode(&mut buf, &record) {
                        Ok(()) => acks.push(ack),
                        Err(e) => {
                            tracing::error!(error = %e, usage_id = %record.usage_id, "usage record not encodable");
                            let _ = ack.send(false);
                        }
                    },
                    Msg::Stop => stop = true,
                }
                next = (!stop && acks.len() < MAX_GROUP)
                    .then(|| rx.try_recv().ok())
                    .flatten();
            }
            let durable = buf.is_empty() || self.append(&buf);
            buf.clear();
            for ack in acks.drain(..) {
                // A client gone meanwhile changes nothing: the record is written.
                let _ = ack.send(durable);
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> bool {
        let len = bytes.len() as u64;
        match self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
                self.size += len;
                self.shared.written.fetch_add(len, Ordering::Relaxed);
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
