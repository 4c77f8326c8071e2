//! Sorting a shard's sampled suffixes into its suffix array: the whole shard at once when it
//! fits, or in parts sorted apart and merged from disk when it does not.
//!
//! **Whole.** libsais sorts every suffix of the shard's text (32-bit, so texts under 2 GiB),
//! and the suffixes at multiples of the step are kept: `SHARD_PEAK_FACTOR` times the text in
//! memory ([`crate::index::write::build`]). The fast path, and the only one for shards that fit.
//!
//! **Parts.** Positions are cut into parts of `part` bytes. The suffixes starting in part
//! `[a, b)` are sorted by libsais on `text[a..c)`, `c = min(n, b + overlap)`, and the sampled
//! ones kept, each with its first 16 bytes as a number that sorts as they do. Two suffixes of the
//! part sort in `text[a..c)` as they do in the whole text unless one of them, cut at `c`, is a
//! prefix of the other (a *tie*: the cut decided the order). The cut one sorts first and is at
//! least `overlap` bytes long, so a tie is a repeat of at least `overlap` bytes, and the suffixes
//! starting with the cut one's bytes sit right after it: each such block is sorted again by
//! comparing the whole text ([`fix_ties`]). Every other pair, and each block's members against the
//! rest, differ before the cut. Each part's list goes to a file of the work directory; a k-way
//! merge (a heap of the parts' heads) compares the keys and, when they are equal, the text, and
//! writes the array. Memory: the text, one part's libsais array (4 bytes per byte of the part and
//! its overlap) and its list (32 bytes per kept suffix), and a buffer per part in the merge.
//!
//! Cost: each part sorts in libsais' time; the merge compares keys read sequentially from the
//! files, and reads the text only where 16 bytes tie. Long exact repeats across parts (copies of a
//! document) are compared byte by byte, so a corpus with many
//! copies of large documents sorts slower in parts than whole; deduplicate such corpora first.
//!
//! Both paths give the same array: `tests` below compares them on texts full of long repeats.

use crate::index::format::is_sampled;
#[cfg(test)]
use crate::index::format::SEPARATOR;
use anyhow::{Context, Result};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// The most bytes libsais' 32-bit entry points sort at once.
pub const MAX_WHOLE_SORT: u64 = (1 << 31) - 1;

/// Memory a part's sort takes per byte of the part, with room to spare: its libsais array over
/// the part and its overlap (4), and the list of kept suffixes (32 bytes per kept one, a
/// [`Rec`] with its alignment).
pub fn part_peak_factor(step: usize) -> u64 {
    5 + 32u64.div_ceil(step.max(1) as u64)
}

/// How a shard's suffixes are sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortPlan {
    /// All at once by libsais.
    Whole,
    /// In parts of this many bytes, merged from disk.
    Parts(usize),
}

impl SortPlan {
    /// The plan for a shard whose whole sort does not fit: parts that fit `budget` bytes, for
    /// an array of step `step`.
    pub fn parts_within(budget: u64, step: usize) -> SortPlan {
        SortPlan::Parts(
            (budget / part_peak_factor(step)).clamp(MIN_PART_BYTES, MAX_WHOLE_SORT / 2) as usize,
        )
    }

    /// The plan for a shard of `len` bytes where memory is not counted (`index compact`): whole
    /// when libsais can sort it at once, else parts of [`DEFAULT_PART_BYTES`].
    pub fn for_text(len: u64) -> SortPlan {
        if len <= MAX_WHOLE_SORT {
            SortPlan::Whole
        } else {
            SortPlan::Parts(DEFAULT_PART_BYTES as usize)
        }
    }
}

/// The parts of a shard sorted where memory is not counted.
pub const DEFAULT_PART_BYTES: u64 = 1 << 30;

/// The smallest part (a budget too small for it is overrun by this much).
const MIN_PART_BYTES: u64 = 4096;

/// The overlap read past a part's end: its suffixes are compared that far before a tie can occur.
/// At least the key's 16 bytes, so that a tie always has equal keys ([`fix_ties`]).
fn overlap(part: usize) -> usize {
    (part / 8).clamp(KEY_BYTES, 1 << 20)
}

/// A suffix's first 16 bytes as a number that sorts as the bytes do (0 past the text's end;
/// equal keys are compared on the text). 16 rather than 8: natural text shares 8-byte prefixes
/// often ("the " and a word), and each tie is a comparison on the text, two cache misses.
#[inline]
fn key_at(text: &[u8], p: usize) -> u128 {
    let mut b = [0u8; KEY_BYTES];
    let s = &text[p..];
    let m = s.len().min(KEY_BYTES);
    b[..m].copy_from_slice(&s[..m]);
    u128::from_be_bytes(b)
}

const KEY_BYTES: usize = 16;

/// A kept suffix: its key and position.
type Rec = (u128, u64);

/// Bytes of a [`Rec`] in a part file.
const REC_BYTES: usize = KEY_BYTES + 8;

