//! Reading model weights from disk into the one layout the forward pass runs ([`Weights`]):
//! a GGUF file (llama architecture: the default model), or a Hugging Face safetensors checkpoint
//! (a directory with `config.json` and `*.safetensors`) of a llama model or a GPT-NeoX model
//! (Pythia, the family of the memorization paper).
//!
//! Every loader hands [`super::model::Model::assemble`] the same thing: f32 CPU tensors with
//! matrices already transposed to (in, out), q/k/v fused in that order, and q/k rows of the
//! rotary dimensions in the interleaved-pair order llama.cpp uses, so one forward (with
//! interleaved RoPE) serves all three sources. What differs between architectures is data, not
//! code paths: [`Arch`] (residual wiring), [`Norm`] (RMSNorm or LayerNorm with bias), [`Ffn`]
//! (SwiGLU or GELU), biases present or not, and the rotary width.

use super::model::{Arch, Config, Ffn, Layer, Linear, Norm};
use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Weights by role, f32 on the CPU, in the layout [`Layer`] documents.
pub(super) struct Weights {
    pub embed: Tensor,
    pub norm: Norm,
    /// The output projection, (vocab, embedding) as stored; None when tied to `embed`.
    pub output: Option<Tensor>,
    pub layers: Vec<Layer>,
}

/// Reads `path`: a `.gguf` file, else a safetensors checkpoint.
pub(super) fn read(path: &Path) -> Result<(Config, Weights)> {
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if is_gguf {
        read_gguf(path)
    } else {
        read_safetensors(path)
    }
}

fn md_u32(c: &gguf_file::Content, key: &str) -> Result<usize> {
    Ok(c.metadata
        .get(key)
        .with_context(|| format!("no {key}"))?
        .to_u32()? as usize)
}

fn md_f32(c: &gguf_file::Content, key: &str) -> Result<Option<f32>> {
    Ok(c.metadata.get(key).map(|v| v.to_f32()).transpose()?)
}

fn read_gguf(path: &Path) -> Result<(Config, Weights)> {
    let mut file = std::fs::File::open(path)?;
    let c = gguf_file::Content::read(&mut file)
        .map_err(|e| anyhow::anyhow!("not a readable GGUF file: {e}"))?;
    let arch = c
        .metadata
        .get("general.architecture")
        .map(|v| v.to_string().cloned())
        .transpose()?;
    if arch.as_deref() != Some("llama") {
        bail!("GGUF architecture {arch:?} is not supported (llama only; give GPT-NeoX models as a safetensors checkpoint)");
    }
    let embedding = md_u32(&c, "llama.embedding_length")?;
    let heads = md_u32(&c, "llama.attention.head_count")?;
    let config = Config {
        arch: Arch::Llama,
        layers: md_u32(&c, "llama.block_count")?,
        embedding,
        heads,
        kv_heads: md_u32(&c, "llama.attention.head_count_kv")?,
        head_dim: embedding / heads.max(1),
        rotary_dims: embedding / heads.max(1),
        vocab: 0, // the output projection's rows, set in `assemble`
        norm_eps: md_f32(&c, "llama.attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5) as f64,
        rope_base: md_f32(&c, "llama.rope.freq_base")?.unwrap_or(10_000.0),
        context: md_u32(&c, "llama.context_length")?,
    };
    config.validate()?;
    // Dequantize on the CPU in f32; `assemble` moves them.
    let mut get = |name: &str| -> Result<Tensor> {
        let q = c
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))?;
        Ok(q.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?)
    };
    let layers = llama_layers(&config, "blk", &GGUF_LLAMA, false, &mut get)?;
    let w = Weights {
        embed: get("token_embd.weight")?,
        norm: Norm::Rms(get("output_norm.weight")?),
        output: get("output.weight").ok(),
        layers,
    };
    Ok((config, w))
}

