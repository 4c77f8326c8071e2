//! The probe: a small causal LM that scores every token of a text (entropy, surprisal, rank).
//!
//! - [`tokenizer`]: a `tokenizer.json`, or the tokenizer rebuilt from a GGUF model's metadata.
//! - [`model`]: GGUF loading with f32 weights and the all-positions forward pass.
//!
//! Still to come with the probe issue: batching with padding and masks, windowing of long texts,
//! the boundary signals, `memaudit probe`, the CUDA build and the benchmark.

pub mod model;
pub mod tokenizer;
