//! Reducing vocabulary-sized logit rows to the three numbers the probe keeps per position:
//! entropy of the next-token distribution, surprisal of the actual next token, and its rank.
//!
//! On the CPU this is one fused pass per row after the max: with z' = z − max and Z = Σ e^{z'},
//! entropy H = ln Z − Σ e^{z'}·z' / Z and surprisal = ln Z − z'_target, so the log-softmax is
//! never written out and `exp` runs once per logit (a branch-free polynomial that the compiler
//! vectorizes; AVX-512 or AVX2 chosen at run time). Rows are spread over threads with rayon.
//! On other devices the same quantities come from tensor ops, so only three numbers per row
//! leave the GPU.

use anyhow::Result;
use candle_core::{DType, Tensor, D};
use rayon::prelude::*;

/// Scores of one position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScore {
    /// Entropy of the distribution, nats.
    pub entropy: f32,
    /// Surprisal (nats) and rank (0 = most likely) of the actual next token, when there is one.
    pub target: Option<(f32, u32)>,
}

/// e^x for x in [−87, 88] (clamped outside it: ~0 below, ~1.7e38 above), relative error
/// < 5e-7. Branch-free so loops over it vectorize: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6
/// polynomial for e^r, 2^n by exponent bits.
#[inline(always)]
pub(crate) fn exp_clamped(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67 + r * (0.041_666_41 + r * (0.008_333_5 + r * 0.001_388_9)))));
    let bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    p * f32::from_bits(((bits + 127) << 23) as u32)
}

