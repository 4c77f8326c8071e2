//! The rows an audit scores: token windows of `C + K` tokens, each a context and its true
//! continuation, drawn with a seeded generator.
//!
//! Two sources:
//! - [`Windows::from_index`]: windows at random places inside the index's documents. A place is a
//!   byte of the corpus drawn uniformly (so long documents weigh as much as their length, like
//!   rows of a training stream), moved back to the start of its word, and read from there. Each
//!   model reads the same place with its own tokenizer, so models with different vocabularies
//!   are scored on the same text and their rows can be joined.
//! - [`Windows::from_token_file`]: fixed-length rows of token ids in a flat little-endian file
//!   (`u16` or `u32`), the way the Pythia training stream is stored; a row's first `C + K` tokens
//!   are used, as the paper's authors did.

use crate::index::Index;
use crate::probe::tokenizer::Tokenizer;
use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where a row comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A place in an indexed document: its global id and a byte offset in its normalized text.
    Document {
        /// Global document id (shard's first document + local index).
        doc: u64,
        /// Byte offset inside the document's text.
        offset: u64,
    },
    /// Row `row` of a token file.
    TokenRow {
        /// The row's index in the file.
        row: u64,
    },
}

/// Rows of one row set: the same places, tokenized for every model.
#[derive(Debug, Clone)]
pub struct Windows {
    /// Where each row comes from.
    pub origins: Vec<Origin>,
    /// `tokens[m][r]`: row `r` as model `m` tokenizes it, `len` tokens.
    pub tokens: Vec<Vec<Vec<u32>>>,
    /// Places drawn and refused (too little text after them) while sampling.
    pub refused: usize,
}

/// Extra tokens a window must have after its `len`, unless it reaches the end of its document:
/// a slice is tokenized, and its last tokens may differ from the whole document's.
const MARGIN_TOKENS: usize = 8;
/// Bytes of text read per wanted token (doubled once when too short).
const BYTES_PER_TOKEN: usize = 12;

impl Windows {
    /// `n` windows of `len` tokens from the documents of `index`, tokenized by each of
    /// `tokenizers`. Fails when no place in the corpus has `len` tokens after it; returns fewer
    /// than `n` rows (the caller warns) when places are rare.
    pub fn from_index(
        index: &Index,
        tokenizers: &[&Tokenizer],
        n: usize,
        len: usize,
        seed: u64,
    ) -> Result<Windows> {
        let sizes: Vec<u64> = index.shards.iter().map(|s| s.text().len() as u64).collect();
        let total: u64 = sizes.iter().sum();
        if total == 0 {
            bail!("{}: the index holds no text", index.dir.display());
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Windows {
            origins: Vec::with_capacity(n),
            tokens: vec![Vec::with_capacity(n); tokenizers.len()],
            refused: 0,
        };
        let mut seen = HashSet::new();
        let attempts = 20 * n + 1000;
        for _ in 0..attempts {
            if out.origins.len() == n {
                break;
            }
            let mut pos = rng.random_range(0..total);
            let mut shard = 0;
            while pos >= sizes[shard] {
                pos -= sizes[shard];
                shard += 1;
            }
            let s = &index.shards[shard];
            let Some(at) = s.locate_doc(pos) else {
                out.refused += 1;
                continue;
            };
            let text = s.doc_text(at.local);
            let Some(offset) = word_start(text, at.offset as usize) else {
                out.refused += 1;
                continue;
            };
            let origin = Origin::Document {
                doc: s.entry.first_doc + at.local,
                offset: offset as u64,
            };
            if seen.contains(&origin) {
                continue;
            }
            match window(&text[offset..], tokenizers, len)? {
                Some(rows) => {
                    seen.insert(origin.clone());
                    out.origins.push(origin);
                    for (m, r) in rows.into_iter().enumerate() {
                        out.tokens[m].push(r);
                    }
                }
                None => out.refused += 1,
            }
        }
        if out.origins.is_empty() {
            bail!(
                "no place in the corpus of {} has {len} tokens after it ({} tried): use a shorter \
                 --context or --continuation, or a corpus of longer documents",
                index.dir.display(),
                out.refused
            );
        }
        Ok(out)
    }

    /// `n` distinct rows (or all, if fewer) of the token file `path` (rows of `row_len` ids of
    /// `width` bytes), their first `len` tokens, the same for every model.
    pub fn from_token_file(
        file: &TokenFile,
        models: usize,
        n: usize,
        len: usize,
        seed: u64,
    ) -> Result<Windows> {
        if len > file.row_len {
            bail!(
                "{}: rows have {} tokens, fewer than the {len} asked for (context + continuation)",
                file.path.display(),
                file.row_len
            );
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let picked: Vec<u64> = if n as u64 >= file.rows {
            (0..file.rows).collect()
        } else {
            rand::seq::index::sample(&mut rng, file.rows as usize, n)
                .into_iter()
                .map(|i| i as u64)
                .collect()
        };
        let mut rows = Vec::with_capacity(picked.len());
        for &r in &picked {
            rows.push(file.read(r, len)?);
        }
        Ok(Windows {
            origins: picked.iter().map(|&row| Origin::TokenRow { row }).collect(),
            tokens: vec![rows; models],
            refused: 0,
        })
    }
}

/// The start of the word holding byte `at` of `text`: just after the nearest whitespace before
/// it (looked for up to 256 bytes back), else the nearest character boundary. `None` when `at`
/// is at or past the end.
fn word_start(text: &[u8], at: usize) -> Option<usize> {
    if at >= text.len() {
        return None;
    }
    let floor = at.saturating_sub(256);
    let mut i = at;
    while i > floor {
        if text[i - 1].is_ascii_whitespace() {
            return Some(i);
        }
        i -= 1;
    }
    if i == 0 {
        return Some(0);
    }
    // No whitespace near: the character boundary at or before `at`.
    let mut i = at;
    while i > 0 && (text[i] & 0xC0) == 0x80 {
        i -= 1;
    }
    Some(i)
}

/// The first `len` tokens of `text` for each tokenizer, or `None` if some tokenizer finds fewer.
fn window(text: &[u8], tokenizers: &[&Tokenizer], len: usize) -> Result<Option<Vec<Vec<u32>>>> {
    let mut budget = len * BYTES_PER_TOKEN;
    'grow: for _ in 0..2 {
        let whole = budget >= text.len();
        let slice = utf8_prefix(&text[..budget.min(text.len())]);
        let mut rows = Vec::with_capacity(tokenizers.len());
        for t in tokenizers {
            let ids = t.encode(slice)?;
            let need = if whole { len } else { len + MARGIN_TOKENS };
            if ids.len() < need {
                if whole {
                    return Ok(None);
                }
                budget *= 2;
                continue 'grow;
            }
            rows.push(ids[..len].to_vec());
        }
        return Ok(Some(rows));
    }
    Ok(None)
}

/// The longest prefix of `bytes` that is valid UTF-8 (the text is; a slice may cut a character).
fn utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// Width of a token id in a token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    /// 2 bytes, little-endian (the Pythia stream).
    U16,
    /// 4 bytes, little-endian.
    U32,
}

