//! The journal's shipper: commits journaled records to the database in
//! journal order, in batches, through the idempotent usage writer (a
//! record committed twice, after a crash between the commit and the
//! checkpoint, is one row: its `usage_id` is unique). After each batch the
//! checkpoint moves (fsynced) and fully committed segments are deleted.
//! While the database refuses, the journal grows and the shipper retries.
//! Records the writer still keeps in memory ([`super::fresh`]) are taken
//! from there; the others are read back from disk.
//!
//! It also adopts orphans: a sibling directory whose lock is free belongs
//! to a replica that is gone (crashed, or replaced under another id); its
//! records are committed and the directory removed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::segment::{self, Batch, Pos};
use super::writer::{self, Shared};
use crate::proxy::usage;

/// Records per database transaction.
const BATCH: usize = 1000;
/// A batch smaller than [`BATCH`] is followed by a pause this long (from
/// its start) before the next, unless a wake finds the last batch long
/// past: under load a transaction and a checkpoint then carry hundreds of
/// records rather than each sync's few, and the records wait in the
/// journal, durable, meanwhile.
const SHIP_EVERY: Duration = Duration::from_millis(250);
/// Wait before retrying after the database refused a batch.
const RETRY: Duration = Duration::from_millis(500);
/// How often sibling directories are checked for orphans.
const ORPHAN_SCAN: Duration = Duration::from_secs(5);
/// How long shutdown keeps committing what is left (the rest stays in the
/// journal for the next start).
const FINAL_PASS: Duration = Duration::from_secs(5);

/// The background half of this replica's journal.
pub struct Shipper {
    root: PathBuf,
    dir: PathBuf,
    checkpoint: Pos,
    shared: Arc<Shared>,
    writer: writer::Sender,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A batch the database refused, retried before anything else.
    held: Option<Batch>,
    _lock: Arc<File>,
}

/// What one shipping step did.
enum Step {
    /// Committed (or skipped past) something; there may be more at once
    /// when the batch was full.
    Progress { full: bool },
    /// Nothing to commit.
    Idle,
    /// The database refused; retry later.
    Refused,
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

/// Reads one batch of `dir` from `from`, up to `limit` in a live journal.
async fn read(dir: &Path, from: Pos, limit: Option<Pos>) -> Result<Batch, ()> {
    let read_dir = dir.to_path_buf();
    blocking(move || segment::read(&read_dir, from, limit, BATCH))
        .await
        .map_err(
            |e| tracing::error!(error = %e, dir = %dir.display(), "usage journal not readable"),
        )
}

/// Commits one batch of `dir` from `from` (up to `limit` in a live
/// journal) and moves its checkpoint; the batch's new position and size.
async fn ship(
    db: &sqlx::PgPool,
    notice: Duration,
    dir: &Path,
    from: Pos,
    limit: Option<Pos>,
) -> Result<Option<Batch>, ()> {
    let batch = read(dir, from, limit).await?;
    if batch.end == from {
        return Ok(None);
    }
    commit(db, notice, dir, &batch).await?;
    Ok(Some(batch))
}

/// Commits a batch of `dir`'s records and moves its checkpoint past them.
async fn commit(db: &sqlx::PgPool, notice: Duration, dir: &Path, batch: &Batch) -> Result<(), ()> {
    if !batch.records.is_empty() {
        if let Err(e) = usage::write(db, &batch.records, notice).await {
            tracing::error!(error = %e, rows = batch.records.len(), "usage batch not written; kept in the journal, will retry");
            return Err(());
        }
    }
    let (done_dir, end) = (dir.to_path_buf(), batch.end);
    blocking(move || {
        segment::write_checkpoint(&done_dir, end)?;
        segment::delete_before(&done_dir, end)
    })
    .await
    .map_err(|e| tracing::error!(error = %e, dir = %dir.display(), "usage journal checkpoint not written"))
}

impl Shipper {
    pub fn new(
        root: PathBuf,
        dir: PathBuf,
        checkpoint: Pos,
        shared: Arc<Shared>,
        writer: writer::Sender,
        thread: std::thread::JoinHandle<()>,
        lock: Arc<File>,
    ) -> Shipper {
        Shipper {
            root,
            dir,
            checkpoint,
            shared,
            writer,
            thread: Some(thread),
            held: None,
            _lock: lock,
        }
    }

    /// Commits a batch of what this replica's journal holds up to its
    /// durable end.
    async fn step(&mut self, db: &sqlx::PgPool, notice: Duration) -> Step {
        let batch = match self.held.take() {
            Some(batch) => batch,
            None => match self.next().await {
                Ok(batch) => batch,
                Err(()) => return Step::Refused,
            },
        };
        if batch.end == self.checkpoint {
            return Step::Idle;
        }
        match commit(db, notice, &self.dir, &batch).await {
            Ok(()) => {
                self.checkpoint = batch.end;
                self.shared.shipped(batch.consumed);
                Step::Progress {
                    full: batch.records.len() >= BATCH,
                }
            }
            Err(()) => {
                self.held = Some(batch);
                Step::Refused
            }
        }
    }