/// One row: (max, Σ e^{z−max}, Σ e^{z−max}·(z−max), count of logits above `above`).
#[inline(always)]
fn reduce(row: &[f32], above: f32) -> (f32, f32, f32, u32) {
    const LANES: usize = 16;
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut greater = [0u32; LANES];
    for c in chunks.clone() {
        for k in 0..LANES {
            m[k] = if c[k] > m[k] { c[k] } else { m[k] };
            greater[k] += (c[k] > above) as u32;
        }
    }
    let mut max = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut count: u32 = greater.iter().sum();
    for &x in tail {
        max = max.max(x);
        count += (x > above) as u32;
    }
    let (mut se, mut sez) = ([0f32; LANES], [0f32; LANES]);
    for c in chunks {
        for k in 0..LANES {
            let z = c[k] - max;
            let e = exp_clamped(z);
            se[k] += e;
            sez[k] += e * z;
        }
    }
    let (mut sum_e, mut sum_ez) = (se.iter().sum::<f32>(), sez.iter().sum::<f32>());
    for &x in tail {
        let z = x - max;
        let e = exp_clamped(z);
        sum_e += e;
        sum_ez += e * z;
    }
    (max, sum_e, sum_ez, count)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
fn reduce_avx512(row: &[f32], above: f32) -> (f32, f32, f32, u32) {
    reduce(row, above)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn reduce_avx2(row: &[f32], above: f32) -> (f32, f32, f32, u32) {
    reduce(row, above)
}

// One of the two places with `unsafe` (Cargo.toml [lints]): calling the CPU-specific copies.
#[allow(unsafe_code)]
fn reduce_dispatch(row: &[f32], above: f32) -> (f32, f32, f32, u32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has the features this copy was compiled for (checked above).
            return unsafe { reduce_avx512(row, above) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { reduce_avx2(row, above) };
        }
    }
    reduce(row, above)
}

/// Scores one row of logits; `target` is the actual next token, if any.
pub fn score_row(row: &[f32], target: Option<u32>) -> RowScore {
    let z_t = target.map(|t| row[t as usize]);
    let (max, sum_e, sum_ez, above) = reduce_dispatch(row, z_t.unwrap_or(f32::INFINITY));
    let ln_z = sum_e.ln();
    RowScore {
        entropy: (ln_z - sum_ez / sum_e).max(0.0),
        target: z_t.map(|z| (ln_z - (z - max), above)),
    }
}

/// Scores the rows of a CPU logits matrix (rows, vocab); `targets[i]` is row i's next token.
pub fn score_rows_cpu(logits: &Tensor, targets: &[Option<u32>]) -> Result<Vec<RowScore>> {
    let logits = logits.to_dtype(DType::F32)?.contiguous()?;
    let (rows, vocab) = logits.dims2()?;
    anyhow::ensure!(
        rows == targets.len(),
        "{rows} rows, {} targets",
        targets.len()
    );
    let (storage, layout) = logits.storage_and_layout();
    let data = match &*storage {
        candle_core::Storage::Cpu(s) => s.as_slice::<f32>()?,
        _ => anyhow::bail!("score_rows_cpu needs a CPU tensor"),
    };
    let data = &data[layout.start_offset()..layout.start_offset() + rows * vocab];
    Ok(data
        .par_chunks_exact(vocab)
        .zip(targets.par_iter())
        .map(|(row, &t)| score_row(row, t))
        .collect())
}

/// [`score_rows_cpu`] with tensor ops, for any device: only (rows × 3) numbers are copied back.
pub fn score_rows_tensor(logits: &Tensor, targets: &[Option<u32>]) -> Result<Vec<RowScore>> {
    let dev = logits.device();
    let lp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let entropy = (lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?;
    let ids: Vec<u32> = targets.iter().map(|t| t.unwrap_or(0)).collect();
    let ids = Tensor::new(ids.as_slice(), dev)?.unsqueeze(1)?;
    let target_lp = lp.gather(&ids, 1)?; // (rows, 1)
    let rank = lp
        .broadcast_gt(&target_lp)?
        .to_dtype(DType::F32)?
        .sum(D::Minus1)?;
    let entropy: Vec<f32> = entropy.to_vec1()?;
    let target_lp: Vec<f32> = target_lp.squeeze(1)?.to_vec1()?;
    let rank: Vec<f32> = rank.to_vec1()?;
    Ok(targets
        .iter()
        .enumerate()
        .map(|(i, t)| RowScore {
            entropy: entropy[i].max(0.0),
            target: t.map(|_| (-target_lp[i], rank[i] as u32)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let rel = (exp_clamped(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.001_7;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_clamped(0.0), 1.0);
        assert!(exp_clamped(-1000.0) < 1e-37);
        assert!(exp_clamped(f32::NEG_INFINITY) < 1e-37);
    }

    fn reference(row: &[f32], t: Option<u32>) -> RowScore {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
        let lp: Vec<f64> = row.iter().map(|&x| x as f64 - m - z.ln()).collect();
        RowScore {
            entropy: -lp.iter().map(|l| l.exp() * l).sum::<f64>() as f32,
            target: t.map(|t| {
                let l = lp[t as usize];
                (-l as f32, lp.iter().filter(|&&x| x > l).count() as u32)
            }),
        }
    }

    #[test]
    fn rows_match_a_double_precision_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (len, spread) in [
            (1usize, 1.0f32),
            (15, 3.0),
            (16, 0.1),
            (1000, 8.0),
            (49_153, 12.0),
        ] {
            let row: Vec<f32> = (0..len)
                .map(|_| rng.random_range(-spread..spread))
                .collect();
            for t in [None, Some(0), Some(len as u32 - 1)] {
                let got = score_row(&row, t);
                let want = reference(&row, t);
                assert!((got.entropy - want.entropy).abs() < 1e-3 * want.entropy.max(1.0));
                if let (Some((gs, gr)), Some((ws, wr))) = (got.target, want.target) {
                    assert!((gs - ws).abs() < 1e-3 * ws.max(1.0), "{gs} vs {ws}");
                    assert_eq!(gr, wr);
                }
                assert_eq!(got.target.is_some(), t.is_some());
            }
        }
        // A one-hot row: zero entropy, rank 0, surprisal ~0.
        let mut row = vec![-1000f32; 100];
        row[42] = 0.0;
        let s = score_row(&row, Some(42));
        assert!(s.entropy.abs() < 1e-6 && s.target.unwrap().1 == 0 && s.target.unwrap().0 < 1e-6);
    }

    #[test]
    fn tensor_path_equals_cpu_path() {
        let dev = candle_core::Device::Cpu;
        let logits = Tensor::randn(0f32, 4.0, (5, 3001), &dev).unwrap();
        let targets = [Some(3), None, Some(3000), Some(0), Some(1500)];
        let a = score_rows_cpu(&logits, &targets).unwrap();
        let b = score_rows_tensor(&logits, &targets).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x.entropy - y.entropy).abs() < 1e-3);
            match (x.target, y.target) {
                (Some((s1, r1)), Some((s2, r2))) => {
                    assert!((s1 - s2).abs() < 1e-3);
                    assert_eq!(r1, r2);
                }
                (None, None) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
