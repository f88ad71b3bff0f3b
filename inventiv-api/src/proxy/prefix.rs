//! Prefix-cache-aware worker choice, in approximate mode: the router keeps
//! its own record of which prompt prefixes it sent to which worker of a
//! route, and sends a request where the longest part of its prompt was sent
//! before (the engine's prefix cache likely holds it), unless that worker
//! is too loaded. The router has no tokenizer: a prompt's text (every
//! string of `messages`, or `prompt`, in order, as the body has them) is cut
//! into blocks of `block_bytes` bytes (128 by default: about 32 tokens at
//! ~4 bytes a token, two vLLM blocks; finer blocks cost more per decision
//! and route no better), each named by a hash chained on everything before
//! it, as vLLM names its KV blocks. Only whole blocks
//! count, so a prompt shorter than one block is routed on load alone.
//!
//! The record ([`PrefixIndex`], one per route) maps a block hash to the set
//! of workers it was sent to, in two generations of at most `capacity / 2`
//! blocks each: when the young one is full it becomes the old one and the
//! previous old one is dropped, an LRU approximation with O(1) steps and a
//! hard memory bound (about 40 bytes a block).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use uuid::Uuid;

/// How the worker choice weighs an expected prefix hit against load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefixSettings {
    /// Weight of the expected hit (the fraction of the prompt's blocks
    /// found on a worker); 0 turns prefix scoring off (least outstanding).
    pub prefix_weight: f64,
    /// Penalty per outstanding request above the least loaded candidate.
    pub load_weight: f64,
    /// A worker with more than this many outstanding requests above the
    /// least loaded candidate never wins on its prefix.
    pub max_imbalance: u32,
    /// Bytes of prompt text per block.
    pub block_bytes: usize,
    /// Blocks remembered per route (its memory bound).
    pub capacity: usize,
    /// Blocks hashed per prompt at most (the cost bound of one decision).
    pub max_blocks: usize,
}

impl Default for PrefixSettings {
    fn default() -> Self {
        Self {
            prefix_weight: 1.0,
            load_weight: 0.1,
            max_imbalance: 8,
            block_bytes: 128,
            capacity: 65_536,
            max_blocks: 2048,
        }
    }
}

impl PrefixSettings {
    /// Whether prefix scoring is on.
    pub fn enabled(&self) -> bool {
        self.prefix_weight > 0.0 && self.capacity > 0
    }
}

/// The prompt text of a `/v1` body: every string under `messages` (or
/// `prompt`), in order; object keys, numbers and booleans are skipped, any
/// shape is accepted (the engine judges the body, not the router).
#[derive(Debug, Default)]
pub struct PromptText<'a>(Vec<Cow<'a, str>>);

impl<'a> PromptText<'a> {
    /// The pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|p| &**p)
    }

    /// A prompt made of these pieces (tests, benches).
    pub fn of(pieces: &[&'a str]) -> Self {
        PromptText(pieces.iter().map(|p| Cow::Borrowed(*p)).collect())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for PromptText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut pieces = Vec::new();
        Collect(&mut pieces).deserialize(d)?;
        Ok(PromptText(pieces))
    }
}

/// Appends every string of a JSON value to the vector.
struct Collect<'v, 'a>(&'v mut Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for Collect<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Collect<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.0.push(Cow::Borrowed(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(Cow::Owned(v.to_owned()));
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.push(Cow::Owned(v));
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(Collect(self.0))?;
        }
        Ok(())
    }
}

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const MUL: u64 = 0xbf58_476d_1ce4_e5b9;

