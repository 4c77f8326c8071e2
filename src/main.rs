//! The `memaudit` command line. Only argument parsing and output live here; every command calls
//! the library.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use memaudit::config::Config;
use memaudit::index::build::{self, BuildOptions, SaAlgorithm};
use memaudit::index::format::Normalization;
use memaudit::index::verify::{self, VerifyOptions};
use memaudit::index::{Index, SpanOptions, DEFAULT_MIN_LEN};
use memaudit::probe::boundary::{self, BoundaryOptions, Calibration};
use memaudit::probe::tokenizer::Tokenizer;
use memaudit::probe::{self, ProbeOptions};
use memaudit::units::parse_size;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "memaudit",
    version,
    about = "Finds the verbatim spans LLM output shares with a training corpus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build, verify and describe corpus indexes.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Find every verbatim span one text shares with the corpus (the daemon's query, on one text).
    Check(CheckArgs),
    /// Score every token of a text with the probe model: entropy, surprisal, rank; with --index,
    /// also the entropy at the edges of the verbatim spans.
    Probe(ProbeArgs),
    /// Run the daemon: consume messages (Kafka, or JSON lines from a file), produce one verdict
    /// per message, alerts and dead letters; serve /metrics, /healthz, /readyz.
    Serve(ServeArgs),
    /// The daemon's pipeline on a small local corpus, no broker: verdicts, alerts, dead letters
    /// and the metrics it served.
    Demo(DemoArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Configuration file (TOML; every key is in config/memaudit.toml). MEMAUDIT_<SECTION>__<KEY>
    /// environment variables override it, and flags override both.
    #[arg(long, env = "MEMAUDIT_CONFIG")]
    config: Option<PathBuf>,
    /// Set a key: `--set kafka.brokers=host:9092`, `--set kafka.options.sasl.mechanism=PLAIN`
    /// (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Shorthand for --set kafka.brokers=...
    #[arg(long)]
    brokers: Option<String>,
    /// Shorthand for --set index.dir=...
    #[arg(long)]
    index: Option<PathBuf>,
    /// Shorthand for --set http.bind=... (empty turns the HTTP server off).
    #[arg(long)]
    http: Option<String>,
    /// Read JSON lines from FILE (`-` for stdin) instead of Kafka; records go to stdout
    /// (shorthand for --set source.kind=file --set file.input=FILE).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Validate the configuration, open the index and find the model, print the effective
    /// configuration, and exit.
    #[arg(long)]
    check_config: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Scratch directory for the corpus copy, the index and the records written.
    #[arg(long, default_value = "target/demo")]
    workdir: PathBuf,
    /// Address to serve /metrics on while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9898")]
    http: std::net::SocketAddr,
    /// Keep serving /metrics this many seconds after the last verdict.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Probe model (default: the model installed by scripts/fetch-model.sh, when present).
    #[arg(long, env = "MEMAUDIT_MODEL")]
    model: Option<PathBuf>,
    /// Run with the probe off even when a model is installed.
    #[arg(long)]
    no_probe: bool,
    /// The demo data (corpus and sample outputs).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo"))]
    data: PathBuf,
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Build an index from .txt / .jsonl files (optionally .gz / .zst) or directories of them.
    Build(BuildArgs),
    /// Recompute checksums and check document offsets and suffix order.
    Verify(VerifyArgs),
    /// Describe an index.
    Stats(StatsArgs),
}

