//! Loading a Hugging Face `tokenizer.json` and counting tokens with it.

use anyhow::{Context, Result};
use std::path::Path;

/// A loaded tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Loads a `tokenizer.json`; the error names the file.
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!(
                    "{}: cannot load tokenizer (expected a tokenizer.json)",
                    path.display()
                )
            })?;
        Ok(Tokenizer { inner })
    }

    /// Tokens in `text`, without special tokens. A text the tokenizer rejects counts 0.
    pub fn count(&self, text: &str) -> usize {
        self.inner.encode(text, false).map(|e| e.len()).unwrap_or(0)
    }
}
