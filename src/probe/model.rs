//! The probe model: a causal LM in candle (llama, or GPT-NeoX such as Pythia), with weights
//! dequantized to a float type, and a forward pass that scores *every* position of a batch of
//! texts.
//!
//! candle-transformers' `quantized_llama` returns only the last position's logits and keeps a KV
//! cache inside the model; scoring needs all positions at once and no state, so this module has its
//! own forward (no cache: one call scores whole texts; [`super::decode`] passes a cache when it
//! decodes). Weights are dequantized at load because a full-sequence prefill runs faster in f32
//! than through candle's quantized kernels (built for one-token decoding) on the CPU; matrices are
//! stored transposed (and q/k/v fused) so every projection is one plain matmul.
//!
//! [`super::checkpoint`] reads the weights (GGUF, or a Hugging Face safetensors checkpoint) into
//! the layout of [`Layer`]; the architectures differ only in data: the norm kind, the
//! feed-forward kind, biases, the rotary width and the residual wiring ([`Arch`]).
//!
//! [`Model::score_batch`] is the fast path: texts are packed into passes of at most
//! [`PASS_TOKENS`] tokens (bounded activations, reused allocations), padding rows are never
//! projected to the vocabulary, and the vocabulary-sized logits are reduced to entropy, surprisal
//! and rank a block of rows at a time (see [`super::logits`]). [`Model::log_probs_batch`]
//! materializes full log-softmax rows and is kept as the plain reference.

use super::checkpoint::{self, Weights};
use super::logits::{score_rows_cpu, score_rows_tensor, RowScore};
use super::ops::{CausalSoftmax, SwiGlu};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use std::path::{Path, PathBuf};

/// Upper bound on tokens (padding included) in one forward pass of [`Model::score_batch`].
pub const PASS_TOKENS: usize = 1024;
/// Rows of hidden state projected to the vocabulary at a time when scoring.
const VOCAB_BLOCK_ROWS: usize = 128;
/// Query positions per attention block on the CPU.
const QUERY_BLOCK: usize = 128;

/// How a layer's two blocks are wired into the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// llama: `x += attn(norm1(x)); x += ffn(norm2(x))`.
    Llama,
    /// GPT-NeoX: with `parallel_residual` (Pythia) `x += attn(norm1(x)) + ffn(norm2(x))`, both
    /// blocks reading the same `x`; without it, wired as llama.
    NeoX { parallel_residual: bool },
}

impl Arch {
    /// How reports name it.
    pub fn name(&self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::NeoX {
                parallel_residual: true,
            } => "gpt-neox (parallel residual)",
            Arch::NeoX { .. } => "gpt-neox",
        }
    }
}

/// Hyper-parameters, read from GGUF metadata or `config.json`.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub arch: Arch,
    pub layers: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Leading dimensions of each head that rotary embedding turns (all of them for llama; a
    /// quarter for Pythia); the rest pass through.
    pub rotary_dims: usize,
    pub vocab: usize,
    /// Epsilon of the RMSNorm (llama) or LayerNorm (GPT-NeoX).
    pub norm_eps: f64,
    pub rope_base: f32,
    pub context: usize,
}

/// Longest context a model may declare (the rotary tables are built for all of it at load).
const MAX_CONTEXT: usize = 1 << 20;