#[derive(Args)]
struct BuildArgs {
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
    sa_algorithm: SaAlgorithm,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct VerifyArgs {
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
struct StatsArgs {
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// Index directory.
    #[arg(long, env = "MEMAUDIT_INDEX")]
    index: PathBuf,
    /// Text to check: a file, or - (the default) for standard input.
    #[arg(default_value = "-")]
    input: String,
    /// Minimum span length in characters (after normalization).
    #[arg(long, default_value_t = DEFAULT_MIN_LEN)]
    min_len: usize,
    /// Provenance hits per span.
    #[arg(long, default_value_t = 3)]
    max_hits: usize,
    /// A tokenizer.json, or a .gguf model whose own tokenizer is used; span lengths are then also
    /// given in tokens.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// JSON output (the default when stdout is not a terminal).
    #[arg(long, conflicts_with = "pretty")]
    json: bool,
    /// The readable report even when stdout is not a terminal (spans marked [[like this]]).
    #[arg(long)]
    pretty: bool,
}

#[derive(Args)]
struct ProbeArgs {
    /// Text to score: a file, or - (the default) for standard input.
    #[arg(default_value = "-")]
    input: String,
    /// A .gguf model, or a safetensors checkpoint directory (config.json, *.safetensors,
    /// tokenizer.json). Default: the model scripts/fetch-model.sh installs.
    #[arg(long, env = "MEMAUDIT_MODEL")]
    model: Option<PathBuf>,
    /// A tokenizer.json (default: the GGUF's own, or tokenizer.json beside a safetensors model).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// cpu, cuda or cuda:N (cuda needs a build with --features cuda).
    #[arg(long, default_value = "cpu", env = "MEMAUDIT_DEVICE")]
    device: String,
    /// Tokens per window for long texts.
    #[arg(long, default_value_t = ProbeOptions::default().window)]
    window: usize,
    /// Tokens of context repeated between windows.
    #[arg(long, default_value_t = ProbeOptions::default().overlap)]
    overlap: usize,
    /// Also find verbatim spans in this index and report the entropy at their edges.
    #[arg(long, env = "MEMAUDIT_INDEX")]
    index: Option<PathBuf>,
    /// Minimum span length in characters (with --index).
    #[arg(long, default_value_t = DEFAULT_MIN_LEN)]
    min_len: usize,
    /// The probe model's mean entropy on novel text, nats (calibrates the boundary score).
    #[arg(long, default_value_t = Calibration::default().novel)]
    novel_entropy: f32,
    /// JSON output instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    // The daemon reports its life cycle at info; one-shot commands only warn.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    // Colour only on a terminal: journald and log files get plain `key=value` lines.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMAUDIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Index(IndexCommand::Build(a)) => index_build(a),
        Command::Index(IndexCommand::Verify(a)) => index_verify(a),
        Command::Index(IndexCommand::Stats(a)) => index_stats(a),
        Command::Check(a) => check(a),
        Command::Probe(a) => probe(a),
        Command::Serve(a) => serve(a),
        Command::Demo(a) => demo(a),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve(a: ServeArgs) -> Result<()> {
    let mut sets = Vec::new();
    if let Some(b) = a.brokers {
        sets.push(format!("kafka.brokers={b}"));
    }
    if let Some(i) = a.index {
        sets.push(format!(
            "index.dir={}",
            toml_string(&i.display().to_string())
        ));
    }
    if let Some(h) = a.http {
        sets.push(format!("http.bind={}", toml_string(&h)));
    }
    if let Some(i) = a.input {
        sets.push("source.kind=file".into());
        sets.push(format!(
            "file.input={}",
            toml_string(&i.display().to_string())
        ));
    }
    sets.extend(a.set);
    let cfg = Config::load(a.config.as_deref(), std::env::vars(), &sets)?;
    if a.check_config {
        Index::open(&cfg.index.dir)
            .with_context(|| format!("index.dir = {}", cfg.index.dir.display()))?;
        if cfg.needs_model() {
            let m = cfg.model.resolved_path();
            if !m.exists() {
                bail!(
                    "model.path = {} does not exist (probe.policy = \"{}\"): run \
                     scripts/fetch-model.sh, set model.path, or set probe.policy = \"off\"",
                    m.display(),
                    cfg.probe.policy.name()
                );
            }
        }
        print!(
            "{}",
            toml::to_string_pretty(&cfg).context("printing the configuration")?
        );
        eprintln!("configuration OK");
        return Ok(());
    }
    let rt = runtime()?;
    let result = rt.block_on(memaudit::serve::run(cfg));
    // A blocking read that never returns (stdin or a FIFO held open by its writer) must not
    // hold the exit: the runtime does not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// A value for `--set`, quoted so paths and addresses stay strings.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn demo(a: DemoArgs) -> Result<()> {
    let model = if a.no_probe {
        None
    } else {
        let m = a.model.unwrap_or_else(probe::default_model_path);
        m.exists().then_some(m)
    };
    runtime()?.block_on(memaudit::demo::run(memaudit::demo::DemoOptions {
        data: a.data,
        workdir: a.workdir,
        http: a.http,
        model,
        hold: std::time::Duration::from_secs_f64(a.hold.max(0.0)),
    }))
}

fn index_build(a: BuildArgs) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_limit = match a.memory_limit {
        Some(m) => m,
        None => build::physical_memory_bytes()
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
        algorithm: a.sa_algorithm,
        progress: !a.quiet && std::io::stderr().is_terminal(),
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

/// The text of `input`: a file, or standard input for `-`.
fn read_input(input: &str) -> Result<String> {
    if input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input as UTF-8 text")?;
        Ok(s)
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("{input}: cannot read as UTF-8 text"))
    }
}

fn probe(a: ProbeArgs) -> Result<()> {
    let model = a.model.clone().unwrap_or_else(probe::default_model_path);
    if !model.exists() {
        bail!(
            "{}: no such model; run scripts/fetch-model.sh for the default one, or pass --model",
            model.display()
        );
    }
    // Open the index before the model load so a bad index fails fast.
    let index = a.index.as_deref().map(Index::open).transpose()?;
    let text = read_input(&a.input)?;
    let device = probe::device::select(&a.device)?;
    let options = ProbeOptions {
        window: a.window,
        overlap: a.overlap,
    };
    let p = probe::load(&model, a.tokenizer.as_deref(), &device, options)?;
    let scored = p.score(&[&text])?.remove(0);
    let spans = index.map(|index| {
        let report = index.spans(
            &text,
            &SpanOptions {
                min_len: a.min_len.max(1),
                max_hits: 1,
                tokens: None,
            },
        );
        let ranges: Vec<_> = report.spans.iter().map(|s| s.start..s.end).collect();
        let opts = BoundaryOptions {
            calibration: Calibration {
                novel: a.novel_entropy,
                ..Calibration::default()
            },
            ..BoundaryOptions::default()
        };
        boundary::analyze(&scored.tokens, &ranges, &opts)
    });
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({
            "model": model,
            "device": probe::device::name(&device),
            "summary": scored.summary,
            "tokens": scored.tokens,
            "boundary": spans,
        });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", probe::report::render(&scored, spans.as_ref()))?;
    }
    Ok(())
}

fn check(a: CheckArgs) -> Result<()> {
    let index = Index::open(&a.index)?;
    let text = read_input(&a.input)?;
    let tokenizer = a.tokenizer.as_deref().map(Tokenizer::load).transpose()?;
    let counter = tokenizer.as_ref().map(|t| move |s: &str| t.count(s));
    let opts = SpanOptions {
        min_len: a.min_len.max(1),
        max_hits: a.max_hits,
        tokens: counter
            .as_ref()
            .map(|f| f as &(dyn Fn(&str) -> usize + Sync)),
    };
    let report = index.spans(&text, &opts);
    let mut stdout = std::io::stdout().lock();
    let terminal = stdout.is_terminal();
    if a.json || (!terminal && !a.pretty) {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(
            stdout,
            "{}",
            memaudit::check::render(&text, &report, terminal)
        )?;
    }
    Ok(())
}
