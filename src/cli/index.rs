//! `memaudit index build | verify | stats`: build, check and describe a corpus index.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use memaudit::corpus::normalize::Normalization;
use memaudit::index::build::{self, BuildOptions, SaAlgorithm};
use memaudit::index::verify::{self, VerifyOptions};
use memaudit::index::Index;
use memaudit::units::parse_size;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Build an index from .txt / .jsonl files (optionally .gz / .zst) or directories of them.
    Build(BuildArgs),
    /// Recompute checksums and check document offsets and suffix order.
    Verify(VerifyArgs),
    /// Describe an index.
    Stats(StatsArgs),
}

#[derive(Args)]
pub struct BuildArgs {
    /// Directory to create; refused if it exists and is not empty, unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Input files or directories.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Text per shard, separators included (at most 2GiB - 1). A document never spans shards.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    shard_size: u64,
    /// Threads for sorting shards (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Memory the build may use; bounds how many shards sort at once (default: half of RAM).
    #[arg(long, value_parser = parse_size)]
    memory_limit: Option<u64>,
    /// JSONL field holding the document text; other fields become metadata.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Keep whitespace as it is instead of collapsing runs to one space.
    #[arg(long)]
    keep_whitespace: bool,
    /// Skip Unicode NFC normalization.
    #[arg(long)]
    no_nfc: bool,
    /// Lowercase text (and so every query) before indexing.
    #[arg(long)]
    lowercase: bool,
    /// Replace an existing non-empty output directory.
    #[arg(long)]
    force: bool,
    /// Suffix array construction.
    #[arg(long, value_enum, default_value = "libsais")]
    sa_algorithm: SaArg,
    /// Build only part I of N (0 <= I < N) of the inputs, split by whole files into N runs of
    /// about equal size, for N machines of a batch engine (e.g. a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX). Every machine must be given the same inputs.
    #[arg(long, value_name = "I/N")]
    part: Option<memaudit::index::part::Part>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    dir: PathBuf,
    /// Check every suffix pair and that the suffix array is a permutation (slow on large shards).
    #[arg(long)]
    full: bool,
    /// Adjacent suffix pairs sampled per shard when not --full.
    #[arg(long, default_value_t = 100_000)]
    samples: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct StatsArgs {
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

/// Suffix array construction (the library's [`SaAlgorithm`], named for the command line).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SaArg {
    /// libsais (Grebnov): the fastest SA-IS implementation known here.
    Libsais,
    /// The `suffix` crate's SA-IS (pure Rust).
    Suffix,
}

impl From<SaArg> for SaAlgorithm {
    fn from(a: SaArg) -> SaAlgorithm {
        match a {
            SaArg::Libsais => SaAlgorithm::Libsais,
            SaArg::Suffix => SaAlgorithm::Suffix,
        }
    }
}

pub fn run(c: IndexCommand) -> Result<()> {
    match c {
        IndexCommand::Build(a) => index_build(a),
        IndexCommand::Verify(a) => index_verify(a),
        IndexCommand::Stats(a) => index_stats(a),
    }
}

fn index_build(a: BuildArgs) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_limit = match a.memory_limit {
        Some(m) => m,
        None => memaudit::memory::physical_memory_bytes()
            .map(|m| m / 2)
            .unwrap_or(4 << 30),
    };
    let opts = BuildOptions {
        out: a.out,
        inputs: a.inputs,
        shard_bytes: a.shard_size,
        threads: a.threads.unwrap_or(cores),
        memory_limit,
        normalization: Normalization {
            collapse_whitespace: !a.keep_whitespace,
            nfc: !a.no_nfc,
            lowercase: a.lowercase,
        },
        text_field: a.text_field,
        force: a.force,
        algorithm: a.sa_algorithm.into(),
        progress: !a.quiet && std::io::stderr().is_terminal(),
        part: a.part,
    };
    let s = build::build(&opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    eprintln!(
        "built {} ({}): {} documents in {} shard(s), {:.1} MB of input in {:.1} s ({:.1} MB/s), peak RSS {}",
        s.index.display(),
        s.index_id,
        s.documents,
        s.shards,
        s.input_bytes as f64 / 1e6,
        s.seconds,
        s.mb_per_s,
        s.peak_rss_bytes.map(|b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64)).unwrap_or_else(|| "n/a".into()),
    );
    if s.ignored_files > 0 {
        eprintln!(
            "ignored {} file(s) of other types inside input directories",
            s.ignored_files
        );
    }
    if s.skipped > 0 {
        eprintln!(
            "skipped {} document(s); they are listed in manifest.json. The first:",
            s.skipped
        );
        for k in &s.skipped_examples {
            let line = k.line.map(|l| format!(":{l}")).unwrap_or_default();
            eprintln!("  {}{line}: {}", k.source, k.reason);
        }
    }
    Ok(())
}

fn index_verify(a: VerifyArgs) -> Result<()> {
    let r = verify::verify(
        &a.dir,
        VerifyOptions {
            samples: a.samples,
            full: a.full,
            ..Default::default()
        },
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} file(s), {:.1} MB hashed; {} documents and {} suffix pairs checked",
            r.files_checked,
            r.bytes_hashed as f64 / 1e6,
            r.documents_checked,
            r.suffix_pairs_checked
        );
        for p in &r.problems {
            println!("problem: {p}");
        }
    }
    if !r.problems.is_empty() {
        bail!(
            "{}: {} problem(s) found; rebuild the index",
            a.dir.display(),
            r.problems.len()
        );
    }
    if !a.json {
        println!("ok: index {} is intact", r.index_id);
    }
    Ok(())
}

fn index_stats(a: StatsArgs) -> Result<()> {
    let index = Index::open(&a.dir)?;
    let s = verify::stats(&index);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    let n = &s.normalization;
    println!("index        {} ({})", s.index_id, s.dir);
    println!(
        "format       v{} by memaudit {}",
        s.format_version, s.memaudit_version
    );
    println!(
        "documents    {} from {} source file(s); {} skipped",
        s.documents, s.sources, s.skipped
    );
    println!(
        "text         {} in {} shard(s); input {}; on disk {}",
        mb(s.text_bytes),
        s.shards,
        mb(s.input_bytes),
        mb(s.index_bytes)
    );
    println!(
        "normalized   whitespace {}, NFC {}, lowercase {}",
        if n.collapse_whitespace {
            "collapsed"
        } else {
            "kept"
        },
        if n.nfc { "on" } else { "off" },
        if n.lowercase { "on" } else { "off" }
    );
    println!(
        "built        in {:.1} s with {}",
        s.build_seconds, s.sa_algorithm
    );
    Ok(())
}
