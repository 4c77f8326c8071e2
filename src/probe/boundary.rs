//! Boundary signals: how the probe's entropy behaves at the edges of verbatim spans, and
//! low-entropy runs that no span explains.
//!
//! Chen, Han & Miyao (2024) saw next-token entropy low on memorized continuations (≤ ~0.6 nats),
//! falling further where recitation starts, and jumping by about +0.6 to +0.85 nats where a
//! memorized run breaks off (~+0.7 on average). For each span (a character range, from the index
//! or given) this module measures, over the tokens the span covers:
//!
//! - `entropy_before`: mean entropy of the `window` tokens before the span;
//! - `entropy_inside`: mean entropy inside; `entropy_head` / `entropy_tail` of its first / last
//!   `window` tokens; `entropy_after`: of the `window` tokens after it;
//! - `drop_at_start` = before − head (positive when the model grows surer as the copy starts);
//! - `jump_at_end` = after − tail (positive when it grows unsurer as the copy ends).
//!
//! **Score** (0..1, per span; a text's score is its highest):
//!
//! ```text
//! level = clamp((novel − inside) / (novel − memorized), 0, 1)
//! drop  = clamp(drop_at_start / jump, 0, 1)      jump_end = clamp(jump_at_end / jump, 0, 1)
//! score = (2·level + drop + jump_end) / (2 + number of edge terms present)
//! ```
//!
//! with [`Calibration`]: `memorized` = 0.6 nats and `jump` = 0.7 nats from the paper, `novel` =
//! the probe model's mean entropy on novel text (3.75 nats measured for SmolLM2-135M; measure
//! your own model with `memaudit probe` on text it cannot have seen). Level counts double because
//! it is the direct evidence; edge terms are left out where a span touches the text's start or
//! end. A score near 1 reads "recited the way the paper's memorized sequences were"; a small model
//! that recites only weakly gives a graded, weaker signal (SmolLM2 on the Gettysburg Address: 2.28
//! nats, boundary 0.70, printed by `memaudit demo`).
//!
//! **Unexplained runs**: tokens whose entropy, averaged over a centred window of `window` tokens,
//! stays below `low_entropy` for at least `min_run` tokens, with less than half of the run inside
//! spans: candidate memorization of text the index does not hold.

use super::scoring::Token;
use serde::Serialize;
use std::ops::Range;

/// Reference entropies (nats) that map signals onto the 0..1 score.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Calibration {
    /// Entropy on memorized text (paper: ≤ ~0.6).
    pub memorized: f32,
    /// The probe model's mean entropy on novel text.
    pub novel: f32,
    /// Size of a boundary jump (paper: +0.6 to +0.85, ~0.7).
    pub jump: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            memorized: 0.6,
            novel: 3.75,
            jump: 0.7,
        }
    }
}

/// Parameters of [`analyze`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BoundaryOptions {
    /// Tokens averaged on each side of an edge, and the smoothing window for runs.
    pub window: usize,
    /// Smoothed entropy (nats) below which a token is part of a low-entropy run.
    pub low_entropy: f32,
    /// Shortest run reported, in tokens.
    pub min_run: usize,
    pub calibration: Calibration,
}

impl Default for BoundaryOptions {
    fn default() -> Self {
        BoundaryOptions {
            window: 8,
            low_entropy: 1.0,
            min_run: 24,
            calibration: Calibration::default(),
        }
    }
}

/// Signals of one span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanSignal {
    /// Which of the ranges given to [`analyze`] this is (spans with no token get no signal).
    #[serde(skip)]
    pub span: usize,
    /// The span's character range in the text.
    pub start: usize,
    pub end: usize,
    /// Tokens overlapping the span (indices into the text's tokens).
    pub first_token: usize,
    pub end_token: usize,
    pub entropy_before: Option<f32>,
    pub entropy_head: f32,
    pub entropy_inside: f32,
    pub entropy_tail: f32,
    pub entropy_after: Option<f32>,
    pub drop_at_start: Option<f32>,
    pub jump_at_end: Option<f32>,
    pub score: f32,
}

/// A low-entropy run outside the spans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub start: usize,
    pub end: usize,
    pub tokens: usize,
    pub mean_entropy: f32,
}

/// Everything [`analyze`] finds in one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Boundary {
    pub spans: Vec<SpanSignal>,
    pub unexplained_runs: Vec<Run>,
    /// The highest span score (0 with no spans).
    pub score: f32,
}

fn mean(t: &[Token]) -> Option<f32> {
    (!t.is_empty()).then(|| t.iter().map(|t| t.entropy).sum::<f32>() / t.len() as f32)
}