/// Tensor names of a llama layer (`{prefix}.{i}.{name}.weight`) in GGUF and Hugging Face
/// checkpoints, in the order attention norm, q, k, v, output, feed-forward norm, gate, up, down.
const GGUF_LLAMA: [&str; 9] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];
const HF_LLAMA: [&str; 9] = [
    "input_layernorm",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "post_attention_layernorm",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

/// Every llama layer, read by `names`; `rotate_half` when q/k rows are stored in Hugging Face's
/// rotate-half order (reordered here into interleaved pairs; GGUF stores them interleaved).
fn llama_layers(
    config: &Config,
    prefix: &str,
    names: &[&str; 9],
    rotate_half: bool,
    get: &mut impl FnMut(&str) -> Result<Tensor>,
) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for i in 0..config.layers {
        let mut t = |k: usize| get(&format!("{prefix}.{i}.{}.weight", names[k]));
        let [norm1, q, k, v, o, norm2, gate, up, down] = [
            t(0)?,
            t(1)?,
            t(2)?,
            t(3)?,
            t(4)?,
            t(5)?,
            t(6)?,
            t(7)?,
            t(8)?,
        ];
        let (q, k) = if rotate_half {
            let hd = config.head_dim;
            (
                interleave_rope_rows(&q, config.heads, hd)?,
                interleave_rope_rows(&k, config.kv_heads, hd)?,
            )
        } else {
            (q, k)
        };
        layers.push(Layer {
            attn_norm: Norm::Rms(norm1),
            qkv: Linear::new(&Tensor::cat(&[q, k, v], 0)?, None)?,
            out: Linear::new(&o, None)?,
            ffn_norm: Norm::Rms(norm2),
            ffn: Ffn::SwiGlu {
                width: gate.dims2()?.0,
                gate_up: Linear::new(&Tensor::cat(&[gate, up], 0)?, None)?,
                down: Linear::new(&down, None)?,
            },
        });
    }
    Ok(layers)
}

/// `config.json` of a checkpoint, with the path for errors.
struct HfConfig {
    path: PathBuf,
    json: serde_json::Value,
}

impl HfConfig {
    fn get(&self, key: &str) -> Option<&serde_json::Value> {
        // transformers 5 moved rope settings under `rope_parameters`.
        self.json
            .get(key)
            .filter(|v| !v.is_null())
            .or_else(|| self.json.get("rope_parameters").and_then(|r| r.get(key)))
    }
    fn num(&self, key: &str) -> Result<f64> {
        self.get(key)
            .and_then(|v| v.as_f64())
            .with_context(|| format!("{}: no number {key}", self.path.display()))
    }
    fn num_or(&self, keys: &[&str], default: f64) -> f64 {
        keys.iter()
            .find_map(|k| self.get(k).and_then(|v| v.as_f64()))
            .unwrap_or(default)
    }
    fn flag(&self, key: &str, default: bool) -> bool {
        self.get(key).and_then(|v| v.as_bool()).unwrap_or(default)
    }
}

fn read_safetensors(path: &Path) -> Result<(Config, Weights)> {
    let (dir, files) = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        (path.to_path_buf(), files)
    } else {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, vec![path.to_path_buf()])
    };
    if files.is_empty() {
        bail!("not a .gguf file, and no *.safetensors in the directory");
    }
    let cfg_path = dir.join("config.json");
    let json = serde_json::from_slice(
        &std::fs::read(&cfg_path).with_context(|| format!("{}", cfg_path.display()))?,
    )
    .with_context(|| format!("{}: not JSON", cfg_path.display()))?;
    let cfg = HfConfig {
        path: cfg_path,
        json,
    };
    let mut all: HashMap<String, Tensor> = HashMap::new();
    for f in &files {
        let t = candle_core::safetensors::load(f, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        all.extend(t);
    }
    let mut get = |name: &str| -> Result<Tensor> {
        Ok(all
            .remove(name)
            .with_context(|| format!("no tensor {name} in {}", dir.display()))?
            .to_dtype(DType::F32)?)
    };
    match cfg.json["model_type"].as_str().unwrap_or("") {
        "llama" => read_hf_llama(&cfg, &mut get),
        "gpt_neox" => read_hf_neox(&cfg, &mut get),
        other => bail!(
            "{}: model_type {other:?} is not supported (llama, gpt_neox)",
            cfg.path.display()
        ),
    }
}

