//! The journal's files without a database: frames, torn tails, the
//! checkpoint, rotation and clean-up, restart and orphans.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use uuid::Uuid;

use super::segment::{self, Frame, Pos};
use super::writer::{company_wait, GATHER_RECORDS, GATHER_WAIT, GATHER_WAIT_MAX};
use super::{open, Background, Metering};
use crate::proxy::usage::{SharedUse, UsageRecord};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("journal-test-{}", Uuid::new_v4().simple()));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn record(n: i32) -> UsageRecord {
    UsageRecord {
        usage_id: Uuid::new_v4(),
        request_id: format!("req-{n}"),
        model: "mock/model".into(),
        endpoint: "/v1/chat/completions",
        prompt_tokens: n,
        completion_tokens: 2 * n,
        status: 200,
        ..UsageRecord::default()
    }
}

/// Records `n` records through a journal and waits until each is durable.
async fn journal(metering: &Metering, from: i32, to: i32) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in from..to {
        let r = record(n);
        ids.push(r.usage_id);
        metering.record(r).wait().await.unwrap();
    }
    ids
}

/// Stops the writer without shipping (as a crash after the syncs would).
async fn stop(background: Background) {
    let Background::Journal(mut shipper) = background else {
        panic!("a journal")
    };
    shipper.stop_writer().await;
}

fn read_all(dir: &std::path::Path, from: Pos) -> segment::Batch {
    segment::read(dir, from, None, usize::MAX).unwrap()
}

#[test]
fn frames_round_trip_and_unknown_fields_default() {
    let mut r = record(7);
    r.shared = Some(SharedUse {
        provider_organization_id: Uuid::new_v4(),
        offering_id: Uuid::new_v4(),
        share_id: Uuid::new_v4(),
    });
    r.disputed = Some((1, 2));
    let mut buf = Vec::new();
    segment::encode(&mut buf, &r).unwrap();
    let Frame::Whole(payload, size) = segment::decode(&buf) else {
        panic!("a whole frame")
    };
    assert_eq!(size, buf.len());
    let back: UsageRecord = serde_json::from_slice(payload).unwrap();
    assert_eq!(back.usage_id, r.usage_id);
    assert_eq!(back.shared, r.shared);
    assert_eq!(back.disputed, Some((1, 2)));
    assert_eq!(back.endpoint, "/v1/chat/completions");
    // A record written by a newer version (a field this one lacks) and an
    // older one (fields missing) both read.
    let newer = br#"{"usage_id":"7a3c1c57-1df4-4a4b-9d2b-6a3d0c5e8f10","endpoint":"/v1/new","cached_tokens":3}"#;
    let read: UsageRecord = serde_json::from_slice(newer).unwrap();
    assert_eq!(read.endpoint, "/v1/new");
    assert_eq!(read.prompt_tokens, 0);
    // Cut or flipped: never a record.
    assert_eq!(segment::decode(&buf[..buf.len() - 1]), Frame::Incomplete);
    let mut flipped = buf.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(segment::decode(&flipped), Frame::Corrupt);
}

#[tokio::test]
async fn a_torn_tail_is_ignored_and_replay_resumes_at_the_checkpoint() {
    let root = TempDir::new();
    let dir = root.0.join("a");
    let (metering, background) = open(&root.0, "a", 1 << 30, GATHER_WAIT).await.unwrap();
    let ids = journal(&metering, 0, 5).await;
    stop(background).await;
    // A crash mid-append: half a frame after the last durable one.
    let mut half = Vec::new();
    segment::encode(&mut half, &record(99)).unwrap();
    let last = *segment::segments(&dir).unwrap().last().unwrap();
    let mut file = OpenOptions::new()
        .append(true)
        .open(segment::segment_path(&dir, last))
        .unwrap();
    file.write_all(&half[..half.len() / 2]).unwrap();
    drop(file);

    // The restart reads the five, not the torn one, and writes after it in a
    // new segment.
    let (metering, background) = open(&root.0, "a", 1 << 30, GATHER_WAIT).await.unwrap();
    let more = journal(&metering, 5, 7).await;
    stop(background).await;
    let all = read_all(&dir, Pos::default());
    let read: Vec<Uuid> = all.records.iter().map(|r| r.usage_id).collect();
    assert_eq!(read, [ids.clone(), more.clone()].concat());

    // Committed up to the third: a replay starts there; a checkpoint lost
    // with a crash replays from the start (the database skips known ids).
    let third = segment::read(&dir, Pos::default(), None, 3).unwrap();
    segment::write_checkpoint(&dir, third.end).unwrap();
    let rest = read_all(&dir, segment::read_checkpoint(&dir));
    let rest: Vec<Uuid> = rest.records.iter().map(|r| r.usage_id).collect();
    assert_eq!(rest, [&ids[3..], &more[..]].concat());
    assert_eq!(
        segment::read_checkpoint(&root.0.join("none")),
        Pos::default()
    );
}

