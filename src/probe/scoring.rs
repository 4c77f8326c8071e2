//! [`Probe`]: texts in, per-token scores and per-text summaries out. Owns tokenization with
//! character offsets, the document-start token, windowing of long texts and batching of all
//! windows of all texts into the model's passes.
//!
//! Per token `i` of a text, the scores describe the distribution the token was predicted from
//! (the model's state after the document-start token and tokens `0..i`): its entropy, and the
//! token's surprisal and rank in it. So a token's entropy is "how unsure was the model just
//! before producing this token", the quantity Chen, Han & Miyao (2024) track along generated text.

use super::model::Model;
use super::tokenizer::Tokenizer;
use super::window;
use anyhow::{ensure, Result};
use serde::Serialize;
use std::sync::Arc;

/// Entropy (nats) below which a token counts as low-entropy in [`Summary::low_entropy_share`]:
/// the paper's ceiling for memorized continuations (~0.6 nats).
pub const LOW_ENTROPY: f32 = 0.6;

/// Windowing of long texts.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// Tokens per forward pass window (document-start token included).
    pub window: usize,
    /// Tokens of context repeated from the previous window.
    pub overlap: usize,
    /// Tokens scored per text, from its start; the rest is not scored (a degenerate output of a
    /// megabyte would take minutes of CPU). The summary counts the tokens scored.
    pub max_tokens: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            window: 512,
            overlap: 128,
            max_tokens: 16_384,
        }
    }
}

/// One token of a scored text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Token {
    /// The token id in the model's vocabulary.
    pub id: u32,
    /// The token's text (byte-level pieces of a multi-byte character show as U+FFFD).
    pub text: String,
    /// Character range in the input text.
    pub start: usize,
    /// See `start`.
    pub end: usize,
    /// Entropy of the distribution this token was predicted from, nats.
    pub entropy: f32,
    /// −ln p(token), nats.
    pub surprisal: f32,
    /// Rank of the token in that distribution (0 = the model's top choice).
    pub rank: u32,
}

/// Per-text summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Tokens scored.
    pub tokens: usize,
    /// Means over tokens, nats; `None` for an empty text.
    pub mean_entropy: Option<f32>,
    /// See `mean_entropy`.
    pub mean_surprisal: Option<f32>,
    /// Share of tokens that were the model's top choice.
    pub top1_share: Option<f32>,
    /// Share of tokens predicted with entropy below [`LOW_ENTROPY`].
    pub low_entropy_share: Option<f32>,
}

/// A scored text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextScore {
    /// Every token, in text order.
    pub tokens: Vec<Token>,
    /// Means and shares over the tokens.
    pub summary: Summary,
}

impl Summary {
    /// Summary of scored tokens.
    pub fn of(tokens: &[Token]) -> Summary {
        let n = tokens.len();
        let mean = |f: &dyn Fn(&Token) -> f32| {
            (n > 0).then(|| tokens.iter().map(f).sum::<f32>() / n as f32)
        };
        Summary {
            tokens: n,
            mean_entropy: mean(&|t| t.entropy),
            mean_surprisal: mean(&|t| t.surprisal),
            top1_share: mean(&|t| (t.rank == 0) as u32 as f32),
            low_entropy_share: mean(&|t| (t.entropy < LOW_ENTROPY) as u32 as f32),
        }
    }
}

/// A model and its tokenizer, ready to score texts. Cheap to clone: the model and tokenizer are
/// shared (`Arc`), so one loaded model serves every worker of a process.
#[derive(Clone)]
pub struct Probe {
    /// The causal LM.
    pub model: Arc<Model>,
    /// Its tokenizer.
    pub tokenizer: Arc<Tokenizer>,
    /// Windowing of long texts.
    pub options: ProbeOptions,
    start: u32,
}

impl Probe {
    /// A probe over a loaded model and tokenizer. Checks the windowing against the model.
    pub fn new(
        model: Arc<Model>,
        tokenizer: Arc<Tokenizer>,
        options: ProbeOptions,
    ) -> Result<Probe> {
        ensure!(
            options.window <= model.config.context,
            "window {} exceeds the model's context of {} tokens",
            options.window,
            model.config.context
        );
        window::check(options.window, options.overlap)?;
        ensure!(
            tokenizer.vocab_size() <= model.config.vocab,
            "the tokenizer's vocabulary ({}) is larger than the model's ({}): wrong tokenizer?",
            tokenizer.vocab_size(),
            model.config.vocab
        );
        let start = tokenizer.document_start();
        Ok(Probe {
            model,
            tokenizer,
            options,
            start,
        })
    }

    /// Scores texts: all windows of all texts go through the model together (see
    /// [`Model::score_batch`]); at most `max_tokens` tokens of each, from its start.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<TextScore>> {
        let mut encoded = Vec::with_capacity(texts.len());
        let mut seqs: Vec<Vec<u32>> = Vec::with_capacity(texts.len());
        let mut jobs = Vec::new(); // (text, window)
        for (i, text) in texts.iter().enumerate() {
            let mut toks = self.tokenizer.encode_with_offsets(text)?;
            toks.truncate(self.options.max_tokens.max(1));
            let mut seq = Vec::with_capacity(toks.len() + 1);
            seq.push(self.start);
            seq.extend(toks.iter().map(|t| t.0));
            for w in window::plan(seq.len(), self.options.window, self.options.overlap)? {
                jobs.push((i, w));
            }
            encoded.push(toks);
            seqs.push(seq);
        }
        let inputs: Vec<&[u32]> = jobs
            .iter()
            .map(|(i, w)| &seqs[*i][w.tokens.clone()])
            .collect();
        let scored = if inputs.is_empty() {
            vec![]
        } else {
            self.model.score_batch(&inputs)?
        };
        let mut tokens: Vec<Vec<Token>> = encoded
            .iter()
            .map(|t| Vec::with_capacity(t.len()))
            .collect();
        for ((i, w), s) in jobs.iter().zip(&scored) {
            for row in w.own.clone() {
                let local = row - w.tokens.start;
                let (id, start, end) = encoded[*i][row];
                tokens[*i].push(Token {
                    id,
                    text: self.tokenizer.decode(&[id]).unwrap_or_default(),
                    start,
                    end,
                    entropy: s.entropy[local],
                    surprisal: s.surprisal[local],
                    rank: s.rank[local],
                });
            }
        }
        Ok(tokens
            .into_iter()
            .map(|tokens| TextScore {
                summary: Summary::of(&tokens),
                tokens,
            })
            .collect())
    }
}
