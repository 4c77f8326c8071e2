//! A7, entropy dynamics (the "inverse boundary effect"): the entropy of the model's next-token
//! distribution at each position, over the true context and then over its own continuation, per
//! memorization group. Read from the decoding pass itself ([`crate::probe::decode`]): H(p) is
//! the entropy of the prediction of token p, with the end-of-text token masked as in decoding.

use super::curves::{boundaries, curves, Boundary, Curve};
use super::Scored;
use serde::Serialize;

/// A7's curves and boundary table.
#[derive(Debug, Clone, Serialize)]
pub struct Entropy {
    /// Mean H(p), p = 1..C+K−1, per model and group.
    pub curves: Vec<Curve>,
    /// H(C−1) → H(C), context and continuation means, H around C + K/2.
    pub boundaries: Vec<Boundary>,
}

/// Computes A7 on the base rows at (C₀, K₀).
pub fn run(s: &Scored, seed: u64) -> Entropy {
    let (c, k) = (s.plan.contexts[0], s.plan.continuations[0]);
    let curves = curves(s, 1, seed, |_, r| {
        r.entropy[..c + k - 1].iter().map(|&x| x as f64).collect()
    });
    Entropy {
        boundaries: boundaries(&curves, c, k),
        curves,
    }
}