impl Config {
    /// Refuses shapes the forward cannot run (checked before any tensor is read).
    pub fn validate(&self) -> Result<()> {
        if self.layers == 0
            || self.embedding == 0
            || self.heads == 0
            || self.kv_heads == 0
            || !self.heads.is_multiple_of(self.kv_heads)
            || !self.embedding.is_multiple_of(self.heads)
            || self.head_dim != self.embedding / self.heads
            || !self.rotary_dims.is_multiple_of(2)
            || self.rotary_dims == 0
            || self.rotary_dims > self.head_dim
        {
            bail!("inconsistent attention shape: {self:?}");
        }
        if self.layers > 10_000 || self.embedding > 1 << 20 {
            bail!(
                "{} layers of width {}: not a model this loader reads",
                self.layers,
                self.embedding
            );
        }
        if self.context == 0 || self.context > MAX_CONTEXT {
            bail!(
                "context of {} positions: expected 1 to {MAX_CONTEXT}",
                self.context
            );
        }
        let eps_ok = self.norm_eps.is_finite() && self.norm_eps >= 0.0;
        let base_ok = self.rope_base.is_finite() && self.rope_base > 0.0;
        if !(eps_ok && base_ok) {
            bail!(
                "norm epsilon {} and rotary base {} must be finite and positive",
                self.norm_eps,
                self.rope_base
            );
        }
        Ok(())
    }
}

/// A normalization: RMSNorm with a weight, or LayerNorm with weight and bias.
pub(super) enum Norm {
    Rms(Tensor),
    Layer(Tensor, Tensor),
}

impl Norm {
    fn apply(&self, x: &Tensor, eps: f32) -> Result<Tensor> {
        Ok(match self {
            Norm::Rms(w) => candle_nn::ops::rms_norm(x, w, eps)?,
            Norm::Layer(w, b) => candle_nn::ops::layer_norm(x, w, b, eps)?,
        })
    }
    fn to(&self, dtype: DType, device: &Device) -> Result<Norm> {
        let put = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_device(device)?) };
        Ok(match self {
            Norm::Rms(w) => Norm::Rms(put(w)?),
            Norm::Layer(w, b) => Norm::Layer(put(w)?, put(b)?),
        })
    }
    fn tensors(&self) -> Vec<&Tensor> {
        match self {
            Norm::Rms(w) => vec![w],
            Norm::Layer(w, b) => vec![w, b],
        }
    }
}

/// A projection `x·w (+ b)`, `w` held transposed: (in, out).
pub(super) struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// From a weight stored (out, in), as checkpoints store it.
    pub(super) fn new(w_out_in: &Tensor, b: Option<Tensor>) -> Result<Linear> {
        Ok(Linear {
            w: w_out_in.t()?.contiguous()?,
            b,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.w)?;
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
    fn to(&self, dtype: DType, device: &Device) -> Result<Linear> {
        let put = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_device(device)?) };
        Ok(Linear {
            w: put(&self.w)?,
            b: self.b.as_ref().map(put).transpose()?,
        })
    }
    fn tensors(&self) -> Vec<&Tensor> {
        std::iter::once(&self.w).chain(self.b.as_ref()).collect()
    }
}

/// The feed-forward block.
pub(super) enum Ffn {
    /// llama: `down(silu(gate(x)) · up(x))`, gate and up fused side by side (`width` each).
    SwiGlu {
        gate_up: Linear,
        down: Linear,
        width: usize,
    },
    /// GPT-NeoX: `down(gelu(up(x)))`, GELU exact (erf) or the tanh approximation.
    Gelu {
        up: Linear,
        down: Linear,
        exact: bool,
    },
}

impl Ffn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Ffn::SwiGlu {
                gate_up,
                down,
                width,
            } => {
                let gu = gate_up.forward(x)?;
                let ff = if x.device().is_cpu() {
                    gu.apply_op1_no_bwd(&SwiGlu)?
                } else {
                    (candle_nn::ops::silu(&gu.narrow(1, 0, *width)?)?
                        * gu.narrow(1, *width, *width)?)?
                };
                down.forward(&ff)
            }
            Ffn::Gelu { up, down, exact } => {
                let h = up.forward(x)?;
                down.forward(&if *exact { h.gelu_erf()? } else { h.gelu()? })
            }
        }
    }
    fn to(&self, dtype: DType, device: &Device) -> Result<Ffn> {
        Ok(match self {
            Ffn::SwiGlu {
                gate_up,
                down,
                width,
            } => Ffn::SwiGlu {
                gate_up: gate_up.to(dtype, device)?,
                down: down.to(dtype, device)?,
                width: *width,
            },
            Ffn::Gelu { up, down, exact } => Ffn::Gelu {
                up: up.to(dtype, device)?,
                down: down.to(dtype, device)?,
                exact: *exact,
            },
        })
    }
    fn tensors(&self) -> Vec<&Tensor> {
        match self {
            Ffn::SwiGlu { gate_up, down, .. } => [gate_up.tensors(), down.tensors()].concat(),
            Ffn::Gelu { up, down, .. } => [up.tensors(), down.tensors()].concat(),
        }
    }
}

