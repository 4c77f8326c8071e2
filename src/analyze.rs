//! Judging one text, synchronously, in three steps that the daemon, `memaudit check` and
//! `memaudit probe` all call:
//!
//! 1. [`Analyzer::spans`]: the verbatim spans the text shares with the index, with the
//!    `min_tokens` filter applied here, once; coverage and the longest span are final when the
//!    report leaves this step.
//! 2. [`Analyzer::probe`]: the probe's per-token scores and the boundary signals of those spans
//!    (each signal carries the index of its span, so nothing is matched up later by position).
//! 3. [`Analyzer::judge`]: the verdict, by the rules in [`crate::verdict`].
//!
//! Where and when each step runs (batches, the blocking pool, the probe policy) is the caller's
//! business: `serve::pipeline` for the daemon.

use crate::budget::{Budget, Incomplete};
use crate::corpus::fold::fold;
use crate::index::read::incremental::Incremental;
use crate::index::read::near::NearOptions;
use crate::index::read::search::covered_chars;
use crate::index::{Index, Span, SpanOptions, SpanReport};
use crate::probe::boundary::{self, Boundary, BoundaryOptions};
use crate::probe::tokenizer::Tokenizer;
use crate::probe::{Probe, TextScore};
use crate::verdict::{self, ProbeFindings, SeverityRules, Verdict};
use anyhow::{Context, Result};
use std::sync::{Arc, RwLock};

/// How spans are found and judged.
#[derive(Debug, Clone)]
pub struct Options {
    /// Minimum span length in characters (normalized text), at least 1.
    pub min_chars: usize,
    /// Minimum span length in tokens; 0 keeps every span. Needs a tokenizer.
    pub min_tokens: usize,
    /// Provenance hits reported per span.
    pub max_hits: usize,
    /// How the probe's entropy reads at span edges.
    pub boundary: BoundaryOptions,
    /// The severity rules of the verdict.
    pub rules: SeverityRules,
    /// Near-verbatim spans are looked for too, with these options.
    pub near: Option<NearOptions>,
    /// The text is folded before matching ([`crate::corpus::fold`]).
    pub fold: bool,
}

impl Default for Options {
    /// `memaudit check`'s defaults: spans of at least [`crate::index::DEFAULT_MIN_LEN`]
    /// characters, three provenance hits, the default boundary calibration and severity rules.
    fn default() -> Options {
        Options {
            min_chars: crate::index::DEFAULT_MIN_LEN,
            min_tokens: 0,
            max_hits: 3,
            boundary: BoundaryOptions::default(),
            rules: SeverityRules::default(),
            near: None,
            fold: false,
        }
    }
}

/// The index, the optional probe and tokenizer, and the options: loaded once, shared.
///
/// The index can be replaced while the analyzer is shared ([`Analyzer::replace_index`]: the
/// daemon following new generations); each call to [`Analyzer::spans`] takes the index current at
/// its start and finishes on it.
pub struct Analyzer {
    /// The corpus index spans are found in.
    index: RwLock<Arc<Index>>,
    /// The probe model, when the caller scores texts.
    pub probe: Option<Probe>,
    /// Counts span lengths in tokens (the probe's own tokenizer when there is a probe).
    tokenizer: Option<Arc<Tokenizer>>,
    options: Options,
}

/// What the probe adds to one text.
pub struct Probed {
    /// Every token's scores and the text's summary.
    pub score: TextScore,
    /// The boundary signals of the text's spans (after the token filter) and its unexplained
    /// low-entropy runs.
    pub boundary: Boundary,
}

/// Says (once per index put in use) when `min_chars` is below the shortest span `index` finds
/// ([`Index::min_span_chars`]: a sparse suffix array), so that nobody waits for spans it cannot
/// report; reports carry the minimum in force.
fn warn_if_short(index: &Index, min_chars: usize) {
    let least = index.min_span_chars();
    if min_chars < least {
        tracing::warn!(
            min_chars,
            least,
            "the index keeps one suffix per {} positions, so spans shorter than {least} \
             characters are not reported; build it with `--sa-step 1` to find them",
            index.min_pattern_bytes()
        );
    }
}

