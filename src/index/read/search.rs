//! Queries over an open index: pattern counts and maximal verbatim spans.
//!
//! Everything works on normalized text (see `corpus::normalize`) and reports positions in the
//! caller's original characters.
//!
//! **Primitive.** [`Shard::bound`] is a binary search over the suffix array that skips the prefix
//! already known to match both interval ends (Manber & Myers' `mlr` trick). It first narrows the
//! interval on an in-memory [`Sample`] of every few suffixes' first 8 bytes (once
//! [`Index::prepare`] has read it), so a search costs a binary search in cache and then
//! log2([`SAMPLE_STEP`]) probes of one suffix-array entry and a few text bytes each in the mapped
//! files, instead of log2(suffixes). It also yields the
//! longest prefix of the pattern that occurs anywhere in the shard (the suffixes sharing the most with
//! a pattern sit next to its insertion point).
//!
//! **Maximal spans.** With `L(j)` the longest match starting at `j` (in whole characters), the maximal
//! spans are the positions where `j + L(j)` exceeds every earlier `i + L(i)`. Two facts keep the
//! number of searches far below one per position:
//! - *Galloping inside a match.* Inside a covered region ending at `e`, "a span starting at `q` reaches
//!   past `e`" means "text[q..e+1 char] occurs", which is monotone in `q`: a binary search finds the next
//!   maximal start with log2(gap) searches instead of one per position. Only starts whose match would
//!   be at least `m` long are searched this way; shorter matches can never be reported nor hide a
//!   long one, so the tail of a covered region goes back to the block filter.
//! - *Block filter outside.* A span of at least `m` bytes contains a whole aligned block of
//!   `s = ⌈m/2⌉` bytes. Blocks are checked lazily left to right; novel text costs about `n / s`
//!   searches and nothing else. Starts before a passing block are found by another monotone binary
//!   search ("text[q..block end] occurs").
//!
//! **A sparse suffix array** ([`ShardEntry::sa_step`] `k` above 1) holds only the suffixes starting
//! at multiples of `k`. An occurrence of a pattern at `c` holds the sampled start `c + j`, with
//! `j = (-c) mod k`, whenever the pattern is longer than `j`; so a pattern of at least `k` bytes
//! is looked up once per shift `j < k` as `pat[j..]`, and a slot found at shift `j` is an
//! occurrence when the `j` text bytes before it are `pat[..j]` ("extended by comparing text").
//! Every primitive below ([`Shard::occurs`], [`Shard::longest_prefix`], [`Shard::matches`])
//! does this, so each is exact for patterns of at least `k` bytes, and the span search only asks
//! about such patterns when spans have at least `2k - 1` characters: its blocks are then at least
//! `k` bytes ([`Index::min_span_chars`]; a shorter minimum asked for is raised to it, and the
//! report says so in `min_len`). Counts stay exact: each occurrence has exactly one shift. A
//! query costs up to `k` searches where a full array costs one; the presence filter keeps
//! novel text from them all.
//!
//! **Removed documents** (taken down, not yet erased by `index compact`) stay in the suffix array;
//! every query here goes through [`Shard::longest_prefix`], [`Shard::occurs`] and
//! [`Shard::occurrences`], which skip suffixes inside them, so a passage found only in removed
//! documents yields no span, and counts and provenance leave them out. A shard without removed
//! documents pays nothing for this.
//!
//! [`ShardEntry::sa_step`]: crate::index::format::ShardEntry::sa_step
//!
//! Property tests compare the result with a brute-force definition on random and adversarial inputs.

use crate::budget::{Budget, Incomplete};
use crate::corpus::normalize::Mapped;
use crate::index::format::{U32s, SEPARATOR};
use crate::index::read::open::{Index, Mapped as MappedFile, Shard};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// At most one suffix in this many is sampled for [`Sample`] (8 bytes per 512 text bytes: 1.6%
/// of the text, mapped from the filter file, not copied).
pub const SAMPLE_STEP: usize = 512;

/// The first 8 bytes of every `step`-th suffix in suffix-array order, as numbers that sort as
/// the bytes do: a search first narrows to `step` slots here (in cache, once
/// [`Index::prepare`] has read it) before it reads the mapped suffix array and text (a cache
/// and TLB miss each per step). One thread's query rate on the 350 MB benchmark index rose
/// 1.15–1.48× with it (README, Performance). Written by the build into the shard's filter file
/// ([`crate::index::filter`]) and mapped from there, so it is page cache shared by every process
/// serving the index, not private memory.
pub struct Sample {
    file: Arc<MappedFile>,
    /// Byte offset of the first key in the file's contents.
    start: usize,
    len: usize,
    step: usize,
}

impl Sample {
    /// The step for a shard of `n` suffixes: [`SAMPLE_STEP`] for large shards; smaller for small
    /// ones (never under 8), so that every shard has some 4096 keys and the narrowing is
    /// exercised on the small corpora of the tests too.
    pub(crate) fn step(n: usize) -> usize {
        (n / 4096).clamp(8, SAMPLE_STEP)
    }

    /// Keys in the sample of a shard of `n` suffixes.
    pub(crate) fn len_for(n: usize) -> usize {
        n.div_ceil(Sample::step(n))
    }

    /// The sample of a shard of `n` suffixes whose keys start at byte `start` of `file`'s
    /// contents; `None` when they would not fit in it.
    pub(crate) fn new(file: Arc<MappedFile>, start: usize, n: usize) -> Option<Sample> {
        let len = Sample::len_for(n);
        (start.checked_add(len.checked_mul(8)?)? <= file.bytes().len()).then_some(Sample {
            file,
            start,
            len,
            step: Sample::step(n),
        })
    }

    /// The keys of the shard with `text` and suffix array `sa` of step `sa_step`, in order
    /// (what the writer stores).
    pub(crate) fn keys_of<'a>(
        text: &'a [u8],
        sa: U32s<'a>,
        sa_step: u32,
    ) -> impl Iterator<Item = u64> + 'a {
        let step = sa_step.max(1) as usize;
        (0..sa.len())
            .step_by(Sample::step(sa.len()))
            .map(move |i| key(text.get(sa.get(i) as usize * step..).unwrap_or(&[])))
    }

    #[inline]
    fn get(&self, i: usize) -> u64 {
        let at = self.start + 8 * i;
        u64::from_le_bytes(self.file.bytes()[at..at + 8].try_into().expect("8 bytes"))
    }

    /// Bytes of its keys.
    pub fn bytes(&self) -> usize {
        self.len * 8
    }
}