#[tokio::test]
async fn a_segment_is_allocated_ahead_and_its_unwritten_space_read_as_its_end() {
    let root = TempDir::new();
    let dir = root.0.join("a");
    let (metering, background) = open(&root.0, "a", 1 << 22, GATHER_WAIT).await.unwrap();
    let ids = journal(&metering, 0, 5).await;
    let live = segment::segment_path(&dir, *segment::segments(&dir).unwrap().last().unwrap());
    // Allocated ahead: five frames, then zeros to the end.
    let bytes = fs::read(&live).unwrap();
    let (frames, written) = whole_frames(&bytes);
    assert_eq!(frames, 5);
    assert_eq!(segment::decode(&bytes[written..]), Frame::Unwritten);
    assert!(
        bytes.len() > written,
        "{} bytes for {written} written",
        bytes.len()
    );
    assert!(bytes[written..].iter().all(|b| *b == 0));
    // Read as the segment's end, counted as consumed.
    let frames = read_all(&dir, Pos::default());
    assert_eq!(frames.records.len(), 5);
    assert_eq!(frames.consumed, bytes.len() as u64);
    // A crash leaves the zeros (a copy taken now); the restart reads the
    // five and writes after them in a new segment.
    let crashed = root.0.join("b");
    fs::create_dir_all(&crashed).unwrap();
    fs::copy(&live, crashed.join(live.file_name().unwrap())).unwrap();
    stop(background).await;
    // A clean stop trims them.
    assert_eq!(fs::metadata(&live).unwrap().len(), written as u64);
    let (metering, background) = open(&root.0, "b", 1 << 22, GATHER_WAIT).await.unwrap();
    let more = journal(&metering, 5, 7).await;
    stop(background).await;
    let all = read_all(&crashed, Pos::default());
    let read: Vec<Uuid> = all.records.iter().map(|r| r.usage_id).collect();
    assert_eq!(read, [ids, more].concat());
    assert_eq!(segment::segments(&crashed).unwrap().len(), 2);
    // A segment closed by rotation (past 256 KiB here) is trimmed too.
    let (metering, background) = open(&root.0, "c", 1 << 22, GATHER_WAIT).await.unwrap();
    journal(&metering, 0, 1000).await;
    stop(background).await;
    let dir = root.0.join("c");
    let first = segment::segments(&dir).unwrap()[0];
    let bytes = fs::read(segment::segment_path(&dir, first)).unwrap();
    assert!(bytes.len() >= 256 << 10, "{}", bytes.len());
    assert_eq!(whole_frames(&bytes).1, bytes.len());
}

/// The whole frames at the front of a segment's bytes: how many, and the
/// bytes they take.
fn whole_frames(bytes: &[u8]) -> (usize, usize) {
    let (mut count, mut at) = (0, 0);
    while let Frame::Whole(_, size) = segment::decode(&bytes[at..]) {
        count += 1;
        at += size;
    }
    (count, at)
}

#[test]
fn a_segment_longer_than_a_read_is_read_in_parts_before_the_next_one() {
    let root = TempDir::new();
    let dir = root.0.clone();
    // A closed segment holding more than one read's bytes, then another.
    let mut ids = Vec::new();
    let mut write = |n: u64, count: i32| {
        let mut buf = Vec::new();
        for i in 0..count {
            let mut r = record(i);
            r.request_id = format!("{i:0>120}");
            ids.push(r.usage_id);
            segment::encode(&mut buf, &r).unwrap();
        }
        fs::write(segment::segment_path(&dir, n), &buf).unwrap();
        buf.len() as u64
    };
    let first = write(1, 4000);
    assert!(first > segment::CHUNK, "{first} bytes in one read");
    write(2, 10);

    // Each batch goes on where the last one stopped: nothing is skipped.
    let (mut read, mut at, mut batches) = (Vec::new(), Pos::default(), 0);
    loop {
        let batch = read_all(&dir, at);
        if batch.records.is_empty() {
            break;
        }
        batches += 1;
        read.extend(batch.records.iter().map(|r| r.usage_id));
        at = batch.end;
    }
    assert!(batches >= 2, "{batches} batches");
    assert_eq!(read, ids);
}