impl Analyzer {
    /// `tokenizer` counts span tokens; with a probe and no tokenizer, the probe's is used.
    pub fn new(
        index: Index,
        probe: Option<Probe>,
        tokenizer: Option<Arc<Tokenizer>>,
        options: Options,
    ) -> Result<Analyzer> {
        let tokenizer = tokenizer.or_else(|| probe.as_ref().map(|p| p.tokenizer.clone()));
        anyhow::ensure!(
            options.min_tokens == 0 || tokenizer.is_some(),
            "a minimum span length in tokens needs a tokenizer"
        );
        warn_if_short(&index, options.min_chars);
        Ok(Analyzer {
            index: RwLock::new(Arc::new(index)),
            probe,
            tokenizer,
            options,
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The index in use now.
    pub fn index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `index` in use for every later call; calls already running finish on the old one,
    /// which is closed when the last of them drops it. Returns the old one.
    pub fn replace_index(&self, index: Index) -> Arc<Index> {
        warn_if_short(&index, self.options.min_chars);
        let mut current = self.index.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, Arc::new(index))
    }

    /// Runs `f` with the span options of these [`Options`] (and the tokenizer's counter),
    /// within `budget`.
    fn with_span_options<R>(&self, budget: &Budget, f: impl FnOnce(&SpanOptions) -> R) -> R {
        let count = |s: &str| self.tokenizer.as_ref().map_or(0, |t| t.count(s));
        f(&SpanOptions {
            min_len: self.options.min_chars.max(1),
            max_hits: self.options.max_hits,
            tokens: self
                .tokenizer
                .is_some()
                .then_some(&count as &(dyn Fn(&str) -> usize + Sync)),
            budget: Some(budget),
        })
    }

    /// The verbatim spans of one text, without those shorter than `min_tokens`; the report's
    /// coverage and longest span count only the spans kept.
    ///
    /// With `near`, near-verbatim spans are added (`report.near`). With `fold`, a text that
    /// folding changes is matched twice, as written and folded (positions mapped back to the
    /// original text), and the spans of both are kept, less any inside another: folding finds
    /// the disguised copy and never loses the verbatim one (a corpus can hold curly quotes,
    /// Cyrillic words or mathematical letters too).
    ///
    /// No work budget: see [`Analyzer::spans_within`].
    pub fn spans(&self, text: &str) -> SpanReport {
        self.spans_within(text, &Budget::unlimited())
    }

    /// [`Analyzer::spans`] within `budget`: the work stops when the budget does, and the report
    /// then says how far the text was checked (`incomplete`).
    pub fn spans_within(&self, text: &str, budget: &Budget) -> SpanReport {
        let index = self.index();
        let mut report = self.query(&index, text, budget);
        if self.options.fold {
            let (mut spans, mut near) = (
                std::mem::take(&mut report.spans),
                std::mem::take(&mut report.near),
            );
            let incomplete = report.incomplete;
            if let Some(folded) = self.add_folded(&index, text, &mut spans, &mut near, budget) {
                report = self
                    .with_span_options(budget, |opts| index.report(report.text_chars, spans, opts));
                // Checked as far as the less advanced of the two matches got.
                report.incomplete = [incomplete, folded]
                    .into_iter()
                    .flatten()
                    .min_by_key(|i| i.checked_chars);
            } else {
                report.spans = spans;
            }
            report.near = near;
            report.folded = true;
        }
        keep_min_tokens(&mut report, self.options.min_tokens);
        report
    }

    /// The exact spans of `text`, and its near spans with `near` on.
    fn query(&self, index: &Index, text: &str, budget: &Budget) -> SpanReport {
        self.with_span_options(budget, |opts| match &self.options.near {
            Some(near) => index.spans_and_near(text, opts, near),
            None => index.spans(text, opts),
        })
    }

    /// With `fold`: when folding changes `text`, matches the folded text too and keeps the
    /// outermost of both sets (`spans` and `near` of `text` as written, on entry); positions are
    /// `text`'s. Returns `None` when folding changes nothing, else how far the folded match got
    /// (`Some(None)`: all the way).
    fn add_folded(
        &self,
        index: &Index,
        text: &str,
        spans: &mut Vec<Span>,
        near: &mut Vec<crate::index::read::near::NearSpan>,
        budget: &Budget,
    ) -> Option<Option<Incomplete>> {
        let f = fold(text);
        if f.text == text {
            return None;
        }
        let folded = self.query(index, &f.text, budget);
        // The folded text's first unchecked character, in `text`'s characters.
        let incomplete = folded.incomplete.map(|mut i| {
            i.checked_chars = f
                .origin
                .get(i.checked_chars)
                .copied()
                .unwrap_or(i.checked_chars);
            i
        });
        let back = |(a, b): (usize, usize)| {
            if a < b {
                f.original_range(a, b)
            } else {
                (a, b)
            }
        };
        spans.extend(folded.spans.into_iter().map(|mut s| {
            (s.start, s.end) = back((s.start, s.end));
            s
        }));
        near.extend(folded.near.into_iter().map(|mut s| {
            (s.start, s.end) = back((s.start, s.end));
            s
        }));
        *spans = outermost(std::mem::take(spans), |s| (s.start, s.end));
        *near = outermost(std::mem::take(near), |s| (s.start, s.end));
        Some(incomplete)
    }

    /// Marks the spans of `report` whose whole text the message's `prompt` also holds
    /// (normalized like the corpus): the model repeating its input, which the verdict counts
    /// toward nothing and redaction leaves alone.
    pub fn mark_prompt(&self, report: &mut SpanReport, prompt: Option<&str>) {
        let Some(prompt) = prompt.filter(|p| !p.is_empty()) else {
            return;
        };
        if report.spans.is_empty() {
            return;
        }
        let index = self.index();
        let as_written = index.normalizer.normalize(prompt);
        // Spans of a folded text are folded text: compare them with the folded prompt too.
        let folded = self
            .options
            .fold
            .then(|| index.normalizer.normalize(&fold(prompt).text));
        // Each distinct span text is looked for once (a line repeated in the output gives many
        // spans of one text): the work is the prompt's length times the distinct texts, which
        // `limits.max_spans` bounds.
        let mut known: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        for s in &mut report.spans {
            // Less the whitespace a span can take in at its edges. Nothing more: a span that
            // runs on past what the prompt holds is the model continuing from memory.
            let t = s.text.trim();
            s.in_prompt = match known.get(t) {
                Some(&held) => held,
                None => {
                    let held =
                        as_written.contains(t) || folded.as_ref().is_some_and(|f| f.contains(t));
                    known.insert(t.to_string(), held);
                    held
                }
            };
        }
    }

    /// Appends `delta` to a streamed text and updates its spans (see
    /// [`crate::index::read::incremental`]); the cost is the delta plus the span in progress.
    pub fn push(&self, text: &mut Incremental, delta: &str) {
        let index = self.index();
        self.with_span_options(&Budget::unlimited(), |opts| text.push(&index, delta, opts));
    }

    /// The report on a streamed text made of `parts` (consecutive pieces with gaps between
    /// them, each matched on its own), as [`Analyzer::spans`] reports a whole text.
    ///
    /// `ended`: the output is over. Then, with `near` on, its near-verbatim spans are added,
    /// found in one pass over each part, and with `fold` on, each part that folding changes is
    /// matched folded too, as [`Analyzer::spans`] does: the chunks before cost only their own
    /// length, the end costs the output's (chaining seeds across chunks as they arrive is not
    /// done). Before the end, the report has the exact spans of the text as written.
    pub fn report_parts(&self, parts: &[Incremental], ended: bool) -> SpanReport {
        self.report_parts_within(parts, ended, &Budget::unlimited())
    }

    /// [`Analyzer::report_parts`] within `budget`, which bounds the work an ended output adds
    /// (its near-verbatim and folded matching): when the budget stops it, the report says so
    /// (`incomplete`, from the first part not fully matched). The exact spans are always whole:
    /// they were found chunk by chunk.
    pub fn report_parts_within(
        &self,
        parts: &[Incremental],
        ended: bool,
        budget: &Budget,
    ) -> SpanReport {
        let index = self.index();
        let mut stopped_at = None;
        let mut spans = Vec::new();
        let mut near = Vec::new();
        let mut shift = 0;
        for p in parts {
            // Matched, as far as it went, on a generation no longer in use: again on this one.
            let again = (!p.is_current(&index))
                .then(|| self.with_span_options(budget, |opts| p.rematched(&index, opts)));
            let p = again.as_ref().unwrap_or(p);
            let mut part: Vec<Span> = p.spans().to_vec();
            let mut part_near = Vec::new();
            if ended {
                if let Some(opts) = self.options.near.as_ref() {
                    let mapped = index.normalizer.normalize_mapped(p.text());
                    part_near = index.near_spans(&mapped, opts, budget);
                }
                if self.options.fold {
                    self.add_folded(&index, p.text(), &mut part, &mut part_near, budget);
                }
                if stopped_at.is_none() {
                    stopped_at = budget.stopped().map(|reason| Incomplete {
                        checked_chars: shift,
                        reason,
                    });
                }
            }
            spans.extend(part.into_iter().map(|mut s| {
                s.start += shift;
                s.end += shift;
                s
            }));
            near.extend(part_near.into_iter().map(|mut s| {
                s.start += shift;
                s.end += shift;
                s
            }));
            shift += p.chars();
        }
        let mut report = self.with_span_options(budget, |opts| index.report(shift, spans, opts));
        report.incomplete = stopped_at;
        report.near = near;
        report.folded = ended && self.options.fold;
        keep_min_tokens(&mut report, self.options.min_tokens);
        report
    }

    /// Scores a batch of texts with the probe and reads the boundary signals of their spans
    /// (`reports[i]` from [`Analyzer::spans`] of `texts[i]`).
    pub fn probe(&self, texts: &[&str], reports: &[&SpanReport]) -> Result<Vec<Probed>> {
        let probe = self.probe.as_ref().context("no probe model loaded")?;
        let scores = probe.score(texts)?;
        Ok(scores
            .into_iter()
            .zip(reports)
            .map(|(score, r)| {
                let ranges: Vec<_> = r.spans.iter().map(|s| s.start..s.end).collect();
                Probed {
                    boundary: boundary::analyze(&score.tokens, &ranges, &self.options.boundary),
                    score,
                }
            })
            .collect())
    }

    /// The character ranges redaction replaces: every span but those a source rule allows.
    pub fn redactable(&self, report: &SpanReport) -> Vec<(usize, usize)> {
        let mut ranges: Vec<(usize, usize)> = report
            .spans
            .iter()
            .filter(|s| !s.in_prompt && self.options.rules.allowed_by(s).is_none())
            .map(|s| (s.start, s.end))
            .chain(report.near.iter().map(|s| (s.start, s.end)))
            .collect();
        ranges.sort_unstable();
        ranges
    }

    /// The verdict on one text.
    pub fn judge(&self, id: &str, report: &SpanReport, probed: Option<&Probed>) -> Verdict {
        verdict::judge(
            id,
            report,
            probed.map(|p| ProbeFindings {
                summary: &p.score.summary,
                boundary: &p.boundary,
            }),
            &self.options.rules,
        )
    }
}

/// `items` in text order (by range), less any whose range lies inside another's (of equal
/// ranges, the first is kept).
fn outermost<T>(mut items: Vec<T>, range: impl Fn(&T) -> (usize, usize)) -> Vec<T> {
    // By start, the longest first: an item is inside another iff it ends no later than the
    // furthest end seen before it.
    items.sort_by_key(|x| {
        let (a, b) = range(x);
        (a, std::cmp::Reverse(b))
    });
    let mut furthest = None;
    items.retain(|x| {
        let (_, b) = range(x);
        if furthest.is_some_and(|f| b <= f) {
            return false;
        }
        furthest = Some(b);
        true
    });
    items
}

/// Drops the spans shorter than `min_tokens` tokens (spans without a count are kept) and
/// recomputes the report's coverage and longest span from those kept.
pub fn keep_min_tokens(report: &mut SpanReport, min_tokens: usize) {
    if min_tokens == 0 {
        return;
    }
    let before = report.spans.len();
    report
        .spans
        .retain(|s| s.len_tokens.is_none_or(|t| t >= min_tokens));
    if report.spans.len() == before {
        return;
    }
    report.covered_chars = covered_chars(report.spans.iter().map(|s| (s.start, s.end)));
    report.coverage = if report.text_chars == 0 {
        0.0
    } else {
        report.covered_chars as f64 / report.text_chars as f64
    };
    report.longest = report.spans.iter().map(|s| s.len_chars).max().unwrap_or(0);
}

#[cfg(test)]
mod tests {
    use super::keep_min_tokens;
    use crate::index::{Span, SpanReport};

    #[test]
    fn the_token_filter_drops_short_spans_and_recomputes_coverage() {
        let span = |start, end, tokens| Span {
            start,
            end,
            len_chars: end - start,
            len_tokens: tokens,
            count: 1,
            hits: vec![],
            text: String::new(),
            repeats: 1,
            period: 0,
            in_prompt: false,
        };
        let report = SpanReport {
            index_id: "idx".into(),
            index_generation: 1,
            min_len: 50,
            text_chars: 200,
            covered_chars: 120,
            coverage: 0.6,
            longest: 60,
            spans: vec![span(0, 60, Some(8)), span(100, 160, Some(20))],
            near: vec![],
            folded: false,
            incomplete: None,
        };
        let mut r = report.clone();
        keep_min_tokens(&mut r, 12);
        assert_eq!(r.spans.len(), 1);
        assert_eq!(r.spans[0].start, 100);
        assert!((r.coverage - 0.3).abs() < 1e-9);
        assert_eq!((r.covered_chars, r.longest), (60, 60));
        let mut r = report.clone();
        keep_min_tokens(&mut r, 30);
        assert!(r.spans.is_empty());
        assert_eq!((r.coverage, r.longest), (0.0, 0));
        let mut r = report.clone();
        keep_min_tokens(&mut r, 0);
        assert_eq!(r.spans.len(), 2);
    }
}
