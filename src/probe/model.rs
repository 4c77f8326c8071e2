//! The probe model: a llama-family GGUF loaded into candle with weights dequantized to f32, and a
//! forward pass that returns next-token log-probabilities for *every* position.
//!
//! candle-transformers' `quantized_llama` returns only the last position's logits and keeps a KV
//! cache inside the model; scoring needs all positions at once and no state, so this module has its
//! own forward (no cache: one call scores a whole text). Weights are dequantized at load because
//! full-sequence prefill was measured ~4.5× faster in f32 than in Q4_1 on this CPU (DESIGN.md);
//! matrices are stored transposed so every projection is one plain matmul.

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, D};
use std::path::Path;

/// Hyper-parameters read from GGUF metadata.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub layers: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    pub context: usize,
}

struct Layer {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
}

/// A loaded model: f32 weights on one device.
pub struct Model {
    pub config: Config,
    pub device: Device,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// Output projection, transposed: (embedding, vocab).
    output_t: Tensor,
    cos: Tensor,
    sin: Tensor,
}

fn md_u32(c: &gguf_file::Content, key: &str) -> Result<usize> {
    Ok(c.metadata
        .get(key)
        .with_context(|| format!("no {key}"))?
        .to_u32()? as usize)
}

impl Model {
    /// Loads a llama-architecture GGUF; the error names the file.
    pub fn load(path: &Path, device: &Device) -> Result<Model> {
        Self::load_inner(path, device)
            .with_context(|| format!("{}: cannot load the model", path.display()))
    }

