//! A4/A5, frequency dynamics: how common, in the corpus, the token at each position of a row is,
//! per memorization group (the paper's "boundary effect": unmemorized rows turn to a rare token
//! right where the continuation starts).
//!
//! Counts come from tokenizing the corpus once with the model's tokenizer ([`TokenCounts`]),
//! within documents (no n-gram crosses a document boundary, like the authors' counts within
//! rows), cached by index id and tokenizer fingerprint. For a token file the counts are over the
//! whole file, within rows. Bigrams are counted in both conventions the paper leaves open
//! (spec Q6): the pair ending at position p, and the pair starting at it.

use super::curves::{boundaries, curves, Boundary, Curve};
use super::rows::TokenFile;
use super::Scored;
use crate::index::Index;
use crate::probe::tokenizer::Tokenizer;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Unigram and bigram counts of a corpus under one tokenizer.
pub struct TokenCounts {
    /// Count of each token id.
    pub unigram: Vec<u64>,
    /// Count of each adjacent pair, keyed `first << 32 | second`.
    pub bigram: HashMap<u64, u64>,
    /// Tokens counted.
    pub tokens: u64,
}

fn pair(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

impl TokenCounts {
    fn add(&mut self, ids: &[u32]) {
        for &t in ids {
            if let Some(c) = self.unigram.get_mut(t as usize) {
                *c += 1;
            }
        }
        for w in ids.windows(2) {
            *self.bigram.entry(pair(w[0], w[1])).or_default() += 1;
        }
        self.tokens += ids.len() as u64;
    }

    fn new(vocab: usize) -> TokenCounts {
        TokenCounts {
            unigram: vec![0; vocab],
            bigram: HashMap::new(),
            tokens: 0,
        }
    }

    /// Counts every document of `index` tokenized by `tok`, or reads them from `cache_dir`.
    pub fn of_index(
        index: &Index,
        tok: &Tokenizer,
        vocab: usize,
        cache_dir: &Path,
        progress: bool,
    ) -> Result<TokenCounts> {
        let path = cache_dir.join(format!("{}-{}.counts", index.id(), tok.fingerprint()));
        if let Some(c) = Self::read(&path, vocab) {
            return Ok(c);
        }
        let docs: Vec<(usize, u64)> = index
            .shards
            .iter()
            .enumerate()
            .flat_map(|(s, sh)| (0..sh.entry.documents).map(move |d| (s, d)))
            .collect();
        let bytes: u64 = index.shards.iter().map(|s| s.text().len() as u64).sum();
        let pb = crate::progress::bar(
            bytes,
            progress,
            "counting tokens [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ETA {eta}",
        );
        let mut counts = TokenCounts::new(vocab);
        for chunk in docs.chunks(256) {
            let ids: Vec<Vec<u32>> = chunk
                .par_iter()
                .map(|&(s, d)| {
                    let text = index.shards[s].doc_text(d);
                    tok.encode(&String::from_utf8_lossy(text))
                })
                .collect::<Result<_>>()?;
            for (&(s, d), v) in chunk.iter().zip(&ids) {
                counts.add(v);
                pb.inc(index.shards[s].doc_text(d).len() as u64 + 1);
            }
        }
        pb.finish_and_clear();
        counts.write(&path);
        Ok(counts)
    }

    /// Counts every row of a token file (within rows).
    pub fn of_token_file(file: &TokenFile, vocab: usize) -> Result<TokenCounts> {
        let mut counts = TokenCounts::new(vocab);
        for r in 0..file.rows {
            counts.add(&file.read(r, file.row_len)?);
        }
        Ok(counts)
    }

    /// The cache file: tokens, vocabulary size, unigram counts, bigram pairs, all u64 LE.
    fn write(&self, path: &Path) {
        let mut out = Vec::with_capacity(8 * (3 + self.unigram.len() + 2 * self.bigram.len()));
        out.extend(self.tokens.to_le_bytes());
        out.extend((self.unigram.len() as u64).to_le_bytes());
        out.extend((self.bigram.len() as u64).to_le_bytes());
        for c in &self.unigram {
            out.extend(c.to_le_bytes());
        }
        for (k, c) in &self.bigram {
            out.extend(k.to_le_bytes());
            out.extend(c.to_le_bytes());
        }
        // A cache that cannot be written only costs the next audit the counting.
        let tmp = path.with_extension("tmp");
        if std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).is_ok()
            && std::fs::write(&tmp, out).is_ok()
        {
            let _ = std::fs::rename(&tmp, path);
        }
    }

    fn read(path: &Path, vocab: usize) -> Option<TokenCounts> {
        let b = std::fs::read(path).ok()?;
        let u = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                b.get(8 * i..8 * i + 8)?.try_into().ok()?,
            ))
        };
        let (tokens, v, pairs) = (u(0)?, u(1)? as usize, u(2)? as usize);
        if v != vocab || b.len() != 8 * (3 + v + 2 * pairs) {
            return None;
        }
        let unigram = (0..v).map(|i| u(3 + i)).collect::<Option<Vec<_>>>()?;
        let mut bigram = HashMap::with_capacity(pairs);
        for i in 0..pairs {
            bigram.insert(u(3 + v + 2 * i)?, u(4 + v + 2 * i)?);
        }
        Some(TokenCounts {
            unigram,
            bigram,
            tokens,
        })
    }
}