/// A suffix's first 8 bytes as a number that sorts as the bytes do (0x00 past its end).
fn key(s: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let m = s.len().min(8);
    b[..m].copy_from_slice(&s[..m]);
    u64::from_be_bytes(b)
}

/// Length of the common prefix of two byte strings.
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    // Eight bytes at a time, then bytewise.
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let d = x ^ y;
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

impl Shard {
    /// Binary search for `pat`. Returns the first suffix-array slot whose suffix is not less than
    /// `pat` (`upper = false`), or the first whose suffix is greater than `pat` and does not start
    /// with it (`upper = true`); and the longest common prefix of `pat` with the suffixes next to
    /// that slot (for `upper = false`: the longest prefix of `pat` occurring in the shard).
    pub fn bound(&self, pat: &[u8], upper: bool) -> (usize, usize) {
        let (lo, llcp, rlcp) = self.search(pat, upper);
        (lo, llcp.max(rlcp))
    }

    /// [`Shard::bound`] with both common prefixes: with `pat`'s suffix at slot `lo - 1` (0 when
    /// `lo` is 0) and at slot `lo` (0 when `lo` is the end). Both slots were probed by the search
    /// (the interval's ends are always earlier probes), so the prefixes are exact.
    fn search(&self, pat: &[u8], upper: bool) -> (usize, usize, usize) {
        let n = self.sa().len();
        let (lo0, hi0) = self.sampled_bounds(pat);
        let (mut lo, mut hi) = (lo0, hi0);
        // Lower bounds on the prefixes shared with the slots beside [lo, hi) until probed.
        let (mut llcp, mut rlcp) = (0usize, 0usize);
        let (mut lo_probed, mut hi_probed) = (false, false);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let s = self.suffix(mid);
            let skip = llcp.min(rlcp);
            let k = skip + common_prefix(&pat[skip..], s.get(skip..).unwrap_or(&[]));
            let suffix_less = if k == pat.len() {
                upper
            } else {
                match s.get(k) {
                    Some(&b) => b < pat[k],
                    None => true,
                }
            };
            if suffix_less {
                lo = mid + 1;
                llcp = k;
                lo_probed = true;
            } else {
                hi = mid;
                rlcp = k;
                hi_probed = true;
            }
        }
        // An end the sample fixed and no probe moved: its neighbour's prefix, read now.
        if !lo_probed {
            llcp = if lo0 > 0 {
                common_prefix(pat, self.suffix(lo0 - 1))
            } else {
                0
            };
        }
        if !hi_probed {
            rlcp = if hi0 < n {
                common_prefix(pat, self.suffix(hi0))
            } else {
                0
            };
        }
        (lo, llcp, rlcp)
    }

    /// The suffix-array slots `[lo, hi)` that hold [`Shard::search`]'s answer for `pat`, from the
    /// sample alone (all of them when the shard has none): a sampled suffix whose first 8 bytes
    /// sort below `pat`'s (padded with 0x00) is below `pat` and does not start with it, so the
    /// answer is after it; one whose first 8 bytes sort above `pat`'s (padded with 0xFF) differs
    /// from `pat` at a byte of `pat` and is above it, so the answer is at or before it. Equal keys
    /// decide nothing.
    fn sampled_bounds(&self, pat: &[u8]) -> (usize, usize) {
        let n = self.sa().len();
        let Some(sample) = &self.sample else {
            return (0, n);
        };
        let step = sample.step;
        let m = pat.len().min(8);
        let (mut low, mut high) = ([0u8; 8], [0xFFu8; 8]);
        low[..m].copy_from_slice(&pat[..m]);
        high[..m].copy_from_slice(&pat[..m]);
        let (low, high) = (u64::from_be_bytes(low), u64::from_be_bytes(high));
        let below = partition_point(0, sample.len, |i| sample.get(i) < low);
        let not_above = partition_point(below, sample.len, |i| sample.get(i) <= high);
        let lo = if below == 0 {
            0
        } else {
            (below - 1) * step + 1
        };
        let hi = if not_above == sample.len {
            n
        } else {
            not_above * step
        };
        // Keys out of order (a corrupted file) can cross the bounds: search everything. (`hi`
        // stays within the shard: every sample has its shard's shape, `Sample::new`.)
        if lo > hi {
            return (0, n);
        }
        (lo, hi)
    }

    /// The slots of `[lo, hi)`, whose suffixes all share a prefix of `depth` bytes, whose next
    /// bytes are `more`: the range of a pattern extended by `more` from the range of the
    /// pattern, in two binary searches comparing only `more` (what a streamed span in progress
    /// costs per chunk: [`crate::index::read::incremental`]).
    pub fn narrow(&self, lo: usize, hi: usize, depth: usize, more: &[u8]) -> (usize, usize) {
        let next = |i: usize| {
            let s = self.suffix(i);
            let s = s.get(depth..).unwrap_or(&[]);
            &s[..s.len().min(more.len())]
        };
        // In suffix order, the slots whose next bytes are below `more` come first, then those
        // equal to it (a shorter suffix cut short counts as below).
        let below = partition_point(lo, hi, |i| next(i) < more);
        let not_above = partition_point(below, hi, |i| next(i) <= more);
        (below, not_above)
    }

    /// Suffix-array slots `[lo, hi)` of the suffixes that start with `pat`.
    pub fn range(&self, pat: &[u8]) -> (usize, usize) {
        let (lo, lcp) = self.bound(pat, false);
        if lcp < pat.len() {
            return (lo, lo);
        }
        (lo, self.bound(pat, true).0.max(lo))
    }

    /// Every how many text positions a suffix is in the array ([`ShardEntry::sa_step`]; 1: all).
    ///
    /// [`ShardEntry::sa_step`]: crate::index::format::ShardEntry::sa_step
    #[inline]
    pub fn step(&self) -> usize {
        self.entry.sa_step.max(1) as usize
    }

    /// The shifts a pattern of `len` bytes is looked up at: an occurrence at `c` holds a sampled
    /// start at `c + j`, with `j = (-c) mod step`, when the pattern is longer than `j`.
    #[inline]
    fn shifts(&self, len: usize) -> std::ops::Range<usize> {
        0..self.step().min(len).max(1)
    }

    /// The occurrence that the suffix at slot `i` ends, when it is one: the `left.len()` bytes
    /// before the suffix are `left` (a pattern's first bytes) and they lie in a live document.
    /// Its text position.
    #[inline]
    fn occurrence_at(&self, i: usize, left: &[u8]) -> Option<u64> {
        let p = self.pos(i);
        let start = p.checked_sub(left.len())?;
        if !left.is_empty() && self.text().get(start..p) != Some(left) {
            return None;
        }
        (!self.has_removed() || !self.is_removed_pos(start as u64)).then_some(start as u64)
    }

    /// Longest prefix of `pat` that occurs in a live document of this shard, in bytes, when it
    /// is at least `at_least` bytes (at least [`Shard::step`]; a shorter one may be missed and
    /// is reported as less).
    ///
    /// Each shift `j` looks `pat[j..]` up and keeps the slots whose `j` bytes before are
    /// `pat[..j]` ([`Shard::longest_at`]); the answer is the best `j` plus what follows. A
    /// shift only looks at slots that would make a match of `at_least` bytes or better than the
    /// best so far: the caller's bound keeps a shift from walking the many slots that share a
    /// byte or two with `pat` to find one preceded by `pat[..j]`.
    #[inline]
    pub fn longest_prefix(&self, pat: &[u8], at_least: usize) -> usize {
        let at_least = at_least.max(self.step());
        let mut best = 0;
        for j in self.shifts(pat.len()) {
            if best >= pat.len() {
                break;
            }
            let floor = best.max(at_least - 1).saturating_sub(j);
            if let Some(l) = self.longest_at(&pat[j..], &pat[..j], floor) {
                best = best.max(j + l);
            }
        }
        best
    }

    /// The longest prefix of `pat` shared with a slot that [`Shard::occurrence_at`] accepts
    /// after `left`, when it is longer than `floor`.
    ///
    /// Without removed documents and without `left` this is the search's own longest common
    /// prefix. Otherwise: the common prefix of `pat` and the suffix at slot `i` never grows as
    /// `i` moves away from the insertion point, so the answer is the prefix shared with the
    /// nearest accepted slot on either side. The search already knows the prefixes at the two
    /// slots beside the insertion point, so when those are accepted (the usual case) nothing
    /// more is read; otherwise the walk outward compares only up to the prefix of the slot
    /// before, and stops at any slot sharing no more than the best found so far.
    fn longest_at(&self, pat: &[u8], left: &[u8], floor: usize) -> Option<usize> {
        let (lo, llcp, rlcp) = self.search(pat, false);
        if left.is_empty() && !self.has_removed() {
            let l = llcp.max(rlcp);
            return (l > floor).then_some(l);
        }
        let n = self.sa().len();
        // Nearest accepted slot of one side, starting at `first` whose prefix is `first_lcp`.
        let walk = |mut i: usize, up: bool, first_lcp: usize, best: usize| -> usize {
            let mut l = first_lcp;
            loop {
                if l <= best {
                    return best;
                }
                if self.occurrence_at(i, left).is_some() {
                    return l;
                }
                if up {
                    i += 1;
                    if i >= n {
                        return best;
                    }
                } else {
                    if i == 0 {
                        return best;
                    }
                    i -= 1;
                }
                l = common_prefix(&pat[..l], self.suffix(i));
            }
        };
        let up = |best| {
            if lo < n {
                walk(lo, true, rlcp, best)
            } else {
                best
            }
        };
        let down = |best| {
            if lo > 0 {
                walk(lo - 1, false, llcp, best)
            } else {
                best
            }
        };
        // The side sharing more first, so the other can stop at once.
        let best = if rlcp >= llcp {
            down(up(floor))
        } else {
            up(down(floor))
        };
        (best > floor).then_some(best)
    }

    /// Whether `pat` occurs in a live document of this shard: exact when `pat` is at least
    /// [`Shard::step`] bytes long.
    #[inline]
    pub fn occurs(&self, pat: &[u8]) -> bool {
        self.shifts(pat.len())
            .any(|j| self.occurs_at(&pat[j..], &pat[..j]))
    }

    /// Whether a suffix starting with `pat` is accepted after `left`
    /// ([`Shard::occurrence_at`]). Every suffix starting with `pat` sits at or after the
    /// insertion point, so only that side is walked, and only while the suffixes still start
    /// with `pat`.
    fn occurs_at(&self, pat: &[u8], left: &[u8]) -> bool {
        let (lo, _, rlcp) = self.search(pat, false);
        if rlcp < pat.len() {
            return false;
        }
        if left.is_empty() && !self.has_removed() {
            return true;
        }
        let sa = self.sa();
        let mut i = lo;
        while i < sa.len() {
            if self.occurrence_at(i, left).is_some() {
                return true;
            }
            i += 1;
            if i < sa.len() && common_prefix(pat, self.suffix(i)) < pat.len() {
                return false;
            }
        }
        false
    }

    /// Where `pat` occurs in this shard ([`Matches`]): exact when `pat` is at least
    /// [`Shard::step`] bytes long.
    pub fn matches(&self, pat: &[u8]) -> Matches {
        Matches {
            parts: self
                .shifts(pat.len())
                .map(|j| {
                    let (lo, hi) = self.range(&pat[j..]);
                    (j, lo, hi)
                })
                .filter(|&(_, lo, hi)| lo < hi)
                .collect(),
            left: pat[..(self.step() - 1).min(pat.len())].to_vec(),
            depth: pat.len(),
        }
    }

    /// The [`Matches`] of `m`'s pattern followed by `more`: each part narrowed by `more`
    /// ([`Shard::narrow`]).
    pub fn narrow_matches(&self, m: &Matches, more: &[u8]) -> Matches {
        Matches {
            parts: m
                .parts
                .iter()
                .map(|&(j, lo, hi)| {
                    let (lo, hi) = self.narrow(lo, hi, m.depth - j, more);
                    (j, lo, hi)
                })
                .filter(|&(_, lo, hi)| lo < hi)
                .collect(),
            left: m.left.clone(),
            depth: m.depth + more.len(),
        }
    }

    /// The text positions of `m`'s occurrences in live documents, part by part, each part in
    /// suffix order.
    pub fn occurrences<'a>(&'a self, m: &'a Matches) -> impl Iterator<Item = u64> + 'a {
        m.parts.iter().flat_map(move |&(j, lo, hi)| {
            (lo..hi).filter_map(move |i| self.occurrence_at(i, &m.left[..j]))
        })
    }

    /// How many occurrences `m` holds: a part at shift 0 of a shard without removed documents
    /// is its size, every other slot is checked one by one.
    pub fn occurrence_count(&self, m: &Matches) -> u64 {
        m.parts
            .iter()
            .map(|&(j, lo, hi)| {
                if j == 0 && !self.has_removed() {
                    (hi - lo) as u64
                } else {
                    (lo..hi)
                        .filter(|&i| self.occurrence_at(i, &m.left[..j]).is_some())
                        .count() as u64
                }
            })
            .sum()
    }
}

