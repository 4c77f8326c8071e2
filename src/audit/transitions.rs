//! A3, transitions between models: for the same rows, how the score bucket under one model maps
//! to the bucket under another (spec A3), as counts and row-normalized probabilities, with the
//! buckets labelled in their true order (the authors' figure permuted them, spec Q4).

use super::score::{bucket, BUCKETS};
use super::Scored;
use serde::Serialize;
use std::collections::HashMap;

/// The transition matrix from model `from` to model `to`.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    /// Source model index (rows of the matrix).
    pub from: usize,
    /// Target model index (columns).
    pub to: usize,
    /// Rows scored by both.
    pub rows: usize,
    /// `counts[i][j]`: rows in bucket i under `from` and j under `to`.
    pub counts: [[usize; 5]; 5],
    /// `p[i][j] = counts[i][j] / Σ_j counts[i][j]` (NaN for an empty source bucket).
    pub p: [[f64; 5]; 5],
    /// Bucket sizes under `from` and under `to`.
    pub from_sizes: [usize; 5],
    /// Bucket sizes under `to`.
    pub to_sizes: [usize; 5],
}

impl Transition {
    /// Largest `|Σ_i N_from[i]·P[i][j] − N_to[j]|` over columns j: zero up to rounding when the
    /// matrix is consistent with both models' bucket sizes.
    pub fn invariant_error(&self) -> f64 {
        (0..5)
            .map(|j| {
                let implied: f64 = (0..5)
                    .filter(|&i| self.from_sizes[i] > 0)
                    .map(|i| self.from_sizes[i] as f64 * self.p[i][j])
                    .sum();
                (implied - self.to_sizes[j] as f64).abs()
            })
            .fold(0.0, f64::max)
    }
}

/// The transition of two models' levels on the same rows: `a` and `b` map row ids to k.
pub fn transition(
    from: usize,
    to: usize,
    a: &HashMap<usize, usize>,
    b: &HashMap<usize, usize>,
    big_k: usize,
) -> Transition {
    let mut counts = [[0usize; 5]; 5];
    let mut rows = 0;
    for (r, &ka) in a {
        if let Some(&kb) = b.get(r) {
            counts[bucket(ka, big_k)][bucket(kb, big_k)] += 1;
            rows += 1;
        }
    }
    let mut p = [[f64::NAN; 5]; 5];
    let mut from_sizes = [0usize; 5];
    let mut to_sizes = [0usize; 5];
    for i in 0..5 {
        from_sizes[i] = counts[i].iter().sum();
        for j in 0..5 {
            to_sizes[j] += counts[i][j];
            if from_sizes[i] > 0 {
                p[i][j] = counts[i][j] as f64 / from_sizes[i] as f64;
            }
        }
    }
    Transition {
        from,
        to,
        rows,
        counts,
        p,
        from_sizes,
        to_sizes,
    }
}

/// Every ordered pair of distinct models, on the base rows at K₀.
pub fn run(s: &Scored) -> Vec<Transition> {
    let k0 = s.plan.continuations[0];
    let levels: Vec<HashMap<usize, usize>> = (0..s.models.len())
        .map(|m| {
            s.rows(m, "base")
                .iter()
                .map(|r| (r.row, r.matches.k(k0)))
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for a in 0..levels.len() {
        for b in 0..levels.len() {
            if a != b {
                out.push(transition(a, b, &levels[a], &levels[b], k0));
            }
        }
    }
    out
}

/// The bucket labels, in order.
pub fn labels() -> [&'static str; 5] {
    BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one_and_the_invariant_holds() {
        let a: HashMap<usize, usize> = (0..500).map(|r| (r, (r * 7) % 17)).collect();
        let b: HashMap<usize, usize> = (0..500).map(|r| (r, (r * 13 + 3) % 17)).collect();
        let t = transition(0, 1, &a, &b, 16);
        assert_eq!(t.rows, 500);
        for i in 0..5 {
            if t.from_sizes[i] > 0 {
                let sum: f64 = t.p[i].iter().sum();
                assert!((sum - 1.0).abs() < 1e-12);
            }
        }
        assert!(t.invariant_error() < 1e-9, "{}", t.invariant_error());
        assert_eq!(t.from_sizes.iter().sum::<usize>(), 500);
        // The same model against itself is the identity.
        let id = transition(0, 0, &a, &a, 16);
        for i in 0..5 {
            for j in 0..5 {
                if id.from_sizes[i] > 0 {
                    assert_eq!(id.p[i][j], (i == j) as u8 as f64);
                }
            }
        }
    }
}
