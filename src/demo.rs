//! `memaudit demo`'s set-up: a small local corpus indexed, sample outputs expanded, and the
//! daemon's configuration for them (file source; probe on-match when the model is installed).
//!
//! Builds an index from `data/demo/corpus` and the licence texts in
//! `/usr/share/common-licenses`, and expands the sample outputs in `data/demo/outputs.jsonl`
//! (some quote the corpus, some are novel, two are malformed). The command (`src/cli/demo.rs`)
//! runs them through [`crate::serve::run`], the daemon itself, with a sink that prints each
//! record.

use crate::config::{Config, FileConfig, ProbePolicy, SourceKind};
use crate::corpus::normalize::Normalization;
use crate::index::write::build::{self, BuildOptions, BuildSummary, SaAlgorithm};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the licence texts live on Debian-family machines.
pub const LICENSES_DIR: &str = "/usr/share/common-licenses";

/// Where the demo's data is, where it works, and what it runs with.
pub struct DemoOptions {
    /// The repository's `data/demo`.
    pub data: PathBuf,
    /// Scratch directory for the corpus copy, index and outputs.
    pub workdir: PathBuf,
    /// Address of the HTTP server (`/metrics`).
    pub http: SocketAddr,
    /// Probe model; `None` runs with the probe off.
    pub model: Option<PathBuf>,
}

/// What [`prepare`] made.
pub struct Prepared {
    /// The daemon's configuration: file source on the expanded outputs, records to
    /// `verdicts.jsonl`, `alerts.jsonl` and `dead-letters.jsonl` in the work directory.
    pub config: Config,
    /// The index built from the corpus.
    pub index: BuildSummary,
    /// Corpus files indexed.
    pub files: usize,
}

/// Copies the corpus, builds its index, expands the sample outputs, and configures the daemon.
pub fn prepare(o: &DemoOptions) -> Result<Prepared> {
    let corpus = o.workdir.join("corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let shipped = o.data.join("corpus");
    let mut files = copy_texts(&shipped, &corpus)
        .with_context(|| format!("reading the shipped corpus {}", shipped.display()))?;
    files += copy_texts(Path::new(LICENSES_DIR), &corpus).unwrap_or(0);
    let index_dir = o.workdir.join("index");
    let index = build::build(&BuildOptions {
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
        part: None,
        filter: crate::index::format::FilterParams::current(),
        sa_step: crate::index::format::DEFAULT_SA_STEP,
    })?;

    let outputs = expand_outputs(&o.data.join("outputs.jsonl"), &corpus)?;
    let input = o.workdir.join("outputs.expanded.jsonl");
    std::fs::write(&input, &outputs).with_context(|| format!("writing {}", input.display()))?;
    let fresh = |n: &str| -> Result<PathBuf> {
        let p = o.workdir.join(n);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        Ok(p)
    };

    let mut config: Config = toml::from_str(&format!(
        "[index]\ndir = {:?}\n",
        index_dir.display().to_string()
    ))
    .expect("a minimal config parses");
    config.source.kind = SourceKind::File;
    config.file = FileConfig {
        input,
        verdicts: fresh("verdicts.jsonl")?,
        alerts: fresh("alerts.jsonl")?,
        dead_letters: fresh("dead-letters.jsonl")?,
    };
    config.http.bind = o.http.to_string();
    config.probe.policy = if o.model.is_some() {
        ProbePolicy::OnMatch
    } else {
        ProbePolicy::Off
    };
    config.model.path = o.model.clone();
    // One match batch at a time keeps the printed verdicts in input order.
    config.limits.match_workers = 1;
    // A Ctrl-C while it runs stops it at once.
    config.shutdown.deadline_secs = 5.0;
    config.validate()?;
    Ok(Prepared {
        config,
        index,
        files,
    })
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
