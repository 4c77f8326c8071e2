//! The presence filter: a Bloom filter of the corpus's sampled windows, consulted before any
//! suffix-array search, so that novel text never touches the arrays and the rest of a text is
//! searched only where a copy can be.
//!
//! **What goes in.** Every `kgram`-byte substring of a shard's text has a 64-bit hash ([`kgram_keys`]).
//! Of every `window` consecutive k-grams the one with the least hash is the window's *minimizer*
//! (the leftmost, on ties); the filter holds the hashes of all minimizers of the shard texts.
//! Which k-gram is chosen depends only on the window's bytes.
//!
//! **The guarantee.** A window covers `reach = kgram + window − 1` bytes. If a string of at least
//! `reach` bytes occurs in a document, every window inside it occurs there too, with the same
//! minimizer, so every such window of a query *hits* the filter. Hence every occurring string
//! of at least `reach` bytes lies inside `[a, b + reach)` for a run `a..=b` of consecutive hitting
//! windows of the query ([`Presence::segments`]). A span shorter than `reach` bytes (a
//! minimum span of fewer characters than that, or near-verbatim seeds) gets no such promise:
//! then the whole text is searched, as without a filter.
//!
//! **The filter.** A blocked Bloom filter: a key sets one bit in each of the eight 64-bit words
//! of one 64-byte block, so a lookup is one cache line. Sized at [`BITS_PER_KEY`] bits per
//! expected minimizer (`2 / (window + 1)` per text byte); the false-positive rate is measured by
//! `cargo bench --bench scale`. A false positive only costs a search.
//!
//! **Files.** An index holds one filter file per writer operation that added text (a build, each
//! merged part, each `index add`); `index compact` and `index upgrade` write one for everything.
//! A file holds the union's blocks, then rows of routing slots (one per shard), then each
//! shard's search sample ([`crate::index::read::search::Sample`]).
//! Their union covers every shard (stale keys of removed documents only cost false positives).
//! Files are mapped, never copied, so daemons on one node share one copy in the page cache.

use crate::index::format::{
    encode_header, FilterFileEntry, FilterParams, ShardEntry, U32s, FILTER_TAG,
};
use crate::index::read::search::Sample;
use crate::index::write::build::HashingWriter;
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of a k-gram. Long enough that a novel text's windows seldom occur by chance in a large
/// corpus, short enough that `reach` stays under the default minimum span.
pub const KGRAM: u32 = 24;
/// K-grams per window: with [`KGRAM`], `reach` is 48 bytes, under the default 50-character
/// minimum span ([`crate::index::DEFAULT_MIN_LEN`]).
pub const WINDOW: u32 = 25;
/// Filter bits per expected minimizer.
pub const BITS_PER_KEY: u32 = 14;
/// Routing-slot bits per expected minimizer of a shard.
pub const ROUTE_BITS_PER_KEY: u32 = 10;
/// Bytes of one block (one cache line).
pub const BLOCK_BYTES: usize = 64;

impl FilterParams {
    /// The parameters new filters are built with.
    pub fn current() -> FilterParams {
        FilterParams {
            kgram: KGRAM,
            window: WINDOW,
            bits_per_key: BITS_PER_KEY,
            route_bits_per_key: ROUTE_BITS_PER_KEY,
        }
    }

    /// Bytes a window covers: every occurring string this long hits the filter.
    pub fn reach(&self) -> usize {
        (self.kgram + self.window - 1) as usize
    }

    /// Whether these parameters are ones this version can read (a k-gram and a window of at
    /// least one).
    pub fn valid(&self) -> bool {
        (1..=1024).contains(&self.kgram)
            && (1..=1024).contains(&self.window)
            && (1..=64).contains(&self.bits_per_key)
            && (1..=64).contains(&self.route_bits_per_key)
    }

