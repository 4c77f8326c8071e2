//! `memaudit audit`: how much a model memorized of its training corpus, measured the way Chen,
//! Han & Miyao (2024) did, on any model the probe loads and any index or token file.
//!
//! The flow: plan the row sets ([`Plan`]); draw each set's windows ([`rows`]); for each model,
//! greedy-decode every row not already in the report directory ([`store`]), batched with a KV
//! cache ([`crate::probe::decode`]); then run the analyses on the scored rows and write the
//! report ([`report`]).
//!
//! - [`rows`]: seeded token windows from an index's documents or a token-row file.
//! - [`score`]: the memorization score of a row (k of K), the census bins and groups.
//! - [`store`]: `rows.jsonl` and the hidden-state files; resuming a killed audit.
//! - [`stats`]: bootstrap intervals.
//! - [`census`]: A1/A2, the census by model, continuation and context length.
//! - [`transitions`]: A3, bucket transitions between models.
//! - [`frequency`]: A4/A5, corpus frequency of the tokens by position; token counts.
//! - [`entropy`]: A7, entropy by position.
//! - [`curves`]: per-position group means and boundary tables (A4, A7).
//! - [`embeddings`]: A6, hidden-state geometry by level; PCA; drift across decoding steps.
//! - [`predictor`]: A8, a small Transformer trained to predict which tokens the model recalls.
//! - [`duplication`]: memorization by corpus count; continuity of partial matches.
//! - [`report`]: `report.json`, the CSV tables and `report.html`; [`svg`] draws its plots.

pub mod census;
pub mod curves;
pub mod duplication;
pub mod embeddings;
pub mod entropy;
pub mod frequency;
pub mod predictor;
pub mod report;
pub mod rows;
pub mod score;
pub mod stats;
pub mod store;
pub mod svg;
pub mod transitions;

use crate::index::Index;
use crate::probe::decode::DecodeOptions;
use crate::probe::model::Model;
use crate::probe::tokenizer::Tokenizer;
use anyhow::{bail, Context, Result};
use rows::{Origin, TokenFile, TokenWidth, Windows};
use score::Matches;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;
use store::{RowRecord, Store};

/// Where rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Windows inside the documents of an index.
    Index(PathBuf),
    /// Fixed-length rows of a token file.
    Tokens {
        /// The file.
        path: PathBuf,
        /// Tokens per row.
        row_len: usize,
        /// Id width.
        width: TokenWidth,
    },
}

/// Everything an audit is asked to do.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Where rows come from.
    pub source: Source,
    /// Models, each a GGUF file or a safetensors checkpoint.
    pub models: Vec<PathBuf>,
    /// The report directory.
    pub out: PathBuf,
    /// Seed of every random draw (rows, bootstrap, splits).
    pub seed: u64,
    /// Context sizes; the first is the base.
    pub contexts: Vec<usize>,
    /// Continuation sizes; the first is the base.
    pub continuations: Vec<usize>,
    /// Rows of the base configuration.
    pub rows: usize,
    /// Rows of every other configuration.
    pub rows_per_config: usize,
    /// Rows decoded together.
    pub batch: usize,
    /// Keep the end-of-text token out of decoding (the authors' `generate` did).
    pub mask_eos: bool,
    /// Put the tokenizer's document-start token before every context (not part of the row: the
    /// authors' Pythia rows have none, as Pythia was trained on such chunks).
    pub bos: bool,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Show a progress bar.
    pub progress: bool,
    /// Where token counts of corpora are cached.
    pub cache_dir: PathBuf,
    /// A8's sizes and switches.
    pub predictor: predictor::PredictorOptions,
    /// Start over even if the report directory holds another audit.
    pub force: bool,
}

/// One set of rows: one context size, windows long enough for what it decodes.
#[derive(Debug, Clone, Serialize)]
pub struct RowSet {
    /// `base`, or `c{C}`.
    pub name: String,
    /// Context tokens.
    pub context: usize,
    /// Rows in the set.
    pub rows: usize,
    /// The first `long_rows` rows are decoded to `k_long` tokens, the rest to `k_short`.
    pub long_rows: usize,
    /// The longest continuation decoded.
    pub k_long: usize,
    /// The base continuation.
    pub k_short: usize,
}

impl RowSet {
    /// Tokens each window needs.
    pub fn window(&self) -> usize {
        self.context
            + if self.long_rows > 0 {
                self.k_long
            } else {
                self.k_short
            }
    }

    /// Continuation decoded for row `r`.
    pub fn k_for(&self, r: usize) -> usize {
        if r < self.long_rows {
            self.k_long
        } else {
            self.k_short
        }
    }
}

