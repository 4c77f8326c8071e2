//! Spans of a text that grows at its end (an LLM's output arriving chunk by chunk), found in
//! time proportional to what was appended plus the span in progress, never by re-scanning what
//! came before; the spans are exactly those [`Index::spans`] finds in the whole text.
//!
//! The text is normalized and searched only from a *window start* `p` on. Why that is enough:
//!
//! - **Stable prefix.** Normalization restarts at some characters
//!   ([`crate::corpus::normalize::Normalizer::restart_points`]); the normalization of the text up
//!   to the last such character (`cut`, in normalized bytes) can no longer change, whatever
//!   arrives. Past it the output may still change (a whitespace run or a composition in
//!   progress).
//! - **Spans that cannot change.** A maximal span ending before `cut` has both its neighbours
//!   in the stable prefix: it is final. A span of the grown text that ends at or after `cut`
//!   starts at or after `q`, the first start from which the stable prefix's tail `[q, cut)`
//!   occurs in the corpus (a span is a substring of the corpus, so its part before `cut` is).
//! - **Window.** `p` is the last restart point at or before `q`. The maximal spans of the
//!   window `[p, end)` that end at or after the previous `cut` are exactly the spans of the whole
//!   text that do: one starting at `p` cannot extend left, since `[p-1, cut)` would then occur,
//!   and `p - 1 < q`.
//!
//! So each push normalizes and searches `[p, end)`: the unstable tail, the new text, and the
//! part of the stable prefix that still matches the corpus (the span in progress). `p` and
//! `cut` only move forward.
//!
//! **Whitespace runs.** A run of whitespace is one space after normalization, and no restart
//! point lies inside it, so a model writing newlines for ever would make every push normalize
//! the whole run again. But whitespace appended to a text that already ends in whitespace changes
//! no normalized byte: the maximal spans stay the same ranges of the normalized text, and only
//! the spans that end with that last space (their end is the end of the run, in characters) move
//! their end. Such a push costs its own length.
//!
//! **A long copy.** While one span runs to the end of the text and starts at `q` (a model
//! copying a long document), the window is that span, and searching it again at each push would
//! cost each chunk the copy so far. Instead the span's [`Matches`] in each shard are kept (its
//! suffix-array range at each shift of a sparse array), and a push whose normalized text only
//! appends to it narrows those ranges by the appended bytes
//! ([`crate::index::read::open::Shard::narrow_matches`]): while the copy goes on, the span is the window's only
//! maximal span ending past the old `cut` (any other would lie inside it), `q` stays its start and
//! `p` does not move, so the push costs its own length. When the narrowed ranges hold no live
//! suffix the copy ended, and the push takes the general way.
//!
//! **Runs.** The spans are kept grouped into runs as they are found, as the whole text's search
//! groups them ([`Runs`]): a model repeating one token holds one span, not one per position, and
//! a report costs the number of runs. A push first drops the members that end at or after the
//! old `cut` (they are found again in the window); the end of a run's new last member comes from
//! the ends of the last [`RECENT_ENDS`] members, kept (more dropped at once than that, which only
//! a window with no restart point can do, matches the text again).
//!
//! **A new index generation** (a takedown, an addition) changes what occurs: the spans found
//! on the old one are void. A push on another generation than the last one first matches the
//! whole text again on the new one ([`Incremental::is_current`]), once.

use crate::index::read::search::{Matches, Run, Runs, Span, SpanOptions, SpanReport};
use crate::index::Index;
use std::collections::VecDeque;

/// Members whose end (in characters) is kept, the last ones: see the module's description.
const RECENT_ENDS: usize = 256;