    /// Blocks of a filter of `bits_per_key` for `text_bytes` of text (at least one).
    fn blocks_for(&self, text_bytes: u64, bits_per_key: u32) -> u64 {
        let keys = text_bytes.saturating_mul(2) / (self.window as u64 + 1) + 1;
        (keys.saturating_mul(bits_per_key as u64))
            .div_ceil(8 * BLOCK_BYTES as u64)
            .max(1)
    }
}

/// The final mixing step of MurmurHash3: spreads a rolling hash's bits over the whole word, so
/// that minimizers are chosen as by a random order.
#[inline]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Base of the polynomial rolling hash (odd, so powers never vanish modulo 2^64).
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

/// Calls `f(i, key)` for every k-gram `t[i..i + kgram]`, in order.
pub fn kgram_keys(t: &[u8], kgram: usize, mut f: impl FnMut(usize, u64)) {
    if kgram == 0 || t.len() < kgram {
        return;
    }
    // BASE^kgram: what the byte leaving the k-gram was multiplied by, one step on.
    let top = (0..kgram).fold(1u64, |p, _| p.wrapping_mul(BASE));
    let mut h = 0u64;
    for (i, &b) in t.iter().enumerate() {
        h = h.wrapping_mul(BASE).wrapping_add(b as u64 + 1);
        if i >= kgram {
            h = h.wrapping_sub((t[i - kgram] as u64 + 1).wrapping_mul(top));
        }
        if i + 1 >= kgram {
            f(i + 1 - kgram, mix(h));
        }
    }
}

/// Calls `f(j, m, key)` for every window `j` (the k-grams starting at `j .. j + window`, the bytes
/// `t[j .. j + reach]`), in order, with its minimizer's position `m` and hash `key`.
pub fn minimizers(t: &[u8], params: &FilterParams, mut f: impl FnMut(usize, usize, u64)) {
    let (k, w) = (params.kgram as usize, params.window as usize);
    // Candidates of the current window, increasing in hash, leftmost first among equals.
    let mut queue: VecDeque<(u64, usize)> = VecDeque::with_capacity(w + 1);
    kgram_keys(t, k, |i, key| {
        while queue.back().is_some_and(|&(b, _)| b > key) {
            queue.pop_back();
        }
        queue.push_back((key, i));
        if i + 1 >= w {
            let j = i + 1 - w;
            while queue.front().is_some_and(|&(_, p)| p < j) {
                queue.pop_front();
            }
            let &(key, m) = queue.front().expect("the newest k-gram is queued");
            f(j, m, key);
        }
    });
}

/// Where a key's bits are: its block, and the bit of each of the block's eight words.
#[inline]
fn place(key: u64, blocks: u64) -> (usize, [u64; 8]) {
    // A minimizer's hash is the least of its window's, so its high bits lean to zero: the block
    // is chosen from a fresh mix of it.
    let block = ((mix(key ^ 0x2545_f491_4f6c_dd1d) as u128 * blocks as u128) >> 64) as usize;
    let h = mix(key ^ 0x5bd1_e995_5bd1_e995);
    let mut bits = [0u64; 8];
    for (w, bit) in bits.iter_mut().enumerate() {
        *bit = 1 << ((h >> (6 * w)) & 63);
    }
    (block, bits)
}

/// A filter file being built: the union's blocks, then the routing rows (one slot per shard),
/// as atomic words, so that shards insert in parallel.
pub struct FilterBuilder {
    params: FilterParams,
    blocks: u64,
    route_rows: u64,
    shards: usize,
    words: Vec<AtomicU64>,
    inserted: AtomicU64,
}

impl FilterBuilder {
    /// An empty filter for shards of `text_bytes` each: the union sized for them all, each
    /// routing slot for the largest.
    pub fn new(params: FilterParams, text_bytes: &[u64]) -> FilterBuilder {
        let blocks = params.blocks_for(text_bytes.iter().sum(), params.bits_per_key);
        let largest = text_bytes.iter().copied().max().unwrap_or(0);
        let route_rows = params.blocks_for(largest, params.route_bits_per_key);
        let total = blocks + route_rows * text_bytes.len() as u64;
        FilterBuilder {
            params,
            blocks,
            route_rows,
            shards: text_bytes.len(),
            words: (0..total * 8).map(|_| AtomicU64::new(0)).collect(),
            inserted: AtomicU64::new(0),
        }
    }

