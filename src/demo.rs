//! `memaudit demo`: the daemon's whole pipeline on a small local corpus, with no broker.
//!
//! Builds an index from `data/demo/corpus` and the licence texts in
//! `/usr/share/common-licenses`, expands the sample outputs in `data/demo/outputs.jsonl` (some
//! quote the corpus, some are novel, two are malformed), runs them through the same
//! [`crate::serve::pipeline::Pipeline`] the daemon uses (file source; probe on-match when the
//! model is installed), prints each verdict, alert and dead letter, serves `/metrics` while it
//! runs, and prints the metrics it served at the end.

use crate::config::{Config, IndexConfig, ProbePolicy, SourceKind};
use crate::index::build::{self, BuildOptions, SaAlgorithm};
use crate::index::format::Normalization;
use crate::serve::offsets::{InFlight, OffsetTracker};
use crate::serve::pipeline::{Pipeline, Record, SendError, Sink, Stream};
use crate::serve::shutdown::Shutdown;
use crate::serve::{file, http};
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the licence texts live on Debian-family machines.
pub const LICENSES_DIR: &str = "/usr/share/common-licenses";

pub struct DemoOptions {
    /// The repository's `data/demo`.
    pub data: PathBuf,
    /// Scratch directory for the corpus copy, index and outputs.
    pub workdir: PathBuf,
    pub http: SocketAddr,
    /// Probe model; `None` runs with the probe off.
    pub model: Option<PathBuf>,
    /// Keep serving /metrics this long after the last verdict.
    pub hold: Duration,
}

