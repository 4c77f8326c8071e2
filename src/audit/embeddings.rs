//! A6, embedding dynamics: the model's last-layer hidden states (after the final norm) of rows
//! at each memorization level: the level means and how far apart they lie (cosine and L2), a
//! 2-D PCA of rows and of level means, and the distance of each level to the half level as
//! decoding goes on (spec A6; the paper's Fig. 5 is a schematic, so these are the numbers its
//! claims can be checked against).
//!
//! Positions: hidden state j of a row is position j (0..C+K−2); "decoding step" s = 1..K−1 is
//! the s-th generated token, at position C−1+s.

use super::Scored;
use serde::Serialize;

/// A6 for one model.
#[derive(Debug, Clone, Serialize)]
pub struct Embeddings {
    /// Model index.
    pub model: usize,
    /// Levels k with rows, ascending.
    pub levels: Vec<usize>,
    /// Rows at each level.
    pub level_rows: Vec<usize>,
    /// Cosine similarity between level means at the last decoding step.
    pub cosine: Vec<Vec<f64>>,
    /// Euclidean distance between level means at the last decoding step.
    pub l2: Vec<Vec<f64>>,
    /// PCA of every row's hidden state at the last step: (x, y, k) per row.
    pub rows_pca: Vec<(f64, f64, usize)>,
    /// Share of variance the two components explain.
    pub explained: [f64; 2],
    /// The level means in the same PCA: (x, y) per level.
    pub levels_pca: Vec<(f64, f64)>,
    /// `drift[i][s − 1]`: distance of level `levels[i]`'s mean state over positions 0..C−1+s
    /// (context and generated so far) to the half level's, at decoding step s = 1..K−1.
    pub drift: Vec<Vec<f64>>,
    /// The level the drift is measured against (K/2, or the nearest level with rows).
    pub reference_level: usize,
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn l2(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn mean(vs: &[&[f64]], dim: usize) -> Vec<f64> {
    let mut m = vec![0.0; dim];
    for v in vs {
        for (a, b) in m.iter_mut().zip(v.iter()) {
            *a += b;
        }
    }
    let n = vs.len().max(1) as f64;
    m.iter_mut().for_each(|a| *a /= n);
    m
}

/// The top two principal components of the rows of `x` (centred inside), by power iteration
/// with deflation: returns the components, the centre and the explained variance shares.
pub fn pca2(x: &[Vec<f64>]) -> ([Vec<f64>; 2], Vec<f64>, [f64; 2]) {
    let d = x.first().map_or(0, |r| r.len());
    let refs: Vec<&[f64]> = x.iter().map(|r| r.as_slice()).collect();
    let centre = mean(&refs, d);
    let xc: Vec<Vec<f64>> = x
        .iter()
        .map(|r| r.iter().zip(&centre).map(|(a, c)| a - c).collect())
        .collect();
    let total: f64 = xc.iter().flatten().map(|v| v * v).sum();
    let mut comps: Vec<Vec<f64>> = Vec::new();
    let mut shares = [0.0; 2];
    for (c, share) in shares.iter_mut().enumerate() {
        // A fixed, non-degenerate start: the run is deterministic.
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
        let mut lambda = 0.0;
        for _ in 0..200 {
            // w = Xᵀ X v, with earlier components projected out.
            let mut w = vec![0.0; d];
            for r in &xc {
                let p: f64 = r.iter().zip(&v).map(|(a, b)| a * b).sum();
                for (wi, ri) in w.iter_mut().zip(r) {
                    *wi += p * ri;
                }
            }
            for prev in &comps {
                let p: f64 = w.iter().zip(prev).map(|(a, b)| a * b).sum();
                for (wi, pi) in w.iter_mut().zip(prev) {
                    *wi -= p * pi;
                }
            }
            let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            let next: Vec<f64> = w.iter().map(|a| a / norm).collect();
            let delta = l2(&next, &v);
            v = next;
            lambda = norm;
            if delta < 1e-9 {
                break;
            }
        }
        *share = if total > 0.0 { lambda / total } else { 0.0 };
        let _ = c;
        comps.push(v);
    }
    let [a, b]: [Vec<f64>; 2] = comps.try_into().expect("two components");
    ([a, b], centre, shares)
}

fn project(r: &[f64], comps: &[Vec<f64>; 2], centre: &[f64]) -> (f64, f64) {
    let p = |c: &Vec<f64>| {
        r.iter()
            .zip(centre)
            .zip(c)
            .map(|((a, m), w)| (a - m) * w)
            .sum()
    };
    (p(&comps[0]), p(&comps[1]))
}

/// A6 for model `m`, from `hidden[i]` = the hidden states of `s.rows(m, "base")[i]`, row-major
/// (positions × `dim`).
pub fn run(s: &Scored, m: usize, hidden: &[Vec<f32>], dim: usize) -> Option<Embeddings> {
    let (c, k) = (s.plan.contexts[0], s.plan.continuations[0]);
    let rows = s.rows(m, "base");
    if rows.len() != hidden.len() || rows.is_empty() || k < 2 {
        return None;
    }
    let positions = c + k - 1;
    let last = positions - 1;
    let at = |i: usize, p: usize| -> Vec<f64> {
        hidden[i][p * dim..(p + 1) * dim]
            .iter()
            .map(|&x| x as f64)
            .collect()
    };
    let ks: Vec<usize> = rows.iter().map(|r| r.matches.k(k)).collect();
    let levels: Vec<usize> = (0..=k).filter(|l| ks.contains(l)).collect();
    let members: Vec<Vec<usize>> = levels
        .iter()
        .map(|&l| (0..rows.len()).filter(|&i| ks[i] == l).collect())
        .collect();
    let finals: Vec<Vec<f64>> = (0..rows.len()).map(|i| at(i, last)).collect();
    let level_means: Vec<Vec<f64>> = members
        .iter()
        .map(|idx| {
            let v: Vec<&[f64]> = idx.iter().map(|&i| finals[i].as_slice()).collect();
            mean(&v, dim)
        })
        .collect();
    let grid = |f: fn(&[f64], &[f64]) -> f64| -> Vec<Vec<f64>> {
        level_means
            .iter()
            .map(|a| level_means.iter().map(|b| f(a, b)).collect())
            .collect()
    };
    let (comps, centre, explained) = pca2(&finals);
    // Drift: per row, cumulative sums over positions give the mean over 0..C−1+s cheaply.
    let reference = levels
        .iter()
        .enumerate()
        .min_by_key(|(_, &l)| l.abs_diff(k / 2))
        .map(|(i, _)| i)
        .expect("at least one level");
    let mut drift = vec![Vec::with_capacity(k - 1); levels.len()];
    let mut sums: Vec<Vec<f64>> = (0..rows.len())
        .map(|i| {
            let mut acc = vec![0.0; dim];
            for p in 0..c {
                for (a, v) in acc.iter_mut().zip(&hidden[i][p * dim..(p + 1) * dim]) {
                    *a += *v as f64;
                }
            }
            acc
        })
        .collect();
    for step in 1..k {
        let upto = c + step; // positions 0..C−1+step, inclusive
        for (i, acc) in sums.iter_mut().enumerate() {
            let p = c - 1 + step;
            for (a, v) in acc.iter_mut().zip(&hidden[i][p * dim..(p + 1) * dim]) {
                *a += *v as f64;
            }
        }
        let means: Vec<Vec<f64>> = members
            .iter()
            .map(|idx| {
                let mut m = vec![0.0; dim];
                for &i in idx {
                    for (a, v) in m.iter_mut().zip(&sums[i]) {
                        *a += v / upto as f64;
                    }
                }
                m.iter_mut().for_each(|a| *a /= idx.len() as f64);
                m
            })
            .collect();
        for (li, d) in drift.iter_mut().enumerate() {
            d.push(l2(&means[li], &means[reference]));
        }
    }
    Some(Embeddings {
        model: m,
        level_rows: members.iter().map(|v| v.len()).collect(),
        cosine: grid(cosine),
        l2: grid(l2),
        rows_pca: finals
            .iter()
            .zip(&ks)
            .map(|(r, &kk)| {
                let (x, y) = project(r, &comps, &centre);
                (x, y, kk)
            })
            .collect(),
        explained,
        levels_pca: level_means
            .iter()
            .map(|r| project(r, &comps, &centre))
            .collect(),
        drift,
        reference_level: levels[reference],
        levels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_main_direction() {
        // Points spread along (1, 1, 0) with a little noise along (0, 0, 1).
        let x: Vec<Vec<f64>> = (0..100)
            .map(|i| {
                let t = i as f64 - 50.0;
                vec![t, t, 0.1 * ((i % 7) as f64 - 3.0)]
            })
            .collect();
        let ([a, b], _, share) = pca2(&x);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!((a[0].abs() - s).abs() < 1e-6 && (a[1].abs() - s).abs() < 1e-6);
        assert!(b[2].abs() > 0.99, "{b:?}");
        assert!(share[0] > 0.99 && share[0] + share[1] <= 1.0 + 1e-9);
    }
}