    fn set(&self, block: u64, bits: [u64; 8]) {
        for (w, bit) in bits.iter().enumerate() {
            self.words[block as usize * 8 + w].fetch_or(*bit, Ordering::Relaxed);
        }
    }

    /// Inserts every minimizer of `text`, the whole text of shard `shard` (its place among the
    /// file's shards; windows across a document's end only add keys), into the union and into
    /// the shard's routing slots.
    pub fn insert_text(&self, shard: usize, text: &[u8]) {
        let mut last = usize::MAX;
        let mut n = 0u64;
        minimizers(text, &self.params, |_, m, key| {
            if m != last {
                last = m;
                n += 1;
                let (block, bits) = place(key, self.blocks);
                self.set(block as u64, bits);
                let (row, bits) = place(key, self.route_rows);
                self.set(
                    self.blocks + row as u64 * self.shards as u64 + shard as u64,
                    bits,
                );
            }
        });
        self.inserted.fetch_add(n, Ordering::Relaxed);
    }

    /// The filter's bytes as they are stored (little-endian words).
    pub fn bytes(&self) -> impl Iterator<Item = [u8; 8]> + '_ {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Relaxed).to_le_bytes())
    }
}

/// Builds one filter file, `dir/name`, holding the minimizers of the texts of `shards` (whose
/// files are in `dir` too), with `params`. Shards are read in parallel from
/// their mapped files; the filter is built in memory (its size: [`FilterParams::blocks_for`]).
pub fn write(
    dir: &Path,
    shards: &[ShardEntry],
    params: FilterParams,
    name: String,
) -> Result<FilterFileEntry> {
    use rayon::prelude::*;
    let sizes: Vec<u64> = shards.iter().map(|s| s.text_bytes).collect();
    let builder = FilterBuilder::new(params, &sizes);
    shards
        .par_iter()
        .enumerate()
        .try_for_each(|(k, s)| -> Result<()> {
            let text = crate::index::read::open::map_text(dir, s)?;
            builder.insert_text(k, text.bytes());
            Ok(())
        })?;
    // Each shard's search sample, padded to whole blocks.
    let samples = shards
        .par_iter()
        .map(|s| -> Result<Vec<u64>> {
            let text = crate::index::read::open::map_text(dir, s)?;
            let sa = crate::index::read::open::map_sa(dir, s)?;
            let mut keys: Vec<u64> =
                Sample::keys_of(text.bytes(), U32s(sa.bytes()), s.sa_step).collect();
            keys.resize(keys.len().next_multiple_of(BLOCK_BYTES / 8), 0);
            Ok(keys)
        })
        .collect::<Result<Vec<_>>>()?;
    let sample_blocks: u64 = samples
        .iter()
        .map(|k| (k.len() * 8 / BLOCK_BYTES) as u64)
        .sum();
    let total = (builder.words.len() / 8) as u64 + sample_blocks;
    let mut w = HashingWriter::create_with(dir, name, &encode_header(FILTER_TAG, total))?;
    let mut buf = Vec::with_capacity(1 << 20);
    let samples = samples.iter().flatten().map(|k| k.to_le_bytes());
    for word in builder.bytes().chain(samples) {
        buf.extend_from_slice(&word);
        if buf.len() >= 1 << 20 {
            w.write(&buf)?;
            buf.clear();
        }
    }
    w.write(&buf)?;
    let file = w.finish().context("writing the presence filter")?;
    Ok(FilterFileEntry {
        file,
        blocks: builder.blocks,
        route_rows: builder.route_rows,
        first_shard: shards.first().map_or(0, |s| s.id),
        shards: shards.len() as u32,
        sample_blocks,
        keys: builder.inserted.load(Ordering::Relaxed),
        text_bytes: sizes.iter().sum(),
    })
}