/// One transformer layer. `qkv` produces q, k and v side by side,
/// ((heads + 2·kv_heads)·head_dim) columns, with the rotary dimensions of q and k in
/// interleaved-pair order.
pub(super) struct Layer {
    pub attn_norm: Norm,
    pub qkv: Linear,
    pub out: Linear,
    pub ffn_norm: Norm,
    pub ffn: Ffn,
}

impl Layer {
    fn to(&self, dtype: DType, device: &Device) -> Result<Layer> {
        Ok(Layer {
            attn_norm: self.attn_norm.to(dtype, device)?,
            qkv: self.qkv.to(dtype, device)?,
            out: self.out.to(dtype, device)?,
            ffn_norm: self.ffn_norm.to(dtype, device)?,
            ffn: self.ffn.to(dtype, device)?,
        })
    }
    fn tensors(&self) -> Vec<&Tensor> {
        [
            self.attn_norm.tensors(),
            self.qkv.tensors(),
            self.out.tensors(),
            self.ffn_norm.tensors(),
            self.ffn.tensors(),
        ]
        .concat()
    }
}

/// Keys and values of every layer for the positions seen so far: per layer (k, v), each of shape
/// (b, kv_heads, positions, head_dim). Filled by a prefill, extended one position per decode step
/// (see [`super::decode`]).
pub(super) type KvCache = Vec<(Tensor, Tensor)>;

/// A loaded model on one device. Immutable after load: share one `Arc<Model>` across workers.
pub struct Model {
    pub config: Config,
    pub device: Device,
    /// Float type of weights and activations: f32 on CPU, bf16 on CUDA.
    pub dtype: DType,
    /// Where the weights came from.
    pub source: PathBuf,
    pub(super) embed: Tensor,
    layers: Vec<Layer>,
    norm: Norm,
    /// Output projection, transposed: (embedding, vocab).
    pub(super) output_t: Tensor,
    cos: Tensor,
    sin: Tensor,
}

/// The float type used on `device`.
pub fn dtype_for(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}

impl Model {
    /// Loads a model: a `.gguf` file (llama), or a safetensors checkpoint (llama or GPT-NeoX; a
    /// directory holding `config.json` and `*.safetensors`, or one `.safetensors` file beside
    /// its `config.json`). Errors name the path.
    pub fn load(path: &Path, device: &Device) -> Result<Model> {
        checkpoint::read(path)
            .and_then(|(config, w)| Self::assemble(config, w, path, device))
            .with_context(|| format!("{}: cannot load the model", path.display()))
    }