/// One block's hash, chained on its parent's: eight bytes a step (a
/// multiply-rotate, as FxHash) in four independent lanes (the CPU works on
/// them at once; one chain would wait on each multiply), then a final mix
/// so that the index's map can use the hash as is. Not cryptographic: a
/// collision only makes one estimate wrong.
fn block_hash(parent: u64, block: &[u8]) -> u64 {
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(MUL);
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    let mut lanes = [parent ^ SEED, parent ^ MUL, parent.rotate_left(17), !parent];
    let mut quads = block.chunks_exact(32);
    for quad in &mut quads {
        for (lane, bytes) in lanes.iter_mut().zip(quad.chunks_exact(8)) {
            *lane = step(*lane, word(bytes));
        }
    }
    let mut h = lanes
        .iter()
        .fold(block.len() as u64, |h, lane| step(h, *lane));
    let mut words = quads.remainder().chunks_exact(8);
    for bytes in &mut words {
        h = step(h, word(bytes));
    }
    for &b in words.remainder() {
        h = step(h, u64::from(b));
    }
    // SplitMix64's finalizer.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The chained hashes of a prompt's whole blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptBlocks(Vec<u64>);

impl PromptBlocks {
    /// Cuts the pieces' text (a separator byte after each, as a chat
    /// template separates messages) into blocks of `block_bytes`, at most
    /// `max_blocks` of them.
    pub fn of<'p>(
        pieces: impl IntoIterator<Item = &'p str>,
        block_bytes: usize,
        max_blocks: usize,
    ) -> Self {
        let size = block_bytes.max(8);
        let mut hashes = Vec::new();
        let mut carry: Vec<u8> = Vec::with_capacity(size);
        let mut parent = 0u64;
        'pieces: for piece in pieces {
            let mut rest = piece.as_bytes();
            while !rest.is_empty() {
                if hashes.len() >= max_blocks {
                    break 'pieces;
                }
                if carry.is_empty() && rest.len() >= size {
                    let (block, tail) = rest.split_at(size);
                    parent = block_hash(parent, block);
                    hashes.push(parent);
                    rest = tail;
                    continue;
                }
                let take = (size - carry.len()).min(rest.len());
                let (head, tail) = rest.split_at(take);
                carry.extend_from_slice(head);
                rest = tail;
                if carry.len() == size {
                    parent = block_hash(parent, &carry);
                    hashes.push(parent);
                    carry.clear();
                }
            }
            carry.push(0xff);
            if carry.len() == size && hashes.len() < max_blocks {
                parent = block_hash(parent, &carry);
                hashes.push(parent);
                carry.clear();
            }
        }
        PromptBlocks(hashes)
    }

    /// Whole blocks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The tie-break of `worker` for this prompt: among equally loaded
    /// workers none of which saw the prompt, the one with the highest
    /// (rendezvous hashing on the first block) goes first, so that new
    /// prefixes spread over the workers, each always to the same one (on
    /// every API replica alike).
    pub fn tie(&self, worker: Uuid) -> u64 {
        let (high, low) = worker.as_u64_pair();
        let first = self.0.first().copied().unwrap_or(0);
        block_hash(first, &[high.to_le_bytes(), low.to_le_bytes()].concat())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The hashes are already mixed: the map uses them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Block hash → the workers (bits of their slots) it was sent to.
type Blocks = HashMap<u64, u64, BuildHasherDefault<Identity>>;

/// Workers a route tracks at most (one bit each); more are routed on load.
const SLOTS: usize = 64;

#[derive(Default)]
struct Record {
    young: Blocks,
    old: Blocks,
    /// The worker of each slot.
    slots: Vec<Uuid>,
}

impl Record {
    fn get(&self, hash: u64) -> u64 {
        self.young.get(&hash).copied().unwrap_or(0) | self.old.get(&hash).copied().unwrap_or(0)
    }

    fn slot(&self, worker: Uuid) -> Option<usize> {
        self.slots.iter().position(|w| *w == worker)
    }
}

/// One route's record of what it sent where.
#[derive(Default)]
pub struct PrefixIndex {
    record: Mutex<Record>,
}

impl fmt::Debug for PrefixIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixIndex")
            .field("blocks", &self.len())
            .finish()
    }
}