/// Runs the demo; prints to stdout.
pub async fn run(o: DemoOptions) -> Result<()> {
    let corpus = o.workdir.join("corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let shipped = o.data.join("corpus");
    let mut files = copy_texts(&shipped, &corpus)
        .with_context(|| format!("reading the shipped corpus {}", shipped.display()))?;
    files += copy_texts(Path::new(LICENSES_DIR), &corpus).unwrap_or(0);
    let index_dir = o.workdir.join("index");
    let summary = build::build(&BuildOptions {
        out: index_dir.clone(),
        inputs: vec![corpus.clone()],
        shard_bytes: 64 << 20,
        threads: 2,
        memory_limit: 1 << 30,
        normalization: Normalization::default(),
        text_field: "text".into(),
        force: true,
        algorithm: SaAlgorithm::Libsais,
        progress: false,
    })?;
    println!(
        "index {} · {} documents from {files} files ({} and {LICENSES_DIR}) · {}",
        summary.index_id,
        summary.documents,
        shipped.display(),
        index_dir.display()
    );

    let outputs = expand_outputs(&o.data.join("outputs.jsonl"), &corpus)?;
    let input = o.workdir.join("outputs.expanded.jsonl");
    std::fs::write(&input, &outputs)?;

    let mut cfg: Config = toml::from_str(&format!(
        "[index]\ndir = {:?}\n",
        index_dir.display().to_string()
    ))
    .expect("a minimal config parses");
    cfg.index = IndexConfig { dir: index_dir };
    cfg.source.kind = SourceKind::File;
    cfg.http.bind = o.http.to_string();
    cfg.probe.policy = if o.model.is_some() {
        ProbePolicy::OnMatch
    } else {
        ProbePolicy::Off
    };
    cfg.model.path = o.model.clone();
    // One match batch at a time keeps the printed verdicts in input order.
    cfg.limits.match_workers = 1;
    cfg.validate()?;
    match &o.model {
        Some(m) => println!("probe on-match with {}", m.display()),
        None => println!("probe off (no model installed: scripts/fetch-model.sh installs it)"),
    }

    let loaded = crate::serve::load(&cfg).await?;
    let shutdown = Shutdown::new(Duration::from_secs(5));
    let s = shutdown.clone();
    let (addr, server) = http::serve(
        o.http,
        loaded.metrics.clone(),
        loaded.ready.clone(),
        async move { s.triggered().await },
    )
    .await?;
    loaded
        .ready
        .partitions_assigned
        .store(true, std::sync::atomic::Ordering::Relaxed);
    loaded
        .ready
        .broker_reachable
        .store(true, std::sync::atomic::Ordering::Relaxed);
    println!("metrics at http://{addr}/metrics\n");

    let sink = Arc::new(PrintSink::new(&o.workdir)?);
    let tracker = InFlight::new(OffsetTracker::new(), loaded.metrics.clone());
    let pipeline = Pipeline::new(
        &cfg,
        loaded.analyzer.clone(),
        sink.clone(),
        tracker.clone(),
        loaded.metrics.clone(),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let pipe = tokio::spawn(pipeline.run(rx));
    file::read_lines(&input, tx, tracker, shutdown.clone()).await?;
    pipe.await.context("the pipeline task failed")?;

    println!(
        "\nrecords written to {}/{{verdicts,alerts,dead-letters}}.jsonl",
        o.workdir.display()
    );
    let (code, body) =
        tokio::task::spawn_blocking(move || http::get_local(addr, "/metrics")).await??;
    println!(
        "\nGET /metrics → {code}, {} lines; the memaudit_* counters:",
        body.lines().count()
    );
    for line in body.lines().filter(|l| {
        (l.starts_with("memaudit_messages_total")
            || l.starts_with("memaudit_verdicts_total")
            || l.starts_with("memaudit_alerts_total")
            || l.starts_with("memaudit_dead_letters_total")
            || l.starts_with("memaudit_stage_seconds_count"))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
    if !o.hold.is_zero() {
        println!(
            "\nserving http://{addr}/metrics for {:?} (Ctrl-C stops)",
            o.hold
        );
        shutdown.listen_for_signals()?;
        tokio::select! {
            _ = tokio::time::sleep(o.hold) => {}
            _ = shutdown.triggered() => {}
        }
    }
    shutdown.trigger();
    let _ = server.await;
    Ok(())
}

/// Copies every regular file of `from` into `to` as `NAME.txt` (licence files have no
/// extension); returns how many.
fn copy_texts(from: &Path, to: &Path) -> Result<usize> {
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(from)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if !p.is_file() {
            continue;
        }
        let name = p.file_name().expect("a file has a name").to_string_lossy();
        let name = if name.ends_with(".txt") {
            name.to_string()
        } else {
            format!("{name}.txt")
        };
        std::fs::copy(&p, to.join(name))?;
        n += 1;
    }
    Ok(n)
}

/// Replaces each `{{quote:FILE:START:LEN}}` by `LEN` characters of the corpus file `FILE`
/// (whitespace collapsed) from character `START`; a missing file gives an empty quote.
pub fn expand_outputs(template: &Path, corpus: &Path) -> Result<String> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut rest = text.as_str();
    while let Some(i) = rest.find("{{quote:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 8..];
        let j = after
            .find("}}")
            .with_context(|| format!("unclosed {{{{quote: in {}", template.display()))?;
        let parts: Vec<&str> = after[..j].split(':').collect();
        anyhow::ensure!(
            parts.len() == 3,
            "bad quote `{}` in {}",
            &after[..j],
            template.display()
        );
        let start: usize = parts[1].parse().context("quote start")?;
        let len: usize = parts[2].parse().context("quote length")?;
        let name = if parts[0].ends_with(".txt") {
            parts[0].to_string()
        } else {
            format!("{}.txt", parts[0])
        };
        let source = std::fs::read_to_string(corpus.join(name)).unwrap_or_default();
        let collapsed = source.split_whitespace().collect::<Vec<_>>().join(" ");
        let quote: String = collapsed.chars().skip(start).take(len).collect();
        // The quote goes inside a JSON string.
        let escaped = serde_json::to_string(&quote).expect("strings serialize");
        out.push_str(&escaped[1..escaped.len() - 1]);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Prints one line per record and writes it as the daemon's file sink does (JSON lines; dead
/// letters with their reason and the original payload).
struct PrintSink {
    files: file::FileSink,
}

impl PrintSink {
    fn new(dir: &Path) -> Result<PrintSink> {
        let path = |n: &str| -> Result<PathBuf> {
            let p = dir.join(n);
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
            Ok(p)
        };
        Ok(PrintSink {
            files: file::FileSink::open(&crate::config::FileConfig {
                input: "-".into(),
                verdicts: path("verdicts.jsonl")?,
                alerts: path("alerts.jsonl")?,
                dead_letters: path("dead-letters.jsonl")?,
            })?,
        })
    }

    fn line(r: &Record) -> String {
        let header = |k: &str| r.header(k);
        if r.stream == Stream::DeadLetters {
            return format!(
                "  DEAD LETTER line {:<3} {}: {}",
                header("memaudit-source-offset").parse::<i64>().unwrap_or(0) + 1,
                header("memaudit-reason"),
                header("memaudit-detail")
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap_or_default();
        let sev = v["severity"].as_str().unwrap_or("?");
        if r.stream == Stream::Alerts {
            let why: Vec<&str> = v["reasons"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["detail"].as_str()).collect())
                .unwrap_or_default();
            return format!(
                "  ALERT {:<8} {}: {}",
                sev.to_uppercase(),
                v["id"].as_str().unwrap_or("?"),
                why.join("; ")
            );
        }
        let source = v["spans"][0]["provenance"][0]["source"]
            .as_str()
            .map(|s| {
                let name = Path::new(s)
                    .file_name()
                    .map_or(s.into(), |n| n.to_string_lossy());
                format!("  ← {name}")
            })
            .unwrap_or_default();
        let entropy = v["entropy"]["mean_entropy"]
            .as_f64()
            .map(|e| {
                format!(
                    "  entropy {e:.2} nats, boundary {:.2}",
                    v["entropy"]["boundary_score"].as_f64().unwrap_or(0.0)
                )
            })
            .unwrap_or_default();
        format!(
            "{:<8} {:<8} {} span(s), longest {:>3} chars, coverage {:>5.1}%{source}{entropy}",
            sev,
            v["id"].as_str().unwrap_or("?"),
            v["spans"].as_array().map_or(0, Vec::len),
            v["longest_span_chars"].as_u64().unwrap_or(0),
            v["coverage"].as_f64().unwrap_or(0.0) * 100.0,
        )
    }
}

impl Sink for PrintSink {
    fn send(&self, r: Record) -> BoxFuture<'static, Result<(), SendError>> {
        println!("{}", Self::line(&r));
        self.files.send(r)
    }
}