/// The row sets of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Context sizes (first = base).
    pub contexts: Vec<usize>,
    /// Continuation sizes (first = base).
    pub continuations: Vec<usize>,
    /// The longest continuation.
    pub k_long: usize,
    /// The sets.
    pub sets: Vec<RowSet>,
}

impl Plan {
    /// The base set, every other continuation on its first `rows_per_config` rows (one decode
    /// of the longest serves all: greedy prefixes agree), and one set per other context.
    pub fn new(o: &AuditOptions) -> Result<Plan> {
        if o.contexts.is_empty() || o.continuations.is_empty() {
            bail!("--context and --continuation need at least one size each");
        }
        if o.contexts.contains(&0) || o.continuations.contains(&0) {
            bail!("context and continuation sizes start at 1");
        }
        if o.rows == 0 || o.batch == 0 {
            bail!("--rows and --batch start at 1");
        }
        let (c0, k0) = (o.contexts[0], o.continuations[0]);
        let k_long = *o.continuations.iter().max().expect("non-empty");
        let mut sets = vec![RowSet {
            name: "base".into(),
            context: c0,
            rows: o.rows,
            long_rows: if k_long > k0 {
                o.rows_per_config.min(o.rows)
            } else {
                0
            },
            k_long,
            k_short: k0,
        }];
        let mut seen = HashSet::from([c0]);
        for &c in &o.contexts[1..] {
            if seen.insert(c) {
                sets.push(RowSet {
                    name: format!("c{c}"),
                    context: c,
                    rows: o.rows_per_config,
                    long_rows: 0,
                    k_long: k0,
                    k_short: k0,
                });
            }
        }
        Ok(Plan {
            contexts: o.contexts.clone(),
            continuations: o.continuations.clone(),
            k_long,
            sets,
        })
    }

    /// The set named `name`.
    pub fn set(&self, name: &str) -> Option<&RowSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Positions of a base row with hidden states kept: 0..C₀+K₀−1.
    pub fn hidden_positions(&self) -> usize {
        self.contexts[0] + self.continuations[0] - 1
    }
}

/// What the report says of each model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The path given.
    pub path: PathBuf,
    /// A short name (file or directory name).
    pub name: String,
    /// The architecture ([`crate::probe::model::Arch::name`]).
    pub architecture: String,
    /// Parameters, from the weights.
    pub parameters: usize,
    /// Hidden size.
    pub embedding: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// The token kept out of decoding, if any.
    pub masked_token: Option<u32>,
    /// Seconds spent decoding in this run (0 when every row came from a previous run).
    pub decode_seconds: f64,
    /// Rows decoded in this run.
    pub rows_decoded: usize,
}

/// A scored row, as the analyses read it.
#[derive(Debug, Clone)]
pub struct ScoredRow {
    /// Index in its set.
    pub row: usize,
    /// Where it comes from.
    pub origin: Origin,
    /// Context tokens.
    pub context: usize,
    /// Context then true continuation.
    pub tokens: Vec<u32>,
    /// The greedy continuation.
    pub generated: Vec<u32>,
    /// Match bitmap.
    pub matches: Matches,
    /// H(p) for p = 1..C+K−1 (entry p−1), nats.
    pub entropy: Vec<f32>,
}

/// Every scored row of the audit, by model and set.
pub struct Scored {
    /// The plan.
    pub plan: Plan,
    /// The models.
    pub models: Vec<ModelInfo>,
    by: HashMap<(usize, String), Vec<ScoredRow>>,
}

impl Scored {
    /// Builds the view from records (any order).
    pub fn new(plan: Plan, models: Vec<ModelInfo>, records: &[RowRecord]) -> Result<Scored> {
        let mut by: HashMap<(usize, String), Vec<ScoredRow>> = HashMap::new();
        for r in records {
            let matches = Matches::from_bitstring(&r.matches)
                .with_context(|| format!("rows.jsonl: bad match bitmap {:?}", r.matches))?;
            by.entry((r.model, r.set.clone()))
                .or_default()
                .push(ScoredRow {
                    row: r.row,
                    origin: r.origin.clone(),
                    context: r.context,
                    tokens: r.tokens.clone(),
                    generated: r.generated.clone(),
                    matches,
                    entropy: r.entropy.clone(),
                });
        }
        for v in by.values_mut() {
            v.sort_by_key(|r| r.row);
        }
        Ok(Scored { plan, models, by })
    }

    /// Rows of `set` scored by model `m`, by row index.
    pub fn rows(&self, m: usize, set: &str) -> &[ScoredRow] {
        self.by
            .get(&(m, set.to_string()))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }
}