/// Where a pattern occurs in one shard ([`Shard::matches`]), as suffix-array slots: for each
/// shift `j` below the shard's step (and the pattern's length), the slots `[lo, hi)` whose
/// suffix starts with the pattern from its byte `j` on. Those whose `j` bytes before are the
/// pattern's first `j` are occurrences, `j` bytes before their position
/// ([`Shard::occurrences`]). With step 1 there is one part, and each of its slots is one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    /// `(j, lo, hi)`, by `j`; empty parts left out.
    parts: Vec<(usize, usize, usize)>,
    /// The pattern's first bytes, as many as the shard's step less one (the left contexts).
    left: Vec<u8>,
    /// The pattern's length.
    depth: usize,
}

impl Matches {
    /// No slot can hold an occurrence.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// Where a span occurs in the corpus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Global document id (documents are numbered across shards in build order).
    pub doc: u64,
    /// The shard holding the document.
    pub shard: u32,
    /// Byte offset of the occurrence inside the document's normalized text.
    pub offset: u64,
    /// The document's metadata (source, line, and the input's other fields).
    pub meta: serde_json::Value,
}

/// A maximal verbatim span of a query text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    /// Character range `[start, end)` in the original query text.
    pub start: usize,
    /// See `start`.
    pub end: usize,
    /// Length of the matched (normalized) text in characters.
    pub len_chars: usize,
    /// Length in tokens, when a tokenizer is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub len_tokens: Option<usize>,
    /// Occurrences in the corpus (exact, summed over shards).
    pub count: u64,
    /// Up to `max_hits` occurrences, shard order then suffix order.
    pub hits: Vec<Hit>,
    /// The matched normalized text (one member's, for a run).
    pub text: String,
    /// The span repeats: `repeats` copies of `text`, each starting `period` characters (of
    /// normalized text) after the one before and overlapping or touching it, cover `start..end`
    /// ([`Run`]). 1 for a span that does not repeat; `len_chars` is one copy's length.
    #[serde(skip_serializing_if = "is_one")]
    pub repeats: usize,
    /// See `repeats` (0 for a span that does not repeat).
    #[serde(skip_serializing_if = "is_zero")]
    pub period: usize,
    /// The message's prompt holds this text too: the model repeated its input, which is not a
    /// leak of training data ([`crate::analyze::Analyzer::mark_prompt`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_prompt: bool,
}

