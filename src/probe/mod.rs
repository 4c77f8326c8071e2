//! The probe: a small causal LM that scores every token of a text (entropy, surprisal, rank),
//! and the boundary signals that read recitation from those scores.
//!
//! - [`scoring`]: [`Probe`], texts in, per-token scores and summaries out (the entry point).
//! - [`boundary`]: entropy at the edges of verbatim spans, unexplained low-entropy runs, score.
//! - [`decode`]: greedy continuation with a KV cache (the audit's memorization score).
//! - [`window`]: overlapping windows for texts longer than one pass.
//! - [`model`]: the model (llama or GPT-NeoX) and its batched all-positions forward pass.
//! - [`checkpoint`]: reading weights from a GGUF file or a safetensors checkpoint.
//! - [`logits`]: vocabulary-sized logit rows reduced to entropy, surprisal and rank.
//! - [`ops`]: fused CPU kernels (causal softmax, SwiGLU) used by the forward pass.
//! - [`tokenizer`]: a `tokenizer.json`, or the tokenizer rebuilt from a GGUF model's metadata.
//! - [`device`]: CPU or CUDA, chosen once.

// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod boundary;
pub mod checkpoint;
pub mod decode;
pub mod device;
pub mod logits;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod model;
pub mod ops;
pub mod scoring;
pub mod tokenizer;
pub mod window;

pub use scoring::{Probe, ProbeOptions, TextScore, Token};

use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

/// Loads a model and its tokenizer ([`tokenizer::path_for`]) on `device` and wraps them in a
/// [`Probe`].
pub fn load(
    model: &Path,
    tokenizer: Option<&Path>,
    device: &candle_core::Device,
    options: ProbeOptions,
) -> Result<Probe> {
    let m = model::Model::load(model, device)?;
    let t = tokenizer::Tokenizer::for_model(model, tokenizer)?;
    Probe::new(Arc::new(m), Arc::new(t), options)
}

/// File name of the default probe model (SmolLM2-135M-Instruct, Q4_1), installed by
/// `scripts/fetch-model.sh`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where `scripts/fetch-model.sh` puts the default model: `$MEMAUDIT_MODEL_DIR`, else
/// `~/.cache/memaudit/models`.
pub fn default_model_path() -> std::path::PathBuf {
    std::env::var_os("MEMAUDIT_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .unwrap_or_default()
                .join(".cache/memaudit/models")
        })
        .join(DEFAULT_MODEL_FILE)
}
