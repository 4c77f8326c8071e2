//! The probe: tokenization now; the candle entropy model is being built (the probe issue).
//!
//! [`tokenizer`] loads a `tokenizer.json` or rebuilds a GGUF model's own tokenizer from its
//! metadata; the index uses it to report span lengths in tokens.

pub mod tokenizer;
