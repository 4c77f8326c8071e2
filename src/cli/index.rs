//! `memaudit index build | verify | stats | remove | add | compact | merge | rollback | upgrade`:
//! build, check, describe
//! and change a corpus index.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use memaudit::corpus::normalize::Normalization;
use memaudit::index::read::verify::{self, VerifyOptions};
use memaudit::index::write::build::{self, BuildOptions, SaAlgorithm};
use memaudit::index::write::{add, compact, merge, remove, upgrade};
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
    /// Describe an index, its generations and what each changed.
    Stats(StatsArgs),
    /// Take documents down: hidden from every query at once, in a new generation.
    Remove(RemoveArgs),
    /// Index new documents into new shards, in a new generation.
    Add(AddArgs),
    /// Erase removed documents' text from the files and merge small shards.
    Compact(CompactArgs),
    /// Combine indexes built elsewhere (the parts of `build --part I/N`) into one.
    Merge(MergeArgs),
    /// Publish the index on disk (an older generation restored from a backup) as a new
    /// generation, so that a daemon following the index takes it; recorded in the history.
    Rollback(RollbackArgs),
    /// Bring an index written by an earlier version up to this one's layout (today: add the
    /// presence filter that keeps novel text away from the suffix arrays), as a new generation.
    Upgrade(UpgradeArgs),
}

#[derive(Args)]
pub struct UpgradeArgs {
    /// The index directory.
    dir: PathBuf,
    /// Keep every STEP-th suffix in every shard's array (default: 8 for a version 1 index, whose
    /// arrays hold every suffix; a version 2 index keeps its step). The step can only grow.
    #[arg(long)]
    sa_step: Option<u32>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// The index directory.
    dir: PathBuf,
    /// The generation in use (the daemon's memaudit_index_generation); the index on disk is
    /// published as the one after it.
    #[arg(long)]
    after: u64,
    /// Why, kept in the history.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Args)]
pub struct RemoveArgs {
    /// The index directory.
    dir: PathBuf,
    /// Document ids (as `check` reports them in `hits[].doc`).
    ids: Vec<u64>,
    /// A file of document ids, one per line (`#` comments and blank lines allowed).
    #[arg(long)]
    ids_file: Option<PathBuf>,
    /// Remove the documents whose metadata field KEY equals VALUE (all given must hold), e.g.
    /// `--where url=https://example.com/a` or `--where source=crawl-07.jsonl`.
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = memaudit::index::write::remove::parse_where)]
    wheres: Vec<(String, String)>,
    /// Why, recorded in the manifest's history (e.g. a takedown ticket).
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct AddArgs {
    /// The index directory.
    dir: PathBuf,
    /// Input files or directories, read as `index build` reads them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Threads for sorting the new shards (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Memory the new shards' build may use (default: half of RAM).
    #[arg(long, value_parser = parse_size)]
    memory_limit: Option<u64>,
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct CompactArgs {
    /// The index directory.
    dir: PathBuf,
    /// Target shard size (default: the one the index was built with).
    #[arg(long, value_parser = parse_size)]
    shard_size: Option<u64>,
    /// Threads for sorting (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct MergeArgs {
    /// Directory to create; refused if it exists and is not empty, unless --force.
    out: PathBuf,
    /// The indexes to combine, in order (for parts: 0/N first).
    #[arg(required = true)]
    parts: Vec<PathBuf>,
    /// Copy the shard files instead of hard-linking them.
    #[arg(long)]
    copy: bool,
    /// Replace an existing non-empty output directory.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Directory to create; refused if it exists and is not empty, unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Input files or directories.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Text per shard, separators included (at most 4GiB × --sa-step - 1: 32GiB at the default
    /// step). A document never spans shards. Shards past 2GiB, or whose whole sort does not fit
    /// --memory-limit, are sorted in parts merged from disk.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    shard_size: u64,
    /// Threads for sorting shards (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Memory the build may use; bounds how many shards sort at once, and whether a shard is
    /// sorted whole (7 bytes per byte of text) or in parts (its text twice, and a part's sort)
    /// (default: half of RAM).
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
    /// Keep the suffix of every STEP-th position (1: every suffix, 4 bytes per text byte). The
    /// default 8 keeps the array at 0.5x the text; queries then find spans of at least
    /// 2*STEP-1 characters (15), exactly as a full array would.
    #[arg(long, default_value_t = memaudit::index::format::DEFAULT_SA_STEP,
          value_parser = clap::value_parser!(u32).range(1..=memaudit::index::format::MAX_SA_STEP as i64))]
    sa_step: u32,
    /// Build only part I of N (0 <= I < N) of the inputs, split by whole files into N runs of
    /// about equal size, for N machines of a batch engine (e.g. a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX). Every machine must be given the same inputs.
    #[arg(long, value_name = "I/N")]
    part: Option<memaudit::index::write::part::Part>,
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
        IndexCommand::Remove(a) => index_remove(a),
        IndexCommand::Add(a) => index_add(a),
        IndexCommand::Compact(a) => index_compact(a),
        IndexCommand::Merge(a) => index_merge(a),
        IndexCommand::Upgrade(a) => index_upgrade(a),
        IndexCommand::Rollback(a) => {
            let g = memaudit::index::write::generation::rollback(&a.dir, a.after, a.reason)?;
            eprintln!("published {} as generation {g}", a.dir.display());
            Ok(())
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn default_memory_limit() -> u64 {
    memaudit::memory::physical_memory_bytes()
        .map(|m| m / 2)
        .unwrap_or(4 << 30)
}

/// Reads a file of document ids: one per line, `#` comments and blank lines ignored.
fn read_ids(path: &std::path::Path) -> Result<Vec<u64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        ids.push(line.parse::<u64>().with_context(|| {
            format!(
                "{}:{}: {line:?} is not a document id",
                path.display(),
                n + 1
            )
        })?);
    }
    Ok(ids)
}

