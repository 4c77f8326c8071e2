//! Beyond the paper: memorization against duplication (Carlini et al.: memorization grows
//! log-linearly with how often a sequence occurs in training data), and the "continuity" of
//! partial memorization (spec Q11): do the matched tokens of a partially memorized row form a
//! prefix of the continuation?

use super::stats::{bootstrap, Estimate};
use super::Scored;
use crate::index::Index;
use crate::probe::tokenizer::Tokenizer;
use anyhow::Result;
use serde::Serialize;

/// Memorized share among rows whose window occurs `lo..=hi` times in the corpus.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicationBin {
    /// Least count in the bin.
    pub lo: u64,
    /// Greatest count in the bin (u64::MAX: no bound).
    pub hi: u64,
    /// Rows.
    pub rows: usize,
    /// Share with k = K.
    pub memorized: Estimate,
    /// Mean score.
    pub mean_score: Estimate,
}

/// Duplication analysis of one model.
#[derive(Debug, Clone, Serialize)]
pub struct Duplication {
    /// Model index.
    pub model: usize,
    /// Bins of corpus count (1, 2, 3–4, 5–8, …).
    pub bins: Vec<DuplicationBin>,
    /// Least-squares slope of the mean score against log10(count), per decade.
    pub slope_per_decade: Estimate,
}

/// Counts every base row's window (context and continuation, as text) in the index, once for
/// all models sharing rows; then bins per model.
pub fn run(
    s: &Scored,
    index: &Index,
    tokenizers: &[Tokenizer],
    seed: u64,
) -> Result<Vec<Duplication>> {
    let k0 = s.plan.continuations[0];
    let c0 = s.plan.contexts[0];
    let mut out = Vec::new();
    for (m, tok) in tokenizers.iter().enumerate().take(s.models.len()) {
        let rows = s.rows(m, "base");
        let mut counts = Vec::with_capacity(rows.len());
        for r in rows {
            let text = tok.decode(&r.tokens[..c0 + k0])?;
            counts.push(index.count(&text).max(1));
        }
        let ks: Vec<usize> = rows.iter().map(|r| r.matches.k(k0)).collect();
        let mut bins = Vec::new();
        let mut lo = 1u64;
        while counts.iter().any(|&c| c >= lo) {
            let hi = if lo == 1 { 1 } else { lo * 2 - 1 };
            let idx: Vec<usize> = (0..rows.len())
                .filter(|&i| counts[i] >= lo && counts[i] <= hi)
                .collect();
            if !idx.is_empty() {
                let est = bootstrap(idx.len(), seed, |it| {
                    let (mut n, mut mem, mut sum) = (0.0, 0.0, 0.0);
                    for j in it {
                        let k = ks[idx[j]];
                        mem += (k == k0) as u8 as f64;
                        sum += k as f64 / k0 as f64;
                        n += 1.0;
                    }
                    vec![mem / n, sum / n]
                });
                bins.push(DuplicationBin {
                    lo,
                    hi,
                    rows: idx.len(),
                    memorized: est[0],
                    mean_score: est[1],
                });
            }
            lo = hi + 1;
        }
        let slope = bootstrap(rows.len(), seed, |it| {
            let pts: Vec<(f64, f64)> = it
                .map(|i| ((counts[i] as f64).log10(), ks[i] as f64 / k0 as f64))
                .collect();
            vec![slope(&pts)]
        })[0];
        out.push(Duplication {
            model: m,
            bins,
            slope_per_decade: slope,
        });
    }
    Ok(out)
}

/// Least-squares slope of y on x (NaN when x does not vary).
fn slope(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx > 0.0 {
        sxy / sxx
    } else {
        f64::NAN
    }
}

/// Continuity of partial memorization at one level k.
#[derive(Debug, Clone, Serialize)]
pub struct PrefixLevel {
    /// Model index.
    pub model: usize,
    /// Matched tokens k (of K₀).
    pub k: usize,
    /// Rows at this level.
    pub rows: usize,
    /// Rows whose k matches are exactly the first k positions.
    pub prefix_rows: usize,
    /// Mean number of leading matches.
    pub mean_prefix: f64,
    /// Share of rows whose first position matches.
    pub first_matches: f64,
}

/// Q11 for every model and level 1..K₀−1 with rows.
pub fn prefixes(s: &Scored) -> Vec<PrefixLevel> {
    let k0 = s.plan.continuations[0];
    let mut out = Vec::new();
    for m in 0..s.models.len() {
        for k in 1..k0 {
            let rows: Vec<_> = s
                .rows(m, "base")
                .iter()
                .filter(|r| r.matches.k(k0) == k)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let n = rows.len() as f64;
            out.push(PrefixLevel {
                model: m,
                k,
                rows: rows.len(),
                prefix_rows: rows.iter().filter(|r| r.matches.prefix(k0) == k).count(),
                mean_prefix: rows
                    .iter()
                    .map(|r| r.matches.prefix(k0) as f64)
                    .sum::<f64>()
                    / n,
                first_matches: rows.iter().filter(|r| r.matches.bits[0]).count() as f64 / n,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 0.5 * i as f64 + 1.0)).collect();
        assert!((super::slope(&pts) - 0.5).abs() < 1e-12);
        assert!(super::slope(&[(1.0, 1.0), (1.0, 2.0)]).is_nan());
    }
}