impl PrefixIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        // A poisoned lock only means a panic mid-update of a cache.
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// For each worker of `workers`, how many leading blocks of the prompt
    /// were sent to it.
    pub fn matched(&self, prompt: &PromptBlocks, workers: &[Uuid]) -> Vec<usize> {
        let mut matched = vec![0; workers.len()];
        if prompt.is_empty() {
            return matched;
        }
        let record = self.lock();
        let bits: Vec<u64> = workers
            .iter()
            .map(|w| record.slot(*w).map_or(0, |s| 1u64 << s))
            .collect();
        let mut alive = bits.iter().fold(0u64, |a, b| a | b);
        for (depth, hash) in prompt.0.iter().enumerate() {
            let here = record.get(*hash) & alive;
            if here != alive {
                for (m, bit) in matched.iter_mut().zip(&bits) {
                    if alive & bit != 0 && here & bit == 0 {
                        *m = depth;
                    }
                }
            }
            alive = here;
            if alive == 0 {
                return matched;
            }
        }
        for (m, bit) in matched.iter_mut().zip(&bits) {
            if alive & bit != 0 {
                *m = prompt.len();
            }
        }
        matched
    }

    /// Notes that the prompt was sent to `worker`.
    pub fn record(&self, prompt: &PromptBlocks, worker: Uuid, capacity: usize) {
        if prompt.is_empty() || capacity == 0 {
            return;
        }
        let mut record = self.lock();
        let slot = match record.slot(worker) {
            Some(s) => s,
            None if record.slots.len() < SLOTS => {
                record.slots.push(worker);
                record.slots.len() - 1
            }
            None => return,
        };
        let bit = 1u64 << slot;
        let half = (capacity / 2).max(1);
        let record = &mut *record;
        if record.young.capacity() < half {
            // Sized once: growing by doubling would rehash the whole
            // generation under the lock, a stall of the requests waiting.
            record.young.reserve(half - record.young.len());
        }
        for hash in &prompt.0 {
            if let Some(bits) = record.young.get_mut(hash) {
                *bits |= bit;
                continue;
            }
            if record.young.len() >= half {
                // The young generation becomes the old one; the previous
                // old one's table, emptied, is the next young one.
                std::mem::swap(&mut record.young, &mut record.old);
                record.young.clear();
            }
            let old = record.old.get(hash).copied().unwrap_or(0);
            record.young.insert(*hash, old | bit);
        }
    }

    /// Forgets the workers not in `workers` (gone from the route), freeing
    /// their slots.
    pub fn retain(&self, workers: &[Uuid]) {
        let mut record = self.lock();
        let gone: u64 = record
            .slots
            .iter()
            .enumerate()
            .filter(|(_, w)| !workers.contains(w))
            .fold(0, |m, (s, _)| m | 1u64 << s);
        if gone == 0 {
            return;
        }
        // Slots are positions: the kept workers move down, their bits too.
        let keep: Vec<(usize, Uuid)> = record
            .slots
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, w)| workers.contains(w))
            .collect();
        let remap = |bits: u64| {
            keep.iter()
                .enumerate()
                .fold(0u64, |m, (to, (from, _))| m | ((bits >> from) & 1) << to)
        };
        let record = &mut *record;
        for map in [&mut record.young, &mut record.old] {
            map.retain(|_, bits| {
                *bits = remap(*bits);
                *bits != 0
            });
        }
        record.slots = keep.into_iter().map(|(_, w)| w).collect();
    }

    /// Blocks remembered.
    pub fn len(&self) -> usize {
        let record = self.lock();
        record.young.len() + record.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the choice knows of one candidate worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub outstanding: u32,
    /// Requests waiting in the engine, as its last heartbeat said.
    pub queue_depth: u32,
    /// Leading prompt blocks sent to it before.
    pub matched: usize,
    /// Orders equally loaded workers ([`PromptBlocks::tie`]), highest first.
    pub tie: u64,
}

