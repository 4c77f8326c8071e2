//! The probe: a small causal LM that scores every token of a text (entropy, surprisal, rank).
//!
//! - [`tokenizer`]: a `tokenizer.json`, or the tokenizer rebuilt from a GGUF model's metadata.
//! - [`model`]: GGUF or safetensors loading and the batched all-positions forward pass.
//! - [`logits`]: vocabulary-sized logit rows reduced to entropy, surprisal and rank.

pub mod logits;
pub mod model;
pub mod ops;
pub mod tokenizer;