/// Everything `spans` found in one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanReport {
    /// The index queried.
    pub index_id: String,
    /// Its generation (see `index::generation`).
    pub index_generation: u64,
    /// The minimum span length asked for, characters.
    pub min_len: usize,
    /// Characters in the original text.
    pub text_chars: usize,
    /// Characters of the original text inside at least one span.
    pub covered_chars: usize,
    /// `covered_chars / text_chars` (0 for empty text).
    pub coverage: f64,
    /// Longest span, in characters (0 when there is none).
    pub longest: usize,
    /// The spans, in text order.
    pub spans: Vec<Span>,
    /// Near-verbatim spans (corpus passages copied with small edits), when asked for
    /// ([`crate::index::read::near`]), in text order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub near: Vec<crate::index::read::near::NearSpan>,
    /// The text was folded before matching ([`crate::corpus::fold`]); positions are the
    /// original text's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
    /// The work budget stopped the search: how far the text was checked, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<Incomplete>,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Maximal spans that repeat, as one entry: the members `(start + k·period, end + k·period)`
/// for `k < repeats`, all the same text, each overlapping or touching the next
/// (`period ≤ end − start`), so the run covers `[start, last_end)` whole. A span that does not repeat is a
/// run of one (`period` 0). Periodic text (a run of `*`, `abab…`, a word or line said over and
/// over against a corpus holding a shorter such run) has a maximal span at nearly every
/// position; as runs, its answer is a handful of entries, whatever its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First member's byte range in the normalized text.
    pub start: usize,
    /// See `start`.
    pub end: usize,
    /// Bytes between consecutive members' starts (0 for a run of one).
    pub period: usize,
    /// Members, at least 1.
    pub repeats: usize,
}

impl Run {
    /// A member's length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the members are empty (never, for a found span).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Start of the last member.
    pub fn last_start(&self) -> usize {
        self.start + (self.repeats - 1) * self.period
    }

    /// End of the last member: the run covers `[start, last_end)`.
    pub fn last_end(&self) -> usize {
        self.last_start() + self.len()
    }

    /// Every member's byte range, in order.
    pub fn members(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.repeats).map(|k| (self.start + k * self.period, self.end + k * self.period))
    }
}

/// Maximal spans grouped into [`Run`]s as they are found, in text order. The grouping is the
/// definition (the property tests apply it to the brute-force spans): a span joins the run
/// before it when it has the same length and text as that run's last member, starts `p` bytes
/// after it with `0 < p ≤ length`, and `p` is the run's period (set by its second member).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Runs {
    /// The runs, in text order.
    pub runs: Vec<Run>,
}

impl Runs {
    /// Adds the maximal span `[a, b)` of normalized text `t` (after every span before it).
    pub fn push(&mut self, t: &[u8], a: usize, b: usize) {
        self.push_within(t, a, b, usize::MAX);
    }

    /// [`Runs::push`] for a span inside a stretch of `t` that repeats with period `q` and holds
    /// the run's last member too: two spans of one length there are the same text iff their
    /// first `q` bytes are, so at most `q` bytes are compared, however long the span (the
    /// periodic skip of [`Index::maximal_runs`] adds every member this way).
    fn push_within(&mut self, t: &[u8], a: usize, b: usize, q: usize) {
        if let Some(r) = self.runs.last_mut() {
            let (la, len) = (r.last_start(), r.len());
            if b - a == len && a > la {
                let p = a - la;
                let k = len.min(q);
                if p <= len && (r.repeats == 1 || p == r.period) && t[la..la + k] == t[a..a + k] {
                    r.period = p;
                    r.repeats += 1;
                    return;
                }
            }
        }
        self.runs.push(Run {
            start: a,
            end: b,
            period: 0,
            repeats: 1,
        });
    }