/// The candidates' order, best first: the least outstanding (ties: the
/// shortest engine queue, then the highest `tie`) unless a worker's
/// expected hit outweighs its
/// extra load: score = `prefix_weight` × matched / blocks − `load_weight`
/// × (its outstanding − the least), for workers at most `max_imbalance`
/// above the least loaded; the best positive score goes first, the others
/// follow least outstanding first (the fallbacks).
pub fn order(candidates: &[Candidate], blocks: usize, s: &PrefixSettings) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|i| {
        candidates
            .get(*i)
            .map(|c| (c.outstanding, c.queue_depth, std::cmp::Reverse(c.tie)))
    });
    let least = candidates.iter().map(|c| c.outstanding).min().unwrap_or(0);
    if blocks == 0 || !s.enabled() {
        return order;
    }
    let score = |c: &Candidate| {
        let extra = c.outstanding - least;
        if c.matched == 0 || extra > s.max_imbalance {
            return None;
        }
        let hit = c.matched as f64 / blocks as f64;
        Some(s.prefix_weight * hit - s.load_weight * f64::from(extra))
    };
    let mut best: Option<(usize, f64)> = None;
    for (at, i) in order.iter().enumerate() {
        let Some(sc) = candidates.get(*i).and_then(score) else {
            continue;
        };
        // Strictly better than staying on the least loaded (score 0).
        if sc > 0.0 && best.is_none_or(|(_, b)| sc > b) {
            best = Some((at, sc));
        }
    }
    if let Some((at, _)) = best {
        let chosen = order.remove(at);
        order.insert(0, chosen);
    }
    order
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::collections::HashSet;

    use super::*;

    fn text(n: usize, salt: &str) -> String {
        (0..n).map(|i| format!("{salt}{i} ")).collect()
    }

    fn blocks(pieces: &[&str]) -> PromptBlocks {
        PromptBlocks::of(pieces.iter().copied(), 64, 2048)
    }

    #[test]
    fn blocks_chain_and_only_whole_blocks_count() {
        assert!(blocks(&["short"]).is_empty());
        let shared = text(100, "s");
        let a = blocks(&[&shared, &text(50, "a")]);
        let b = blocks(&[&shared, &text(50, "b")]);
        let common = a.0.iter().zip(&b.0).take_while(|(x, y)| x == y).count();
        // The shared text's whole blocks are the same, nothing after.
        assert_eq!(common, shared.len() / 64);
        // Chained: the same block after a different start differs.
        let c = blocks(&[&text(100, "t"), &text(50, "a")]);
        assert!(a.0.iter().zip(&c.0).all(|(x, y)| x != y));
        // Pieces are separated: the same bytes split differently differ.
        let whole = text(40, "w");
        let (x, y) = whole.split_at(100);
        assert_ne!(blocks(&[&whole]).0[1..], blocks(&[x, y]).0[1..]);
        // Bounded.
        assert_eq!(
            PromptBlocks::of([text(1000, "x").as_str()], 64, 10).len(),
            10
        );
    }

    #[test]
    fn the_prompt_text_is_every_string_in_order() {
        let body = r#"{"messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hi\nthere"},{"n":1,"b":true,"z":null}]}]}"#;
        #[derive(serde::Deserialize)]
        struct Body<'a> {
            #[serde(borrow)]
            messages: PromptText<'a>,
        }
        let b: Body = serde_json::from_str(body).unwrap();
        let pieces: Vec<&str> = b.messages.pieces().collect();
        assert_eq!(pieces, ["system", "be brief", "user", "text", "hi\nthere"]);
        let s: PromptText = serde_json::from_str(r#""one""#).unwrap();
        assert_eq!(s.pieces().collect::<Vec<_>>(), ["one"]);
    }

    #[test]
    fn the_longest_chain_sent_to_each_worker_is_found() {
        let index = PrefixIndex::default();
        let (w1, w2, w3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let shared = text(100, "s");
        let long = blocks(&[&shared, &text(100, "q")]);
        index.record(&long, w1, 1000);
        index.record(&blocks(&[&shared]), w2, 1000);
        let ask = blocks(&[&shared, &text(100, "q"), &text(10, "new")]);
        let m = index.matched(&ask, &[w1, w2, w3]);
        assert_eq!(m, [long.len(), shared.len() / 64, 0]);
        // A worker gone is forgotten; the others keep what they had.
        index.retain(&[w2]);
        assert_eq!(index.matched(&ask, &[w1, w2]), [0, shared.len() / 64]);
    }

    #[test]
    fn memory_is_bounded() {
        let index = PrefixIndex::default();
        let w = Uuid::new_v4();
        for i in 0..200 {
            index.record(&blocks(&[&text(100, &format!("p{i}-"))]), w, 100);
        }
        assert!(index.len() <= 100, "{}", index.len());
        // The most recent prompt is still there.
        let last = blocks(&[&text(100, "p199-")]);
        assert_eq!(index.matched(&last, &[w]), [last.len()]);
    }

    fn c(outstanding: u32, matched: usize) -> Candidate {
        Candidate {
            outstanding,
            queue_depth: 0,
            matched,
            tie: 0,
        }
    }

    #[test]
    fn the_scorer_table() {
        let s = PrefixSettings::default();
        // (candidates, blocks) -> the first choice
        let cases: &[(&[Candidate], usize, usize)] = &[
            // No prefix known: least outstanding.
            (&[c(3, 0), c(1, 0), c(2, 0)], 10, 1),
            // A full hit at equal load wins.
            (&[c(0, 0), c(0, 10)], 10, 1),
            // A full hit is worth a few more outstanding requests...
            (&[c(0, 0), c(5, 10)], 10, 1),
            // ...but not past the imbalance cap.
            (&[c(0, 0), c(9, 10)], 10, 0),
            // A small shared prefix does not outweigh one request more.
            (&[c(0, 0), c(1, 1)], 20, 0),
            // The longer hit wins between two.
            (&[c(1, 4), c(1, 8), c(0, 0)], 10, 1),
            // Load trades off against the hit.
            (&[c(0, 6), c(4, 8)], 10, 0),
        ];
        for (cands, blocks, want) in cases {
            assert_eq!(order(cands, *blocks, &s)[0], *want, "{cands:?}");
        }
        // Off: least outstanding, always.
        let off = PrefixSettings {
            prefix_weight: 0.0,
            ..s
        };
        assert_eq!(order(&[c(1, 0), c(2, 10)], 10, &off), [0, 1]);
        // The fallbacks follow, least outstanding first.
        assert_eq!(order(&[c(2, 0), c(0, 0), c(3, 10)], 10, &s), [2, 1, 0]);
    }

    #[test]
    fn new_prefixes_spread_over_equally_loaded_workers() {
        let s = PrefixSettings::default();
        let workers: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let mut firsts = HashSet::new();
        for g in 0..64 {
            let prompt = blocks(&[&text(100, &format!("group{g}-"))]);
            let cands: Vec<Candidate> = workers
                .iter()
                .map(|w| Candidate {
                    tie: prompt.tie(*w),
                    ..c(0, 0)
                })
                .collect();
            let first = order(&cands, prompt.len(), &s)[0];
            // Always the same for the same prompt.
            assert_eq!(order(&cands, prompt.len(), &s)[0], first);
            firsts.insert(first);
        }
        assert_eq!(firsts.len(), 4, "every worker gets new prefixes");
    }
}