#[tokio::test]
async fn segments_rotate_and_committed_ones_are_deleted() {
    let root = TempDir::new();
    let dir = root.0.join("r");
    // The smallest limit gives the smallest segments (64 KiB).
    let (metering, background) = open(&root.0, "r", 4096, GATHER_WAIT).await.unwrap();
    let ids = journal(&metering, 0, 400).await;
    assert!(metering.fill().unwrap().pending_bytes > 64 << 10);
    stop(background).await;
    let segments = segment::segments(&dir).unwrap();
    assert!(segments.len() >= 3, "{segments:?}");

    // Past the limit: /v1 is refused until the journal is committed.
    assert!(metering.admit().is_err());
    let all = read_all(&dir, Pos::default());
    assert_eq!(all.records.len(), 400);
    assert_eq!(
        all.records.iter().map(|r| r.usage_id).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        all.consumed,
        segment::pending_bytes(&dir, Pos::default()).unwrap()
    );
    segment::write_checkpoint(&dir, all.end).unwrap();
    segment::delete_before(&dir, all.end).unwrap();
    assert_eq!(segment::segments(&dir).unwrap(), [all.end.segment]);
    assert!(read_all(&dir, all.end).records.is_empty());
}

#[tokio::test]
async fn a_journal_is_locked_while_its_replica_lives_and_adoptable_after() {
    let root = TempDir::new();
    let dir = root.0.join("gone");
    let (metering, background) = open(&root.0, "gone", 1 << 30, GATHER_WAIT).await.unwrap();
    let ids = journal(&metering, 0, 3).await;
    // Live: nobody else may take it.
    assert!(segment::try_lock(&dir).unwrap().is_none());
    stop(background).await;
    drop(metering);

    // Gone: the lock is free; the adopter reads it all and removes it.
    let lock = segment::try_lock(&dir).unwrap().expect("free");
    let all = read_all(&dir, segment::read_checkpoint(&dir));
    assert_eq!(
        all.records.iter().map(|r| r.usage_id).collect::<Vec<_>>(),
        ids
    );
    segment::remove(&dir).unwrap();
    drop(lock);
    assert!(!dir.exists());
    // The same id starts afresh.
    let (metering, background) = open(&root.0, "gone", 1 << 30, GATHER_WAIT).await.unwrap();
    journal(&metering, 0, 1).await;
    stop(background).await;
}

/// The syncs the journal did so far, and the records they carried.
fn syncs(metering: &Metering) -> (u64, u64) {
    let fill = metering.fill().unwrap();
    (fill.syncs, fill.synced_records)
}

/// Within this, an ack that should come does (a gather wait of an hour
/// never passes in a test).
const ACK: std::time::Duration = std::time::Duration::from_secs(30);
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

#[tokio::test]
async fn a_lone_request_is_synced_at_once_even_with_a_long_gather_wait() {
    let root = TempDir::new();
    let (metering, background) = open(&root.0, "lone", 1 << 30, HOUR).await.unwrap();
    for n in 0..3 {
        drop(metering.answering());
        let durable = metering.record(record(n));
        tokio::time::timeout(ACK, durable.wait())
            .await
            .expect("nobody else is answering: synced at once")
            .unwrap();
    }
    assert_eq!(syncs(&metering), (3, 3));
    stop(background).await;
}

#[tokio::test]
async fn records_of_requests_answered_together_share_one_sync() {
    let root = TempDir::new();
    let (metering, background) = open(&root.0, "crowd", 1 << 30, HOUR).await.unwrap();
    // Four requests being answered; three finish, the last one is still
    // being answered: their records wait for it.
    let mut answering: Vec<_> = (0..4).map(|_| metering.answering()).collect();
    let mut waiting = Vec::new();
    // Each is counted off before its record is handed over (as `Meter`
    // does).
    for n in 0..4 {
        answering.pop();
        waiting.push(metering.record(record(n)));
    }
    for durable in waiting {
        tokio::time::timeout(ACK, durable.wait())
            .await
            .expect("the last answer ends the gathering")
            .unwrap();
    }
    assert_eq!(syncs(&metering), (1, 4));
    stop(background).await;
}

#[tokio::test]
async fn a_full_group_is_synced_without_waiting_for_the_others() {
    let root = TempDir::new();
    let (metering, background) = open(&root.0, "full", 1 << 30, HOUR).await.unwrap();
    // Someone is still being answered for the whole test.
    let _other = metering.answering();
    let waiting: Vec<_> = (0..GATHER_RECORDS)
        .map(|n| metering.record(record(n as i32)))
        .collect();
    for durable in waiting {
        tokio::time::timeout(ACK, durable.wait())
            .await
            .expect("a group of GATHER_RECORDS is synced")
            .unwrap();
    }
    assert_eq!(syncs(&metering), (1, GATHER_RECORDS as u64));
    stop(background).await;
}