/// Where token counts are cached: `$MEMAUDIT_CACHE_DIR/counts`, else `~/.cache/memaudit/counts`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("MEMAUDIT_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/memaudit")
        })
        .join("counts")
}

/// A4/A5 for every model.
#[derive(Debug, Clone, Serialize)]
pub struct Frequency {
    /// Tokens counted per model (the corpus under its tokenizer).
    pub corpus_tokens: Vec<u64>,
    /// Mean unigram count of the token at each position p = 0..C+K−1.
    pub unigram: Vec<Curve>,
    /// Mean count of the bigram ending at p, `(t[p−1], t[p])`, p = 1..C+K−1.
    pub bigram_ending: Vec<Curve>,
    /// Mean count of the bigram starting at p, `(t[p], t[p+1])`, p = 0..C+K−2.
    pub bigram_starting: Vec<Curve>,
    /// Boundary tables (A5) of each.
    pub unigram_boundaries: Vec<Boundary>,
    /// Boundary tables (A5) of the bigram ending at p.
    pub bigram_ending_boundaries: Vec<Boundary>,
    /// Boundary tables (A5) of the bigram starting at p.
    pub bigram_starting_boundaries: Vec<Boundary>,
}

/// Computes A4/A5 with `counts[m]` for model m.
pub fn run(s: &Scored, counts: &[TokenCounts], seed: u64) -> Frequency {
    let (c, k) = (s.plan.contexts[0], s.plan.continuations[0]);
    let n = c + k;
    let uni = |m: usize, t: u32| counts[m].unigram.get(t as usize).copied().unwrap_or(0) as f64;
    let bi =
        |m: usize, a: u32, b: u32| counts[m].bigram.get(&pair(a, b)).copied().unwrap_or(0) as f64;
    let unigram = curves(s, 0, seed, |m, r| {
        r.tokens[..n].iter().map(|&t| uni(m, t)).collect()
    });
    let bigram_ending = curves(s, 1, seed, |m, r| {
        r.tokens[..n]
            .windows(2)
            .map(|w| bi(m, w[0], w[1]))
            .collect()
    });
    // The same pairs, each assigned to its first position instead of its second.
    let bigram_starting: Vec<Curve> = bigram_ending
        .iter()
        .map(|cv| Curve {
            first_position: 0,
            ..cv.clone()
        })
        .collect();
    Frequency {
        corpus_tokens: counts.iter().map(|c| c.tokens).collect(),
        unigram_boundaries: boundaries(&unigram, c, k),
        bigram_ending_boundaries: boundaries(&bigram_ending, c, k),
        bigram_starting_boundaries: boundaries(&bigram_starting, c, k),
        unigram,
        bigram_ending,
        bigram_starting,
    }
}

/// Counts for each model: from the index, or the token file.
pub fn counts_for(
    s: &Scored,
    tokenizers: &[Tokenizer],
    index: Option<&Index>,
    file: Option<&TokenFile>,
    cache_dir: &Path,
    progress: bool,
) -> Result<Vec<TokenCounts>> {
    s.models
        .iter()
        .enumerate()
        .map(|(m, info)| match (index, file) {
            (_, Some(f)) => TokenCounts::of_token_file(f, info.vocab),
            (Some(i), None) => {
                TokenCounts::of_index(i, &tokenizers[m], info.vocab, cache_dir, progress)
            }
            (None, None) => anyhow::bail!("no corpus to count tokens in"),
        })
        .collect::<Result<Vec<_>>>()
        .context("counting tokens")
}
