//! The journal's files. A directory per replica holds numbered segments of
//! frames (`u32` length, `u32` CRC-32 of the payload, the payload: one
//! usage record as JSON), a `checkpoint` naming the first position not yet
//! committed to the database, and a `lock` file its owner holds an
//! exclusive `flock` on. A frame cut short or failing its checksum ends a
//! closed segment (a torn tail after `kill -9`): it was never acknowledged.
//! A segment is allocated ahead of its frames (see `writer.rs`): after its
//! last frame come zeros, until the writer trims them as it closes the
//! segment; a zero header ends a closed segment's frames (what a crash
//! left) as quietly as its end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use crate::proxy::usage::UsageRecord;

/// Length and checksum in front of each payload.
const HEADER: usize = 8;
/// Larger frames are taken for garbage (a record is well under 1 KiB).
const MAX_PAYLOAD: usize = 1 << 20;
/// Bytes read from a segment at once: the largest frame fits whole. A
/// shipper's batch (1,000 records of well under 1 KiB) needs less; with 4 MiB
/// each batch read from disk (a replay, the overflow while the database was
/// away) read ten times what it shipped.
pub(super) const CHUNK: u64 = (HEADER + MAX_PAYLOAD) as u64;
const CHECKPOINT: &str = "checkpoint";
const LOCK: &str = "lock";

/// A place in a journal: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

/// Appends one framed record to `buf`.
pub fn encode(buf: &mut Vec<u8>, record: &UsageRecord) -> serde_json::Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    if let Err(e) = serde_json::to_writer(&mut *buf, record) {
        buf.truncate(start);
        return Err(e);
    }
    let payload = buf.get(start + HEADER..).unwrap_or_default();
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    if let Some(header) = buf.get_mut(start..start + HEADER) {
        header[..4].copy_from_slice(&len);
        header[4..].copy_from_slice(&crc);
    }
    Ok(())
}

/// The frame at the front of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole frame: its payload and its size on disk.
    Whole(&'a [u8], usize),
    /// The bytes end inside the frame.
    Incomplete,
    /// A length out of bounds or a checksum that does not match.
    Corrupt,
    /// A header of zeros: the segment's allocated space, never written.
    Unwritten,
}

pub fn decode(bytes: &[u8]) -> Frame<'_> {
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER>() else {
        return Frame::Incomplete;
    };
    if *header == [0; HEADER] {
        return Frame::Unwritten;
    }
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return Frame::Corrupt;
    }
    match rest.get(..len) {
        None => Frame::Incomplete,
        Some(p) if crc32fast::hash(p) == u32::from_le_bytes([c0, c1, c2, c3]) => {
            Frame::Whole(p, HEADER + len)
        }
        Some(_) => Frame::Corrupt,
    }
}

pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

/// The segment numbers in the directory, in order.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out: Vec<u64> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Makes renames and new files in the directory durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The first position not committed yet (the start when there is none: a
/// replay is harmless, rows are idempotent).
pub fn read_checkpoint(dir: &Path) -> Pos {
    let text = fs::read_to_string(dir.join(CHECKPOINT)).unwrap_or_default();
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Pos { segment, offset },
        _ => Pos::default(),
    }
}

/// Replaces the checkpoint atomically and durably.
pub fn write_checkpoint(dir: &Path, pos: Pos) -> io::Result<()> {
    let tmp = dir.join("checkpoint.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(format!("{} {}\n", pos.segment, pos.offset).as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(CHECKPOINT))?;
    sync_dir(dir)
}

/// Deletes the segments before `pos` (all committed).
pub fn delete_before(dir: &Path, pos: Pos) -> io::Result<()> {
    for n in segments(dir)?.into_iter().filter(|n| *n < pos.segment) {
        fs::remove_file(segment_path(dir, n))?;
    }
    Ok(())
}

/// Bytes on disk from `from` on (what is not committed yet), a segment's
/// unwritten space left by a crash included, as the read that skips it
/// counts it consumed.
pub fn pending_bytes(dir: &Path, from: Pos) -> io::Result<u64> {
    let mut total = 0;
    for n in segments(dir)?.into_iter().filter(|n| *n >= from.segment) {
        let len = fs::metadata(segment_path(dir, n))?.len();
        total += if n == from.segment {
            len.saturating_sub(from.offset)
        } else {
            len
        };
    }
    Ok(total)
}

/// The exclusive lock on a journal directory (created if missing), or None
/// when another process (or another journal in this one) holds it.
pub fn try_lock(dir: &Path) -> io::Result<Option<File>> {
    fs::create_dir_all(dir)?;
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    if !file.try_lock_exclusive()? {
        return Ok(None);
    }
    // An adopter removes the directory of a journal it emptied: a lock
    // taken on the removed file guards nothing.
    match fs::metadata(&path) {
        Ok(m) if m.ino() == file.metadata()?.ino() => Ok(Some(file)),
        _ => Ok(None),
    }
}

/// Removes an emptied journal directory; its lock is held by the caller.
pub fn remove(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n != LOCK) {
            fs::remove_file(path)?;
        }
    }
    fs::remove_file(dir.join(LOCK))?;
    fs::remove_dir(dir)
}

