//! A1 and A2: how many rows each model memorized, by score bin, and how that moves with the
//! continuation length `K` and the context length `C` (spec A1, A2), with bootstrap intervals.

use super::score::{census_bin, CENSUS_BINS};
use super::stats::{bootstrap, Estimate};
use super::Scored;
use serde::Serialize;

/// The 12-bin census of one model at one (C, K).
#[derive(Debug, Clone, Serialize)]
pub struct Census {
    /// Model index.
    pub model: usize,
    /// Context tokens.
    pub context: usize,
    /// Continuation tokens.
    pub continuation: usize,
    /// Rows scored.
    pub rows: usize,
    /// Rows per bin ([`CENSUS_BINS`]).
    pub counts: [usize; 12],
    /// Share of rows per bin, with intervals.
    pub shares: Vec<Estimate>,
    /// Share with k = K.
    pub memorized: Estimate,
    /// Share with k = 0.
    pub unmemorized: Estimate,
    /// Mean score k / K.
    pub mean_score: Estimate,
}

/// Census of rows with levels `ks` (each of `big_k`).
pub fn census(model: usize, context: usize, big_k: usize, ks: &[usize], seed: u64) -> Census {
    let mut counts = [0usize; 12];
    for &k in ks {
        counts[census_bin(k, big_k)] += 1;
    }
    let est = bootstrap(ks.len(), seed, |idx| {
        let mut c = [0f64; 12];
        let (mut n, mut sum) = (0f64, 0f64);
        for i in idx {
            c[census_bin(ks[i], big_k)] += 1.0;
            sum += ks[i] as f64 / big_k as f64;
            n += 1.0;
        }
        let mut v: Vec<f64> = c.iter().map(|x| x / n).collect();
        v.push(sum / n);
        v
    });
    Census {
        model,
        context,
        continuation: big_k,
        rows: ks.len(),
        counts,
        shares: est[..12].to_vec(),
        memorized: est[11],
        unmemorized: est[0],
        mean_score: est[12],
    }
}

/// Every census of the audit: A1 (base configuration per model), A2's continuation panel (the
/// long-decoded base rows at each K) and context panel (each C at the base K).
#[derive(Debug, Clone, Serialize)]
pub struct Censuses {
    /// A1: per model at (C₀, K₀), all base rows.
    pub base: Vec<Census>,
    /// A2, continuation panel: per model and K, on the same rows (those decoded to the longest K).
    pub by_continuation: Vec<Census>,
    /// A2, context panel: per model and C at K₀.
    pub by_context: Vec<Census>,
    /// The bin labels.
    pub bins: [&'static str; 12],
}

/// Computes [`Censuses`].
pub fn run(s: &Scored, seed: u64) -> Censuses {
    let mut out = Censuses {
        base: Vec::new(),
        by_continuation: Vec::new(),
        by_context: Vec::new(),
        bins: CENSUS_BINS,
    };
    let k0 = s.plan.continuations[0];
    for m in 0..s.models.len() {
        let base = s.rows(m, "base");
        let ks: Vec<usize> = base.iter().map(|r| r.matches.k(k0)).collect();
        out.base.push(census(m, s.plan.contexts[0], k0, &ks, seed));
        let long: Vec<_> = base
            .iter()
            .filter(|r| r.matches.len() >= s.plan.k_long)
            .collect();
        if s.plan.continuations.len() > 1 {
            for &k in &s.plan.continuations {
                let ks: Vec<usize> = long.iter().map(|r| r.matches.k(k)).collect();
                out.by_continuation
                    .push(census(m, s.plan.contexts[0], k, &ks, seed));
            }
        }
        if s.plan.contexts.len() > 1 {
            for (i, &c) in s.plan.contexts.iter().enumerate() {
                let set = if i == 0 {
                    "base".to_string()
                } else {
                    format!("c{c}")
                };
                let ks: Vec<usize> = s.rows(m, &set).iter().map(|r| r.matches.k(k0)).collect();
                out.by_context.push(census(m, c, k0, &ks, seed));
            }
        }
    }
    out
}
