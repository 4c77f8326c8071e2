//! Index benchmark: build throughput and peak memory, span-query latency and throughput, and the
//! same figures for the peer (infini-gram 2.6.0, byte-level) in the same run, as ratios.
//!
//! ```text
//! cargo bench --bench index                    # memaudit only
//! cargo bench --bench index -- --peer          # and infini-gram on the same corpus and texts
//! cargo bench --bench index -- --suffix        # also build with the `suffix` crate, for comparison
//! cargo bench --bench index -- --against-step 1  # and an index of another suffix-array step
//!                                              # (1: every suffix), queries interleaved
//! options: --corpus FILE.jsonl (default bench-data/corpus.jsonl, made by scripts/bench-corpus.py)
//!          --queries N (texts per set, default 200) --no-build (reuse the index)
//!          --index DIR (default bench-data/index) --shard-size SIZE, --sa-step K (passed to the
//!          build; the default step is the build's)
//! ```
//!
//! Query texts are seeded: "novel" texts are real corpus words in a new random order; "copy" texts
//! are novel text with a 512-byte passage cut from a random corpus document in the middle. Every
//! query runs once to warm the page cache, then once timed, one at a time on one thread.

mod common;

use common::{load_docs, make_sets, summarize};
use memaudit::index::{Index, SpanOptions};
use memaudit::memory::{peak_rss_bytes, rss_bytes};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Args {
    corpus: PathBuf,
    queries: usize,
    peer: bool,
    suffix: bool,
    build: bool,
    index: PathBuf,
    shard_size: Option<String>,
    sa_step: Option<String>,
    against_step: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        corpus: PathBuf::from("bench-data/corpus.jsonl"),
        queries: 200,
        peer: false,
        suffix: false,
        build: true,
        index: PathBuf::from("bench-data/index"),
        shard_size: None,
        sa_step: None,
        against_step: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--corpus" => a.corpus = it.next().expect("--corpus FILE").into(),
            "--queries" => a.queries = it.next().expect("--queries N").parse().expect("a number"),
            "--peer" => a.peer = true,
            "--suffix" => a.suffix = true,
            "--no-build" => a.build = false,
            "--index" => a.index = it.next().expect("--index DIR").into(),
            "--shard-size" => a.shard_size = Some(it.next().expect("--shard-size SIZE")),
            "--sa-step" => a.sa_step = Some(it.next().expect("--sa-step K")),
            "--against-step" => a.against_step = Some(it.next().expect("--against-step K")),
            "--bench" => {}
            other => panic!("unknown argument {other:?}; see the doc comment of benches/index.rs"),
        }
    }
    a
}

struct BuildFigures {
    seconds: f64,
    input_bytes: u64,
    peak_rss: u64,
    shard_bytes: u64,
}