/// Records read from a journal.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<UsageRecord>,
    /// Where the next read starts: the checkpoint once these are committed.
    pub end: Pos,
    /// Journal bytes the batch covers (frames and ignored tails).
    pub consumed: u64,
}

/// Reads up to `max` records from `from` on, never past `limit` (the
/// durable end of a live journal; None: a closed journal, read to the end
/// of each segment's valid frames).
pub fn read(dir: &Path, from: Pos, limit: Option<Pos>, max: usize) -> io::Result<Batch> {
    let mut batch = Batch {
        end: from,
        ..Batch::default()
    };
    for n in segments(dir)?.into_iter().filter(|n| *n >= from.segment) {
        if limit.is_some_and(|l| n > l.segment) {
            break;
        }
        if n > batch.end.segment {
            batch.end = Pos {
                segment: n,
                offset: 0,
            };
        }
        let stop = limit.filter(|l| l.segment == n).map(|l| l.offset);
        // A segment read in part ends the batch: the next one starts where
        // this one stopped, never in the segment after it.
        let more = read_segment(dir, &mut batch, stop, max)?;
        if more || batch.records.len() >= max {
            break;
        }
    }
    Ok(batch)
}

/// Reads the frames of `batch.end`'s segment from its offset, up to `stop`
/// (the live segment's durable end) or, in a closed segment, to its last
/// valid frame, after which the rest of the file is skipped. At most
/// [`CHUNK`] bytes are read: true when the segment has frames past them.
fn read_segment(dir: &Path, batch: &mut Batch, stop: Option<u64>, max: usize) -> io::Result<bool> {
    let path = segment_path(dir, batch.end.segment);
    let mut file = match File::open(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        other => other?,
    };
    let len = file.metadata()?.len();
    let start = batch.end.offset;
    let end = stop.map_or(len, |s| s.min(len));
    let want = end.saturating_sub(start).min(CHUNK);
    let cut = start + want < end;
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(start))?;
    (&mut file).take(want).read_to_end(&mut buf)?;
    let mut at = 0;
    let mut tail = false;
    let mut more = false;
    while batch.records.len() < max {
        let rest = buf.get(at..).unwrap_or_default();
        match decode(rest) {
            Frame::Whole(payload, size) => {
                match serde_json::from_slice(payload) {
                    Ok(record) => batch.records.push(record),
                    // A sound frame this version cannot read: kept in the
                    // log rather than blocking every record after it.
                    Err(e) => {
                        tracing::error!(error = %e, segment = %path.display(), offset = start + at as u64,
                                              "usage journal record unreadable; skipped")
                    }
                }
                at += size;
            }
            // A closed segment's frames end where its allocated space was
            // never written (a crash before the writer trimmed it).
            Frame::Unwritten if stop.is_none() => {
                tail = true;
                break;
            }
            Frame::Corrupt | Frame::Unwritten if stop.is_some() || cut => {
                tracing::error!(segment = %path.display(), offset = start + at as u64,
                                "usage journal frame corrupt before its durable end");
                break;
            }
            Frame::Incomplete if stop.is_some() || cut => {
                more = cut;
                break;
            }
            Frame::Incomplete | Frame::Corrupt | Frame::Unwritten => {
                tail = true;
                if !rest.is_empty() {
                    tracing::warn!(segment = %path.display(), offset = start + at as u64, bytes = rest.len(),
                                   "torn tail of a usage journal segment ignored (never acknowledged)");
                }
                break;
            }
        }
    }
    let mut read = at as u64;
    if tail {
        read = len.saturating_sub(start);
    }
    batch.end.offset = start + read;
    batch.consumed += read;
    Ok(more)
}
