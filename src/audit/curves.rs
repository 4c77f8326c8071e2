//! Per-position group means, the shape shared by the frequency (A4) and entropy (A7) dynamics:
//! for each model and group (memorized, half, quarter, unmemorized), the mean of a per-token value
//! at every position of the row, with a bootstrap band, and the boundary table read from it.

use super::score::Group;
use super::stats::{mean_by_position, Estimate};
use super::{Scored, ScoredRow};
use serde::Serialize;

/// One curve: a model's group, position by position.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// Model index.
    pub model: usize,
    /// The group.
    pub group: Group,
    /// Rows in the group.
    pub rows: usize,
    /// Position of the first entry (0 for token values, 1 for entropies H(p)).
    pub first_position: usize,
    /// Mean per position, with its interval.
    pub mean: Vec<Estimate>,
}

impl Curve {
    /// The mean at position `p` (NaN outside the curve).
    pub fn at(&self, p: usize) -> f64 {
        p.checked_sub(self.first_position)
            .and_then(|i| self.mean.get(i))
            .map_or(f64::NAN, |e| e.value)
    }

    /// Mean of the means over positions `from..to`.
    pub fn mean_over(&self, from: usize, to: usize) -> f64 {
        let v: Vec<f64> = (from..to)
            .map(|p| self.at(p))
            .filter(|x| x.is_finite())
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }
}

/// Curves of `value(row) -> per-position values` for every model and group over the base rows
/// at K₀. Groups with no rows are left out.
pub fn curves(
    s: &Scored,
    first_position: usize,
    seed: u64,
    value: impl Fn(usize, &ScoredRow) -> Vec<f64>,
) -> Vec<Curve> {
    let k0 = s.plan.continuations[0];
    let mut out = Vec::new();
    for m in 0..s.models.len() {
        for g in Group::ALL {
            let Some(level) = g.level(k0) else { continue };
            let rows: Vec<Vec<f64>> = s
                .rows(m, "base")
                .iter()
                .filter(|r| r.matches.k(k0) == level)
                .map(|r| value(m, r))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
            out.push(Curve {
                model: m,
                group: g,
                rows: rows.len(),
                first_position,
                mean: mean_by_position(&refs, seed),
            });
        }
    }
    out
}

/// The boundary table of one curve (spec A5 and A7): the value at the last context position and
/// the first continuation position, their difference, the context and continuation means, and
/// the values around the continuation's middle.
#[derive(Debug, Clone, Serialize)]
pub struct Boundary {
    /// Model index.
    pub model: usize,
    /// The group.
    pub group: Group,
    /// Rows.
    pub rows: usize,
    /// Value at position C−1.
    pub last_context: f64,
    /// Value at position C.
    pub first_continuation: f64,
    /// `first_continuation − last_context`.
    pub diff: f64,
    /// Mean over the context positions.
    pub context_mean: f64,
    /// Mean over the continuation positions.
    pub continuation_mean: f64,
    /// Value at C + K/2 − 1.
    pub before_half: f64,
    /// Value at C + K/2.
    pub at_half: f64,
}

/// Boundary tables of `curves` for context `c` and continuation `k`.
pub fn boundaries(curves: &[Curve], c: usize, k: usize) -> Vec<Boundary> {
    curves
        .iter()
        .map(|cv| {
            let first = cv.first_position;
            Boundary {
                model: cv.model,
                group: cv.group,
                rows: cv.rows,
                last_context: cv.at(c - 1),
                first_continuation: cv.at(c),
                diff: cv.at(c) - cv.at(c - 1),
                context_mean: cv.mean_over(first, c),
                continuation_mean: cv.mean_over(c, c + k),
                before_half: cv.at(c + k / 2 - 1),
                at_half: cv.at(c + k / 2),
            }
        })
        .collect()
}