/// The matching state of one growing text.
#[derive(Debug, Clone, Default)]
pub struct Incremental {
    /// Everything received, in order.
    text: String,
    /// Window start: a byte offset of `text` where normalization restarts (or 0).
    p: usize,
    /// Characters of `text` before `p`.
    p_chars: usize,
    /// Normalized bytes before `p`.
    p_norm: usize,
    /// Normalized bytes that can no longer change (absolute).
    cut: usize,
    /// The spans found so far, grouped into runs (normalized ranges, absolute), in text order.
    runs: Runs,
    /// Per run, its span as a report gives it: the first member's, with the last member's end,
    /// `repeats` and `period`.
    spans: Vec<Span>,
    /// The end (characters) of the last members, at most [`RECENT_ENDS`], in text order.
    recent_ends: VecDeque<usize>,
    /// The normalized text so far (the window's part replaced at each push).
    norm: String,
    /// Characters in `text`.
    chars: usize,
    /// The index (id and generation) its spans were found on; none before the first push.
    on: Option<(String, u64)>,
    /// Bytes and characters of `text` before its normalized byte `cut` (a restart point).
    cut_text: usize,
    /// See `cut_text`.
    cut_chars: usize,
    /// While the last span runs to the end of the text from `q`: its [`Matches`] in each shard
    /// (see the module's description).
    progress: Option<Vec<Matches>>,
}

impl Incremental {
    /// An empty text.
    pub fn new() -> Incremental {
        Incremental::default()
    }

    /// Everything received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Characters received so far.
    pub fn chars(&self) -> usize {
        self.chars
    }

