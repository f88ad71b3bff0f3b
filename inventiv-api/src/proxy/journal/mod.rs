//! Durable metering: every usage record goes to an append-only journal on
//! local disk (one directory per API replica under
//! `<INVENTIV_STATE_DIR>/usage-journal/`) and is durable before the
//! request's answer completes; a shipper commits the journal to the
//! database in order and deletes what is committed. See
//! `docs/architecture.md` (Metering) for why a local journal.
//!
//! The handlers' side is [`Metering`]: [`Metering::admit`] before anything
//! is forwarded (503 `metering_unavailable` while the journal is past its
//! size limit), [`Metering::record`] when the request ends, whose
//! [`Durable::wait`] resolves once the record is on disk.

pub mod fresh;
pub mod segment;
pub mod shipper;
pub mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::segment::Pos;
use self::writer::{Answering, Shared, Writer};
use super::error::OpenAiError;
use super::usage::UsageRecord;

/// How long start-up waits for the journal's lock (held by a replica
/// adopting it, or by a live replica with the same id).
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The journal's directory root under the state dir.
pub fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("usage-journal")
}

/// The handlers' side of metering, cloned into the state.
#[derive(Clone)]
pub struct Metering(Sink);

#[derive(Clone)]
enum Sink {
    Journal(Arc<Handle>),
    /// The benchmark baseline (`INVENTIV_USAGE_JOURNAL=off`): records wait
    /// in memory for the batched writer, and a crash loses them.
    Memory(mpsc::Sender<UsageRecord>),
}

struct Handle {
    tx: writer::Sender,
    shared: Arc<Shared>,
}

/// Resolves once a record is durable.
#[must_use = "an answer completes only once its usage is durable"]
pub struct Durable(Option<oneshot::Receiver<bool>>);

impl Durable {
    /// Ok once the record is in the journal (at once without a journal);
    /// the error to answer when it could not be written.
    pub async fn wait(self) -> Result<(), OpenAiError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(true) => Ok(()),
                _ => Err(OpenAiError::metering_unavailable()),
            },
        }
    }
}

/// The journal's fill, for `/readyz`.
#[derive(Debug, Clone, Copy)]
pub struct Fill {
    pub pending_bytes: u64,
    pub max_bytes: u64,
    /// Syncs done since start-up, and the records they made durable.
    pub syncs: u64,
    pub synced_records: u64,
}

impl Metering {
    /// Refuses new `/v1` work while usage could not be kept: the journal
    /// is past its limit (the database has been away for long) or failed
    /// to write a moment ago.
    pub fn admit(&self) -> Result<(), OpenAiError> {
        match &self.0 {
            Sink::Journal(h) if h.shared.pending() > h.shared.max_bytes || h.shared.failing() => {
                Err(OpenAiError::metering_unavailable())
            }
            _ => Ok(()),
        }
    }

    /// Counts a request being answered, from its admission until the
    /// guard drops, just before its record is handed over: the journal's
    /// writer waits a little for such requests to share a sync (none
    /// without a journal).
    pub fn answering(&self) -> Option<Answering> {
        match &self.0 {
            Sink::Journal(h) => Some(h.shared.answering()),
            Sink::Memory(_) => None,
        }
    }

    /// Hands a finished request's record over; the answer completes once
    /// the returned [`Durable`] resolves.
    pub fn record(&self, record: UsageRecord) -> Durable {
        match &self.0 {
            Sink::Journal(h) => {
                let (ack, rx) = oneshot::channel();
                h.tx.record(record, ack);
                Durable(Some(rx))
            }
            Sink::Memory(tx) => {
                if tx.try_send(record).is_err() {
                    tracing::error!("usage channel full: a usage record was lost");
                }
                Durable(None)
            }
        }
    }