    fn load_inner(path: &Path, device: &Device) -> Result<Model> {
        let mut file = std::fs::File::open(path)?;
        let c = gguf_file::Content::read(&mut file)
            .map_err(|e| anyhow::anyhow!("not a readable GGUF file: {e}"))?;
        let arch = c
            .metadata
            .get("general.architecture")
            .map(|v| v.to_string().cloned())
            .transpose()?;
        if arch.as_deref() != Some("llama") {
            bail!("architecture {arch:?} is not supported (llama only)");
        }
        let embedding = md_u32(&c, "llama.embedding_length")?;
        let heads = md_u32(&c, "llama.attention.head_count")?;
        let config = Config {
            layers: md_u32(&c, "llama.block_count")?,
            embedding,
            heads,
            kv_heads: md_u32(&c, "llama.attention.head_count_kv")?,
            head_dim: embedding / heads,
            vocab: c
                .metadata
                .get("tokenizer.ggml.tokens")
                .map(|t| t.to_vec().map(|v| v.len()))
                .transpose()?
                .unwrap_or(0),
            rms_eps: c
                .metadata
                .get("llama.attention.layer_norm_rms_epsilon")
                .map(|v| v.to_f32())
                .transpose()?
                .unwrap_or(1e-5) as f64,
            rope_base: c
                .metadata
                .get("llama.rope.freq_base")
                .map(|v| v.to_f32())
                .transpose()?
                .unwrap_or(10_000.0),
            context: md_u32(&c, "llama.context_length")?,
        };
        let mut get = |name: &str| -> Result<Tensor> {
            let q = c
                .tensor(&mut file, name, device)
                .map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))?;
            Ok(q.dequantize(device)?.to_dtype(DType::F32)?)
        };
        let t = |w: Tensor| -> Result<Tensor> { Ok(w.t()?.contiguous()?) };
        let embed = get("token_embd.weight")?;
        let norm = get("output_norm.weight")?;
        let output_t = match get("output.weight") {
            Ok(w) => t(w)?,
            Err(_) => t(embed.clone())?, // tied embeddings
        };
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = format!("blk.{i}");
            layers.push(Layer {
                attn_norm: get(&format!("{p}.attn_norm.weight"))?,
                wq: t(get(&format!("{p}.attn_q.weight"))?)?,
                wk: t(get(&format!("{p}.attn_k.weight"))?)?,
                wv: t(get(&format!("{p}.attn_v.weight"))?)?,
                wo: t(get(&format!("{p}.attn_output.weight"))?)?,
                ffn_norm: get(&format!("{p}.ffn_norm.weight"))?,
                w_gate: t(get(&format!("{p}.ffn_gate.weight"))?)?,
                w_up: t(get(&format!("{p}.ffn_up.weight"))?)?,
                w_down: t(get(&format!("{p}.ffn_down.weight"))?)?,
            });
        }
        // Rotary tables for every position of the context.
        let half = config.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / config
                    .rope_base
                    .powf(2.0 * i as f32 / config.head_dim as f32)
            })
            .collect();
        let inv = Tensor::new(inv.as_slice(), device)?.reshape((1, half))?;
        let pos = Tensor::arange(0u32, config.context as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((config.context, 1))?;
        let angles = pos.matmul(&inv)?;
        Ok(Model {
            config,
            device: device.clone(),
            embed,
            layers,
            norm,
            output_t,
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Next-token log-probabilities at every position of `ids`: shape (len, vocab). Row `i` is the
    /// distribution over the token after `ids[..=i]`.
    pub fn log_probs(&self, ids: &[u32]) -> Result<Tensor> {
        Ok(self.log_probs_batch(&[ids])?.remove(0))
    }

    /// [`Model::log_probs`] for several texts in one forward pass. Texts are right-padded to the
    /// longest: under the causal mask a real position never attends to padding after it, so each
    /// result equals the unbatched one; padded rows are dropped.
    pub fn log_probs_batch(&self, texts: &[&[u32]]) -> Result<Vec<Tensor>> {
        let cfg = &self.config;
        let b = texts.len();
        let n = texts.iter().map(|t| t.len()).max().unwrap_or(0);
        if b == 0 || texts.iter().any(|t| t.is_empty()) || n > cfg.context {
            bail!(
                "texts of 1 to {} tokens are scored; got lengths {:?}",
                cfg.context,
                texts.iter().map(|t| t.len()).collect::<Vec<_>>()
            );
        }
        let mut padded = Vec::with_capacity(b * n);
        for t in texts {
            padded.extend_from_slice(t);
            padded.extend(std::iter::repeat_n(0u32, n - t.len()));
        }
        let ids_t = Tensor::new(padded.as_slice(), &self.device)?;
        let mut x = self
            .embed
            .index_select(&ids_t, 0)?
            .reshape((b, n, cfg.embedding))?;
        let cos = self.cos.narrow(0, 0, n)?;
        let sin = self.sin.narrow(0, 0, n)?;
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (n, n), &self.device)?;
        let group = cfg.heads / cfg.kv_heads;
        let scale = 1.0 / (cfg.head_dim as f64).sqrt();
        for l in &self.layers {
            let h = candle_nn::ops::rms_norm(&x, &l.attn_norm, cfg.rms_eps as f32)?;
            let heads = |w: &Tensor, count: usize| -> Result<Tensor> {
                Ok(h.broadcast_matmul(w)?
                    .reshape((b, n, count, cfg.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = candle_nn::rotary_emb::rope_i(&heads(&l.wq, cfg.heads)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i(&heads(&l.wk, cfg.kv_heads)?, &cos, &sin)?;
            let v = heads(&l.wv, cfg.kv_heads)?;
            // Grouped-query attention: query head i reads key/value head i / group.
            let repeat = |t: Tensor| -> Result<Tensor> {
                Ok(t.unsqueeze(2)?
                    .expand((b, cfg.kv_heads, group, n, cfg.head_dim))?
                    .reshape((b, cfg.heads, n, cfg.head_dim))?)
            };
            let (k, v) = (repeat(k)?, repeat(v)?);
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let out = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, n, cfg.embedding))?;
            x = (x + out.broadcast_matmul(&l.wo)?)?;
            let h = candle_nn::ops::rms_norm(&x, &l.ffn_norm, cfg.rms_eps as f32)?;
            let ff = (candle_nn::ops::silu(&h.broadcast_matmul(&l.w_gate)?)?
                * h.broadcast_matmul(&l.w_up)?)?;
            x = (x + ff.broadcast_matmul(&l.w_down)?)?;
        }
        let x = candle_nn::ops::rms_norm(&x, &self.norm, cfg.rms_eps as f32)?;
        let lp = candle_nn::ops::log_softmax(&x.broadcast_matmul(&self.output_t)?, D::Minus1)?;
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Ok(lp.get(i)?.narrow(0, 0, t.len())?))
            .collect()
    }
}

/// Per-position scores of one text.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScores {
    /// Entropy of the next-token distribution after each token, nats.
    pub entropy: Vec<f32>,
    /// Surprisal (−log p, nats) of each actual next token: one fewer than `entropy`.
    pub surprisal: Vec<f32>,
    /// Rank of each actual next token in its distribution (0 = the most likely).
    pub rank: Vec<u32>,
}

/// Entropy, surprisal and rank from log-probabilities of shape (len, vocab) for `ids`.
pub fn scores(log_probs: &Tensor, ids: &[u32]) -> Result<TokenScores> {
    let lp: Vec<Vec<f32>> = log_probs.to_vec2()?;
    let mut out = TokenScores {
        entropy: Vec::with_capacity(lp.len()),
        surprisal: vec![],
        rank: vec![],
    };
    for (i, row) in lp.iter().enumerate() {
        out.entropy.push(
            -row.iter()
                .map(|&l| if l.is_finite() { l.exp() * l } else { 0.0 })
                .sum::<f32>(),
        );
        if let Some(&next) = ids.get(i + 1) {
            let l = row[next as usize];
            out.surprisal.push(-l);
            out.rank.push(row.iter().filter(|&&x| x > l).count() as u32);
        }
    }
    Ok(out)
}