/// Whether the 64-byte block `b` has every bit of `bits`.
#[inline]
fn block_has(b: &[u8], bits: &[u64; 8]) -> bool {
    bits.iter().enumerate().all(|(w, &bit)| {
        let word = u64::from_le_bytes(b[w * 8..w * 8 + 8].try_into().expect("8 bytes"));
        word & bit != 0
    })
}

/// One filter file's blocks as mapped: the union, then the routing rows.
#[derive(Clone, Copy)]
pub struct Blocks<'a> {
    bytes: &'a [u8],
    blocks: u64,
    route_rows: u64,
    shards: u64,
}

impl<'a> Blocks<'a> {
    /// The file's bytes (after the header) read with its manifest record's shape; `None` when
    /// they do not have that size.
    pub fn new(bytes: &'a [u8], entry: &FilterFileEntry) -> Option<Blocks<'a>> {
        let total = entry
            .route_rows
            .checked_mul(entry.shards as u64)?
            .checked_add(entry.blocks)?
            .checked_add(entry.sample_blocks)?;
        (entry.blocks > 0
            && entry.route_rows > 0
            && (bytes.len() as u64) == total.checked_mul(BLOCK_BYTES as u64)?)
        .then_some(Blocks {
            bytes,
            blocks: entry.blocks,
            route_rows: entry.route_rows,
            shards: entry.shards as u64,
        })
    }

    fn block(&self, i: u64) -> &'a [u8] {
        let at = i as usize * BLOCK_BYTES;
        &self.bytes[at..at + BLOCK_BYTES]
    }

    /// Whether `key` may be in the union (false: no shard of the file holds it).
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        let (block, bits) = place(key, self.blocks);
        block_has(self.block(block as u64), &bits)
    }

    /// Calls `f(k)` for every shard `k` of the file (its place among them) whose routing slot
    /// may hold `key`.
    #[inline]
    pub fn shards_with(&self, key: u64, mut f: impl FnMut(usize)) {
        let (row, bits) = place(key, self.route_rows);
        let first = self.blocks + row as u64 * self.shards;
        for k in 0..self.shards {
            if block_has(self.block(first + k), &bits) {
                f(k as usize);
            }
        }
    }
}

/// The filter of one open index: its parameters and the union of its files.
pub struct Presence {
    /// The parameters every file was built with.
    pub params: FilterParams,
    pub(crate) files: Vec<std::sync::Arc<crate::index::read::open::Mapped>>,
    /// The manifest's records of the files, in the same order.
    pub entries: Vec<FilterFileEntry>,
}

impl Presence {
    fn blocks(&self) -> impl Iterator<Item = (Blocks<'_>, u32)> + '_ {
        self.files.iter().zip(&self.entries).filter_map(|(f, e)| {
            // Shapes are checked when the index is opened.
            Blocks::new(f.bytes(), e).map(|b| (b, e.first_shard))
        })
    }

    /// Whether any file may hold `key`.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.blocks().any(|(b, _)| b.contains(key))
    }

    /// Reads every page of the filter once (in parallel over files), so that queries find it
    /// mapped and resident: [`crate::index::Index::prepare`] calls it, as it reads the search
    /// samples. The pages are the page cache's, shared by every process mapping the files, not
    /// this process's private memory. Returns a checksum of what was read (so the reads stay).
    pub fn touch(&self) -> u64 {
        use rayon::prelude::*;
        self.files
            .par_iter()
            .map(|f| {
                f.bytes()
                    .chunks(4096)
                    .fold(0u64, |x, page| x.wrapping_add(page[0] as u64))
            })
            .sum()
    }

    /// [`segments`] of `t` against this index's files.
    pub fn segments(&self, t: &[u8]) -> Vec<(usize, usize)> {
        segments(t, &self.params, |key| self.contains(key))
    }