    /// Refuses, naming the path, what [`Model::load`] cannot be: a missing path, or a file that
    /// is neither `.gguf` nor `.safetensors` (a cheap check before long work starts).
    pub fn check_path(path: &Path) -> Result<()> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if !path.exists() {
            bail!("{}: no such model", path.display());
        }
        if path.is_file() && !matches!(ext.as_deref(), Some("gguf" | "safetensors")) {
            bail!(
                "{}: unknown model format: give a .gguf file or a safetensors checkpoint (a directory with config.json and *.safetensors)",
                path.display()
            );
        }
        Ok(())
    }

    fn assemble(config: Config, w: Weights, path: &Path, device: &Device) -> Result<Model> {
        config.validate()?;
        let dtype = dtype_for(device);
        let put = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_device(device)?) };
        let output = w.output.as_ref().unwrap_or(&w.embed); // tied embeddings
        let (vocab, _) = output.dims2()?;
        let layers = w
            .layers
            .iter()
            .map(|l| l.to(dtype, device))
            .collect::<Result<Vec<_>>>()?;
        // Rotary tables for every position of the context, over the rotary dimensions.
        let half = config.rotary_dims / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / config
                    .rope_base
                    .powf(2.0 * i as f32 / config.rotary_dims as f32)
            })
            .collect();
        let inv = Tensor::new(inv.as_slice(), &Device::Cpu)?.reshape((1, half))?;
        let pos = Tensor::arange(0u32, config.context as u32, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape((config.context, 1))?;
        let angles = pos.matmul(&inv)?;
        Ok(Model {
            config: Config { vocab, ..config },
            device: device.clone(),
            dtype,
            source: path.to_path_buf(),
            embed: put(&w.embed)?,
            layers,
            norm: w.norm.to(dtype, device)?,
            output_t: put(&output.t()?.contiguous()?)?,
            cos: put(&angles.cos()?)?,
            sin: put(&angles.sin()?)?,
        })
    }

    /// Weights held, as a count of numbers (a tied output projection is held, and counted, as
    /// its own copy).
    pub fn parameter_count(&self) -> usize {
        self.weight_bytes() / self.dtype.size_in_bytes()
    }

    /// Bytes held by the weights (the model's resident size, shared by every caller).
    pub fn weight_bytes(&self) -> usize {
        let n = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let layers: usize = self.layers.iter().flat_map(|l| l.tensors()).map(n).sum();
        n(&self.embed)
            + self.norm.tensors().into_iter().map(n).sum::<usize>()
            + n(&self.output_t)
            + layers
    }

    pub(super) fn check_lengths(&self, texts: &[&[u32]]) -> Result<()> {
        let n = texts.iter().map(|t| t.len()).max().unwrap_or(0);
        if texts.is_empty() || texts.iter().any(|t| t.is_empty()) || n > self.config.context {
            bail!(
                "texts of 1 to {} tokens are scored; got lengths {:?}",
                self.config.context,
                texts.iter().map(|t| t.len()).collect::<Vec<_>>()
            );
        }
        if let Some(&bad) = texts
            .iter()
            .flat_map(|t| t.iter())
            .find(|&&id| id as usize >= self.config.vocab)
        {
            bail!(
                "token id {bad} is outside the vocabulary ({})",
                self.config.vocab
            );
        }
        Ok(())
    }

    /// Final hidden states (after the output norm) of right-padded texts: shape (b·n, embedding),
    /// row `i·n + j` for position `j` of text `i`. Under the causal mask a real position never
    /// attends to padding after it, so padding does not change real rows.
    fn hidden(&self, texts: &[&[u32]]) -> Result<(Tensor, usize)> {
        let b = texts.len();
        let n = texts.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut padded = Vec::with_capacity(b * n);
        for t in texts {
            padded.extend_from_slice(t);
            padded.extend(std::iter::repeat_n(0u32, n - t.len()));
        }
        let ids = Tensor::new(padded.as_slice(), &self.device)?;
        Ok((self.forward_layers(&ids, b, n, None)?, n))
    }

    /// The transformer over token ids `ids` (b·n of them, text-major), returning the final hidden
    /// states (after the output norm), shape (b·n, embedding).
    ///
    /// Without a cache the `n` positions are 0..n under the causal mask. With one, the `n`
    /// positions follow the cache's (empty: a prefill, causal as above; else `n` must be 1, one
    /// decode step attending to every cached position), and their keys and values are appended.
    pub(super) fn forward_layers(
        &self,
        ids: &Tensor,
        b: usize,
        n: usize,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let start = match cache.as_deref() {
            Some(c) if !c.is_empty() => c[0].0.dim(2)?,
            _ => 0,
        };
        if start > 0 && n != 1 {
            bail!("a cached forward extends by one position at a time, got {n}");
        }
        if start + n > cfg.context {
            bail!(
                "{} positions exceed the model's context of {}",
                start + n,
                cfg.context
            );
        }
        let mut x = self.embed.index_select(ids, 0)?; // (b·n, emb)
        let cos = self.cos.narrow(0, start, n)?;
        let sin = self.sin.narrow(0, start, n)?;
        let (hd, kv, heads) = (cfg.head_dim, cfg.kv_heads, cfg.heads);
        let eps = cfg.norm_eps as f32;
        // The CPU attention masks inside its fused softmax; other devices add this mask. A
        // decode step sees every earlier position and needs none.
        let mask = if self.device.is_cpu() || start > 0 {
            None
        } else {
            Some(causal_mask(heads / kv, n, &self.device, self.dtype)?)
        };
        for (i, l) in self.layers.iter().enumerate() {
            let h = l.attn_norm.apply(&x, eps)?;
            let qkv = l.qkv.forward(&h)?; // (b·n, (heads + 2kv)·hd)
            let split = |first: usize, count: usize| -> Result<Tensor> {
                Ok(qkv
                    .narrow(1, first * hd, count * hd)?
                    .reshape((b, n, count, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = self.rotary(&split(0, heads)?, &cos, &sin)?;
            let mut k = self.rotary(&split(heads, kv)?, &cos, &sin)?;
            let mut v = split(heads + kv, kv)?;
            if let Some(cache) = cache.as_deref_mut() {
                if start > 0 {
                    let (pk, pv) = &cache[i];
                    k = Tensor::cat(&[pk, &k], 2)?;
                    v = Tensor::cat(&[pv, &v], 2)?;
                    cache[i] = (k.clone(), v.clone());
                } else {
                    cache.push((k.clone(), v.clone()));
                }
            }
            let att = if start > 0 {
                attention_step(&q, &k, &v)?
            } else {
                attention(&q, &k, &v, mask.as_ref())?
            } // (b, heads, n, hd)
            .transpose(1, 2)?
            .reshape((b * n, cfg.embedding))?;
            let att = l.out.forward(&att)?;
            x = match cfg.arch {
                Arch::NeoX {
                    parallel_residual: true,
                } => {
                    let ff = l.ffn.forward(&l.ffn_norm.apply(&x, eps)?)?;
                    ((x + att)? + ff)?
                }
                _ => {
                    let x = (x + att)?;
                    let ff = l.ffn.forward(&l.ffn_norm.apply(&x, eps)?)?;
                    (x + ff)?
                }
            };
        }
        self.norm.apply(&x, eps)
    }

    /// Interleaved rotary embedding of q or k, (b, heads, n, head_dim), over the first
    /// [`Config::rotary_dims`] of each head; the rest pass through.
    fn rotary(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (r, hd) = (self.config.rotary_dims, self.config.head_dim);
        if r == hd {
            return Ok(candle_nn::rotary_emb::rope_i(x, cos, sin)?);
        }
        let turned = candle_nn::rotary_emb::rope_i(&x.narrow(3, 0, r)?.contiguous()?, cos, sin)?;
        let rest = x.narrow(3, r, hd - r)?.contiguous()?;
        // Contiguous parts concatenate into a contiguous result (the cache and the matmuls of
        // attention need one).
        Ok(Tensor::cat(&[&turned, &rest], 3)?.contiguous()?)
    }

    /// Next-token log-probabilities at every position of `ids`: shape (len, vocab). Row `i` is the
    /// distribution over the token after `ids[..=i]`.
    pub fn log_probs(&self, ids: &[u32]) -> Result<Tensor> {
        Ok(self.log_probs_batch(&[ids])?.remove(0))
    }

    /// [`Model::log_probs`] for several texts in one forward pass (right padding; padded rows are
    /// dropped). Materializes (b·n, vocab) floats: the reference path, for tests and small inputs.
    pub fn log_probs_batch(&self, texts: &[&[u32]]) -> Result<Vec<Tensor>> {
        self.check_lengths(texts)?;
        let (h, n) = self.hidden(texts)?;
        let lp = candle_nn::ops::log_softmax(
            &h.matmul(&self.output_t)?.to_dtype(DType::F32)?,
            D::Minus1,
        )?;
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Ok(lp.narrow(0, i * n, t.len())?))
            .collect()
    }

    /// Entropy, surprisal and rank at every position of every text: the fast path. Texts are
    /// grouped into passes of at most [`PASS_TOKENS`] padded tokens (a longer text is a pass of its
    /// own), sorted by length so padding is small; results come back in the input order.
    pub fn score_batch(&self, texts: &[&[u32]]) -> Result<Vec<TokenScores>> {
        self.check_lengths(texts)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut out: Vec<Option<TokenScores>> = vec![None; texts.len()];
        let mut i = 0;
        while i < order.len() {
            let n = texts[order[i]].len();
            let take = (PASS_TOKENS / n).max(1).min(order.len() - i);
            let pass: Vec<&[u32]> = order[i..i + take].iter().map(|&k| texts[k]).collect();
            for (k, s) in order[i..i + take].iter().zip(self.score_pass(&pass)?) {
                out[*k] = Some(s);
            }
            i += take;
        }
        Ok(out
            .into_iter()
            .map(|s| s.expect("every text scored"))
            .collect())
    }

    /// [`Model::score_batch`] for one pass: one forward, then the vocabulary projection and the
    /// reduction a block of real (non-padding) rows at a time.
    fn score_pass(&self, texts: &[&[u32]]) -> Result<Vec<TokenScores>> {
        let (h, n) = self.hidden(texts)?;
        // Real rows only, and each row's actual next token (None at a text's last position).
        let mut rows = Vec::new();
        let mut next = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            for j in 0..t.len() {
                rows.push((i * n + j) as u32);
                next.push(t.get(j + 1).copied());
            }
        }
        let h = h.index_select(&Tensor::new(rows.as_slice(), &self.device)?, 0)?;
        let mut scored: Vec<RowScore> = Vec::with_capacity(rows.len());
        for start in (0..rows.len()).step_by(VOCAB_BLOCK_ROWS) {
            let len = VOCAB_BLOCK_ROWS.min(rows.len() - start);
            let logits = h.narrow(0, start, len)?.matmul(&self.output_t)?;
            let targets = &next[start..start + len];
            if self.device.is_cpu() {
                scored.extend(score_rows_cpu(&logits, targets)?);
            } else {
                scored.extend(score_rows_tensor(&logits, targets)?);
            }
        }
        let mut it = scored.into_iter();
        Ok(texts
            .iter()
            .map(|t| {
                let mut s = TokenScores::with_capacity(t.len());
                for r in it.by_ref().take(t.len()) {
                    s.entropy.push(r.entropy);
                    if let Some((surprisal, rank)) = r.target {
                        s.surprisal.push(surprisal);
                        s.rank.push(rank);
                    }
                }
                s
            })
            .collect())
    }
}

/// Causal grouped-query attention: q (b, heads, n, hd), k and v (b, kv_heads, n, hd) →
/// (b, heads, n, hd). The `group` query heads sharing a key/value head are stacked into one
/// matrix, so keys are never copied per head. On the CPU queries go in blocks of
/// [`QUERY_BLOCK`] positions, each against only the keys it can see (about half the work of
/// the full square at 512 tokens), with the fused [`CausalSoftmax`] (`mask` = None); elsewhere
/// one softmax over the full square with `mask` from [`causal_mask`], built once per pass.
fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, heads, n, hd) = q.dims4()?;
    let kv = k.dim(1)?;
    let group = heads / kv;
    let scale = 1.0 / (hd as f64).sqrt();
    if let Some(mask) = mask {
        let q = q.reshape((b, kv, group * n, hd))?;
        let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        return Ok(att.matmul(v)?.reshape((b, heads, n, hd))?);
    }
    let q5 = q.reshape((b, kv, group, n, hd))?;
    let mut blocks = Vec::with_capacity(n.div_ceil(QUERY_BLOCK));
    for first in (0..n).step_by(QUERY_BLOCK) {
        let len = QUERY_BLOCK.min(n - first);
        let seen = first + len;
        let qb = q5
            .narrow(3, first, len)?
            .contiguous()?
            .reshape((b, kv, group * len, hd))?;
        let kb = k.narrow(2, 0, seen)?;
        let vb = v.narrow(2, 0, seen)?;
        let att = qb.matmul(&kb.t()?)?.apply_op1_no_bwd(&CausalSoftmax {
            scale: scale as f32,
            first_position: first,
            period: len,
        })?;
        blocks.push(att.matmul(&vb)?.reshape((b, kv, group, len, hd))?);
    }
    Ok(Tensor::cat(&blocks, 3)?.reshape((b, heads, n, hd))?)
}