    /// The next batch after the checkpoint: the records kept in memory
    /// when they continue it, else a read from disk up to the first kept
    /// record (or the durable end).
    async fn next(&self) -> Result<Batch, ()> {
        let durable = self.shared.durable();
        let kept = self.shared.fresh.take(self.checkpoint, BATCH);
        if kept.end != self.checkpoint {
            return Ok(kept);
        }
        let limit = self
            .shared
            .fresh
            .first()
            .map_or(durable, |first| first.min(durable));
        read(&self.dir, self.checkpoint, Some(limit)).await
    }

    /// Stops the writer once it synced what it was handed.
    pub async fn stop_writer(&mut self) {
        self.writer.stop();
        if let Some(thread) = self.thread.take() {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                _ => tracing::error!("usage journal writer failed"),
            }
        }
    }

    /// Commits until `stop`, then stops the writer (which syncs what it
    /// holds) and commits what is left for a little while.
    pub async fn run(mut self, db: sqlx::PgPool, notice: Duration, stop: CancellationToken) {
        // Scanned at start-up, then every ORPHAN_SCAN, under load too.
        let mut scanned: Option<tokio::time::Instant> = None;
        loop {
            let started = tokio::time::Instant::now();
            let step = self.step(&db, notice).await;
            if stop.is_cancelled() {
                break;
            }
            let scan_due = scanned.is_none_or(|at| at.elapsed() >= ORPHAN_SCAN);
            if scan_due && !matches!(step, Step::Refused) {
                adopt_orphans(&db, notice, &self.root, &self.dir).await;
                scanned = Some(tokio::time::Instant::now());
            }
            let pace = match step {
                Step::Progress { full: true } => false,
                Step::Progress { full: false } => true,
                Step::Refused => tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RETRY) => false,
                },
                Step::Idle => tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.shared.wake.notified() => false,
                    _ = tokio::time::sleep(ORPHAN_SCAN) => false,
                },
            };
            if pace {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(started + SHIP_EVERY) => {}
                }
            }
        }
        self.stop_writer().await;
        let last = async { while let Step::Progress { .. } = self.step(&db, notice).await {} };
        if tokio::time::timeout(FINAL_PASS, last).await.is_err() {
            tracing::warn!(
                "usage journal not fully committed at shutdown; the next start replays it"
            );
        }
    }
}

/// Commits and removes the journals of replicas that are gone.
pub async fn adopt_orphans(db: &sqlx::PgPool, notice: Duration, root: &Path, own: &Path) {
    let root_dir = root.to_path_buf();
    let dirs = blocking(move || {
        Ok(std::fs::read_dir(&root_dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect::<Vec<_>>())
    })
    .await
    .unwrap_or_default();
    for dir in dirs.into_iter().filter(|d| d != own) {
        let locked = dir.clone();
        let Ok(Some(lock)) = blocking(move || segment::try_lock(&locked)).await else {
            continue;
        };
        tracing::info!(dir = %dir.display(), "adopting the usage journal of a replica that is gone");
        if adopt(db, notice, &dir).await {
            let removed = dir.clone();
            if let Err(e) = blocking(move || segment::remove(&removed)).await {
                tracing::warn!(error = %e, dir = %dir.display(), "adopted usage journal not removed");
            }
        }
        drop(lock);
    }
}

/// Commits the journal in `dir` (a replica's that is gone, e.g. copied
/// from its disk) to its end and removes it: `inventiv-api
/// replay-usage-journal <dir>`.
pub async fn replay_dir(db: &sqlx::PgPool, notice: Duration, dir: &Path) -> anyhow::Result<()> {
    if segment::segments(dir).is_err() {
        anyhow::bail!("{} is not a readable directory", dir.display());
    }
    let locked = dir.to_path_buf();
    let lock = blocking(move || segment::try_lock(&locked))
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} is locked: its replica (or another adopter) is live",
                dir.display()
            )
        })?;
    if !adopt(db, notice, dir).await {
        anyhow::bail!(
            "the database refused usage rows; what was committed is checkpointed, run again"
        );
    }
    let removed = dir.to_path_buf();
    blocking(move || segment::remove(&removed)).await?;
    drop(lock);
    Ok(())
}

/// Commits a closed journal to its end; true once all of it is committed.
async fn adopt(db: &sqlx::PgPool, notice: Duration, dir: &Path) -> bool {
    let mut from = segment::read_checkpoint(dir);
    loop {
        match ship(db, notice, dir, from, None).await {
            Ok(Some(batch)) => from = batch.end,
            Ok(None) => return true,
            Err(()) => return false,
        }
    }
}