/// Sorts the suffixes of `text` (all of them) with libsais; `text` must be under 2 GiB.
pub fn libsais(text: &[u8], threads: usize) -> Result<Vec<i32>> {
    use libsais::{SuffixArrayConstruction, ThreadCount};
    let construction = SuffixArrayConstruction::for_text(text).in_owned_buffer32();
    let result = if threads > 1 {
        construction
            .multi_threaded(ThreadCount::fixed(threads.min(u16::MAX as usize) as u16))
            .run()
    } else {
        construction.single_threaded().run()
    };
    Ok(result
        .map_err(|e| anyhow::anyhow!("libsais failed: {e:?}"))?
        .into_vec())
}

/// Sorts the sampled suffixes of `text` in parts of `part` bytes ([`SortPlan::Parts`]), with
/// part lists written to `work` (removed after), and hands each position, in suffix order, to
/// `emit`. Returns how many it handed.
pub fn in_parts(
    text: &[u8],
    step: usize,
    part: usize,
    threads: usize,
    work: &Path,
    emit: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<u64> {
    let n = text.len();
    let part = part.max(1);
    // A directory of this sort's own, so that sorts never share part files.
    static SORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let work = work.join(format!(
        "sort-{}-{}",
        std::process::id(),
        SORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut files = Vec::new();
    let result = (|| -> Result<u64> {
        for (i, a) in (0..n).step_by(part).enumerate() {
            let b = (a + part).min(n);
            let c = (b + overlap(part)).min(n);
            let sa = libsais(&text[a..c], threads)?;
            let mut kept: Vec<Rec> = sa
                .iter()
                .map(|&q| a + q as usize)
                .filter(|&p| p < b && is_sampled(text, p, step))
                .map(|p| (key_at(text, p), p as u64))
                .collect();
            drop(sa);
            fix_ties(text, &mut kept, c);
            let path = work.join(format!("part-{i:05}"));
            let f = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            files.push(path.clone());
            let mut w = BufWriter::with_capacity(1 << 20, f);
            for &(k, p) in &kept {
                w.write_all(&k.to_le_bytes())?;
                w.write_all(&p.to_le_bytes())?;
            }
            drop(kept);
            w.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        merge(text, &files, emit)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Sorts again, on the whole text, each block of `kept` whose order the cut at `c` decided: a
/// suffix whose bytes up to `c` are a prefix of the next one's, and the suffixes after it that
/// start with those bytes too (see the module's description).
fn fix_ties(text: &[u8], kept: &mut [Rec], c: usize) {
    if c == text.len() {
        return; // nothing was cut
    }
    let starts_with = |q: usize, p: usize| {
        let len = c - p;
        q + len <= c && text[q..q + len] == text[p..c]
    };
    let mut i = 0;
    while i + 1 < kept.len() {
        let p = kept[i].1 as usize;
        if kept[i].0 != kept[i + 1].0 || !starts_with(kept[i + 1].1 as usize, p) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j + 1 < kept.len() && starts_with(kept[j + 1].1 as usize, p) {
            j += 1;
        }
        kept[i..=j].sort_unstable_by(|x, y| text[x.1 as usize..].cmp(&text[y.1 as usize..]));
        i = j + 1;
    }
}

/// One part's list, read in order, a block of records at a time.
struct Head {
    reader: BufReader<std::fs::File>,
    block: Vec<Rec>,
    at: usize,
}

impl Head {
    /// The next record, reading the next block when this one is spent (`None` at the end).
    fn next(&mut self) -> Result<Option<Rec>> {
        if self.at == self.block.len() {
            self.block.clear();
            self.at = 0;
            let mut b = [0u8; REC_BYTES];
            while self.block.len() < 1 << 14 {
                match self.reader.read_exact(&mut b) {
                    Ok(()) => self.block.push((
                        u128::from_le_bytes(b[..KEY_BYTES].try_into().expect("16 bytes")),
                        u64::from_le_bytes(b[KEY_BYTES..].try_into().expect("8 bytes")),
                    )),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e).context("reading a sorted part"),
                }
            }
        }
        let r = self.block.get(self.at).copied();
        self.at += 1;
        Ok(r)
    }
}

/// A part's least record not yet merged, ordered by key, then by the text (the least first out
/// of [`std::collections::BinaryHeap`], which is a max-heap: the order is reversed).
struct Candidate<'a> {
    rec: Rec,
    part: usize,
    text: &'a [u8],
}

impl Candidate<'_> {
    fn suffix(&self) -> &[u8] {
        &self.text[self.rec.1 as usize..]
    }
}

impl PartialEq for Candidate<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.rec.1 == other.rec.1
    }
}

impl Eq for Candidate<'_> {}

impl PartialOrd for Candidate<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .rec
            .0
            .cmp(&self.rec.0)
            .then_with(|| other.suffix().cmp(self.suffix()))
    }
}