/// `p` made absolute (so a resumed audit run from another directory is recognized).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What the analyses read besides the scored rows.
pub struct Inputs<'a> {
    /// The index rows came from (or given beside a token file).
    pub index: Option<&'a Index>,
    /// The token file rows came from.
    pub token_file: Option<&'a TokenFile>,
    /// Each model's tokenizer.
    pub tokenizers: &'a [Tokenizer],
    /// Per model, the hidden states of each base row (in row order), positions × embedding.
    pub hidden: Vec<Vec<Vec<f32>>>,
    /// The device the predictor trains on.
    pub device: candle_core::Device,
}

/// A short name for a model path.
fn model_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

/// Runs an audit; returns the report directory's `report.json` contents.
pub fn run(o: &AuditOptions) -> Result<report::Report> {
    let started = Instant::now();
    let plan = Plan::new(o)?;
    if o.models.is_empty() {
        bail!("give at least one --model");
    }
    for m in &o.models {
        Model::check_path(m)?;
    }
    let device = crate::probe::device::select(&o.device)?;
    let tokenizers = o
        .models
        .iter()
        .map(|m| Tokenizer::for_model(m, None))
        .collect::<Result<Vec<_>>>()?;
    let tok_refs: Vec<&Tokenizer> = tokenizers.iter().collect();
    // Rows first: bad input is refused before any model is loaded.
    let mut warnings = Vec::new();
    let mut token_file = None;
    let (index, windows, source_json) = match &o.source {
        Source::Index(dir) => {
            let index = Index::open(dir).map_err(anyhow::Error::from)?;
            let n = index.manifest.normalization;
            if n.collapse_whitespace || n.lowercase {
                warnings.push(format!(
                    "the index was built with {}: rows are that normalized text, not what the \
                     model was trained on. Build the index with --keep-whitespace{} for an audit.",
                    [
                        n.collapse_whitespace.then_some("whitespace collapsed"),
                        n.lowercase.then_some("lowercasing")
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" and "),
                    if n.lowercase {
                        " and without --lowercase"
                    } else {
                        ""
                    }
                ));
            }
            let mut windows = Vec::new();
            for (i, set) in plan.sets.iter().enumerate() {
                let w = Windows::from_index(
                    &index,
                    &tok_refs,
                    set.rows,
                    set.window(),
                    o.seed.wrapping_add(i as u64),
                )
                .with_context(|| {
                    format!(
                        "rows of C = {} (+{} tokens)",
                        set.context,
                        set.window() - set.context
                    )
                })?;
                if w.origins.len() < set.rows {
                    warnings.push(format!(
                        "only {} of the {} rows asked for at C = {} were found ({} places had too \
                         little text after them)",
                        w.origins.len(),
                        set.rows,
                        set.context,
                        w.refused
                    ));
                }
                windows.push(w);
            }
            let json = serde_json::json!({"index": absolute(dir), "index_id": index.id()});
            (Some(index), windows, json)
        }
        Source::Tokens {
            path,
            row_len,
            width,
        } => {
            let file = TokenFile::open(path, *row_len, *width)?;
            let mut windows = Vec::new();
            for (i, set) in plan.sets.iter().enumerate() {
                windows.push(Windows::from_token_file(
                    &file,
                    o.models.len(),
                    set.rows,
                    set.window(),
                    o.seed.wrapping_add(i as u64),
                )?);
            }
            let json = serde_json::json!({"token_file": absolute(path), "row_len": row_len, "dtype": width, "rows_in_file": file.rows});
            token_file = Some(file);
            (None, windows, json)
        }
    };
    let params = serde_json::json!({
        "source": source_json,
        "models": o.models.iter().map(|m| absolute(m)).collect::<Vec<_>>(),
        "seed": o.seed,
        "contexts": o.contexts,
        "continuations": o.continuations,
        "rows": o.rows,
        "rows_per_config": o.rows_per_config,
        "mask_eos": o.mask_eos,
        "bos": o.bos,
        "device": crate::probe::device::name(&device),
    });
    let mut store = Store::open(&o.out, &params, o.force)?;
    let total: usize = plan.sets.iter().map(|s| s.rows).sum::<usize>() * o.models.len();
    let pb = crate::progress::bar(
        total as u64,
        o.progress,
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows {per_sec} ETA {eta} {msg}",
    );
    pb.inc(store.done.len() as u64);
    let mut models = Vec::new();
    for (m, path) in o.models.iter().enumerate() {
        let done: HashSet<(String, usize)> = store
            .done
            .iter()
            .filter(|r| r.model == m)
            .map(|r| (r.set.clone(), r.row))
            .collect();
        pb.set_message(model_name(path));
        let model = Model::load(path, &device)?;
        let masked = if o.mask_eos {
            tokenizers[m].end_of_text()
        } else {
            None
        };
        let hidden_floats = plan.hidden_positions() * model.config.embedding;
        let bos = o.bos.then(|| tokenizers[m].document_start());
        store.prepare_hidden(m, hidden_floats)?;
        let t0 = Instant::now();
        let mut decoded = 0;
        for (si, set) in plan.sets.iter().enumerate() {
            let w = &windows[si];
            let todo: Vec<usize> = (0..w.origins.len())
                .filter(|&r| !done.contains(&(set.name.clone(), r)))
                .collect();
            if let Some(&bad) = w.tokens[m]
                .iter()
                .flatten()
                .find(|&&t| t as usize >= model.config.vocab)
            {
                bail!(
                    "{}: token id {bad} is outside the vocabulary of {} ({}): is the token file for this model?",
                    params["source"],
                    model_name(path),
                    model.config.vocab
                );
            }
            // Long rows and short rows decode in separate batches.
            for chunk in todo
                .chunk_by(|&a, &b| set.k_for(a) == set.k_for(b))
                .flat_map(|run| run.chunks(o.batch))
            {
                let k = set.k_for(chunk[0]);
                let contexts: Vec<Vec<u32>> = chunk
                    .iter()
                    .map(|&r| {
                        bos.into_iter()
                            .chain(w.tokens[m][r][..set.context].iter().copied())
                            .collect()
                    })
                    .collect();
                let contexts: Vec<&[u32]> = contexts.iter().map(|c| c.as_slice()).collect();
                let out = model.greedy(
                    &contexts,
                    &DecodeOptions {
                        steps: k,
                        mask: masked,
                        hidden: set.name == "base",
                        // Context entropies feed A7 and A8, which read the base set only.
                        context_entropy: set.name == "base",
                    },
                )?;
                let mut records = Vec::with_capacity(chunk.len());
                for (&r, mut d) in chunk.iter().zip(out) {
                    if bos.is_some() && set.name == "base" {
                        // The document-start position is not part of the row.
                        d.entropy.remove(0);
                    }
                    if bos.is_some() {
                        if let Some(h) = d.hidden.as_mut() {
                            h.drain(..model.config.embedding);
                        }
                    }
                    let tokens = w.tokens[m][r][..set.context + k].to_vec();
                    if let Some(h) = &d.hidden {
                        store.append_hidden(m, &h[..hidden_floats])?;
                    }
                    records.push(RowRecord {
                        set: set.name.clone(),
                        row: r,
                        model: m,
                        origin: w.origins[r].clone(),
                        context: set.context,
                        matches: Matches::of(&d.tokens, &tokens[set.context..]).to_bitstring(),
                        tokens,
                        generated: d.tokens,
                        entropy: d.entropy,
                        entropy_from: if set.name == "base" { 1 } else { set.context },
                    });
                }
                decoded += records.len();
                store.append(records)?;
                pb.inc(chunk.len() as u64);
            }
        }
        models.push(ModelInfo {
            path: path.clone(),
            name: model_name(path),
            architecture: model.config.arch.name().to_string(),
            parameters: model.parameter_count(),
            embedding: model.config.embedding,
            vocab: model.config.vocab,
            masked_token: masked,
            decode_seconds: t0.elapsed().as_secs_f64(),
            rows_decoded: decoded,
        });
    }
    pb.finish_and_clear();
    let plan_hidden = plan.hidden_positions();
    let scored = Scored::new(plan, models, &store.done)?;
    let mut hidden = Vec::new();
    for (m, info) in scored.models.iter().enumerate() {
        let records = store.read_hidden(m, plan_hidden * info.embedding)?;
        let order = store
            .done
            .iter()
            .filter(|r| r.model == m && r.set == "base")
            .map(|r| r.row);
        let by_row: HashMap<usize, Vec<f32>> = order.zip(records).collect();
        hidden.push(
            scored
                .rows(m, "base")
                .iter()
                .map(|r| by_row.get(&r.row).cloned().unwrap_or_default())
                .collect(),
        );
    }
    let inputs = Inputs {
        index: index.as_ref(),
        token_file: token_file.as_ref(),
        tokenizers: &tokenizers,
        hidden,
        device: device.clone(),
    };
    let report = report::build(o, &scored, &inputs, warnings, params, started)?;
    report::write(&o.out, &report)?;
    Ok(report)
}