/// Attention of one new position per text to every cached one: q (b, heads, 1, hd), k and v
/// (b, kv_heads, t, hd) → (b, heads, 1, hd). No mask: the new position sees all of the past.
fn attention_step(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, heads, _, hd) = q.dims4()?;
    let kv = k.dim(1)?;
    let q = q.reshape((b, kv, heads / kv, hd))?;
    let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    Ok(att.matmul(v)?.reshape((b, heads, 1, hd))?)
}

/// The additive causal mask for `group` stacked query heads over `n` positions: shape
/// (group·n, n), row `r` is position `r % n` and sees keys `0..=r % n`.
fn causal_mask(group: usize, n: usize, device: &Device, dtype: DType) -> Result<Tensor> {
    let mask: Vec<f32> = (0..group * n)
        .flat_map(|r| (0..n).map(move |j| if j > r % n { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (group * n, n), device)?.to_dtype(dtype)?)
}

/// Per-position scores of one text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenScores {
    /// Entropy of the next-token distribution after each token, nats.
    pub entropy: Vec<f32>,
    /// Surprisal (−log p, nats) of each actual next token: one fewer than `entropy`.
    pub surprisal: Vec<f32>,
    /// Rank of each actual next token in its distribution (0 = the most likely).
    pub rank: Vec<u32>,
}

