//! Near-verbatim spans: a corpus passage reproduced with small edits (a word changed here and
//! there). Exact spans miss it: each edit cuts the copy into pieces, often all shorter than the
//! minimum span.
//!
//! Exact matches of at least `seed_chars` characters are seeds. The occurrences of each seed are
//! looked up (a seed found in more than `max_seed_hits` places is too common to say where it
//! comes from and is left out). Within one corpus document, seeds that follow each other in the
//! same order in the text and in the document, with gaps of at most `max_gap` bytes on both sides,
//! are chained (the heaviest chains first, by matched bytes; see [`chains`]; at most
//! [`MAX_DOC_OCCURRENCES`] seed occurrences per document). A chain
//! of two seeds or more is a near span: from its first seed's start to its last seed's end, on
//! both sides. Its edit count is the Levenshtein distance, in characters, between each text gap and
//! the document gap facing it (exact for the alignment the seeds fix); its similarity is
//! `1 - edits / longer side's characters`. Spans shorter than `min_chars` or less similar than
//! `min_similarity` are dropped, and so is a span inside a longer one.

use crate::budget::Budget;
use crate::corpus::normalize::Mapped;
use crate::index::read::search::{Hit, Run};
use crate::index::Index;
use serde::{Deserialize, Serialize};

/// How near-verbatim spans are found (`[spans]` `near_*` in the daemon's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NearOptions {
    /// Shortest exact match used as a seed, characters.
    pub seed_chars: usize,
    /// Longest gap between two chained seeds, bytes, on the text's side and on the document's.
    pub max_gap: usize,
    /// Shortest near span reported, characters of the text.
    pub min_chars: usize,
    /// Least similarity reported (0..1).
    pub min_similarity: f64,
    /// Seeds with more occurrences than this are left out.
    pub max_seed_hits: usize,
}

impl Default for NearOptions {
    fn default() -> Self {
        NearOptions {
            seed_chars: 32,
            max_gap: 40,
            min_chars: 50,
            min_similarity: 0.8,
            max_seed_hits: 1000,
        }
    }
}

/// A passage of one corpus document, reproduced with edits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearSpan {
    /// Character range `[start, end)` in the original text.
    pub start: usize,
    /// See `start`.
    pub end: usize,
    /// Characters of the (normalized) text in the span.
    pub len_chars: usize,
    /// Characters of the document's passage.
    pub doc_chars: usize,
    /// Character edits between the two.
    pub edits: usize,
    /// `1 - edits / max(len_chars, doc_chars)`.
    pub similarity: f64,
    /// Exact seeds chained.
    pub seeds: usize,
    /// The document and the passage's byte offset in it.
    pub hit: Hit,
    /// The document's passage (normalized).
    pub passage: String,
}

/// One occurrence of a seed: its byte range in the text, and where it is in the corpus.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    a: usize,
    b: usize,
    shard: usize,
    local: u64,
    offset: u64,
}