/// Merges the sorted part lists in `files`: the least head by key, then by text.
fn merge(
    text: &[u8],
    files: &[std::path::PathBuf],
    emit: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<u64> {
    let mut heads = Vec::with_capacity(files.len());
    let mut heap = std::collections::BinaryHeap::with_capacity(files.len());
    for (part, f) in files.iter().enumerate() {
        let file =
            std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        let mut h = Head {
            reader: BufReader::with_capacity(1 << 20, file),
            block: Vec::new(),
            at: 0,
        };
        if let Some(rec) = h.next()? {
            heap.push(Candidate { rec, part, text });
        }
        heads.push(h);
    }
    let mut emitted = 0u64;
    while let Some(c) = heap.pop() {
        emit(c.rec.1)?;
        emitted += 1;
        if let Some(rec) = heads[c.part].next()? {
            heap.push(Candidate {
                rec,
                part: c.part,
                text,
            });
        }
    }
    Ok(emitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The sampled suffixes in the order a whole sort gives.
    fn whole(text: &[u8], step: usize) -> Vec<u64> {
        libsais(text, 1)
            .unwrap()
            .into_iter()
            .map(|p| p as usize)
            .filter(|&p| is_sampled(text, p, step))
            .map(|p| p as u64)
            .collect()
    }

    /// Documents with long exact repeats (copies of earlier documents, runs of one byte),
    /// separated as a shard's text is.
    fn text(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<u8> {
        let mut t = Vec::new();
        let mut docs: Vec<Vec<u8>> = Vec::new();
        while t.len() < n {
            let doc: Vec<u8> = match rng.random_range(0..4) {
                0 if !docs.is_empty() => docs[rng.random_range(0..docs.len())].clone(),
                1 => vec![b'a'; rng.random_range(1..600)],
                _ => (0..rng.random_range(1..900))
                    .map(|_| b"abc "[rng.random_range(0..4)])
                    .collect(),
            };
            t.extend_from_slice(&doc);
            t.push(SEPARATOR);
            docs.push(doc);
        }
        t
    }

    #[test]
    fn parts_merged_equal_the_whole_sort() {
        let work = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for round in 0..40 {
            let len = rng.random_range(1..20_000);
            let t = text(&mut rng, len);
            let step = [1, 2, 3, 8][round % 4];
            let part = rng.random_range(64..4096);
            let mut got = Vec::new();
            let n = in_parts(&t, step, part, 1, work.path(), &mut |p| {
                got.push(p);
                Ok(())
            })
            .unwrap();
            assert_eq!(n as usize, got.len());
            assert_eq!(
                got,
                whole(&t, step),
                "round {round}, step {step}, part {part}"
            );
        }
        assert_eq!(
            std::fs::read_dir(work.path()).unwrap().count(),
            0,
            "part files removed"
        );
    }

    /// A part cut inside a repeat longer than the overlap: libsais on the cut text orders the
    /// repeat's suffixes by where the cut fell, and `fix_ties` puts them in the whole text's order.
    #[test]
    fn ties_at_the_cut_are_sorted_on_the_whole_text() {
        // "xay" repeated and ended by "z", which sorts above the "x" a shorter suffix of the
        // repeat meets there: the cut hides that, and puts the shorter one first.
        let unit = b"xay".repeat(40);
        let mut t = unit.clone();
        t.push(b'z');
        t.push(SEPARATOR);
        t.extend_from_slice(&unit);
        t.push(b'a');
        t.push(SEPARATOR);
        let (a, b) = (0, 60);
        let c = b + 16;
        let sorted_on_whole = |kept: &[Rec]| {
            kept.windows(2)
                .all(|w| t[w[0].1 as usize..] < t[w[1].1 as usize..])
        };
        let mut kept: Vec<Rec> = libsais(&t[a..c], 1)
            .unwrap()
            .into_iter()
            .map(|q| a + q as usize)
            .filter(|&p| p < b && is_sampled(&t, p, 1))
            .map(|p| (key_at(&t, p), p as u64))
            .collect();
        assert!(!sorted_on_whole(&kept), "the cut decided some order");
        fix_ties(&t, &mut kept, c);
        assert!(sorted_on_whole(&kept));
    }

    #[test]
    fn plans_sort_whole_what_libsais_can_and_parts_within_the_budget() {
        assert_eq!(SortPlan::for_text(1 << 20), SortPlan::Whole);
        assert_eq!(
            SortPlan::for_text(3 << 30),
            SortPlan::Parts(DEFAULT_PART_BYTES as usize)
        );
        assert_eq!(SortPlan::parts_within(9 << 20, 8), SortPlan::Parts(1 << 20));
        assert_eq!(
            SortPlan::parts_within(37 << 20, 1),
            SortPlan::Parts(1 << 20)
        );
        assert_eq!(
            SortPlan::parts_within(0, 8),
            SortPlan::Parts(MIN_PART_BYTES as usize)
        );
        assert!(matches!(
            SortPlan::parts_within(u64::MAX, 8),
            SortPlan::Parts(p) if p as u64 <= MAX_WHOLE_SORT / 2
        ));
    }
}