    /// The shards (ids, ascending) that may hold a string of at least `reach` bytes inside `t`
    /// (`Route::Any`: a shard holding any window's minimizer), or all of `t` (`Route::All`:
    /// a shard holding every window's minimizer). Shards not named certainly do not. `t` must
    /// be at least `reach` bytes long.
    pub fn route(&self, t: &[u8], how: Route, shard_count: usize) -> Vec<usize> {
        let mut keys: Vec<u64> = Vec::new();
        let mut last = usize::MAX;
        minimizers(t, &self.params, |_, m, key| {
            if m != last {
                last = m;
                keys.push(key);
            }
        });
        keys.sort_unstable();
        keys.dedup();
        let mut held = vec![0u32; shard_count];
        let mut out = Vec::new();
        for (b, first) in self.blocks() {
            let first = first as usize;
            for &key in &keys {
                if b.contains(key) {
                    b.shards_with(key, |k| {
                        if let Some(h) = held.get_mut(first + k) {
                            *h += 1;
                        }
                    });
                }
            }
        }
        let need = match how {
            Route::Any => 1,
            Route::All => keys.len() as u32,
        };
        for (shard, &h) in held.iter().enumerate() {
            if h >= need && h > 0 {
                out.push(shard);
            }
        }
        out
    }
}

/// What [`Presence::route`] asks of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Holds some window of the text: it may hold a span inside it.
    Any,
    /// Holds every window of the text: it may hold the text itself.
    All,
}

