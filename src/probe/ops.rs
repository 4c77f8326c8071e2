//! Fused CPU kernels for the probe's forward pass, as candle custom ops.
//!
//! - [`CausalSoftmax`]: scale, causal mask and softmax of attention scores in one pass, touching
//!   only the unmasked prefix of each row (no mask tensor, no separate add).
//! - [`SwiGlu`]: `silu(gate) · up` from the fused gate/up projection in one pass.
//!
//! Both use the branch-free `exp` of [`super::logits`], so the loops vectorize. They run on the
//! CPU only; on other devices the model uses candle's mask + softmax and silu ops instead.

use super::logits::exp_clamped;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d.as_slice(),
        _ => candle_core::bail!("{op}: f32 only"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Softmax over the last dimension of attention scores (…, rows, keys) with a causal mask: row
/// `r` is the query at position `first_position + r % period` and sees keys `0..=position`
/// (masked entries come out 0). Scores are multiplied by `scale` first.
pub struct CausalSoftmax {
    /// Multiplies the scores before the softmax.
    pub scale: f32,
    /// The position of row 0.
    pub first_position: usize,
    /// Rows per sequence (positions repeat with this period).
    pub period: usize,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let keys = *l.dims().last().unwrap_or(&1);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(keys)
            .zip(x.par_chunks(keys))
            .enumerate()
            .for_each(|(r, (o, x))| {
                let visible = (self.first_position + r % self.period + 1).min(keys);
                let (o, x) = (&mut o[..visible], &x[..visible]);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) * self.scale;
                let mut sum = 0f32;
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = exp_clamped(x * self.scale - max);
                    sum += *o;
                }
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|o| *o *= inv);
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// `silu(g) · u` for an input (rows, 2·width) holding the gate projection then the up
/// projection of each row; output (rows, width).
pub struct SwiGlu;

impl CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let (rows, cols) = l.shape().dims2()?;
        let width = cols / 2;
        let mut out = vec![0f32; rows * width];
        out.par_chunks_mut(width)
            .zip(x.par_chunks(cols))
            .for_each(|(o, x)| {
                let (g, u) = x.split_at(width);
                for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                    *o = g / (1.0 + exp_clamped(-g)) * u;
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((rows, width))))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Largest |a − b| over all elements of two same-shaped tensors.
    pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar())
            .unwrap()
    }

    #[test]
    fn causal_softmax_equals_mask_then_softmax() {
        let dev = Device::Cpu;
        let (group, n, keys, first) = (3usize, 5usize, 9usize, 4usize);
        let x = Tensor::randn(0f32, 3.0, (2, group * n, keys), &dev).unwrap();
        let got = x
            .apply_op1_no_bwd(&CausalSoftmax {
                scale: 0.5,
                first_position: first,
                period: n,
            })
            .unwrap();
        let mask: Vec<f32> = (0..group * n)
            .flat_map(|r| {
                (0..keys).map(move |j| {
                    if j > first + r % n {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (group * n, keys), &dev).unwrap();
        let want =
            candle_nn::ops::softmax_last_dim(&(x * 0.5).unwrap().broadcast_add(&mask).unwrap())
                .unwrap();
        let worst = max_abs_diff(&got, &want);
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn swiglu_equals_silu_times_up() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 6.0, (7, 2 * 33), &dev).unwrap();
        let got = x.apply_op1_no_bwd(&SwiGlu).unwrap();
        let want = (candle_nn::ops::silu(&x.narrow(1, 0, 33).unwrap()).unwrap()
            * x.narrow(1, 33, 33).unwrap())
        .unwrap();
        let worst = max_abs_diff(&got, &want);
        assert!(worst < 1e-4, "{worst}");
    }
}