impl TokenScores {
    fn with_capacity(n: usize) -> TokenScores {
        TokenScores {
            entropy: Vec::with_capacity(n),
            surprisal: Vec::with_capacity(n.saturating_sub(1)),
            rank: Vec::with_capacity(n.saturating_sub(1)),
        }
    }
}

/// Entropy, surprisal and rank from log-probabilities of shape (len, vocab) for `ids` (the
/// reference for [`Model::score_batch`]).
pub fn scores(log_probs: &Tensor, ids: &[u32]) -> Result<TokenScores> {
    let lp: Vec<Vec<f32>> = log_probs.to_dtype(DType::F32)?.to_vec2()?;
    let mut out = TokenScores::with_capacity(lp.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_attention_equals_the_masked_square() {
        let dev = Device::Cpu;
        for n in [1usize, 5, 128, 129, 300] {
            let q = Tensor::randn(0f32, 1.0, (2, 6, n, 8), &dev).unwrap();
            let k = Tensor::randn(0f32, 1.0, (2, 2, n, 8), &dev).unwrap();
            let v = Tensor::randn(0f32, 1.0, (2, 2, n, 8), &dev).unwrap();
            let a = attention(&q, &k, &v, None).unwrap();
            let mask = causal_mask(3, n, &dev, DType::F32).unwrap();
            let b = attention(&q, &k, &v, Some(&mask)).unwrap();
            let worst = crate::probe::ops::tests::max_abs_diff(&a, &b);
            assert!(worst < 1e-5, "n = {n}: {worst}");
        }
    }
}