/// Boundary signals of `spans` (character ranges) over a scored text's tokens.
pub fn analyze(tokens: &[Token], spans: &[Range<usize>], o: &BoundaryOptions) -> Boundary {
    let w = o.window.max(1);
    let c = &o.calibration;
    let mut out = Vec::new();
    let mut covered = vec![false; tokens.len()];
    for (i, s) in spans.iter().enumerate() {
        let first = tokens.partition_point(|t| t.end <= s.start);
        let end = first + tokens[first..].partition_point(|t| t.start < s.end);
        if first >= end {
            continue; // no token inside (empty span, or past the text)
        }
        covered[first..end].iter_mut().for_each(|c| *c = true);
        let inside = &tokens[first..end];
        let head = mean(&inside[..w.min(inside.len())]).unwrap_or(0.0);
        let tail = mean(&inside[inside.len().saturating_sub(w)..]).unwrap_or(0.0);
        let before = mean(&tokens[first.saturating_sub(w)..first]);
        let after = mean(&tokens[end..(end + w).min(tokens.len())]);
        let entropy_inside = mean(inside).unwrap_or(0.0);
        let drop_at_start = before.map(|b| b - head);
        let jump_at_end = after.map(|a| a - tail);
        let level = ((c.novel - entropy_inside) / (c.novel - c.memorized)).clamp(0.0, 1.0);
        let edges: Vec<f32> = [drop_at_start, jump_at_end]
            .iter()
            .flatten()
            .map(|d| (d / c.jump).clamp(0.0, 1.0))
            .collect();
        let score = (2.0 * level + edges.iter().sum::<f32>()) / (2 + edges.len()) as f32;
        out.push(SpanSignal {
            span: i,
            start: s.start,
            end: s.end,
            first_token: first,
            end_token: end,
            entropy_before: before,
            entropy_head: head,
            entropy_inside,
            entropy_tail: tail,
            entropy_after: after,
            drop_at_start,
            jump_at_end,
            score,
        });
    }
    // Runs of low smoothed entropy.
    let smooth: Vec<f32> = (0..tokens.len())
        .map(|i| {
            let a = i.saturating_sub(w / 2);
            mean(&tokens[a..(a + w).min(tokens.len())]).unwrap_or(0.0)
        })
        .collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if smooth[i] >= o.low_entropy {
            i += 1;
            continue;
        }
        let j = i + smooth[i..]
            .iter()
            .position(|&h| h >= o.low_entropy)
            .unwrap_or(tokens.len() - i);
        let inside = covered[i..j].iter().filter(|&&c| c).count();
        if j - i >= o.min_run && inside * 2 < j - i {
            runs.push(Run {
                start: tokens[i].start,
                end: tokens[j - 1].end,
                tokens: j - i,
                mean_entropy: mean(&tokens[i..j]).unwrap_or(0.0),
            });
        }
        i = j;
    }
    Boundary {
        score: out.iter().map(|s| s.score).fold(0.0, f32::max),
        spans: out,
        unexplained_runs: runs,
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // `&[a..b]`: a list of one span, as meant
mod tests {
    use super::*;

    /// One token per character, with the given entropies.
    fn toks(h: &[f32]) -> Vec<Token> {
        h.iter()
            .enumerate()
            .map(|(i, &e)| Token {
                id: 0,
                text: "x".into(),
                start: i,
                end: i + 1,
                entropy: e,
                surprisal: e,
                rank: 0,
            })
            .collect()
    }

    fn opts(window: usize) -> BoundaryOptions {
        BoundaryOptions {
            window,
            low_entropy: 1.0,
            min_run: 4,
            calibration: Calibration::default(),
        }
    }

    #[test]
    fn a_recited_span_scores_by_the_paper_numbers() {
        // novel (3.75) | recited (0.6) | novel again: drop and jump of 3.15 ≥ 0.7 → score 1.
        let mut h = vec![3.75; 10];
        h.extend([0.6; 10]);
        h.extend([3.75; 10]);
        let b = analyze(&toks(&h), &[10..20], &opts(4));
        let s = &b.spans[0];
        assert_eq!((s.first_token, s.end_token), (10, 20));
        assert!((s.entropy_inside - 0.6).abs() < 1e-6);
        assert!((s.drop_at_start.unwrap() - 3.15).abs() < 1e-5);
        assert!((s.jump_at_end.unwrap() - 3.15).abs() < 1e-5);
        assert!((s.score - 1.0).abs() < 1e-6);
        assert!(b.unexplained_runs.is_empty(), "the low run is the span");
    }

    #[test]
    fn novel_span_scores_zero_and_half_way_is_graded() {
        let h = vec![3.75; 30];
        let b = analyze(&toks(&h), &[10..20], &opts(4));
        assert_eq!(b.score, 0.0);
        // Inside half way between novel and memorized, edges +0.35 (half a jump): score 0.5.
        let mid = (3.75 + 0.6) / 2.0;
        let mut h = vec![mid + 0.35; 10];
        h.extend([mid; 10]);
        h.extend([mid + 0.35; 10]);
        let s = analyze(&toks(&h), &[10..20], &opts(4)).spans[0].clone();
        assert!((s.score - 0.5).abs() < 1e-4, "{}", s.score);
    }

    #[test]
    fn edges_at_text_ends_are_left_out() {
        let mut h = vec![0.6; 10];
        h.extend([3.75; 10]);
        let s = analyze(&toks(&h), &[0..10], &opts(4)).spans[0].clone();
        assert_eq!(s.entropy_before, None);
        assert_eq!(s.drop_at_start, None);
        // level 1 (weight 2) + jump 1 over 3.
        assert!((s.score - 1.0).abs() < 1e-6);
        // Spans past the text or empty are skipped.
        assert!(analyze(&toks(&h), &[50..60, 3..3], &opts(4))
            .spans
            .is_empty());
    }

    #[test]
    fn unexplained_low_runs_are_reported() {
        let mut h = vec![3.0; 10];
        h.extend([0.2; 12]);
        h.extend([3.0; 10]);
        let b = analyze(&toks(&h), &[], &opts(2));
        assert_eq!(b.unexplained_runs.len(), 1);
        let r = &b.unexplained_runs[0];
        assert!(r.start >= 9 && r.end <= 23 && r.tokens >= 10, "{r:?}");
        // Covered by a span: not unexplained.
        assert!(analyze(&toks(&h), &[10..22], &opts(2))
            .unexplained_runs
            .is_empty());
        // Too short to report.
        let mut h = vec![3.0; 10];
        h.extend([0.2; 2]);
        h.extend([3.0; 10]);
        assert!(analyze(&toks(&h), &[], &opts(2))
            .unexplained_runs
            .is_empty());
    }
}