    /// The spans so far, in text order, a run of repeats as one (as [`Index::spans`] reports
    /// them). Those ending in the last few characters may still grow.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Appends `delta` and updates the spans; returns how many spans changed or were added
    /// (they are the last ones of [`Incremental::spans`]).
    pub fn push(&mut self, index: &Index, delta: &str, opts: &SpanOptions) -> usize {
        if !self.is_current(index) {
            // Matched on another generation: everything again, on this one.
            *self = self.rematched(index, opts);
            self.push(index, delta, opts);
            return self.spans.len();
        }
        self.on = Some((index.id().to_string(), index.generation()));
        if let Some(changed) = self.extend_space_run(index, delta, opts) {
            return changed;
        }
        if let Some(changed) = self.extend_copy(index, delta, opts) {
            return changed;
        }
        self.progress = None;
        // Spans ending at or after the old cut may grow: dropped here, found again in the window.
        let Some(dropped_from) = self.drop_from(self.cut) else {
            // More members to drop than ends kept: everything again, in one push (see the
            // module's description).
            let mut text = std::mem::take(&mut self.text);
            text.push_str(delta);
            *self = Incremental::new();
            self.push(index, &text, opts);
            return self.spans.len();
        };
        self.text.push_str(delta);
        self.chars += delta.chars().count();
        let window = &self.text[self.p..];
        let mapped = index.normalizer.normalize_mapped(window);
        let t = mapped.text.as_bytes();
        let old_cut = self.cut - self.p_norm;
        let ranges: Vec<Run> = index
            .maximal_spans(t, opts.min_len)
            .into_iter()
            .filter(|&(_, b)| b >= old_cut)
            .map(|(a, b)| Run {
                start: a,
                end: b,
                period: 0,
                repeats: 1,
            })
            .collect();
        let (found, _) = index.spans_of(window, &mapped, &ranges, self.p_chars, opts);
        self.norm.truncate(self.p_norm);
        self.norm.push_str(&mapped.text);
        let mut first_changed = dropped_from;
        for (r, s) in ranges.iter().zip(found) {
            let k = self.add(self.p_norm + r.start, self.p_norm + r.end, s);
            first_changed = first_changed.min(k);
        }
        let changed = self.spans.len().saturating_sub(first_changed);
        let window = &self.text[self.p..];

        // The new cut: normalized bytes before the last restart point of the window.
        let Some((restart, restart_char)) = index.normalizer.restart_points(window).last() else {
            return changed; // nothing stable yet past p
        };
        let norm_at = |ch: usize| {
            mapped
                .origin
                .partition_point(|&(first, _)| (first as usize) < ch)
        };
        let cut = norm_at(restart_char);
        self.cut = self.p_norm + cut;
        self.cut_text = self.p + restart;
        self.cut_chars = self.p_chars + restart_char;

        // q: the first start from which [q, cut) occurs (monotone: a suffix of what occurs
        // occurs), moved to a character start. A tail too short for a sparse suffix array to
        // look up counts as occurring: a q too early only widens the window.
        // The usual case while a long copy streams in: the whole stable window still occurs,
        // and one query says so.
        let may_occur = |pat: &[u8]| pat.len() < index.min_pattern_bytes() || index.occurs(pat);
        let (mut lo, mut hi) = (0usize, cut);
        if cut > 0 && may_occur(&t[..cut]) {
            hi = 0;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if may_occur(&t[mid..cut]) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let q = (lo..=cut)
            .find(|&i| i >= t.len() || (t[i] & 0xC0) != 0x80)
            .unwrap_or(cut);
        // The new window start: the last restart point at or before q's first input character.
        let q_char = if q < t.len() {
            mapped.origin[q].0 as usize
        } else {
            restart_char
        };
        // A span running to the end from q: a copy in progress, extended by narrowing its ranges.
        let q_abs = self.p_norm + q;
        if let Some(r) = self.runs.runs.last() {
            if r.repeats == 1 && r.start == q_abs && r.end == self.norm.len() {
                let pat = &self.norm.as_bytes()[r.start..r.end];
                self.progress = Some(index.shards.iter().map(|s| s.matches(pat)).collect());
            }
        }
        let new_p = index
            .normalizer
            .restart_points(window)
            .take_while(|&(_, i)| i <= q_char)
            .last();
        if let Some((b, i)) = new_p {
            if b > 0 {
                self.p += b;
                self.p_chars += i;
                self.p_norm += norm_at(i);
            }
        }
        changed
    }

    /// Whether its spans were found on `index` (or it is empty): else they are those of an
    /// older or newer generation, and [`Incremental::rematched`] gives them on this one.
    pub fn is_current(&self, index: &Index) -> bool {
        self.on
            .as_ref()
            .is_none_or(|(id, g)| id == index.id() && *g == index.generation())
    }

    /// The same text matched afresh on `index` (what a push on a new generation starts with).
    pub fn rematched(&self, index: &Index, opts: &SpanOptions) -> Incremental {
        let mut fresh = Incremental::new();
        fresh.push(index, &self.text, opts);
        fresh
    }

    /// Appends `delta` when it is whitespace continuing the whitespace the text ends with (see
    /// the module's description): the normalized text does not change, and the spans ending with
    /// its last space end `delta`'s characters later. `None` (nothing done) otherwise, and when
    /// such a span would need its tokens counted again (a tokenizer is configured): the general
    /// push does that.
    fn extend_space_run(
        &mut self,
        index: &Index,
        delta: &str,
        opts: &SpanOptions,
    ) -> Option<usize> {
        let n = &index.normalizer;
        let ends_in_space = self
            .text
            .chars()
            .next_back()
            .is_some_and(|c| n.collapses(c));
        if delta.is_empty() || !ends_in_space || !delta.chars().all(|c| n.collapses(c)) {
            return None;
        }
        // The last member is the only one that can end with the text's last space.
        let at_end = self
            .runs
            .runs
            .last()
            .is_some_and(|r| r.last_end() == self.norm.len());
        if at_end && opts.tokens.is_some() {
            return None;
        }
        let added = delta.chars().count();
        self.text.push_str(delta);
        self.chars += added;
        if at_end {
            self.spans.last_mut().expect("a span per run").end += added;
            *self.recent_ends.back_mut().expect("the last member's end") += added;
        }
        Some(usize::from(at_end))
    }

    /// Appends `delta` to a copy in progress (see the module's description) when its normalized
    /// text only appends bytes and the copy goes on with them: the span grows, with its count and
    /// sources from the narrowed ranges. `None` (nothing done) otherwise, and when a tokenizer
    /// would count the span's tokens again.
    fn extend_copy(&mut self, index: &Index, delta: &str, opts: &SpanOptions) -> Option<usize> {
        let ranges = self.progress.as_ref()?;
        let r = *self.runs.runs.last()?;
        if opts.tokens.is_some() || r.repeats != 1 || r.end != self.norm.len() {
            return None;
        }
        // The text from the last restart point on, normalized again with `delta`: it must keep
        // the bytes it had and append to them.
        let mut tail = String::with_capacity(self.text.len() - self.cut_text + delta.len());
        tail.push_str(&self.text[self.cut_text..]);
        tail.push_str(delta);
        let mapped = index.normalizer.normalize_mapped(&tail);
        let before = &self.norm[self.cut..];
        if !mapped.text.starts_with(before) {
            return None;
        }
        let added = &mapped.text[before.len()..];
        let narrowed: Vec<Matches> = index
            .shards
            .iter()
            .zip(ranges)
            .map(|(s, m)| s.narrow_matches(m, added.as_bytes()))
            .collect();
        let (count, hits) = index.provenance_in(&narrowed, opts.max_hits);
        if count == 0 {
            return None; // the copy ended: the general way finds where
        }
        self.text.push_str(delta);
        self.chars += delta.chars().count();
        self.norm.push_str(added);
        let end = match mapped.origin.last() {
            Some(&(_, e)) => self.cut_chars + e as usize,
            None => self.chars,
        };
        // Taken out and added again, longer: it may now repeat the run before it (as the whole
        // text's search would group it), and then it is no longer a copy extended here.
        self.runs.runs.pop();
        self.recent_ends.pop_back();
        let mut span = self.spans.pop().expect("a span per run");
        span.end = end;
        span.len_chars += added.chars().count();
        span.text.push_str(added);
        span.count = count;
        span.hits = hits;
        let k = self.add(r.start, self.norm.len(), span);
        let alone = self.runs.runs.last().is_some_and(|l| l.repeats == 1);
        self.progress = alone.then_some(narrowed);
        // The cut moves to the last restart point of the tail, if there is a later one.
        if let Some((b, ch)) = index
            .normalizer
            .restart_points(&tail)
            .filter(|&(b, _)| b > 0)
            .last()
        {
            let at = mapped
                .origin
                .partition_point(|&(first, _)| (first as usize) < ch);
            self.cut += at;
            self.cut_text += b;
            self.cut_chars += ch;
        }
        Some(self.spans.len() - k)
    }

    /// Drops the members ending at or after normalized byte `cut`; the index of the first span
    /// (run) that changed or went (the number of spans when none did). `None`, with nothing
    /// dropped, when a run would keep members whose last end is no longer known (more than
    /// [`RECENT_ENDS`] members to drop).
    fn drop_from(&mut self, cut: usize) -> Option<usize> {
        let mut members = 0;
        let mut runs = 0;
        let mut keep_last = 0;
        for r in self.runs.runs.iter().rev() {
            if r.last_end() < cut {
                break;
            }
            // Members k = 0.. end at r.end + k·period: those ending before `cut` stay.
            let keep = if r.end >= cut {
                0
            } else {
                ((cut - r.end - 1) / r.period + 1).min(r.repeats)
            };
            members += r.repeats - keep;
            if keep > 0 {
                keep_last = keep;
                break;
            }
            runs += 1;
        }
        if members == 0 {
            return Some(self.spans.len());
        }
        if keep_last > 0 && members >= self.recent_ends.len() {
            return None;
        }
        for _ in 0..members {
            self.recent_ends.pop_back();
        }
        let n = self.runs.runs.len() - runs;
        self.runs.runs.truncate(n);
        self.spans.truncate(n);
        if keep_last > 0 {
            let r = self.runs.runs.last_mut().expect("the run kept");
            r.repeats = keep_last;
            let span = self.spans.last_mut().expect("a span per run");
            span.repeats = keep_last;
            span.end = *self.recent_ends.back().expect("checked above");
            if keep_last == 1 {
                r.period = 0;
                span.period = 0;
            }
            return Some(n - 1);
        }
        Some(n)
    }

    /// Adds member `[a, b)` (normalized, absolute; after every member before it) with its span:
    /// to the last run when it repeats it ([`Runs`]), else as a new run. Returns the index of
    /// the span (run) it changed or added.
    fn add(&mut self, a: usize, b: usize, span: Span) -> usize {
        let runs = self.runs.runs.len();
        self.runs.push(self.norm.as_bytes(), a, b);
        self.recent_ends.push_back(span.end);
        if self.recent_ends.len() > RECENT_ENDS {
            self.recent_ends.pop_front();
        }
        if self.runs.runs.len() > runs {
            self.spans.push(span);
            return runs;
        }
        let r = self.runs.runs.last().expect("joined the last run");
        let period = self.norm[r.start..r.start + r.period].chars().count();
        let last = self.spans.last_mut().expect("a span per run");
        last.end = span.end;
        last.repeats = r.repeats;
        last.period = period;
        runs - 1
    }

    /// The report on everything received so far, as [`Index::spans`] gives it for the whole text.
    pub fn report(&self, index: &Index, opts: &SpanOptions) -> SpanReport {
        index.report(self.chars, self.spans.clone(), opts)
    }
}
