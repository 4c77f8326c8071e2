//! `memaudit audit`: the memorization analyses of Chen, Han & Miyao (2024) on any model and
//! corpus; arguments, the call into [`memaudit::audit`], and a short summary on stdout.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use memaudit::audit::predictor::PredictorOptions;
use memaudit::audit::rows::TokenWidth;
use memaudit::audit::{self, AuditOptions, Source};
use std::path::PathBuf;

#[derive(Args)]
pub struct AuditArgs {
    /// Index whose documents the rows are drawn from (built with --keep-whitespace, so rows are
    /// the text the model saw).
    #[arg(long, env = "MEMAUDIT_INDEX")]
    index: Option<PathBuf>,
    /// Rows from a flat file of fixed-length token rows instead (e.g. the Pythia training
    /// stream's document.bin); needs --row-len.
    #[arg(long, conflicts_with = "index")]
    rows_file: Option<PathBuf>,
    /// Tokens per row of --rows-file (2049 for the Pythia stream).
    #[arg(long, requires = "rows_file")]
    row_len: Option<usize>,
    /// Token id width of --rows-file.
    #[arg(long, value_enum, default_value = "u16")]
    dtype: DtypeArg,
    /// A model to audit (.gguf, or a safetensors checkpoint directory); repeat for several.
    /// Default: the model scripts/fetch-model.sh installs.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// The report directory (report.html, report.json, CSVs, rows.jsonl).
    #[arg(long)]
    out: PathBuf,
    /// Seed of every random draw; recorded in the report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Context sizes C; the first is the base configuration.
    #[arg(long, value_delimiter = ',', default_value = "32,48,64,96")]
    context: Vec<usize>,
    /// Continuation sizes K; the first is the base configuration.
    #[arg(long, value_delimiter = ',', default_value = "16,32,48,64")]
    continuation: Vec<usize>,
    /// Rows of the base configuration (first C, first K).
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// Rows of every other configuration.
    #[arg(long, default_value_t = 300)]
    rows_per_config: usize,
    /// Rows decoded together (128 is the fastest on a 2-core CPU: `cargo bench --bench audit --
    /// --batch N`; each decode step's matrices are too thin to use the cores at 32).
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Let the model emit its end-of-text token (the paper's authors masked it, as their
    /// `generate` call's min_length did).
    #[arg(long)]
    no_eos_mask: bool,
    /// Put the document-start token (e.g. <|endoftext|>) before every context. Off by default,
    /// like the paper's rows, which start mid-stream.
    #[arg(long)]
    bos: bool,
    /// cpu, cuda or cuda:N (cuda needs a build with --features cuda).
    #[arg(long, default_value = "cpu", env = "MEMAUDIT_DEVICE")]
    device: String,
    /// A8 predictor width (the paper used the model's hidden size).
    #[arg(long, default_value_t = PredictorOptions::default().dim)]
    predictor_dim: usize,
    /// A8 predictor encoder layers (paper: 4).
    #[arg(long, default_value_t = PredictorOptions::default().layers)]
    predictor_layers: usize,
    /// A8 predictor attention heads (paper: 8).
    #[arg(long, default_value_t = PredictorOptions::default().heads)]
    predictor_heads: usize,
    /// A8 width of the layer before the output (paper: 512).
    #[arg(long, default_value_t = PredictorOptions::default().head_dim)]
    predictor_head_dim: usize,
    /// A8 training epochs at most (paper: 30).
    #[arg(long, default_value_t = PredictorOptions::default().epochs)]
    predictor_epochs: usize,
    /// A8 learning rate (paper: 1e-4).
    #[arg(long, default_value_t = PredictorOptions::default().lr)]
    predictor_lr: f64,
    /// A8 rows per training step (paper: 128).
    #[arg(long, default_value_t = PredictorOptions::default().batch)]
    predictor_batch: usize,
    /// A8 parity switch: attend across the batch, as the authors' code did (a batch_first slip).
    #[arg(long)]
    predictor_attend_batch: bool,
    /// A8: keep fully memorized rows (the authors left them out).
    #[arg(long)]
    predictor_include_memorized: bool,
    /// Start over even if the report directory holds another audit's rows.
    #[arg(long)]
    force: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    U16,
    U32,
}

pub fn run(a: AuditArgs) -> Result<()> {
    let source = match (a.index, a.rows_file) {
        (Some(i), None) => Source::Index(i),
        (None, Some(path)) => {
            let Some(row_len) = a.row_len else {
                bail!("--rows-file needs --row-len");
            };
            Source::Tokens {
                path,
                row_len,
                width: match a.dtype {
                    DtypeArg::U16 => TokenWidth::U16,
                    DtypeArg::U32 => TokenWidth::U32,
                },
            }
        }
        _ => bail!("give --index DIR or --rows-file FILE"),
    };
    let models = if a.model.is_empty() {
        vec![memaudit::probe::default_model_path()]
    } else {
        a.model
    };
    let opts = AuditOptions {
        source,
        models,
        out: a.out.clone(),
        seed: a.seed,
        contexts: a.context,
        continuations: a.continuation,
        rows: a.rows,
        rows_per_config: a.rows_per_config,
        batch: a.batch,
        mask_eos: !a.no_eos_mask,
        bos: a.bos,
        device: a.device,
        predictor: PredictorOptions {
            dim: a.predictor_dim,
            layers: a.predictor_layers,
            heads: a.predictor_heads,
            head_dim: a.predictor_head_dim,
            epochs: a.predictor_epochs,
            lr: a.predictor_lr,
            batch: a.predictor_batch,
            attend_batch: a.predictor_attend_batch,
            include_memorized: a.predictor_include_memorized,
            ..PredictorOptions::default()
        },
        cache_dir: memaudit::audit::frequency::default_cache_dir(),
        progress: !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        force: a.force,
    };
    let r = audit::run(&opts)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for b in &r.census.base {
        println!(
            "{}: {} rows at C={} K={}: memorized {:.2}% [{:.2}, {:.2}], k=0 {:.1}%, mean score {:.3}",
            r.models[b.model].name,
            b.rows,
            b.context,
            b.continuation,
            100.0 * b.memorized.value,
            100.0 * b.memorized.lo,
            100.0 * b.memorized.hi,
            100.0 * b.unmemorized.value,
            b.mean_score.value
        );
    }
    println!(
        "decoding {:.0} s ({:.2} rows/s), total {:.0} s; report: {}",
        r.timings.decode_seconds,
        r.timings.rows_per_second,
        r.timings.total_seconds,
        a.out.join("report.html").display()
    );
    Ok(())
}
