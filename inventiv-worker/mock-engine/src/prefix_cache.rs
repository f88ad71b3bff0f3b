//! vLLM's automatic prefix caching, imitated: a prompt is cut into blocks
//! of `--block-size` tokens (16 by default, as vLLM's), each block named by
//! a hash chained on everything before it (vLLM's `hash_block_tokens`:
//! the parent block's hash and this block's tokens), and the blocks of
//! every prompt seen are kept in a bounded LRU. A new prompt's cached tokens are its leading blocks found
//! there, whole blocks only, and never the prompt's last token (vLLM
//! recomputes it to get the logits). Deterministic: the same requests in
//! the same order report the same counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Tokens per KV-cache block by default (vLLM's default `--block-size`).
pub const BLOCK_SIZE: u32 = 16;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The chained hashes of a prompt's full blocks, fed piece by piece
/// (message contents, prompt strings) like [`crate::generate::PromptDigest`].
#[derive(Debug, Clone)]
pub struct BlockHashes {
    hashes: Vec<u64>,
    tokens: u32,
    chain: u64,
    in_block: u32,
    block_size: u32,
}

impl Default for BlockHashes {
    fn default() -> Self {
        Self::new(BLOCK_SIZE)
    }
}

impl BlockHashes {
    /// No text yet, cut in blocks of `block_size` tokens (at least 1).
    pub fn new(block_size: u32) -> Self {
        Self {
            hashes: Vec::new(),
            tokens: 0,
            chain: FNV_OFFSET,
            in_block: 0,
            block_size: block_size.max(1),
        }
    }

    /// Adds one piece of prompt text. Pieces are separated in the chain (as
    /// a chat template separates messages), so `["a b"]` and `["a", "b"]`
    /// share no block.
    pub fn add(&mut self, text: &str) {
        for word in text.split_whitespace() {
            let mut chain = self.chain;
            for &byte in word.as_bytes() {
                chain = (chain ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
            }
            // A word boundary, so that "ab c" and "a bc" differ.
            self.chain = (chain ^ 0x20).wrapping_mul(FNV_PRIME);
            self.tokens = self.tokens.saturating_add(1);
            self.in_block += 1;
            if self.in_block == self.block_size {
                self.hashes.push(self.chain);
                self.in_block = 0;
            }
        }
        self.chain = (self.chain ^ 0xff).wrapping_mul(FNV_PRIME);
    }

    /// The hashes of a single piece of text, in blocks of `block_size`.
    pub fn of(text: &str, block_size: u32) -> Self {
        let mut hashes = Self::new(block_size);
        hashes.add(text);
        hashes
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Whole blocks the prompt fills (what it holds in the KV cache while
    /// it runs, its last partial block aside).
    pub fn blocks(&self) -> usize {
        self.hashes.len()
    }

    /// Tokens in the prompt.
    pub fn tokens(&self) -> u32 {
        self.tokens
    }
}

/// The block hashes kept, least recently used first out.
#[derive(Debug, Default)]
struct Lru {
    clock: u64,
    /// Block hash -> last use.
    used: HashMap<u64, u64>,
    /// Last use -> block hash, oldest first.
    order: BTreeMap<u64, u64>,
}

impl Lru {
    fn touch(&mut self, hash: u64) {
        self.clock += 1;
        if let Some(previous) = self.used.insert(hash, self.clock) {
            self.order.remove(&previous);
        }
        self.order.insert(self.clock, hash);
    }

    fn evict_beyond(&mut self, capacity: usize) {
        while self.used.len() > capacity {
            let Some((_, hash)) = self.order.pop_first() else {
                break;
            };
            self.used.remove(&hash);
        }
    }
}

/// The engine's prefix cache: at most `capacity` blocks in memory.
#[derive(Debug)]
pub struct PrefixCache {
    capacity: usize,
    lru: Mutex<Lru>,
}

impl PrefixCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lru: Mutex::new(Lru::default()),
        }
    }

    /// Looks a prompt up, then keeps its blocks; returns its cached tokens.
    pub fn admit(&self, prompt: &BlockHashes) -> u32 {
        let hit_limit =
            usize::try_from(prompt.tokens.saturating_sub(1) / prompt.block_size).unwrap_or(0);
        // A poisoned lock only means another request panicked mid-update;
        // the map is still a valid cache.
        let mut lru = self
            .lru
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hits = prompt
            .hashes
            .iter()
            .take(hit_limit)
            .take_while(|hash| lru.used.contains_key(hash))
            .count();
        // The last blocks are the first to go, as vLLM frees a request's
        // blocks tail first: a prefix stays whole as long as possible.
        for hash in prompt.hashes.iter().rev() {
            lru.touch(*hash);
        }
        lru.evict_beyond(self.capacity);
        u32::try_from(hits)
            .unwrap_or(u32::MAX)
            .saturating_mul(prompt.block_size)
    }

    /// Drops every block (vLLM's `POST /reset_prefix_cache`).
    pub fn reset(&self) {
        let mut lru = self
            .lru
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *lru = Lru::default();
    }

    /// Blocks held now.
    pub fn len(&self) -> usize {
        self.lru
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .used
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, from: usize) -> String {
        (from..from + n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn whole_blocks_of_a_seen_prefix_are_cached_never_the_last_token() {
        let cache = PrefixCache::new(1024);
        let forty = BlockHashes::of(&words(40, 0), BLOCK_SIZE);
        assert_eq!(cache.admit(&forty), 0, "first time: nothing cached");
        assert_eq!(cache.admit(&forty), 32, "two whole blocks of 40 tokens");
        // Same first 20 tokens, then different: one block in common.
        let mut other = words(20, 0);
        other.push(' ');
        other.push_str(&words(20, 500));
        assert_eq!(cache.admit(&BlockHashes::of(&other, BLOCK_SIZE)), 16);
        // Exactly 32 tokens seen before: the last block holds the last
        // token, which is always recomputed.
        let thirty_two = BlockHashes::of(&words(32, 0), BLOCK_SIZE);
        assert_eq!(cache.admit(&thirty_two), 16);
        // Pieces are separated: the same words split differently share nothing.
        let mut split = BlockHashes::new(BLOCK_SIZE);
        split.add(&words(8, 0));
        split.add(&words(32, 8));
        assert_eq!(cache.admit(&split), 0);
    }

    #[test]
    fn memory_is_bounded_and_the_tail_goes_first() {
        let cache = PrefixCache::new(4);
        let a = BlockHashes::of(&words(48, 0), BLOCK_SIZE);
        cache.admit(&a);
        cache.admit(&BlockHashes::of(&words(48, 1000), BLOCK_SIZE));
        assert_eq!(cache.len(), 4);
        // Of `a`, its first block survived (its tail went first).
        assert_eq!(cache.admit(&a), 16);
        for i in 0..100 {
            cache.admit(&BlockHashes::of(&words(64, i * 64), BLOCK_SIZE));
        }
        assert_eq!(cache.len(), 4);
        cache.reset();
        assert!(cache.is_empty());
    }

    #[test]
    fn the_block_size_is_the_unit_of_a_hit() {
        let cache = PrefixCache::new(1024);
        let prompt = words(40, 0);
        assert_eq!(cache.admit(&BlockHashes::of(&prompt, 4)), 0);
        // 39 tokens may hit (never the last): 9 whole blocks of 4.
        assert_eq!(cache.admit(&BlockHashes::of(&prompt, 4)), 36);
        assert_eq!(BlockHashes::of(&prompt, 4).blocks(), 10);
    }
}
