//! The `memaudit` command line: the top-level parser, logging, and the dispatch to one file per
//! command under `src/cli/` (arguments, the call into the library, the printing).

mod cli;

use clap::{Parser, Subcommand};

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
    /// Build, verify, describe and change corpus indexes (takedown, additions, compaction, merging parts).
    #[command(subcommand)]
    Index(cli::index::IndexCommand),
    /// Find every verbatim span one text shares with the corpus (the daemon's query, on one text).
    Check(cli::check::CheckArgs),
    /// Score every token of a text with the probe model: entropy, surprisal, rank; with --index,
    /// also the entropy at the edges of the verbatim spans.
    Probe(cli::probe::ProbeArgs),
    /// Run the daemon: consume messages (Kafka, or JSON lines from a file), produce one verdict
    /// per message, alerts and dead letters; serve /metrics, /healthz, /readyz.
    Serve(cli::serve::ServeArgs),
    /// The daemon's pipeline on a small local corpus, no broker: verdicts, alerts, dead letters
    /// and the metrics it served.
    Demo(cli::demo::DemoArgs),
    /// Measure how much a model memorized of a corpus (Chen, Han & Miyao 2024): greedy
    /// continuations of sampled rows, census, dynamics, embeddings, predictor; an HTML report.
    Audit(cli::audit::AuditArgs),
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
    let result = match cli.command {
        Command::Index(c) => cli::index::run(c),
        Command::Check(a) => cli::check::run(a),
        Command::Probe(a) => cli::probe::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Audit(a) => cli::audit::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