fn read_hf_llama(
    cfg: &HfConfig,
    get: &mut impl FnMut(&str) -> Result<Tensor>,
) -> Result<(Config, Weights)> {
    let embedding = cfg.num("hidden_size")? as usize;
    let heads = cfg.num("num_attention_heads")? as usize;
    let kv_heads = cfg.num_or(&["num_key_value_heads"], heads as f64) as usize;
    let head_dim = embedding / heads.max(1);
    let config = Config {
        arch: Arch::Llama,
        layers: cfg.num("num_hidden_layers")? as usize,
        embedding,
        heads,
        kv_heads,
        head_dim,
        rotary_dims: head_dim,
        vocab: 0, // the output projection's rows, set in `assemble`
        norm_eps: cfg.num_or(&["rms_norm_eps"], 1e-5),
        rope_base: cfg.num_or(&["rope_theta"], 10_000.0) as f32,
        context: cfg.num("max_position_embeddings")? as usize,
    };
    config
        .validate()
        .with_context(|| cfg.path.display().to_string())?;
    let layers = llama_layers(&config, "model.layers", &HF_LLAMA, true, get)?;
    let w = Weights {
        embed: get("model.embed_tokens.weight")?,
        norm: Norm::Rms(get("model.norm.weight")?),
        output: get("lm_head.weight").ok(),
        layers,
    };
    Ok((config, w))
}

/// GPT-NeoX (Pythia): LayerNorm with bias, biased projections, rotary on the first
/// `rotary_pct` of each head in rotate-half order, GELU, and (Pythia's setting) the parallel
/// residual `x + attn(ln1(x)) + mlp(ln2(x))`.
fn read_hf_neox(
    cfg: &HfConfig,
    get: &mut impl FnMut(&str) -> Result<Tensor>,
) -> Result<(Config, Weights)> {
    let embedding = cfg.num("hidden_size")? as usize;
    let heads = cfg.num("num_attention_heads")? as usize;
    let head_dim = embedding / heads.max(1);
    let pct = cfg.num_or(&["rotary_pct", "partial_rotary_factor"], 1.0);
    // As transformers does: int(head_size * rotary_pct).
    let rotary_dims = (head_dim as f64 * pct) as usize;
    let act = cfg
        .get("hidden_act")
        .and_then(|v| v.as_str())
        .unwrap_or("gelu");
    let exact = match act {
        "gelu" => true,
        "gelu_new" | "gelu_fast" | "gelu_pytorch_tanh" => false,
        other => bail!(
            "{}: hidden_act {other:?} is not supported (gelu, gelu_new, gelu_fast, gelu_pytorch_tanh)",
            cfg.path.display()
        ),
    };
    // transformers' GPTNeoXConfig.attention_bias (default true): q/k/v and the output
    // projection carry biases.
    let attention_bias = cfg.flag("attention_bias", true);
    let config = Config {
        arch: Arch::NeoX {
            parallel_residual: cfg.flag("use_parallel_residual", true),
        },
        layers: cfg.num("num_hidden_layers")? as usize,
        embedding,
        heads,
        kv_heads: heads,
        head_dim,
        rotary_dims,
        vocab: 0, // the output projection's rows, set in `assemble`
        norm_eps: cfg.num_or(&["layer_norm_eps"], 1e-5),
        rope_base: cfg.num_or(&["rotary_emb_base", "rope_theta"], 10_000.0) as f32,
        context: cfg.num("max_position_embeddings")? as usize,
    };
    config
        .validate()
        .with_context(|| cfg.path.display().to_string())?;
    let mut layers = Vec::new();
    for i in 0..config.layers {
        let mut t = |n: &str| get(&format!("gpt_neox.layers.{i}.{n}"));
        // Stored per head as [q, k, v] (rows: heads × 3 × head_dim); regroup to all q, all k,
        // all v, and put the rotary rows of q and k in interleaved order.
        let regroup = |w: &Tensor| -> Result<Tensor> {
            let inp = w.elem_count() / (3 * embedding);
            let w = w.reshape((heads, 3, head_dim, inp))?;
            let part = |j: usize| -> Result<Tensor> {
                Ok(w.narrow(1, j, 1)?.reshape((heads * head_dim, inp))?)
            };
            let q = interleave_rope_rows(&part(0)?, heads, rotary_dims)?;
            let k = interleave_rope_rows(&part(1)?, heads, rotary_dims)?;
            Ok(Tensor::cat(&[q, k, part(2)?], 0)?)
        };
        let qkv_w = regroup(&t("attention.query_key_value.weight")?)?;
        let qkv_b = if attention_bias {
            let b = t("attention.query_key_value.bias")?.unsqueeze(1)?;
            Some(regroup(&b)?.squeeze(1)?)
        } else {
            None
        };
        let norm = |t: &mut dyn FnMut(&str) -> Result<Tensor>, n: &str| -> Result<Norm> {
            Ok(Norm::Layer(
                t(&format!("{n}.weight"))?,
                t(&format!("{n}.bias"))?,
            ))
        };
        let linear = |t: &mut dyn FnMut(&str) -> Result<Tensor>, n: &str, bias: bool| {
            let b = if bias {
                Some(t(&format!("{n}.bias"))?)
            } else {
                None
            };
            Linear::new(&t(&format!("{n}.weight"))?, b)
        };
        layers.push(Layer {
            attn_norm: norm(&mut t, "input_layernorm")?,
            qkv: Linear::new(&qkv_w, qkv_b)?,
            out: linear(&mut t, "attention.dense", attention_bias)?,
            ffn_norm: norm(&mut t, "post_attention_layernorm")?,
            ffn: Ffn::Gelu {
                up: linear(&mut t, "mlp.dense_h_to_4h", true)?,
                down: linear(&mut t, "mlp.dense_4h_to_h", true)?,
                exact,
            },
        });
    }
    let w = Weights {
        embed: get("gpt_neox.embed_in.weight")?,
        norm: Norm::Layer(
            get("gpt_neox.final_layer_norm.weight")?,
            get("gpt_neox.final_layer_norm.bias")?,
        ),
        output: get("embed_out.weight").ok(),
        layers,
    };
    Ok((config, w))
}

