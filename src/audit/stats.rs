//! Uncertainty for every number of the report: percentile bootstrap intervals over rows, seeded.
//!
//! The paper reports none; with a few hundred rows per configuration and small groups (the
//! memorized share of a small model is around 1%), the intervals are what make a comparison
//! readable.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// An estimate with its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The statistic on all rows.
    pub value: f64,
    /// 2.5th percentile of the bootstrap distribution.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
}

/// Resamples to draw for every interval.
pub const RESAMPLES: usize = 1000;

/// Percentile bootstrap of a vector-valued statistic over `n` rows: `stat` gets the indices of
/// one resample (with replacement) and returns one value per output. Each output gets its own
/// interval. `seed` makes it repeatable.
pub fn bootstrap(
    n: usize,
    seed: u64,
    stat: impl Fn(&mut dyn Iterator<Item = usize>) -> Vec<f64>,
) -> Vec<Estimate> {
    let value = stat(&mut (0..n));
    if n == 0 {
        return value
            .into_iter()
            .map(|v| Estimate {
                value: v,
                lo: f64::NAN,
                hi: f64::NAN,
            })
            .collect();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(RESAMPLES); value.len()];
    for _ in 0..RESAMPLES {
        let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        for (d, v) in draws.iter_mut().zip(stat(&mut idx.into_iter())) {
            d.push(v);
        }
    }
    value
        .into_iter()
        .zip(draws)
        .map(|(v, mut d)| {
            d.retain(|x| x.is_finite());
            d.sort_by(f64::total_cmp);
            Estimate {
                value: v,
                lo: percentile(&d, 0.025),
                hi: percentile(&d, 0.975),
            }
        })
        .collect()
}

/// Bootstrap of the mean of `values` at each position: `values[r][p]` for row r, position p.
pub fn mean_by_position(values: &[&[f64]], seed: u64) -> Vec<Estimate> {
    let width = values.iter().map(|v| v.len()).min().unwrap_or(0);
    bootstrap(values.len(), seed, |idx| {
        let mut sum = vec![0.0; width];
        let mut n = 0usize;
        for i in idx {
            for (s, v) in sum.iter_mut().zip(values[i].iter()) {
                *s += v;
            }
            n += 1;
        }
        sum.into_iter()
            .map(|s| if n == 0 { f64::NAN } else { s / n as f64 })
            .collect()
    })
}

/// The `q` quantile of sorted values (linear interpolation); NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = q * (sorted.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x.fract());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_cover_the_value_and_repeat_with_the_seed() {
        let hits: Vec<f64> = (0..400).map(|i| (i % 10 == 0) as u8 as f64).collect();
        let share = |idx: &mut dyn Iterator<Item = usize>| {
            let (mut s, mut n) = (0.0, 0.0);
            for i in idx {
                s += hits[i];
                n += 1.0;
            }
            vec![s / n]
        };
        let a = bootstrap(hits.len(), 7, share)[0];
        assert!((a.value - 0.1).abs() < 1e-12);
        assert!(
            a.lo < 0.1 && a.hi > 0.1 && a.lo > 0.06 && a.hi < 0.14,
            "{a:?}"
        );
        assert_eq!(a, bootstrap(hits.len(), 7, share)[0]);
        let rows: Vec<Vec<f64>> = (0..50).map(|i| vec![i as f64, 1.0]).collect();
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let m = mean_by_position(&refs, 1);
        assert!((m[0].value - 24.5).abs() < 1e-9 && m[1].lo == 1.0 && m[1].hi == 1.0);
    }
}
