//! Greedy continuation with a KV cache, batched: the primitive of the memorization score
//! (`memaudit audit`), which asks whether a model, given `C` tokens of a training text, goes on
//! to write the next `K` by itself.
//!
//! One call decodes a batch of contexts of one length: a prefill over the `C` context tokens
//! fills the cache, then `K − 1` decode steps each add one position per row. The decoding is
//! free-running (the model conditions on its own tokens, as `generate` does). Every forward
//! already computes what the analyses need beside the tokens, so one pass also returns:
//!
//! - the entropy of every next-token distribution: over the true context (the prefill), then over
//!   the model's own continuation (the steps), i.e. H(p) for p = 1..C+K−1;
//! - optionally the final hidden states (after the output norm) at positions 0..C+K−2, the
//!   features of the embedding and predictor analyses.
//!
//! `mask` removes one token (the end-of-text token, as the paper's authors' `generate` with
//! `min_length = max_length` did) from every distribution: it is never chosen and carries no
//! probability in the entropies.

use super::logits::score_row;
use super::model::{KvCache, Model};
use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use rayon::prelude::*;

/// What to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Tokens to generate after each context (`K`, at least 1).
    pub steps: usize,
    /// A token id never generated and left out of every distribution (the EOS parity switch).
    pub mask: Option<u32>,
    /// Also return the final hidden states.
    pub hidden: bool,
    /// Also the entropies over the context (each one projects a position to the vocabulary:
    /// about a quarter of a small model's work). Without them `entropy` starts at H(C).
    pub context_entropy: bool,
}

/// One row's continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The `K` greedy tokens.
    pub tokens: Vec<u32>,
    /// Entropy (nats) of the next-token distribution after positions 0..C+K−2: entry `p − 1`
    /// is H(p), the entropy of the prediction of token `p`. Without
    /// [`DecodeOptions::context_entropy`] only H(C)..H(C+K−1): entry `p − C`.
    pub entropy: Vec<f32>,
    /// Final hidden states at positions 0..C+K−2, row-major (C+K−1 rows of `embedding`), when
    /// asked for.
    pub hidden: Option<Vec<f32>>,
}

/// Rows of logits projected to the vocabulary at a time in the prefill.
const PREFILL_BLOCK_ROWS: usize = 128;

impl Model {
    /// Greedy continuations of `contexts` (all of one length `C`, with `C + steps` within the
    /// model's context), decoded together with a KV cache.
    pub fn greedy(&self, contexts: &[&[u32]], opts: &DecodeOptions) -> Result<Vec<Decoded>> {
        self.check_lengths(contexts)?;
        let c = contexts[0].len();
        if contexts.iter().any(|t| t.len() != c) {
            bail!("contexts of one batch must have one length");
        }
        if opts.steps == 0 || c + opts.steps > self.config.context {
            bail!(
                "{c} context + {} continuation tokens: between 1 and {} in all",
                opts.steps,
                self.config.context
            );
        }
        let b = contexts.len();
        let emb = self.config.embedding;
        let mut out: Vec<Decoded> = (0..b)
            .map(|_| Decoded {
                tokens: Vec::with_capacity(opts.steps),
                entropy: Vec::with_capacity(c + opts.steps - 1),
                hidden: opts
                    .hidden
                    .then(|| Vec::with_capacity((c + opts.steps - 1) * emb)),
            })
            .collect();
        let mut cache = KvCache::new();
        let flat: Vec<u32> = contexts.iter().flat_map(|t| t.iter().copied()).collect();
        let ids = Tensor::new(flat.as_slice(), &self.device)?;
        let h = self.forward_layers(&ids, b, c, Some(&mut cache))?; // (b·c, emb)
        if opts.hidden {
            let rows: Vec<Vec<f32>> = h.to_dtype(DType::F32)?.to_vec2()?;
            for (i, row) in rows.into_iter().enumerate() {
                if let Some(hs) = out[i / c].hidden.as_mut() {
                    hs.extend(row);
                }
            }
        }
        // Every prefill position's distribution: its entropy, and at each row's last position
        // the first generated token.
        let mut next = vec![0u32; b];
        let h = if opts.context_entropy {
            h
        } else {
            // Each row's last position only.
            let last: Vec<u32> = (0..b).map(|i| (i * c + c - 1) as u32).collect();
            h.index_select(&Tensor::new(last.as_slice(), &self.device)?, 0)?
        };
        let per_row = if opts.context_entropy { c } else { 1 };
        for first in (0..b * per_row).step_by(PREFILL_BLOCK_ROWS) {
            let len = PREFILL_BLOCK_ROWS.min(b * per_row - first);
            let logits = h.narrow(0, first, len)?.matmul(&self.output_t)?;
            for (j, (entropy, argmax)) in reduce_rows(&logits, opts.mask)?.into_iter().enumerate() {
                let r = first + j;
                out[r / per_row].entropy.push(entropy);
                if r % per_row == per_row - 1 {
                    next[r / per_row] = argmax;
                }
            }
        }
        for (o, &t) in out.iter_mut().zip(&next) {
            o.tokens.push(t);
        }
        for _ in 1..opts.steps {
            let ids = Tensor::new(next.as_slice(), &self.device)?;
            let h = self.forward_layers(&ids, b, 1, Some(&mut cache))?; // (b, emb)
            if opts.hidden {
                let rows: Vec<Vec<f32>> = h.to_dtype(DType::F32)?.to_vec2()?;
                for (o, row) in out.iter_mut().zip(rows) {
                    if let Some(hs) = o.hidden.as_mut() {
                        hs.extend(row);
                    }
                }
            }
            let logits = h.matmul(&self.output_t)?;
            for (i, (entropy, argmax)) in reduce_rows(&logits, opts.mask)?.into_iter().enumerate() {
                out[i].entropy.push(entropy);
                out[i].tokens.push(argmax);
                next[i] = argmax;
            }
        }
        Ok(out)
    }
}

/// Logit rows (r, vocab) → (entropy, argmax) per row, with `mask` left out of both. The argmax
/// takes the first of equal maxima, as `torch.argmax` does.
fn reduce_rows(logits: &Tensor, mask: Option<u32>) -> Result<Vec<(f32, u32)>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    Ok(rows
        .into_par_iter()
        .map(|mut row| {
            if let Some(m) = mask.filter(|&m| (m as usize) < row.len()) {
                // Far below any real logit: its share of the softmax underflows to nothing
                // (an infinity would turn the entropy's Σ p·z into NaN).
                row[m as usize] = -1e4;
            }
            (score_row(&row, None).entropy, argmax(&row))
        })
        .collect())
}

/// Index of the largest value; the first one on ties.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}