    /// The journal's fill; None without a journal.
    pub fn fill(&self) -> Option<Fill> {
        match &self.0 {
            Sink::Journal(h) => {
                let (syncs, synced_records) = h.shared.syncs();
                Some(Fill {
                    pending_bytes: h.shared.pending(),
                    max_bytes: h.shared.max_bytes,
                    syncs,
                    synced_records,
                })
            }
            Sink::Memory(_) => None,
        }
    }
}

/// The background half: the shipper (with the writer thread it stops), or
/// the in-memory writer of the baseline.
pub enum Background {
    Journal(shipper::Shipper),
    Memory(mpsc::Receiver<UsageRecord>),
}

impl Background {
    /// Commits usage to the database until `stop`, then finishes: the
    /// journal's writer syncs what it holds, the baseline flushes.
    pub async fn run(self, db: sqlx::PgPool, price_notice: Duration, stop: CancellationToken) {
        match self {
            Background::Journal(s) => s.run(db, price_notice, stop).await,
            Background::Memory(rx) => super::usage::run(db, rx, price_notice, stop).await,
        }
    }
}

/// The baseline without a journal.
pub fn in_memory() -> (Metering, Background) {
    let (tx, rx) = mpsc::channel(super::usage::CAPACITY);
    (Metering(Sink::Memory(tx)), Background::Memory(rx))
}

/// Opens (or creates) this replica's journal under `root`: takes its lock,
/// starts the writer on a new segment, and prepares the shipper, which
/// replays what the last run left before anything new. `gather_wait`:
/// how long a group waits for company under load (production:
/// [`writer::GATHER_WAIT`]).
pub async fn open(
    root: &Path,
    replica_id: &str,
    max_bytes: u64,
    gather_wait: Duration,
) -> anyhow::Result<(Metering, Background)> {
    let dir = root.join(replica_id);
    let waited = tokio::time::Instant::now();
    let lock = loop {
        if let Some(lock) = segment::try_lock(&dir)
            .map_err(|e| anyhow::anyhow!("usage journal {}: {e}", dir.display()))?
        {
            break Arc::new(lock);
        }
        if waited.elapsed() > LOCK_WAIT {
            anyhow::bail!(
                "usage journal {} is locked by another process: is a replica with the same INVENTIV_REPLICA_ID running?",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    start(root, dir, lock, max_bytes, gather_wait)
        .map_err(|e| anyhow::anyhow!("usage journal under {}: {e}", root.display()))
}

fn start(
    root: &Path,
    dir: PathBuf,
    lock: Arc<std::fs::File>,
    max_bytes: u64,
    gather_wait: Duration,
) -> std::io::Result<(Metering, Background)> {
    let checkpoint = segment::read_checkpoint(&dir);
    let existing = segment::segments(&dir)?;
    let pending = segment::pending_bytes(&dir, checkpoint)?;
    let first = existing
        .last()
        .copied()
        .unwrap_or(0)
        .max(checkpoint.segment)
        + 1;
    let shared = Arc::new(Shared::new(
        Pos {
            segment: first,
            offset: 0,
        },
        pending,
        max_bytes,
        fresh::Fresh::new(fresh::MAX_KEPT),
    ));
    // Small enough that committed bytes leave the disk soon, large enough
    // that rotations stay rare.
    let segment_bytes = (max_bytes / 16).clamp(64 << 10, 64 << 20);
    let writer = Writer::open(
        dir.clone(),
        first,
        segment_bytes,
        gather_wait,
        shared.clone(),
        lock.clone(),
    )?;
    let (tx, rx) = writer::queue(shared.clone());
    let thread = std::thread::Builder::new()
        .name("usage-journal".into())
        .spawn(move || writer.run(rx))?;
    if pending > 0 {
        tracing::info!(dir = %dir.display(), pending_bytes = pending, "usage journal replays what the last run left");
    }
    let shipper = shipper::Shipper::new(
        root.to_path_buf(),
        dir,
        checkpoint,
        shared.clone(),
        tx.clone(),
        thread,
        lock,
    );
    Ok((
        Metering(Sink::Journal(Arc::new(Handle { tx, shared }))),
        Background::Journal(shipper),
    ))
}