    /// Adds `more`, runs found in `t[offset..]` after every span here, grouped as if found
    /// one by one: only the first of them may join the last run here, member by member (once
    /// one member does not join, the rest group among themselves as they are).
    pub fn append(&mut self, t: &[u8], more: &Runs, offset: usize) {
        let mut rest = more.runs.iter().map(|r| Run {
            start: r.start + offset,
            end: r.end + offset,
            ..*r
        });
        let Some(first) = rest.next() else {
            return;
        };
        let before = self.runs.len();
        self.push(t, first.start, first.end);
        let joined = self.runs.len() == before;
        if first.repeats > 1 {
            let last = self.runs.last_mut().expect("just pushed");
            if joined && last.period == first.period {
                last.repeats += first.repeats - 1;
            } else if !joined {
                // The first member began a run of its own: it is `first` itself.
                *last = first;
            } else {
                // The first member joined with another period: the others run on their own.
                self.runs.push(Run {
                    start: first.start + first.period,
                    end: first.end + first.period,
                    period: if first.repeats > 2 { first.period } else { 0 },
                    repeats: first.repeats - 1,
                });
            }
        }
        self.runs.extend(rest);
    }

    /// Every member of every run, in order: the maximal spans.
    pub fn spans(&self) -> Vec<(usize, usize)> {
        self.runs.iter().flat_map(|r| r.members()).collect()
    }
}

/// The maximal spans of one text as [`Index::maximal_runs`] finds them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// The spans, grouped.
    pub runs: Runs,
    /// Bytes of the normalized text, from its start, whose maximal spans are all in `runs`:
    /// the text's length unless the budget stopped the search.
    pub checked: usize,
}

/// How many spans found last are remembered to recognize a periodic stretch (the spans of one
/// period must all be among them).
const PERIOD_WINDOW: usize = 64;

/// Query options.
#[derive(Clone, Copy)]
pub struct SpanOptions<'a> {
    /// Minimum span length in characters of normalized text (at least 1).
    pub min_len: usize,
    /// Provenance hits reported per span.
    pub max_hits: usize,
    /// Counts tokens of a span's original text, when a tokenizer is configured.
    pub tokens: Option<&'a (dyn Fn(&str) -> usize + Sync)>,
    /// The text's work budget (none: unlimited); the report says how far a stopped search got.
    pub budget: Option<&'a Budget>,
}

impl Default for SpanOptions<'_> {
    fn default() -> Self {
        SpanOptions {
            min_len: DEFAULT_MIN_LEN,
            max_hits: 3,
            tokens: None,
            budget: None,
        }
    }
}

/// Default minimum span length, characters: about ten English words or twelve tokens; short enough
/// to catch a quoted sentence, long enough that common phrases do not match.
pub const DEFAULT_MIN_LEN: usize = 50;

#[inline]
fn is_char_start(t: &[u8], i: usize) -> bool {
    i >= t.len() || (t[i] & 0xC0) != 0x80
}