/// Hugging Face q/k projection rows (per head of `head_dim` rows, the first `rotary` of them
/// rotate-half ordered: the first halves of each rotary pair, then the second halves) with the
/// rotary rows reordered into llama.cpp's interleaved pairs, as its converter does; the rows
/// past `rotary` (GPT-NeoX's partial rotary) stay as they are.
pub(super) fn interleave_rope_rows(w: &Tensor, heads: usize, rotary: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    let head_dim = out / heads;
    let w = w.reshape((heads, head_dim, inp))?;
    let rot = w
        .narrow(1, 0, rotary)?
        .reshape((heads, 2, rotary / 2, inp))?
        .transpose(1, 2)?
        .reshape((heads, rotary, inp))?;
    let w = if rotary < head_dim {
        Tensor::cat(&[&rot, &w.narrow(1, rotary, head_dim - rotary)?], 1)?
    } else {
        rot
    };
    Ok(w.reshape((out, inp))?)
}

/// The inverse of [`interleave_rope_rows`] over whole heads: llama.cpp's q/k row order back to
/// Hugging Face's (used to write test checkpoints from the GGUF).
pub fn rotate_half_rope_rows(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (out, inp) = w.dims2()?;
    Ok(w.reshape((heads, out / heads / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_is_undone_by_rotate_half_and_leaves_the_pass_through_rows() {
        let w = Tensor::arange(0f32, 2.0 * 8.0 * 3.0, &Device::Cpu)
            .unwrap()
            .reshape((16, 3))
            .unwrap();
        let full = interleave_rope_rows(&w, 2, 8).unwrap();
        let back = rotate_half_rope_rows(&full, 2).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
        // Partial: rows 0..4 of each head interleave (0,2,1,3), rows 4..8 stay.
        let part = interleave_rope_rows(&w, 2, 4).unwrap();
        let first: Vec<f32> = part
            .to_vec2::<f32>()
            .unwrap()
            .iter()
            .map(|r| r[0])
            .collect();
        let row = |i: usize| (i * 3) as f32;
        let want: Vec<f32> = [0, 2, 1, 3, 4, 5, 6, 7, 8, 10, 9, 11, 12, 13, 14, 15]
            .into_iter()
            .map(row)
            .collect();
        assert_eq!(first, want);
    }
}