fn build(
    corpus: &Path,
    out: &Path,
    algorithm: &str,
    shard_size: Option<&str>,
    sa_step: Option<&str>,
) -> BuildFigures {
    let o = Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args([
            "index",
            "build",
            "--force",
            "--quiet",
            "--json",
            "--sa-algorithm",
            algorithm,
        ])
        .args(
            shard_size
                .map(|s| vec!["--shard-size", s])
                .unwrap_or_default(),
        )
        .args(sa_step.map(|s| vec!["--sa-step", s]).unwrap_or_default())
        .arg("--out")
        .arg(out)
        .arg(corpus)
        .output()
        .expect("run memaudit");
    assert!(
        o.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = s["text_bytes"].as_u64().unwrap();
    BuildFigures {
        seconds: s["seconds"].as_f64().unwrap(),
        input_bytes: s["input_bytes"].as_u64().unwrap(),
        peak_rss: s["peak_rss_bytes"].as_u64().unwrap_or(0),
        shard_bytes: text.min(s["shard_bytes"].as_u64().unwrap()),
    }
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// One line of build figures.
fn print_build(label: &str, b: &BuildFigures) {
    println!(
        "build  {label:<24} {:>8.1} s  {:>7.2} MB/s  peak RSS {:>6.0} MiB = {:.2}× shard text",
        b.seconds,
        mb(b.input_bytes) / b.seconds,
        b.peak_rss as f64 / (1 << 20) as f64,
        b.peak_rss as f64 / b.shard_bytes as f64
    );
}

fn main() {
    let a = args();
    common::ensure_corpus(&a.corpus);
    let index_dir = a.index.clone();
    println!(
        "memaudit index benchmark · corpus {} ({:.1} MB)",
        a.corpus.display(),
        mb(std::fs::metadata(&a.corpus).unwrap().len())
    );
    println!();

    let ours = if a.build || !index_dir.join("manifest.json").exists() {
        let b = build(
            &a.corpus,
            &index_dir,
            "libsais",
            a.shard_size.as_deref(),
            a.sa_step.as_deref(),
        );
        print_build("memaudit (libsais)", &b);
        Some(b)
    } else {
        None
    };
    if a.suffix {
        let dir = PathBuf::from("bench-data/index-suffix");
        let b = build(
            &a.corpus,
            &dir,
            "suffix",
            a.shard_size.as_deref(),
            a.sa_step.as_deref(),
        );
        print_build("memaudit (suffix)", &b);
        if let Some(o) = &ours {
            println!(
                "       libsais / suffix build throughput: {:.2}×",
                b.seconds / o.seconds
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    let peer_build = if a.peer {
        let py = common::infini_gram_python();
        let data = PathBuf::from("bench-data/peer-data");
        let save = PathBuf::from("bench-data/peer-index");
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_dir_all(&save);
        std::fs::create_dir_all(&data).unwrap();
        std::fs::hard_link(&a.corpus, data.join("corpus.jsonl"))
            .or_else(|_| std::fs::copy(&a.corpus, data.join("corpus.jsonl")).map(|_| ()))
            .unwrap();
        let v = common::infini_gram(&py, &[Path::new("build"), &data, &save]);
        let (secs, bytes, rss) = (
            v["seconds"].as_f64().unwrap(),
            v["input_bytes"].as_u64().unwrap(),
            v["peak_rss_bytes"].as_u64().unwrap(),
        );
        println!(
            "build  infini-gram (u8)     {:>8.1} s  {:>7.2} MB/s  peak RSS {:>6.0} MiB",
            secs,
            mb(bytes) / secs,
            rss as f64 / (1 << 20) as f64
        );
        if let Some(o) = &ours {
            println!(
                "       memaudit / infini-gram build throughput: {:.1}×",
                secs / o.seconds
            );
        }
        Some((py, save))
    } else {
        None
    };
    println!();

    let rss_before = rss_bytes().unwrap_or(0);
    let t = Instant::now();
    let index = Index::open(&index_dir).expect("open index");
    println!(
        "open   {:.2} ms, RSS +{:.1} MiB for {:.0} MB of shard text ({} shard(s))",
        t.elapsed().as_secs_f64() * 1000.0,
        (rss_bytes().unwrap_or(0).saturating_sub(rss_before)) as f64 / (1 << 20) as f64,
        mb(index.manifest.totals.text_bytes),
        index.shards.len()
    );
    let rss_before = rss_bytes().unwrap_or(0);
    let t = Instant::now();
    index.prepare();
    println!(
        "filter and search samples read in {:.0} ms, {:.1} MiB of samples (Index::prepare, as the daemon does; mapped, RSS +{:.1} MiB of page cache)",
        t.elapsed().as_secs_f64() * 1000.0,
        index.sample_bytes() as f64 / (1 << 20) as f64,
        (rss_bytes().unwrap_or(0).saturating_sub(rss_before)) as f64 / (1 << 20) as f64,
    );
    let docs = load_docs(&a.corpus, 4000);
    let sets = make_sets(&docs, a.queries);
    let opts = SpanOptions::default();
    println!();
    println!(
        "{:<14} {:>6} {:>10} {:>10} {:>10} {:>10}  found",
        "queries", "n", "q/s/core", "MB/s", "p50 ms", "p99 ms"
    );
    let mut ours_by_set = Vec::new();
    for set in &sets {
        for t in &set.texts {
            std::hint::black_box(index.spans(t, &opts));
        }
        let mut lat = Vec::with_capacity(set.texts.len());
        let mut found = 0;
        for (t, passage) in set.texts.iter().zip(&set.passages) {
            // Length of the passage as the index sees it (whitespace runs collapse).
            let p = index.normalizer.normalize(passage.trim()).chars().count();
            let start = Instant::now();
            let r = std::hint::black_box(index.spans(t, &opts));
            lat.push(start.elapsed().as_secs_f64() * 1000.0);
            // A copy is found when one span covers the whole passage.
            if p > 0 && r.longest >= p || p == 0 && !r.spans.is_empty() {
                found += 1;
            }
        }
        let f = summarize(lat);
        let bytes: usize = set.texts.iter().map(|t| t.len()).sum();
        let what = if !set.passages[0].is_empty() {
            "copies found"
        } else {
            "with any span"
        };
        println!(
            "{:<14} {:>6} {:>10.0} {:>10.2} {:>10.3} {:>10.3}  {found}/{} {what}",
            set.name,
            set.texts.len(),
            f.qps,
            f.qps * bytes as f64 / set.texts.len() as f64 / 1e6,
            f.p50_ms,
            f.p99_ms,
            set.texts.len()
        );
        ours_by_set.push(f);
    }
    println!(
        "peak RSS of this process: {:.0} MiB",
        peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64
    );
    if let Some(k) = &a.against_step {
        against_step(&a, &index, &sets, k);
    }

    if let Some((py, save)) = peer_build {
        println!();
        println!(
            "{:<14} {:>6} {:>10} {:>10} {:>10}   memaudit / infini-gram",
            "infini-gram", "n", "q/s/core", "p50 ms", "p99 ms"
        );
        for (set, ours) in sets.iter().zip(&ours_by_set) {
            let qfile = PathBuf::from("bench-data/peer-queries.json");
            std::fs::write(&qfile, serde_json::to_string(&set.texts).unwrap()).unwrap();
            let v = common::infini_gram(&py, &[Path::new("attribute"), &save, &qfile]);
            let lat: Vec<f64> = v["latencies_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let f = summarize(lat);
            println!(
                "{:<14} {:>6} {:>10.1} {:>10.1} {:>10.1}   {:.0}× throughput, p99 {:.0}× lower",
                set.name,
                set.texts.len(),
                f.qps,
                f.p50_ms,
                f.p99_ms,
                ours.qps / f.qps,
                f.p99_ms / ours.p99_ms
            );
        }
    }
}

/// Bytes of every file an index's manifest names, per byte of its normalized text.
fn disk_ratio(index: &Index) -> f64 {
    let bytes: u64 = index
        .manifest
        .file_names()
        .map(|f| std::fs::metadata(index.dir.join(f)).map_or(0, |m| m.len()))
        .sum();
    bytes as f64 / index.manifest.totals.text_bytes.max(1) as f64
}

/// The same queries on an index of suffix-array step `k` built from the same corpus, one text
/// on each index in turn (the order alternating), so that both see the same machine: latency
/// ratios, answers compared, and each index's size.
fn against_step(a: &Args, index: &Index, sets: &[common::QuerySet], k: &str) {
    let dir = PathBuf::from(format!("bench-data/index-step-{k}"));
    let b = build(&a.corpus, &dir, "libsais", a.shard_size.as_deref(), Some(k));
    println!();
    print_build(&format!("memaudit (step {k})"), &b);
    let other = Index::open(&dir).expect("open the other index");
    other.prepare();
    let step = |i: &Index| i.shards.iter().map(|s| s.step()).max().unwrap_or(1);
    println!(
        "disk   step {}: {:.2}× the text, step {}: {:.2}×",
        step(index),
        disk_ratio(index),
        step(&other),
        disk_ratio(&other)
    );
    println!(
        "{:<14} {:>6} {:>12} {:>12} {:>8} {:>12} {:>12} {:>8}  answers",
        "interleaved",
        "n",
        format!("p50 ms s{}", step(index)),
        format!("p50 ms s{}", step(&other)),
        "ratio",
        format!("p99 ms s{}", step(index)),
        format!("p99 ms s{}", step(&other)),
        "ratio"
    );
    let opts = SpanOptions::default();
    for set in sets {
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        let mut same = 0;
        for (i, t) in set.texts.iter().enumerate() {
            let time = |ix: &Index, lat: &mut Vec<f64>| {
                let start = Instant::now();
                let r = std::hint::black_box(ix.spans(t, &opts));
                lat.push(start.elapsed().as_secs_f64() * 1000.0);
                r
            };
            let (r1, r2) = if i % 2 == 0 {
                let r1 = time(index, &mut mine);
                (r1, time(&other, &mut theirs))
            } else {
                let r2 = time(&other, &mut theirs);
                (time(index, &mut mine), r2)
            };
            let key = |r: &memaudit::index::SpanReport| {
                r.spans
                    .iter()
                    .map(|s| (s.start, s.end, s.count))
                    .collect::<Vec<_>>()
            };
            same += usize::from(key(&r1) == key(&r2));
        }
        let (f1, f2) = (summarize(mine), summarize(theirs));
        println!(
            "{:<14} {:>6} {:>12.3} {:>12.3} {:>7.2}× {:>12.3} {:>12.3} {:>7.2}×  {same}/{} equal",
            set.name,
            set.texts.len(),
            f1.p50_ms,
            f2.p50_ms,
            f1.p50_ms / f2.p50_ms,
            f1.p99_ms,
            f2.p99_ms,
            f1.p99_ms / f2.p99_ms,
            set.texts.len()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