fn index_remove(a: RemoveArgs) -> Result<()> {
    let mut ids = a.ids;
    if let Some(f) = &a.ids_file {
        ids.extend(read_ids(f)?);
    }
    let selection = remove::Selection {
        ids,
        wheres: a.wheres,
    };
    let s = remove::remove(&a.dir, &selection, a.reason)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else if s.removed == 0 {
        eprintln!(
            "nothing new to remove: {} selected document(s) were already removed; generation {} stays",
            s.already_removed, s.generation
        );
    } else {
        eprintln!(
            "removed {} document(s) in {:.3} s: generation {} ({}) hides them from every query{}; {} removed document(s) are not yet erased (run `memaudit index compact`)",
            s.removed,
            s.seconds,
            s.generation,
            s.index_id,
            if s.already_removed > 0 {
                format!(" ({} selected were already removed)", s.already_removed)
            } else {
                String::new()
            },
            s.hidden_not_erased
        );
    }
    Ok(())
}

fn index_add(a: AddArgs) -> Result<()> {
    let s = add::add(
        &a.dir,
        &add::AddOptions {
            inputs: a.inputs,
            threads: a.threads.unwrap_or_else(cores),
            memory_limit: a.memory_limit.unwrap_or_else(default_memory_limit),
            algorithm: SaAlgorithm::Libsais,
            progress: !a.quiet && std::io::stderr().is_terminal(),
        },
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    eprintln!(
        "added {} document(s) (ids {} to {}) from {:.1} MB in {:.1} s: generation {} ({}), {} shard(s) now{}",
        s.documents,
        s.first_doc,
        (s.first_doc + s.documents).saturating_sub(1),
        s.input_bytes as f64 / 1e6,
        s.seconds,
        s.generation,
        s.index_id,
        s.shards,
        if s.skipped > 0 {
            format!("; {} skipped (listed in manifest.json)", s.skipped)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn index_upgrade(a: UpgradeArgs) -> Result<()> {
    let s = upgrade::upgrade(&a.dir, a.sa_step)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else if s.upgraded.is_empty() {
        eprintln!(
            "{} is already current: generation {} stays",
            a.dir.display(),
            s.generation
        );
    } else {
        eprintln!(
            "upgraded in {:.1} s ({:.1} MB written): {}; generation {} ({})",
            s.seconds,
            s.bytes_written as f64 / 1e6,
            s.upgraded.join("; "),
            s.generation,
            s.index_id
        );
    }
    Ok(())
}

fn index_compact(a: CompactArgs) -> Result<()> {
    let s = compact::compact(
        &a.dir,
        &compact::CompactOptions {
            shard_bytes: a.shard_size,
            threads: a.threads.unwrap_or_else(cores),
            algorithm: SaAlgorithm::Libsais,
        },
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else if s.shards_written == 0 {
        eprintln!(
            "nothing to compact: no removed documents and no neighbouring shards that fit together; generation {} stays",
            s.generation
        );
    } else {
        eprintln!(
            "compacted in {:.1} s: {} document(s) erased, {} shard(s) -> {} ({} written, {:.1} MB): generation {} ({})",
            s.seconds,
            s.erased,
            s.shards_before,
            s.shards_after,
            s.shards_written,
            s.bytes_written as f64 / 1e6,
            s.generation,
            s.index_id
        );
    }
    Ok(())
}

fn index_merge(a: MergeArgs) -> Result<()> {
    let how = if a.copy {
        merge::Transfer::Copy
    } else {
        merge::Transfer::Link
    };
    let s = merge::merge(&a.out, &a.parts, how, a.force)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    eprintln!(
        "merged {} part(s) into {} ({}): {} documents in {} shard(s); {} file(s) linked, {} copied, in {:.1} s",
        s.parts,
        s.index.display(),
        s.index_id,
        s.documents,
        s.shards,
        s.linked,
        s.copied,
        s.seconds
    );
    Ok(())
}

fn index_build(a: BuildArgs) -> Result<()> {
    let memory_limit = a.memory_limit.unwrap_or_else(default_memory_limit);
    let opts = BuildOptions {
        out: a.out,
        inputs: a.inputs,
        shard_bytes: a.shard_size,
        threads: a.threads.unwrap_or_else(cores),
        memory_limit,
        normalization: Normalization {
            collapse_whitespace: !a.keep_whitespace,
            nfc: !a.no_nfc,
            lowercase: a.lowercase,
            stream_safe: true,
        },
        text_field: a.text_field,
        force: a.force,
        algorithm: a.sa_algorithm.into(),
        progress: !a.quiet && std::io::stderr().is_terminal(),
        part: a.part,
        filter: memaudit::index::format::FilterParams::current(),
        sa_step: a.sa_step,
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
        println!(
            "ok: index {} (generation {}) is intact",
            r.index_id, r.generation
        );
        if r.hidden_not_erased > 0 {
            println!(
                "note: {} removed document(s) are hidden from queries but their text is still in \
                 the shard files; run `memaudit index compact {}` to erase it",
                r.hidden_not_erased,
                a.dir.display()
            );
        }
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
        "arrays       {} ({:.3} bytes per text byte): {}; spans of {}+ characters",
        mb(s.sa_bytes),
        s.sa_bytes as f64 / s.text_bytes.max(1) as f64,
        match s.sa_step {
            1 => "every suffix".to_string(),
            k => format!("one suffix per {k} positions"),
        },
        s.min_span_chars
    );
    if s.filter_bytes == 0 {
        println!(
            "filter       none: every query searches every shard (`memaudit index upgrade` adds one)"
        );
    } else {
        println!(
            "filter       {} ({:.3} bytes per text byte): novel text reads no suffix array",
            mb(s.filter_bytes),
            s.filter_bytes as f64 / s.text_bytes.max(1) as f64
        );
    }
    println!(
        "normalized   whitespace {}, NFC {}, lowercase {}",
        if n.collapse_whitespace {
            "collapsed"
        } else {
            "kept"
        },
        match (n.nfc, n.stream_safe) {
            (true, true) => "on (stream-safe)",
            (true, false) => "on",
            _ => "off",
        },
        if n.lowercase { "on" } else { "off" }
    );
    println!(
        "built        in {:.1} s with {}",
        s.build_seconds, s.sa_algorithm
    );
    println!(
        "generation   {}: {} live document(s); {} removed but not yet erased (hidden from queries; \
         `index compact` erases them); {} erased",
        s.generation, s.live_documents, s.hidden_not_erased, s.erased
    );
    for c in &s.history {
        let ids = match c.ids.len() {
            0 => String::new(),
            n if n <= 8 => format!(
                " [{}]",
                c.ids
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            n => format!(
                " [{}, ... {n} ids]",
                c.ids[..5]
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        println!(
            "  gen {:<4} {:<8} {:>8} doc(s){ids} -> {} ({} shard(s)), at unix {}{}",
            c.generation,
            c.action,
            c.documents,
            c.index_id,
            c.shards,
            c.created_unix,
            c.reason
                .as_deref()
                .map(|r| format!("; reason: {r}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