#[test]
fn long_answers_wait_longer_for_company_in_proportion_and_capped() {
    let ms = std::time::Duration::from_millis;
    // Short answers (chat under load): the configured wait.
    assert_eq!(company_wait(GATHER_WAIT, ms(5)), GATHER_WAIT);
    assert_eq!(company_wait(GATHER_WAIT, ms(0)), GATHER_WAIT);
    // Streams of 30 ms: half of it, so a group gathers about half of
    // those being answered.
    assert_eq!(company_wait(GATHER_WAIT, ms(30)), ms(15));
    // Long streams: never more than the cap.
    assert_eq!(company_wait(GATHER_WAIT, ms(5000)), GATHER_WAIT_MAX);
    // A configured wait longer than the cap is kept (tests, operators).
    assert_eq!(company_wait(HOUR, ms(5000)), HOUR);
}

#[tokio::test]
async fn a_record_handed_over_after_the_writer_stopped_is_refused_at_once() {
    let root = TempDir::new();
    let (metering, background) = open(&root.0, "stopped", 1 << 30, HOUR).await.unwrap();
    journal(&metering, 0, 2).await;
    stop(background).await;
    let refused = tokio::time::timeout(ACK, metering.record(record(3)).wait())
        .await
        .expect("answered at once, not left waiting");
    assert!(refused.is_err(), "a record nobody writes is not durable");
    assert_eq!(syncs(&metering), (2, 2));
}

/// The records the writer keeps in memory for the shipper.
fn fresh(metering: &Metering) -> &super::fresh::Fresh {
    let super::Sink::Journal(handle) = &metering.0 else {
        panic!("a journal")
    };
    &handle.shared.fresh
}

#[tokio::test]
async fn the_records_kept_in_memory_are_the_journals_own_frames_across_rotations() {
    let root = TempDir::new();
    let dir = root.0.join("kept");
    // 64 KiB segments: 400 records rotate several times.
    let (metering, background) = open(&root.0, "kept", 4096, GATHER_WAIT).await.unwrap();
    let ids = journal(&metering, 0, 400).await;
    stop(background).await;
    assert!(segment::segments(&dir).unwrap().len() >= 3);

    // Nothing kept starts before this run's first segment: the last run's
    // records (none here) are read from disk up to the first kept one.
    let first = fresh(&metering).first().expect("records kept");
    let before = segment::read(&dir, Pos::default(), Some(first), usize::MAX).unwrap();
    assert!(before.records.is_empty());
    assert_eq!(before.end, first);

    let kept = fresh(&metering).take(before.end, usize::MAX);
    let on_disk = read_all(&dir, Pos::default());
    assert_eq!(
        kept.records.iter().map(|r| r.usage_id).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(kept.end, on_disk.end);
    assert_eq!(kept.consumed, on_disk.consumed);
    assert!(fresh(&metering).first().is_none(), "all taken");
}

fn kept(follows: (u64, u64), start: (u64, u64), end: (u64, u64), n: i32) -> super::fresh::Kept {
    let pos = |(segment, offset)| Pos { segment, offset };
    super::fresh::Kept {
        follows: pos(follows),
        start: pos(start),
        end: pos(end),
        record: record(n),
    }
}

#[test]
fn what_memory_could_not_keep_is_read_from_disk_up_to_the_next_kept_record() {
    let pos = |segment, offset| Pos { segment, offset };
    let fresh = super::fresh::Fresh::new(3);
    fresh.keep(vec![
        kept((1, 0), (1, 0), (1, 10), 0),
        kept((1, 10), (1, 10), (1, 20), 1),
    ]);
    // Does not fit whole: not kept at all.
    fresh.keep(vec![
        kept((1, 20), (1, 20), (1, 30), 2),
        kept((1, 30), (1, 30), (1, 40), 3),
    ]);
    fresh.keep(vec![kept((1, 40), (1, 40), (1, 50), 4)]);
    let taken = fresh.take(pos(1, 0), 10);
    assert_eq!(
        taken
            .records
            .iter()
            .map(|r| r.prompt_tokens)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!((taken.end, taken.consumed), (pos(1, 20), 20));
    // The hole: nothing from memory; the disk read stops where it ends.
    assert!(fresh.take(pos(1, 20), 10).records.is_empty());
    assert_eq!(fresh.first(), Some(pos(1, 40)));
    // After a rotation the next record follows the old segment's end.
    fresh.keep(vec![kept((1, 50), (2, 0), (2, 10), 5)]);
    let taken = fresh.take(pos(1, 40), 10);
    assert_eq!(
        taken
            .records
            .iter()
            .map(|r| r.prompt_tokens)
            .collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(taken.end, pos(2, 10));
    // Records committed from disk meanwhile are dropped, never shipped twice.
    fresh.keep(vec![
        kept((2, 10), (2, 10), (2, 20), 6),
        kept((2, 20), (2, 20), (2, 30), 7),
    ]);
    let taken = fresh.take(pos(2, 20), 10);
    assert_eq!(
        taken
            .records
            .iter()
            .map(|r| r.prompt_tokens)
            .collect::<Vec<_>>(),
        [7]
    );
    assert!(fresh.first().is_none());
}