/// Levenshtein distance between two strings, in characters.
pub fn edit_distance(x: &str, y: &str) -> usize {
    let x: Vec<char> = x.chars().collect();
    let y: Vec<char> = y.chars().collect();
    let mut prev: Vec<usize> = (0..=y.len()).collect();
    let mut cur = vec![0; y.len() + 1];
    for i in 1..=x.len() {
        cur[0] = i;
        for j in 1..=y.len() {
            let sub = prev[j - 1] + usize::from(x[i - 1] != y[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[y.len()]
}

/// How `j` follows `i` in one document: the bytes of `j` left after what overlaps `i` in the
/// text, or `None` when it does not follow within the gaps.
fn follows(i: &Occurrence, j: &Occurrence, max_gap: usize) -> Option<usize> {
    let overlap = i.b.saturating_sub(j.a);
    if j.a < i.a || overlap >= j.b - j.a {
        return None;
    }
    let text_gap = j.a.saturating_sub(i.b);
    let doc_end = i.offset + (i.b - i.a) as u64;
    let doc_start = j.offset + overlap as u64;
    if doc_start < doc_end {
        return None;
    }
    let doc_gap = (doc_start - doc_end) as usize;
    (text_gap <= max_gap && doc_gap <= max_gap).then_some(j.b - j.a - overlap)
}

/// Occurrences an occurrence looks back over for the one it follows: a chain's seeds are close
/// in the text, so its links are near each other in text order.
const LOOKBACK: usize = 256;

/// Seed occurrences kept per document (the first in text order): a document holding one
/// seed in thousands of places (a run of `*`) would otherwise make the chaining quadratic.
pub const MAX_DOC_OCCURRENCES: usize = 4096;

/// The best chains of occurrences (one document's, sorted by text position): each is a list of
/// indices, the heaviest first, none sharing an occurrence.
///
/// One pass finds each occurrence's heaviest chain ending there (over the [`LOOKBACK`]
/// occurrences before it); chains are then taken heaviest first, each cut where it meets an
/// occurrence a heavier one took. Time O(k·LOOKBACK + k log k) for k occurrences.
fn chains(occ: &[Occurrence], max_gap: usize) -> Vec<Vec<usize>> {
    // best[j]: matched bytes of the heaviest chain ending at j; prev[j]: its predecessor.
    let mut best: Vec<usize> = occ.iter().map(|o| o.b - o.a).collect();
    let mut prev = vec![None; occ.len()];
    for j in 0..occ.len() {
        for i in j.saturating_sub(LOOKBACK)..j {
            if let Some(add) = follows(&occ[i], &occ[j], max_gap) {
                if best[i] + add > best[j] {
                    best[j] = best[i] + add;
                    prev[j] = Some(i);
                }
            }
        }
    }
    let mut ends: Vec<usize> = (0..occ.len()).filter(|&j| prev[j].is_some()).collect();
    ends.sort_by_key(|&j| std::cmp::Reverse(best[j]));
    let mut used = vec![false; occ.len()];
    let mut out = Vec::new();
    for end in ends {
        if used[end] {
            continue;
        }
        let mut chain = vec![end];
        while let Some(p) = prev[*chain.last().expect("not empty")] {
            if used[p] {
                break;
            }
            chain.push(p);
        }
        if chain.len() < 2 {
            continue;
        }
        chain.reverse();
        for &k in &chain {
            used[k] = true;
        }
        out.push(chain);
    }
    out
}

impl Index {
    /// The near-verbatim spans of normalized text `mapped` (see the module's description), in
    /// text order.
    pub fn near_spans(
        &self,
        mapped: &Mapped,
        opts: &NearOptions,
        budget: &Budget,
    ) -> Vec<NearSpan> {
        let seeds = self.maximal_runs(mapped.text.as_bytes(), opts.seed_chars.max(1), budget);
        self.near_spans_from(mapped, &seeds.runs.runs, opts, budget)
    }

    /// [`Index::near_spans`] from the maximal exact matches `seeds` of `mapped` at least
    /// `opts.seed_chars` long (what `maximal_runs` gives; shorter ones are ignored: a caller
    /// that also wants the exact spans computes the matches once, at the shorter length). A run
    /// of repeats gives its first and last members as seeds (its middle chains to nothing new).
    /// Stops early, with the spans found so far, when `budget` does.
    pub fn near_spans_from(
        &self,
        mapped: &Mapped,
        seeds: &[Run],
        opts: &NearOptions,
        budget: &Budget,
    ) -> Vec<NearSpan> {
        let t = mapped.text.as_bytes();
        let chars = |a: usize, b: usize| t[a..b].iter().filter(|&&c| (c & 0xC0) != 0x80).count();
        let mut occ = Vec::new();
        let ends = seeds.iter().flat_map(|r| {
            let last = (r.repeats > 1).then(|| (r.last_start(), r.last_end()));
            std::iter::once((r.start, r.end)).chain(last)
        });
        for (a, b) in ends {
            if chars(a, b) < opts.seed_chars {
                continue;
            }
            if !budget.go() {
                break;
            }
            let pat = &t[a..b];
            let mut found = Vec::new();
            let mut total = 0u64;
            for (si, shard) in self.shards.iter().enumerate() {
                let m = shard.matches(pat);
                total += shard.occurrence_count(&m);
                if total > opts.max_seed_hits as u64 {
                    break;
                }
                for pos in shard.occurrences(&m) {
                    if let Some(d) = shard.locate_doc(pos) {
                        found.push(Occurrence {
                            a,
                            b,
                            shard: si,
                            local: d.local,
                            offset: d.offset,
                        });
                    }
                }
            }
            if total <= opts.max_seed_hits as u64 {
                occ.extend(found);
            }
        }
        occ.sort_by_key(|o| (o.shard, o.local, o.a, o.offset));
        // At most MAX_DOC_OCCURRENCES per document, the first in text order.
        let mut kept = 0;
        let mut last_doc = None;
        occ.retain(|o| {
            if last_doc != Some((o.shard, o.local)) {
                last_doc = Some((o.shard, o.local));
                kept = 0;
            }
            kept += 1;
            kept <= MAX_DOC_OCCURRENCES
        });
        // Candidates first (ranges, edits, where); the report's metadata and passage text are
        // built only for the spans kept: a boilerplate passage chains alike in hundreds of
        // documents.
        struct Candidate {
            start: usize,
            end: usize,
            len_chars: usize,
            doc_chars: usize,
            edits: usize,
            seeds: usize,
            shard: usize,
            local: u64,
            range: (usize, usize),
        }
        let mut spans = Vec::new();
        for doc in occ.chunk_by(|x, y| (x.shard, x.local) == (y.shard, y.local)) {
            if !budget.go() {
                break;
            }
            let text = self.shards[doc[0].shard].doc_text(doc[0].local);
            'chain: for chain in chains(doc, opts.max_gap) {
                let first = doc[chain[0]];
                let last = doc[*chain.last().expect("two or more")];
                let (qa, qb) = (first.a, last.b);
                let (da, db) = (
                    first.offset as usize,
                    last.offset as usize + (last.b - last.a),
                );
                let (Some(query), Some(passage)) = (
                    mapped.text.get(qa..qb),
                    text.get(da..db).and_then(|p| std::str::from_utf8(p).ok()),
                ) else {
                    continue;
                };
                let mut edits = 0;
                for w in chain.windows(2) {
                    let (i, j) = (doc[w[0]], doc[w[1]]);
                    let overlap = i.b.saturating_sub(j.a);
                    let q_gap = mapped.text.get(i.b.min(j.a + overlap)..j.a + overlap);
                    let d_gap = text
                        .get(i.offset as usize + (i.b - i.a)..j.offset as usize + overlap)
                        .and_then(|g| std::str::from_utf8(g).ok());
                    let (Some(q), Some(d)) = (q_gap, d_gap) else {
                        continue 'chain;
                    };
                    edits += edit_distance(q, d);
                }
                let (len_chars, doc_chars) = (query.chars().count(), passage.chars().count());
                let similarity = 1.0 - edits as f64 / len_chars.max(doc_chars).max(1) as f64;
                if len_chars < opts.min_chars || similarity < opts.min_similarity {
                    continue;
                }
                let (start, end) = mapped.input_range(qa, qb);
                spans.push(Candidate {
                    start,
                    end,
                    len_chars,
                    doc_chars,
                    edits,
                    seeds: chain.len(),
                    shard: first.shard,
                    local: first.local,
                    range: (da, db),
                });
            }
        }
        // Longest first, then the fewest edits; a span inside a longer one adds nothing.
        spans.sort_by(|x, y| {
            (y.end - y.start)
                .cmp(&(x.end - x.start))
                .then(x.edits.cmp(&y.edits))
                .then(x.start.cmp(&y.start))
        });
        let mut kept: Vec<NearSpan> = Vec::new();
        for c in spans {
            if kept.iter().any(|k| k.start <= c.start && c.end <= k.end) {
                continue;
            }
            let shard = &self.shards[c.shard];
            let text = shard.doc_text(c.local);
            let passage = std::str::from_utf8(&text[c.range.0..c.range.1])
                .expect("checked when chained")
                .to_string();
            kept.push(NearSpan {
                start: c.start,
                end: c.end,
                len_chars: c.len_chars,
                doc_chars: c.doc_chars,
                edits: c.edits,
                similarity: 1.0 - c.edits as f64 / c.len_chars.max(c.doc_chars).max(1) as f64,
                seeds: c.seeds,
                hit: Hit {
                    doc: shard.entry.first_doc + c.local,
                    shard: shard.entry.id,
                    offset: c.range.0 as u64,
                    meta: shard.doc_meta(c.local),
                },
                passage,
            });
        }
        kept.sort_by_key(|s| (s.start, s.end));
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("día", "dia"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