/// The first `i` in `[lo, hi)` for which `pred` is false (`hi` if none), `pred` being true on a
/// prefix of the range and false after.
fn partition_point(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[inline]
fn next_char_start(t: &[u8], mut i: usize) -> usize {
    while !is_char_start(t, i) {
        i += 1;
    }
    i
}

/// Characters covered by `[start, end)` ranges sorted by start (ranges may overlap).
pub fn covered_chars(ranges: impl IntoIterator<Item = (usize, usize)>) -> usize {
    let mut covered = 0;
    let mut reach = 0;
    for (a, b) in ranges {
        let from = a.max(reach);
        if b > from {
            covered += b - from;
        }
        reach = reach.max(b);
    }
    covered
}

impl Index {
    /// The shortest spans this index finds exactly, in characters: `2k - 1` for a sparse
    /// suffix array of step `k` (its blocks must be `k` bytes), 1 for a full one. A search for
    /// shorter spans finds those of this length.
    pub fn min_span_chars(&self) -> usize {
        2 * self.min_pattern_bytes() - 1
    }

    /// The shortest patterns [`Index::occurs`] and [`Index::count`] answer exactly, in bytes: the
    /// largest suffix-array step of the shards (shorter ones may be missed).
    pub fn min_pattern_bytes(&self) -> usize {
        self.shards.iter().map(Shard::step).max().unwrap_or(1)
    }

    /// Bytes of the shards' [`Sample`]s (mapped, not private memory).
    pub fn sample_bytes(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.sample.as_ref())
            .map(Sample::bytes)
            .sum()
    }

    /// The shards `only` names (all when `None`), in order.
    fn each<'a>(&'a self, only: Option<&'a [usize]>) -> impl Iterator<Item = &'a Shard> + 'a {
        let (all, some) = match only {
            None => (Some(self.shards.iter()), None),
            Some(ids) => (None, Some(ids.iter().map(|&i| &self.shards[i]))),
        };
        all.into_iter().flatten().chain(some.into_iter().flatten())
    }

    /// Longest prefix of `pat` occurring in any of the shards `only` names (all when `None`),
    /// in bytes, when it is at least `at_least` bytes ([`Shard::longest_prefix`]).
    fn longest_in(&self, pat: &[u8], at_least: usize, only: Option<&[usize]>) -> usize {
        let mut best = 0;
        for s in self.each(only) {
            best = best.max(s.longest_prefix(pat, at_least.max(best)));
            if best == pat.len() {
                break;
            }
        }
        best
    }

    /// Whether `pat` occurs in any shard (in a live document).
    pub fn occurs(&self, pat: &[u8]) -> bool {
        self.occurs_in(pat, None)
    }

    /// Whether `pat` occurs in any of the shards `only` names (all when `None`).
    fn occurs_in(&self, pat: &[u8], only: Option<&[usize]>) -> bool {
        self.each(only).any(|s| s.occurs(pat))
    }

    /// The shards that may hold normalized text `p` whole, when the presence filter can say
    /// (`p` at least its reach long): the others certainly do not.
    fn route_all(&self, p: &[u8]) -> Option<Vec<usize>> {
        let presence = self.presence.as_ref()?;
        (p.len() >= presence.params.reach())
            .then(|| presence.route(p, crate::index::filter::Route::All, self.shards.len()))
    }

    /// Occurrences of `pattern` (normalized like the corpus) across all shards.
    pub fn count(&self, pattern: &str) -> u64 {
        let p = self.normalizer.normalize(pattern);
        self.count_normalized(p.as_bytes())
    }

    fn count_normalized(&self, p: &[u8]) -> u64 {
        if p.is_empty() || p.contains(&SEPARATOR) {
            return 0;
        }
        let route = self.route_all(p);
        self.each(route.as_deref())
            .map(|s| s.occurrence_count(&s.matches(p)))
            .sum()
    }

    /// Longest match at `j` in whole characters, in the shards `only` names, known to be at
    /// least `at_least` bytes: the end position.
    fn match_end(&self, t: &[u8], j: usize, at_least: usize, only: Option<&[usize]>) -> usize {
        let mut e = j + self.longest_in(&t[j..], at_least, only);
        while !is_char_start(t, e) {
            e -= 1;
        }
        e
    }

    /// Every maximal span of normalized text `t` of at least `min_chars` characters, one by one
    /// ([`Index::maximal_runs`]'s runs expanded, with no budget): for tests and short texts.
    pub fn maximal_spans(&self, t: &[u8], min_chars: usize) -> Vec<(usize, usize)> {
        self.maximal_runs(t, min_chars, &Budget::unlimited())
            .runs
            .spans()
    }

    /// The maximal spans of normalized text `t` with at least `min_chars` characters, grouped
    /// into [`Run`]s, as far as `budget` allows.
    ///
    /// Invariant: `e` is the furthest end of any match computed so far, and every start before `j`
    /// that begins a maximal span of at least `min_chars` has been reported. A start is skipped only
    /// when its match is provably shorter than `min_chars` bytes (block filter) or provably ends at or
    /// before `e` (galloping), and neither kind can be, or hide, a reported span.
    ///
    /// **Periodic stretches** are skipped, not searched. With `L(j)` the longest match at `j`,
    /// call `E(j)` the furthest `i + L(i)` of a reported start `i < j`; `j` is reported iff its
    /// match is long enough and `j + L(j) > E(j)` (a longer match ending as far would start
    /// earlier and be reported). Suppose spans `(s0, e0)` and `(s, e)` were reported with
    /// `s - s0 = e - e0 = p`, and `t[i] = t[i - p]` for every `i` in `[s + 1, z)`. For a start
    /// `j` in `(s, s + p]`, the match at `j - p` and the byte after it lie in `[j - p, e⁺)`,
    /// where `e⁺` is the end of the character after `e` (a match is measured in bytes and cut
    /// back to a character: its last byte compared may lie inside the character after `e`), so
    /// shifted by `p` they lie in the periodic stretch: `L(j) = L(j - p)` while
    /// `j + L(j - p) < z`. And `E(s + 1) = e = E(s0 + 1) + p`. So by induction the spans reported
    /// in `(s0, s]` repeat, shifted by `r·p`, for every `r` with `e⁺ + r·p ≤ z`, and the state
    /// after them is `(j, e)` shifted likewise. The search resumes there, near the end of the
    /// stretch: a periodic text of any length costs a few periods' searches and a scan.
    ///
    /// **The presence filter** ([`crate::index::filter`]), when the index has one and `min_chars` is at
    /// least its reach: only the filter's segments of `t` are searched, each on its own, since
    /// every span lies inside one and whether a span is maximal is decided inside it (a longer
    /// match holding it would be a span of the same segment). Novel text reads no suffix array.
    pub fn maximal_runs(&self, t: &[u8], min_chars: usize, budget: &Budget) -> Found {
        let min_chars = min_chars.max(self.min_span_chars());
        let Some(segments) = self.filter_segments(t, min_chars) else {
            return self.search_runs(t, min_chars, budget, 0, None);
        };
        let mut found = Found {
            runs: Runs::default(),
            checked: t.len(),
        };
        let presence = self
            .presence
            .as_ref()
            .expect("segments come from the filter");
        for (a, c) in segments {
            let a = next_char_start(t, a);
            if a >= c {
                continue;
            }
            // Only the shards holding some window of the segment can hold a span in it.
            let route = presence.route(
                &t[a..c],
                crate::index::filter::Route::Any,
                self.shards.len(),
            );
            if route.is_empty() {
                continue;
            }
            let part = self.search_runs(
                &t[a..c],
                min_chars,
                budget,
                found.runs.runs.len(),
                Some(&route),
            );
            found.runs.append(t, &part.runs, a);
            if part.checked < c - a {
                found.checked = a + part.checked;
                break;
            }
        }
        found
    }

    /// The presence filter's segments of `t` ([`crate::index::filter::segments`]), when the filter
    /// applies to spans of `min_chars` characters (each of which is at least as many bytes).
    pub fn filter_segments(&self, t: &[u8], min_chars: usize) -> Option<Vec<(usize, usize)>> {
        let presence = self.presence.as_ref()?;
        (min_chars >= presence.params.reach()).then(|| presence.segments(t))
    }

    /// [`Index::maximal_runs`] searching all of `t` in the shards `only` names (all when
    /// `None`), after `prior_runs` runs found elsewhere in the text (they count against the
    /// budget's cap on spans).
    fn search_runs(
        &self,
        t: &[u8],
        min_chars: usize,
        budget: &Budget,
        prior_runs: usize,
        only: Option<&[usize]>,
    ) -> Found {
        let n = t.len();
        let min_chars = min_chars.max(1);
        let chars = |a: usize, b: usize| t[a..b].iter().filter(|&&c| (c & 0xC0) != 0x80).count();
        let s = min_chars.div_ceil(2).max(1);
        let mut found = Found::default();
        // The spans reported last, to recognize a period (cleared after each skip).
        let mut recent: VecDeque<(usize, usize)> = VecDeque::new();
        let mut e = 0usize; // furthest end of any match found so far
        let mut j = 0usize; // next candidate start
        let mut passing_block: Option<usize> = None;
        // The last match found was too short to report (see `unmatched_stretch`), and where the
        // last stretch it looked at ends (each stretch is scanned once).
        let mut wasted = false;
        let mut periodic_until = 0usize;
        // Each `break 'search x` stops with every maximal start before `x` reported.
        found.checked = 'search: loop {
            if j >= n || e >= n {
                // A match already reaching the end means no later start can reach further.
                break n;
            }
            if !budget.go() {
                break j;
            }
            // After a match too short to report: if j starts a long periodic stretch none of
            // whose span-long windows occurs, no span to report starts in it.
            if std::mem::take(&mut wasted) && j >= periodic_until {
                match self.unmatched_stretch(t, j, min_chars, budget, only) {
                    Ok(next) => {
                        j = next_char_start(t, next);
                        passing_block = None;
                        continue;
                    }
                    // A stretch whose windows occur: not looked at again until its end.
                    Err(until) => periodic_until = until,
                }
            }
            let start;
            // The end of the character at e: a start q beats e iff text[q..e2] occurs.
            let e2 = next_char_start(t, e + 1);
            if j < e && j + min_chars <= e2 {
                // Galloping over the starts whose match would reach past e *and* be at least
                // min_chars bytes long: "text[q..e2] occurs" is monotone in q.
                let hi = e.min(e2 + 1 - min_chars);
                let (mut lo, mut up) = (j, hi);
                while lo < up {
                    if !budget.go() {
                        break 'search j;
                    }
                    let mid = lo + (up - lo) / 2;
                    if self.occurs_in(&t[mid..e2], only) {
                        up = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                let q = next_char_start(t, lo);
                if q >= hi {
                    // No start in [j, hi) reaches past e; later ones would be too short to.
                    j = hi;
                    continue;
                }
                start = q;
            } else {
                // Block filter: the next aligned block at or after j that occurs.
                let mut p = j.div_ceil(s) * s;
                loop {
                    if p + s > n {
                        break 'search n;
                    }
                    if passing_block == Some(p) {
                        break;
                    }
                    if !budget.go() {
                        break 'search j.min(p);
                    }
                    if self.occurs_in(&t[p..p + s], only) {
                        passing_block = Some(p);
                        break;
                    }
                    p += s;
                }
                // Any long span starting in (p - s, p] contains the block: binary search the first
                // start whose text reaches the block's end.
                let (mut lo, mut hi) = (j.max((p + 1).saturating_sub(s)), p);
                while lo < hi {
                    if !budget.go() {
                        break 'search j.max((p + 1).saturating_sub(s));
                    }
                    let mid = lo + (hi - lo) / 2;
                    if self.occurs_in(&t[mid..p + s], only) {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                let q = next_char_start(t, lo);
                if q > p {
                    j = p + 1;
                    continue;
                }
                start = q;
            }
            // The match at `start` reaches the block's end or past `e` (at least `s` bytes).
            let end = self.match_end(t, start, s, only);
            j = next_char_start(t, start + 1);
            if end <= e {
                continue;
            }
            e = end;
            if chars(start, end) < min_chars {
                wasted = true;
                continue;
            }
            found.runs.push(t, start, end);
            if !budget.spans_ok(prior_runs + found.runs.runs.len()) {
                break j;
            }
            recent.push_back((start, end));
            if recent.len() > PERIOD_WINDOW {
                recent.pop_front();
            }
            // The latest earlier span of the same length: the start of a period, if any.
            let len = end - start;
            let Some(k) = (0..recent.len() - 1)
                .rev()
                .find(|&k| recent[k].1 - recent[k].0 == len)
            else {
                continue;
            };
            let p = start - recent[k].0;
            let mut z = start + 1;
            while z < n && t[z] == t[z - p] {
                z += 1;
            }
            // The end of the character after the span: the last byte its match compared lies
            // before it (see the doc comment: `e⁺`).
            let end_plus = next_char_start(t, end + 1);
            if z < end_plus + p {
                continue; // the stretch ends within a period: nothing to skip
            }
            let reps = (z - end_plus) / p;
            let period: Vec<(usize, usize)> = recent.range(k + 1..).copied().collect();
            for r in 1..=reps {
                if !budget.go() {
                    break 'search period[0].0 + r * p;
                }
                for &(x, y) in &period {
                    // Every member from the period's spans on lies in the stretch
                    // `[s - p + 1, z)`, which repeats with period p.
                    found.runs.push_within(t, x + r * p, y + r * p, p);
                    if !budget.spans_ok(prior_runs + found.runs.runs.len()) {
                        break 'search x + r * p + 1;
                    }
                }
            }
            e = end + reps * p;
            j = next_char_start(t, start + reps * p + 1);
            recent.clear();
            passing_block = None;
        };
        found
    }

    /// When `t` repeats from `j` with a period `p ≤ 64` up to `z`, at least four spans' worth,
    /// and no window of it as long as a span of `min_chars` characters occurs in the corpus: the
    /// first start after which a span to report may begin. With `w` the fewest bytes
    /// `min_chars` characters take from any character start of the period, a span to report
    /// that starts at `q` in the stretch with `q + w ≤ z` begins with `t[q..q + w]`, which is one
    /// of the `p` windows `t[j + k..j + k + w]` (`k < p`); none occurs, so none starts in
    /// `[j, z - w]`. This is the case the periodic skip of [`Index::maximal_runs`] cannot take,
    /// a corpus run shorter than the minimum span: without it every block of the stretch passes
    /// the filter and is searched around.
    ///
    /// `Err(until)`: no skip; `until` is the end of the stretch looked at (`j` when there was
    /// none), before which looking again would find the same.
    fn unmatched_stretch(
        &self,
        t: &[u8],
        j: usize,
        min_chars: usize,
        budget: &Budget,
        only: Option<&[usize]>,
    ) -> Result<usize, usize> {
        const MAX_PERIOD: usize = 64;
        let n = t.len();
        // A character is at most 4 bytes: the probe below stays inside the text.
        let probe = 8 * min_chars + MAX_PERIOD;
        if j + probe > n {
            return Err(n);
        }
        let p = (1..=MAX_PERIOD)
            .find(|&p| (j + p..j + probe).all(|i| t[i] == t[i - p]))
            .ok_or(j)?;
        let mut z = j + probe;
        while z < n && t[z] == t[z - p] {
            z += 1;
        }
        // The bytes of `min_chars` characters from each character start of the period.
        let w = (j..j + p)
            .filter(|&k| is_char_start(t, k))
            .map(|k| {
                let mut b = k;
                for _ in 0..min_chars {
                    b = next_char_start(t, b + 1);
                }
                b - k
            })
            .min()
            .ok_or(z)?;
        if z - j < 4 * w {
            return Err(z);
        }
        for k in 0..p {
            if !budget.go() || self.occurs_in(&t[j + k..j + k + w], only) {
                return Err(z);
            }
        }
        Ok(z - w + 1)
    }

    /// Provenance of normalized pattern `p`: up to `max` hits and the exact count.
    fn provenance(&self, p: &[u8], max: usize) -> (u64, Vec<Hit>) {
        // Shards the filter rules out hold no occurrence: nothing matches there.
        let route = self.route_all(p);
        let matches: Vec<Matches> = (0..self.shards.len())
            .map(|i| match &route {
                Some(r) if r.binary_search(&i).is_err() => Matches::default(),
                _ => self.shards[i].matches(p),
            })
            .collect();
        self.provenance_in(&matches, max)
    }

    /// [`Index::provenance`] of the pattern whose [`Matches`] in shard `k` are `matches[k]`
    /// (one per shard, in order).
    pub fn provenance_in(&self, matches: &[Matches], max: usize) -> (u64, Vec<Hit>) {
        let mut count = 0u64;
        let mut hits = Vec::new();
        for (shard, m) in self.shards.iter().zip(matches) {
            let want = max.saturating_sub(hits.len());
            count += shard.occurrence_count(m);
            for pos in shard.occurrences(m).take(want) {
                if let Some(d) = shard.locate_doc(pos) {
                    hits.push(Hit {
                        doc: shard.entry.first_doc + d.local,
                        shard: shard.entry.id,
                        offset: d.offset,
                        meta: shard.doc_meta(d.local),
                    });
                }
            }
        }
        (count, hits)
    }

    /// Every maximal verbatim span of `text` at least `opts.min_len` characters long (after
    /// normalization), with counts, provenance and coverage, within `opts.budget`.
    pub fn spans(&self, text: &str, opts: &SpanOptions) -> SpanReport {
        let mapped = self.normalizer.normalize_mapped(text);
        let budget = opts.budget.unwrap_or(&UNLIMITED);
        let found = self.maximal_runs(mapped.text.as_bytes(), opts.min_len, budget);
        let (spans, checked) = self.spans_of(text, &mapped, &found.runs.runs, 0, opts);
        let mut report = self.report(mapped.input_chars, spans, opts);
        report.incomplete = incomplete(&mapped, found.checked.min(checked), budget);
        report
    }

    /// [`Index::spans`] and [`Index::near_spans`] of one text, finding the exact matches once:
    /// the maximal matches at the seeds' length include every exact span (those at least
    /// `opts.min_len` long; maximal matches never nest, so the longer ones are exactly these).
    pub fn spans_and_near(
        &self,
        text: &str,
        opts: &SpanOptions,
        near: &crate::index::read::near::NearOptions,
    ) -> SpanReport {
        let mapped = self.normalizer.normalize_mapped(text);
        let t = mapped.text.as_bytes();
        let budget = opts.budget.unwrap_or(&UNLIMITED);
        let chars = |a: usize, b: usize| t[a..b].iter().filter(|&&c| (c & 0xC0) != 0x80).count();
        let min_len = opts.min_len.max(1);
        let matches = self.maximal_runs(t, near.seed_chars.max(1).min(min_len), budget);
        let exact: Vec<Run> = matches
            .runs
            .runs
            .iter()
            .copied()
            .filter(|r| chars(r.start, r.end) >= min_len)
            .collect();
        let (spans, checked) = self.spans_of(text, &mapped, &exact, 0, opts);
        let mut report = self.report(mapped.input_chars, spans, opts);
        report.near = self.near_spans_from(&mapped, &matches.runs.runs, near, budget);
        report.incomplete = incomplete(&mapped, matches.checked.min(checked), budget);
        report
    }

    /// The [`Span`]s of the runs of normalized byte ranges `runs` of `mapped` (the
    /// normalization of `text`): provenance, counts and lengths, looked up once per distinct
    /// text. Character positions are shifted by `first_char` (the characters before `text` when
    /// it is the tail of a longer text). Returns the spans and the normalized byte before which
    /// every run has its span (`runs` cut short when the budget stopped: `mapped`'s length if
    /// not).
    pub fn spans_of(
        &self,
        text: &str,
        mapped: &Mapped,
        runs: &[Run],
        first_char: usize,
        opts: &SpanOptions,
    ) -> (Vec<Span>, usize) {
        let t = mapped.text.as_bytes();
        let budget = opts.budget.unwrap_or(&UNLIMITED);
        // Byte offset of every original character, needed only to cut spans out for the tokenizer.
        let original: Vec<usize> = match opts.tokens {
            Some(_) => text
                .char_indices()
                .map(|(b, _)| b)
                .chain([text.len()])
                .collect(),
            None => Vec::new(),
        };
        // A text repeated (a line said over and over) is looked up once.
        let mut known: HashMap<&[u8], (u64, Vec<Hit>)> = HashMap::new();
        let mut spans = Vec::with_capacity(runs.len());
        for r in runs {
            let matched = &t[r.start..r.end];
            if !known.contains_key(matched) {
                if !budget.go() {
                    return (spans, r.start);
                }
                known.insert(matched, self.provenance(matched, opts.max_hits));
            }
            let (count, hits) = known[matched].clone();
            let (start, first_end_char) = mapped.input_range(r.start, r.end);
            let end = mapped.input_range(r.last_start(), r.last_end()).1;
            let matched = &mapped.text[r.start..r.end];
            spans.push(Span {
                start: first_char + start,
                end: first_char + end,
                len_chars: matched.chars().count(),
                len_tokens: opts
                    .tokens
                    .map(|f| f(&text[original[start]..original[first_end_char]])),
                count,
                hits,
                text: matched.to_string(),
                repeats: r.repeats,
                period: mapped.text[r.start..r.start + r.period].chars().count(),
                in_prompt: false,
            });
        }
        (spans, t.len())
    }

    /// The report on a text of `text_chars` characters whose spans (in text order) are `spans`.
    pub fn report(&self, text_chars: usize, spans: Vec<Span>, opts: &SpanOptions) -> SpanReport {
        // Union of spans in original characters (spans may overlap).
        let covered = covered_chars(spans.iter().map(|s| (s.start, s.end)));
        SpanReport {
            index_id: self.id().to_string(),
            index_generation: self.generation(),
            min_len: opts.min_len.max(self.min_span_chars()),
            text_chars,
            covered_chars: covered,
            coverage: if text_chars == 0 {
                0.0
            } else {
                covered as f64 / text_chars as f64
            },
            longest: spans.iter().map(|s| s.len_chars).max().unwrap_or(0),
            spans,
            near: Vec::new(),
            folded: false,
            incomplete: None,
        }
    }
}

/// The budget of a search given none.
static UNLIMITED: Budget = Budget::unlimited();

/// What a report says of a search that `budget` stopped with normalized bytes `[0, checked)` of
/// `mapped` checked (none when it was not stopped).
fn incomplete(mapped: &Mapped, checked: usize, budget: &Budget) -> Option<Incomplete> {
    let reason = budget.stopped()?;
    let n = mapped.text.len();
    if checked >= n {
        return None;
    }
    Some(Incomplete {
        checked_chars: mapped.origin[checked].0 as usize,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefix_lengths() {
        assert_eq!(common_prefix(b"", b"abc"), 0);
        assert_eq!(common_prefix(b"abcdefghij", b"abcdefghiX"), 9);
        assert_eq!(common_prefix(b"abcdefgh", b"abcdefgh"), 8);
        assert_eq!(common_prefix(b"abcdefghijk", b"abcdefghijk!"), 11);
        assert_eq!(common_prefix(b"abXdefghijk", b"abcdefghijk"), 2);
    }
}