impl TokenWidth {
    /// Bytes per id.
    pub fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }
}

/// A flat file of fixed-length token rows.
#[derive(Debug)]
pub struct TokenFile {
    /// The file.
    pub path: PathBuf,
    /// Tokens per row.
    pub row_len: usize,
    /// Id width.
    pub width: TokenWidth,
    /// Rows in the file.
    pub rows: u64,
    file: std::fs::File,
}

impl TokenFile {
    /// Opens `path`, refusing a size that is not a whole number of rows.
    pub fn open(path: &Path, row_len: usize, width: TokenWidth) -> Result<TokenFile> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        let bytes = file.metadata()?.len();
        let row_bytes = (row_len * width.bytes()) as u64;
        if row_len == 0 || bytes == 0 || bytes % row_bytes != 0 {
            bail!(
                "{}: {bytes} bytes is not a whole number of rows of {row_len} {:?} tokens ({row_bytes} bytes each)",
                path.display(),
                width
            );
        }
        Ok(TokenFile {
            path: path.to_path_buf(),
            row_len,
            width,
            rows: bytes / row_bytes,
            file,
        })
    }

    /// The first `len` ids of row `r`.
    pub fn read(&self, r: u64, len: usize) -> Result<Vec<u32>> {
        let w = self.width.bytes();
        let mut buf = vec![0u8; len * w];
        self.file
            .read_exact_at(&mut buf, r * (self.row_len * w) as u64)
            .with_context(|| format!("{}: reading row {r}", self.path.display()))?;
        Ok(match self.width {
            TokenWidth::U16 => buf
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
                .collect(),
            TokenWidth::U32 => buf
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_starts_follow_whitespace() {
        let t = b"alpha beta\ngamma";
        assert_eq!(word_start(t, 8), Some(6));
        assert_eq!(word_start(t, 6), Some(6));
        assert_eq!(word_start(t, 13), Some(11));
        assert_eq!(word_start(t, 2), Some(0));
        assert_eq!(word_start(t, 16), None);
        let long = "é".repeat(300);
        let s = word_start(long.as_bytes(), 301).unwrap();
        assert!(long.is_char_boundary(s));
    }

    #[test]
    fn token_files_refuse_partial_rows_and_read_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rows.bin");
        let ids: Vec<u16> = (0..12).collect();
        std::fs::write(
            &p,
            ids.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<_>>(),
        )
        .unwrap();
        let f = TokenFile::open(&p, 4, TokenWidth::U16).unwrap();
        assert_eq!(f.rows, 3);
        assert_eq!(f.read(2, 3).unwrap(), vec![8, 9, 10]);
        let e = TokenFile::open(&p, 5, TokenWidth::U16)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a whole number of rows"), "{e}");
        let w = Windows::from_token_file(&f, 2, 2, 4, 7).unwrap();
        assert_eq!(w.origins.len(), 2);
        assert_eq!(w.tokens[0], w.tokens[1]);
        let e = Windows::from_token_file(&f, 1, 2, 5, 7)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fewer than the 5"), "{e}");
    }
}