/// The stretches `[start, end)` of normalized text `t` that can hold a string of at least
/// `reach` bytes occurring in the corpus, in order: for each run of consecutive windows whose
/// minimizer the filter may hold (`contains`), from its first window's start to its last
/// window's end, widened to a character boundary. Outside them no such string occurs (the
/// module's guarantee). Each minimizer is looked up once.
pub fn segments(
    t: &[u8],
    params: &FilterParams,
    contains: impl Fn(u64) -> bool,
) -> Vec<(usize, usize)> {
    let reach = params.reach();
    let mut out: Vec<(usize, usize)> = Vec::new();
    let close = |(a, b): (usize, usize), out: &mut Vec<(usize, usize)>| {
        let mut end = (b + reach).min(t.len());
        while end < t.len() && (t[end] & 0xC0) == 0x80 {
            end += 1;
        }
        out.push((a, end));
    };
    // First the windows and their minimizers, then every distinct minimizer looked up in one
    // tight loop: the lookups do not depend on each other, so their cache misses overlap
    // instead of each stalling the hashing between them.
    let mut windows: Vec<u32> = Vec::new(); // per window, its minimizer's place in `keys`
    let mut keys: Vec<u64> = Vec::new();
    let mut last_m = usize::MAX;
    minimizers(t, params, |_, m, key| {
        if m != last_m {
            last_m = m;
            keys.push(key);
        }
        windows.push(keys.len() as u32 - 1);
    });
    let hit: Vec<bool> = keys.iter().map(|&k| contains(k)).collect();
    let mut run: Option<(usize, usize)> = None; // first and last hitting window
    for (j, &k) in windows.iter().enumerate() {
        match (&mut run, hit[k as usize]) {
            (Some((_, b)), true) => *b = j,
            (None, true) => run = Some((j, j)),
            (Some(r), false) => {
                close(*r, &mut out);
                run = None;
            }
            (None, false) => {}
        }
    }
    if let Some(r) = run {
        close(r, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::format::FileEntry;

    fn naive_minimizers(t: &[u8], p: &FilterParams) -> Vec<(usize, u64)> {
        let (k, w) = (p.kgram as usize, p.window as usize);
        let mut keys = Vec::new();
        kgram_keys(t, k, |_, key| keys.push(key));
        (0..keys.len().saturating_sub(w - 1))
            .map(|j| {
                let m = (j..j + w).min_by_key(|&i| (keys[i], i)).expect("w ≥ 1");
                (m, keys[m])
            })
            .collect()
    }

    #[test]
    fn rolling_hash_is_the_hash_of_the_bytes() {
        let t = b"the quick brown fox jumps over the lazy dog, the quick brown fox";
        let mut at = Vec::new();
        kgram_keys(t, 10, |i, key| at.push((i, key)));
        assert_eq!(at.len(), t.len() - 9);
        // The same 10 bytes hash the same wherever they are.
        let first = at[0].1;
        let again = at
            .iter()
            .find(|&&(i, _)| i > 0 && &t[i..i + 10] == b"the quick ");
        assert_eq!(again.map(|&(_, k)| k), Some(first));
        let mut alone = Vec::new();
        kgram_keys(&t[..10], 10, |_, key| alone.push(key));
        assert_eq!(alone, vec![first]);
    }

    #[test]
    fn minimizers_match_the_definition() {
        let p = FilterParams {
            kgram: 4,
            window: 5,
            bits_per_key: 10,
            route_bits_per_key: 10,
        };
        for t in [
            &b"abababababababababab"[..],
            b"****************************",
            b"a short text, then a longer one with some words repeated: words words words",
            b"abc",
        ] {
            let mut got = Vec::new();
            minimizers(t, &p, |j, m, key| got.push((j, m, key)));
            let want = naive_minimizers(t, &p);
            assert_eq!(got.len(), want.len());
            for (j, &(m, key)) in want.iter().enumerate() {
                assert_eq!(got[j], (j, m, key));
            }
        }
    }

    /// Every string of at least `reach` bytes of an inserted text lies inside one of a query's
    /// segments, wherever it sits in the query; text never inserted mostly has none.
    #[test]
    fn an_occurring_string_is_inside_a_segment() {
        let p = FilterParams::current();
        let corpus: Vec<u8> = (0..20_000u32)
            .flat_map(|i| {
                format!("line {i} of the corpus says {}. ", i * 7919 % 10007).into_bytes()
            })
            .collect();
        // Two shards: the corpus's halves.
        let half = corpus.len() / 2;
        let b = FilterBuilder::new(p, &[half as u64, (corpus.len() - half) as u64]);
        b.insert_text(0, &corpus[..half]);
        b.insert_text(1, &corpus[half..]);
        let bytes: Vec<u8> = b.bytes().flatten().collect();
        let entry = FilterFileEntry {
            file: FileEntry {
                name: "filter-test.filter".into(),
                bytes: 0,
                blake3: String::new(),
            },
            blocks: b.blocks,
            route_rows: b.route_rows,
            first_shard: 0,
            shards: 2,
            sample_blocks: 0,
            keys: 0,
            text_bytes: 0,
        };
        let blocks = Blocks::new(&bytes, &entry).unwrap();
        let filter = |t: &[u8]| segments(t, &p, |key| blocks.contains(key));
        // Routing: every window of a copy from one half is in that half's slots.
        let route = |t: &[u8]| {
            let mut held = [0usize; 2];
            let mut n = 0;
            minimizers(t, &p, |_, _, key| {
                n += 1;
                blocks.shards_with(key, |k| held[k] += 1);
            });
            held.map(|h| h == n)
        };
        assert_eq!(route(&corpus[1000..1100]), [true, false]);
        assert!(route(&corpus[half + 1000..half + 1100])[1]);
        for (start, len) in [(0usize, 48usize), (1000, 60), (123_456, 300), (400_000, 49)] {
            let copy = &corpus[start..start + len];
            for pad in [0usize, 1, 7, 100] {
                let mut q = vec![b'#'; pad];
                q.extend_from_slice(copy);
                q.extend_from_slice(&vec![b'%'; pad]);
                let segs = filter(&q);
                assert!(
                    segs.iter().any(|&(a, e)| a <= pad && pad + len <= e),
                    "copy at {start}+{len}, pad {pad}: {segs:?}"
                );
            }
        }
        let novel: Vec<u8> = (0..2000u32)
            .flat_map(|i| format!("zq{i}xv ").into_bytes())
            .collect();
        let segs = filter(&novel);
        assert!(segs.len() <= 3, "{} false segments", segs.len());
    }
}
