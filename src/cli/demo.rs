//! `memaudit demo`: the daemon on a small local corpus, with no broker. Prepares the corpus,
//! index and configuration ([`memaudit::demo::prepare`]), runs the daemon itself
//! ([`memaudit::serve::run`]) with a sink that prints one line per record and writes the JSON
//! lines the file sink writes, then prints the metrics it served.

use anyhow::{Context, Result};
use clap::Args;
use futures::future::BoxFuture;
use memaudit::demo::{self, DemoOptions, LICENSES_DIR};
use memaudit::probe;
use memaudit::serve::file::FileSink;
use memaudit::serve::output::Output;
use memaudit::serve::pipeline::{SendError, Sink};
use memaudit::serve::shutdown::Shutdown;
use memaudit::serve::{self, Outputs};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args)]
pub struct DemoArgs {
    /// Scratch directory for the corpus copy, the index and the records written.
    #[arg(long, default_value = "target/demo")]
    workdir: PathBuf,
    /// Address to serve /metrics on while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9898")]
    http: SocketAddr,
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

pub fn run(a: DemoArgs) -> Result<()> {
    let model = if a.no_probe {
        None
    } else {
        let m = a.model.unwrap_or_else(probe::default_model_path);
        m.exists().then_some(m)
    };
    let options = DemoOptions {
        data: a.data,
        workdir: a.workdir,
        http: a.http,
        model,
    };
    let prepared = demo::prepare(&options)?;
    let (s, cfg) = (&prepared.index, prepared.config);
    println!(
        "index {} · {} documents from {} files ({} and {LICENSES_DIR}) · {}",
        s.index_id,
        s.documents,
        prepared.files,
        options.data.join("corpus").display(),
        s.index.display()
    );
    match &options.model {
        Some(m) => println!("probe on-match with {}", m.display()),
        None => println!("probe off (no model installed: scripts/fetch-model.sh installs it)"),
    }
    println!("metrics at http://{}/metrics\n", options.http);
    let sink = Arc::new(PrintSink {
        files: FileSink::open(&cfg.file)?,
        lines: Mutex::new(Vec::new()),
    });
    let printed = sink.clone();
    let workdir = options.workdir.clone();
    let hold = Duration::from_secs_f64(a.hold.max(0.0));
    let outputs = Outputs {
        sink: Some(sink),
        after_input: Some(Box::new(move |addr, shutdown| {
            printed.print();
            Box::pin(after_input(workdir, addr, hold, shutdown))
        })),
        hangup: None,
    };
    let rt = super::runtime()?;
    let result = rt.block_on(serve::run(cfg, outputs));
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Where the records went, the `memaudit_*` counters the daemon served, and the optional hold.
async fn after_input(
    workdir: PathBuf,
    addr: Option<SocketAddr>,
    hold: Duration,
    shutdown: Shutdown,
) -> Result<()> {
    println!(
        "\nrecords written to {}/{{verdicts,alerts,dead-letters}}.jsonl",
        workdir.display()
    );
    let addr = addr.context("the demo serves HTTP")?;
    let (code, body) =
        tokio::task::spawn_blocking(move || memaudit::loopback::get(addr, "/metrics")).await??;
    println!(
        "\nGET /metrics → {code}, {} lines; the memaudit_* counters:",
        body.lines().count()
    );
    for line in body.lines().filter(|l| {
        [
            "memaudit_messages_total",
            "memaudit_verdicts_total",
            "memaudit_alerts_total",
            "memaudit_dead_letters_total",
            "memaudit_stage_seconds_count",
        ]
        .iter()
        .any(|p| l.starts_with(p))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
    if !hold.is_zero() {
        println!("\nserving http://{addr}/metrics for {hold:?} (Ctrl-C stops)");
        tokio::select! {
            _ = tokio::time::sleep(hold) => {}
            _ = shutdown.triggered() => {}
        }
    }
    Ok(())
}

/// Writes each record as the daemon's file sink does, and keeps one line per record to print
/// in input order (the pipeline finishes messages concurrently, and probed ones later).
struct PrintSink {
    files: FileSink,
    /// (input line, the record's place among its message's records, the line).
    lines: Mutex<Vec<(i64, u8, String)>>,
}

impl PrintSink {
    fn print(&self) {
        let mut lines = std::mem::take(&mut *self.lines.lock().expect("demo lines"));
        lines.sort();
        for (_, _, l) in lines {
            println!("{l}");
        }
    }

    fn line(r: &Output) -> String {
        let v = match r {
            Output::DeadLetter(d) => {
                return format!(
                    "  DEAD LETTER line {:<3} {}: {}",
                    d.source.offset + 1,
                    d.reason.code(),
                    d.detail
                )
            }
            Output::Verdict(v) => v,
        };
        let verdict = &v.verdict;
        let severity = verdict.severity.name();
        if v.alert {
            let why: Vec<&str> = verdict.reasons.iter().map(|r| r.detail.as_str()).collect();
            return format!(
                "  ALERT {:<8} {}: {}",
                severity.to_uppercase(),
                verdict.id,
                why.join("; ")
            );
        }
        let source = verdict
            .spans
            .first()
            .and_then(|s| s.provenance.first())
            .and_then(|p| p.source.as_deref())
            .map(|s| {
                let name = Path::new(s)
                    .file_name()
                    .map_or(s.into(), |n| n.to_string_lossy());
                format!("  ← {name}")
            })
            .unwrap_or_default();
        let entropy = verdict
            .entropy
            .as_ref()
            .and_then(|e| {
                let mean = e.mean_entropy?;
                Some(format!(
                    "  entropy {mean:.2} nats, boundary {:.2}",
                    e.boundary_score
                ))
            })
            .unwrap_or_default();
        format!(
            "{:<8} {:<8} {} span(s), longest {:>3} chars, coverage {:>5.1}%{source}{entropy}",
            severity,
            verdict.id,
            verdict.spans.len(),
            verdict.longest_span_chars,
            verdict.coverage * 100.0,
        )
    }
}

impl Sink for PrintSink {
    fn send(&self, r: &Output) -> BoxFuture<'static, Result<(), SendError>> {
        let (line, place) = match r {
            Output::Verdict(v) => (v.source.offset, v.alert as u8),
            Output::DeadLetter(d) => (d.source.offset, 0),
        };
        self.lines
            .lock()
            .expect("demo lines")
            .push((line, place, Self::line(r)));
        self.files.send(r)
    }
}
