//! Tokenizers: a Hugging Face `tokenizer.json`, or one built from a GGUF model's own metadata.
//!
//! GGUF files of the llama family carry their tokenizer (`tokenizer.ggml.*`): for byte-level BPE
//! (`tokenizer.ggml.model = "gpt2"`) the vocabulary and merges, and in `tokenizer.ggml.pre` the name
//! of the pre-tokenizer llama.cpp applies. [`Tokenizer::from_gguf`] rebuilds the same tokenizer with
//! the `tokenizers` crate, so no tokenizer.json (and no model hub) is needed. Text is tokenized as
//! plain text: control tokens such as `<|im_start|>` written inside it are not parsed as special,
//! matching llama.cpp with `parse_special = false`.

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A loaded tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

/// The pre-tokenizer (as tokenizer.json) for a `tokenizer.ggml.pre` name.
fn pre_tokenizer(pre: &str) -> Option<Value> {
    let byte_level = json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true });
    match pre {
        // llama.cpp splits every digit, then applies the GPT-2 regex.
        "smollm" => Some(json!({
            "type": "Sequence",
            "pretokenizers": [{ "type": "Digits", "individual_digits": true }, byte_level]
        })),
        "gpt2" | "default" => Some(byte_level),
        _ => None,
    }
}

fn metadata<'a>(
    content: &'a gguf_file::Content,
    key: &str,
    path: &Path,
) -> Result<&'a gguf_file::Value> {
    content
        .metadata
        .get(key)
        .with_context(|| format!("{}: no {key} in the GGUF metadata", path.display()))
}

/// The tokenizer a model is read with: `tokenizer` when given, else the GGUF model itself (its
/// metadata), else `tokenizer.json` in a safetensors checkpoint's directory (or beside the file
/// named). The one rule for `memaudit probe`, `memaudit check` and the daemon.
pub fn path_for(model: &Path, tokenizer: Option<&Path>) -> PathBuf {
    if let Some(t) = tokenizer {
        return t.to_path_buf();
    }
    if model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return model.to_path_buf();
    }
    let dir = if model.is_dir() {
        model
    } else {
        model.parent().unwrap_or(Path::new("."))
    };
    dir.join("tokenizer.json")
}

impl Tokenizer {
    /// The tokenizer of `model` ([`path_for`]).
    pub fn for_model(model: &Path, tokenizer: Option<&Path>) -> Result<Tokenizer> {
        Self::load(&path_for(model, tokenizer))
    }

    /// Loads `tokenizer.json`, or builds the tokenizer from a `.gguf` model's metadata.
    pub fn load(path: &Path) -> Result<Tokenizer> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        {
            Self::from_gguf(path)
        } else {
            Self::from_file(path)
        }
    }

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

    /// Builds the tokenizer stored in a GGUF model's metadata (byte-level BPE only).
    pub fn from_gguf(path: &Path) -> Result<Tokenizer> {
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot open model", path.display()))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{}: not a readable GGUF file", path.display()))?;
        let model = metadata(&content, "tokenizer.ggml.model", path)?
            .to_string()?
            .clone();
        if model != "gpt2" {
            bail!(
                "{}: tokenizer model {model:?} is not byte-level BPE (\"gpt2\"); pass its tokenizer.json instead",
                path.display()
            );
        }
        let pre = match content.metadata.get("tokenizer.ggml.pre") {
            Some(v) => v.to_string()?.clone(),
            None => "default".to_string(),
        };
        let Some(pre_tokenizer) = pre_tokenizer(&pre) else {
            bail!(
                "{}: pre-tokenizer {pre:?} is not supported (supported: smollm, gpt2, default); pass its tokenizer.json instead",
                path.display()
            );
        };
        let tokens = metadata(&content, "tokenizer.ggml.tokens", path)?.to_vec()?;
        let mut vocab = serde_json::Map::with_capacity(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            vocab.insert(t.to_string()?.clone(), json!(id));
        }
        let merges: Vec<Value> = metadata(&content, "tokenizer.ggml.merges", path)?
            .to_vec()?
            .iter()
            .map(|m| m.to_string().map(|s| Value::String(s.clone())))
            .collect::<candle_core::Result<_>>()?;
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges
            }
        });
        let inner: tokenizers::Tokenizer = serde_json::from_value(spec).with_context(|| {
            format!(
                "{}: the GGUF tokenizer metadata does not form a valid tokenizer",
                path.display()
            )
        })?;
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let e = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        Ok(e.get_ids().to_vec())
    }

    /// Token ids of `text` with each token's character range in `text` (`start..end`, in chars).
    /// Byte-level tokens that split one character both report that character.
    pub fn encode_with_offsets(&self, text: &str) -> Result<Vec<(u32, usize, usize)>> {
        let e = self
            .inner
            .encode_char_offsets(text, false)
            .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
        Ok(e.get_ids()
            .iter()
            .zip(e.get_offsets())
            .map(|(&id, &(a, b))| (id, a, b))
            .collect())
    }

    /// The token that starts a document, which the probe puts before every text so that the
    /// first token is predicted too: `<|endoftext|>` (GPT-2 style and SmolLM vocabularies, where
    /// it separates training documents), `<|begin_of_text|>` or `<s>`, whichever the vocabulary
    /// has; id 0 otherwise.
    pub fn document_start(&self) -> u32 {
        ["<|endoftext|>", "<|begin_of_text|>", "<s>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
            .unwrap_or(0)
    }

    /// The end-of-text token, if the vocabulary has one (`<|endoftext|>`, `</s>` or
    /// `<|end_of_text|>`): what the audit's EOS parity switch keeps out of greedy decoding.
    pub fn end_of_text(&self) -> Option<u32> {
        ["<|endoftext|>", "</s>", "<|end_of_text|>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
    }

    /// A fingerprint of the tokenizer (vocabulary, merges, pre-tokenizer): caches of token counts
    /// are keyed by it.
    pub fn fingerprint(&self) -> String {
        let json = self.inner.to_string(false).unwrap_or_default();
        blake3::hash(json.as_bytes()).to_hex()[..16].to_string()
    }

    /// Writes the tokenizer as a `tokenizer.json` (e.g. one rebuilt from a GGUF).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| anyhow::anyhow!("detokenizing: {e}"))
    }

    /// Size of the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(false)
    }

    /// Tokens in `text`, without special tokens. A text the tokenizer rejects counts 0.
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).map(|ids| ids.len()).unwrap_or(0)
    }
}
