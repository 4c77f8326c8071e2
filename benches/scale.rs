//! Scale benchmark (issue 27): what a span query costs as the corpus grows in bytes and in shards,
//! with the suffix arrays and text warm, and dropped from the page cache.
//!
//! ```text
//! cargo bench --bench scale                            # 350 MB as 1, 16, 64 shards; synthetic 0.35, 1.4 GB
//! cargo bench --bench scale -- --sizes 0.35GB,1.4GB,5.6GB --peer
//! options: --corpus FILE.jsonl (default bench-data/corpus.jsonl, made by scripts/bench-corpus.py)
//!          --shards 1,16,64 (the real corpus cut into so many shards; "" for none)
//!          --sizes 0.35GB,1.4GB (seeded synthetic corpora, scripts/bench-corpus.py --synthetic; "" for none)
//!          --queries N (texts per 1 KiB set, default 200; 8 KiB sets and cold runs take N/2 and N/4)
//!          --peer (infini-gram 2.6.0, byte level, on the real corpus in the same run)
//!          --keep (keep the indexes under bench-data/scale/)
//!          --size-shards SIZE and --memory-limit SIZE (passed to the synthetic corpora's builds:
//!          e.g. `--sizes 5.6GB --size-shards 3GiB --memory-limit 9GiB` builds shards past 2 GiB,
//!          sorted in parts within the limit)
//! ```
//!
//! For each index: build throughput and peak RSS (the build's own report), bytes on disk and of
//! the presence filter per byte of text, the filter's false-positive rate (a million keys never
//! inserted), private memory after `Index::prepare` (the process's anonymous memory, from
//! /proc/self/smaps_rollup), and 1 KiB and 8 KiB novel and copy queries (`benches/common`):
//! p50 and p99, warm (each text run once before), and cold. Cold is as a long-running daemon
//! sees a page cache that has let the index go: before each query the shard text and suffix
//! arrays are dropped from the page cache (`posix_fadvise(DONTNEED)`, from a Python helper) while
//! the search samples and the filter stay in memory; the query's major page faults (reads from
//! the disk, /proc/self/stat) are counted, a figure that does not depend on this machine's disk.
//! Copies are counted found when one span covers the whole passage; novel texts with any span
//! are counted.

mod common;

use common::{load_docs, make_sets, summarize, QuerySet};
use memaudit::index::{Index, SpanOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

struct Args {
    corpus: PathBuf,
    shards: Vec<u64>,
    sizes: Vec<String>,
    queries: usize,
    peer: bool,
    keep: bool,
    size_shards: Option<String>,
    memory_limit: Option<String>,
}

fn list<T>(s: &str, f: impl Fn(&str) -> T) -> Vec<T> {
    s.split(',').filter(|x| !x.is_empty()).map(f).collect()
}

fn args() -> Args {
    let mut a = Args {
        corpus: PathBuf::from("bench-data/corpus.jsonl"),
        shards: vec![1, 16, 64],
        sizes: vec!["0.35GB".into(), "1.4GB".into()],
        queries: 200,
        peer: false,
        keep: false,
        size_shards: None,
        memory_limit: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().unwrap_or_else(|| panic!("{arg} {what}"));
        match arg.as_str() {
            "--corpus" => a.corpus = value("FILE").into(),
            "--shards" => a.shards = list(&value("LIST"), |x| x.parse().expect("a number")),
            "--sizes" => a.sizes = list(&value("LIST"), |x| x.to_string()),
            "--queries" => a.queries = value("N").parse().expect("a number"),
            "--peer" => a.peer = true,
            "--keep" => a.keep = true,
            "--size-shards" => a.size_shards = Some(value("SIZE")),
            "--memory-limit" => a.memory_limit = Some(value("SIZE")),
            "--bench" => {}
            other => panic!("unknown argument {other:?}; see the doc comment of benches/scale.rs"),
        }
    }
    a
}

/// One index to measure: its corpus and how it is cut into shards.
struct Config {
    label: String,
    corpus: PathBuf,
    shard_size: Option<String>,
    memory_limit: Option<String>,
}

/// What a build reported.
struct Built {
    seconds: f64,
    input_bytes: u64,
    text_bytes: u64,
    peak_rss: u64,
}

fn build(corpus: &Path, out: &Path, c: &Config) -> Built {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memaudit"));
    cmd.args(["index", "build", "--force", "--quiet", "--json", "--out"])
        .arg(out)
        .arg(corpus);
    if let Some(s) = &c.shard_size {
        cmd.args(["--shard-size", s]);
    }
    if let Some(m) = &c.memory_limit {
        cmd.args(["--memory-limit", m]);
    }
    let o = cmd.output().expect("run memaudit");
    assert!(
        o.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    Built {
        seconds: s["seconds"].as_f64().unwrap(),
        input_bytes: s["input_bytes"].as_u64().unwrap(),
        text_bytes: s["text_bytes"].as_u64().unwrap(),
        peak_rss: s["peak_rss_bytes"].as_u64().unwrap_or(0),
    }
}

/// Makes the seeded synthetic corpus of `size` from the real one, once.
fn synthetic(real: &Path, size: &str) -> PathBuf {
    let path = PathBuf::from(format!("bench-data/synthetic-{size}.jsonl"));
    if !path.exists() {
        eprintln!(
            "assembling {} (scripts/bench-corpus.py --synthetic)",
            path.display()
        );
        let ok = Command::new("python3")
            .arg("scripts/bench-corpus.py")
            .arg(&path)
            .args(["--synthetic", "--bytes", size, "--seed", "7", "--from"])
            .arg(real)
            .status()
            .unwrap()
            .success();
        assert!(ok, "scripts/bench-corpus.py failed");
    }
    path
}

/// A /proc/self file's field: `Anonymous:` of smaps_rollup in bytes.
fn anonymous_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Major page faults of this process so far (reads from the disk).
fn major_faults() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (in parentheses, may hold spaces): state is field 3, majflt 12.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .nth(9)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Drops files from the page cache on request: a Python helper (os.posix_fadvise), so this
/// bench needs no `unsafe`; one request per query.
struct Evictor {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Evictor {
    fn new(files: &[PathBuf]) -> Evictor {
        const SCRIPT: &str = "import os, sys\n\
            files = sys.argv[1:]\n\
            for line in sys.stdin:\n\
            \x20   for f in files:\n\
            \x20       fd = os.open(f, os.O_RDONLY)\n\
            \x20       os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n\
            \x20       os.close(fd)\n\
            \x20   print('ok', flush=True)\n";
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT])
            .args(files)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let out = BufReader::new(child.stdout.take().unwrap());
        Evictor { child, out }
    }

    fn evict(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"drop\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok", "the page-cache helper failed");
    }
}

/// The shard text and suffix-array files of `index` (what a cold query would read).
fn array_files(index: &Index) -> Vec<PathBuf> {
    index
        .shards
        .iter()
        .flat_map(|s| [&s.entry.text.name, &s.entry.sa.name])
        .map(|n| index.dir.join(n))
        .collect()
}

/// One set's figures.
struct SetFigures {
    p50: f64,
    p99: f64,
    reads: f64,
    found: usize,
    n: usize,
    /// Share of the texts' normalized bytes inside the filter's segments (searched at all).
    searched: f64,
}

/// Share of the normalized bytes of `texts` that the presence filter lets through to a search.
fn searched_share(index: &Index, texts: &[String], opts: &SpanOptions) -> f64 {
    let (mut inside, mut all) = (0usize, 0usize);
    for t in texts {
        let n = index.normalizer.normalize(t);
        all += n.len();
        inside += match index.filter_segments(n.as_bytes(), opts.min_len) {
            Some(segs) => segs.iter().map(|(a, b)| b - a).sum(),
            None => n.len(),
        };
    }
    inside as f64 / all.max(1) as f64
}

/// Whether `text`'s report finds what the set promised: its passage whole, or (novel) nothing.
fn found(index: &Index, r: &memaudit::index::SpanReport, passage: &str) -> bool {
    let p = index.normalizer.normalize(passage.trim()).chars().count();
    if p == 0 {
        r.spans.is_empty()
    } else {
        r.longest >= p
    }
}

fn warm(index: &Index, set: &QuerySet, opts: &SpanOptions) -> SetFigures {
    for t in &set.texts {
        std::hint::black_box(index.spans(t, opts));
    }
    let mut lat = Vec::new();
    let mut ok = 0;
    for (t, p) in set.texts.iter().zip(&set.passages) {
        let start = Instant::now();
        let r = std::hint::black_box(index.spans(t, opts));
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
        ok += found(index, &r, p) as usize;
    }
    let f = summarize(lat);
    SetFigures {
        p50: f.p50_ms,
        p99: f.p99_ms,
        reads: 0.0,
        found: ok,
        n: set.texts.len(),
        searched: searched_share(index, &set.texts, opts),
    }
}

/// Cold queries: each runs on a freshly opened generation, prepared as the daemon's reload does
/// (filter and samples read into the page cache), with the arrays dropped from it after.
fn cold(mut index: Index, set: &QuerySet, n: usize, opts: &SpanOptions) -> (SetFigures, Index) {
    let mut evictor = Evictor::new(&array_files(&index));
    let (mut lat, mut reads, mut ok) = (Vec::new(), 0u64, 0);
    for (t, p) in set.texts.iter().zip(&set.passages).take(n) {
        let next = Index::open(&index.dir).unwrap();
        next.prepare();
        drop(std::mem::replace(&mut index, next));
        evictor.evict();
        let faults = major_faults();
        let start = Instant::now();
        let r = std::hint::black_box(index.spans(t, opts));
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
        reads += major_faults() - faults;
        ok += found(&index, &r, p) as usize;
    }
    let count = lat.len();
    let f = summarize(lat);
    let figures = SetFigures {
        p50: f.p50_ms,
        p99: f.p99_ms,
        reads: reads as f64 / count as f64,
        found: ok,
        n: count,
        searched: 0.0,
    };
    (figures, index)
}

/// The filter's false-positive rate: a million keys no build inserted (a seeded generator's).
fn false_positive_rate(index: &Index) -> Option<f64> {
    use rand::{Rng, SeedableRng};
    let presence = index.presence.as_ref()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let n = 1_000_000;
    let hits = (0..n).filter(|_| presence.contains(rng.random())).count();
    Some(hits as f64 / n as f64)
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Everything measured of one index.
struct Row {
    label: String,
    shards: usize,
    sets: Vec<(String, SetFigures, SetFigures)>,
}

/// Builds and measures one index; returns its figures and its text's bytes.
fn measure(c: &Config, queries: usize, keep: bool) -> (Row, u64) {
    let out = PathBuf::from("bench-data/scale").join(&c.label);
    let b = build(&c.corpus, &out, c);
    let anon = anonymous_bytes();
    let index = Index::open(&out).unwrap();
    index.prepare();
    let private = anonymous_bytes().saturating_sub(anon);
    let filter = index
        .presence
        .as_ref()
        .map_or(0, |p| p.entries.iter().map(|f| f.file.bytes).sum::<u64>());
    println!(
        "{:<16} {:>6} {:>8.0} {:>9.1} {:>9.0} {:>9.2}× {:>9.3}× {:>9.3}% {:>9.4}%",
        c.label,
        index.shards.len(),
        mb(b.text_bytes),
        mb(b.input_bytes) / b.seconds,
        b.peak_rss as f64 / (1 << 20) as f64,
        dir_bytes(&out) as f64 / b.text_bytes as f64,
        filter as f64 / b.text_bytes as f64,
        100.0 * private as f64 / b.text_bytes as f64,
        100.0 * false_positive_rate(&index).unwrap_or(f64::NAN),
    );
    let docs = load_docs(&c.corpus, 4000);
    let sets = make_sets(&docs, queries);
    let opts = SpanOptions::default();
    let mut row = Row {
        label: c.label.clone(),
        shards: index.shards.len(),
        sets: Vec::new(),
    };
    // What the filter buys: the 1 KiB sets on the same index without it (every shard searched
    // whole, as before filters), warm.
    let plain = Index::open(&out).unwrap().without_filter();
    let without: Vec<String> = sets
        .iter()
        .filter(|s| s.name.starts_with("1 KiB"))
        .map(|s| {
            let w = warm(&plain, s, &opts);
            format!("{} p50 {:.3} ms", s.name, w.p50)
        })
        .collect();
    drop(plain);
    println!("{:<16} without the filter: {}", c.label, without.join(", "));
    let mut index = index;
    for set in &sets {
        let w = warm(&index, set, &opts);
        let (cd, next) = cold(index, set, (set.texts.len() / 4).max(1), &opts);
        index = next;
        row.sets.push((set.name.clone(), w, cd));
    }
    drop(index);
    if !keep {
        let _ = std::fs::remove_dir_all(&out);
    }
    (row, b.text_bytes)
}

fn print_queries(rows: &[Row]) {
    println!();
    println!(
        "{:<16} {:<11} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}  found",
        "index", "queries", "warm p50", "warm p99", "cold p50", "cold p99", "reads/q", "searched"
    );
    for r in rows {
        for (name, w, c) in &r.sets {
            println!(
                "{:<16} {:<11} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8.2} {:>8.1}%  {}/{} warm, {}/{} cold",
                r.label,
                name,
                w.p50,
                w.p99,
                c.p50,
                c.p99,
                c.reads,
                100.0 * w.searched,
                w.found,
                w.n,
                c.found,
                c.n
            );
        }
    }
}

/// p50 of set `name` in `r`, warm or cold.
fn p50(r: &Row, name: &str, cold: bool) -> f64 {
    let (_, w, c) = r.sets.iter().find(|s| s.0 == name).expect("set");
    if cold {
        c.p50
    } else {
        w.p50
    }
}

fn print_ratios(rows: &[Row]) {
    println!();
    let by_shards = |n: usize| {
        rows.iter()
            .find(|r| r.label.starts_with("real") && r.shards == n)
    };
    if let Some(one) = by_shards(1) {
        for r in rows
            .iter()
            .filter(|r| r.label.starts_with("real") && r.shards > 1)
        {
            println!(
                "{} shards / 1 shard, p50 warm: 1 KiB novel {:.2}×, 1 KiB copy {:.2}×, 8 KiB novel {:.2}×, 8 KiB copy {:.2}×",
                r.shards,
                p50(r, "1 KiB novel", false) / p50(one, "1 KiB novel", false),
                p50(r, "1 KiB copy", false) / p50(one, "1 KiB copy", false),
                p50(r, "8 KiB novel", false) / p50(one, "8 KiB novel", false),
                p50(r, "8 KiB copy", false) / p50(one, "8 KiB copy", false),
            );
        }
    }
    let synthetic: Vec<&Row> = rows
        .iter()
        .filter(|r| r.label.starts_with("synthetic"))
        .collect();
    if let Some(first) = synthetic.first() {
        for r in &synthetic[1..] {
            println!(
                "{} / {}, p50 warm: 1 KiB novel {:.2}×, 1 KiB copy {:.2}×",
                r.label,
                first.label,
                p50(r, "1 KiB novel", false) / p50(first, "1 KiB novel", false),
                p50(r, "1 KiB copy", false) / p50(first, "1 KiB copy", false),
            );
        }
    }
    for r in rows {
        println!(
            "{}: 1 KiB novel cold / warm p50 {:.2}×",
            r.label,
            p50(r, "1 KiB novel", true) / p50(r, "1 KiB novel", false)
        );
    }
}

/// infini-gram on the real corpus, 1 KiB sets, beside memaudit's one-shard and most-shards rows.
fn peer(corpus: &Path, rows: &[Row], queries: usize) {
    let py = common::infini_gram_python();
    let data = PathBuf::from("bench-data/peer-data");
    let save = PathBuf::from("bench-data/peer-index");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&save);
    std::fs::create_dir_all(&data).unwrap();
    std::fs::hard_link(corpus, data.join("corpus.jsonl"))
        .or_else(|_| std::fs::copy(corpus, data.join("corpus.jsonl")).map(|_| ()))
        .unwrap();
    let v = common::infini_gram(&py, &[Path::new("build"), &data, &save]);
    println!();
    println!(
        "infini-gram (u8) built {:.0} MB in {:.1} s",
        mb(v["input_bytes"].as_u64().unwrap()),
        v["seconds"].as_f64().unwrap()
    );
    let docs = load_docs(corpus, 4000);
    let sets = make_sets(&docs, queries);
    for set in sets.iter().filter(|s| s.name.starts_with("1 KiB")) {
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
        let ours: Vec<String> = rows
            .iter()
            .filter(|r| r.label.starts_with("real"))
            .map(|r| {
                format!(
                    "{} shard(s) {:.0}×",
                    r.shards,
                    f.p50_ms / p50(r, &set.name, false)
                )
            })
            .collect();
        println!(
            "infini-gram {:<11} p50 {:.2} ms, p99 {:.2} ms; its p50 / memaudit's: {}",
            set.name,
            f.p50_ms,
            f.p99_ms,
            ours.join(", ")
        );
    }
    let _ = std::fs::remove_dir_all(&save);
}

fn main() {
    let a = args();
    common::ensure_corpus(&a.corpus);
    println!(
        "memaudit scale benchmark · {} · queries: benches/common make_sets",
        a.corpus.display()
    );
    println!();
    println!(
        "{:<16} {:>6} {:>8} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "index",
        "shards",
        "text MB",
        "build MB/s",
        "peak MiB",
        "disk/text",
        "filter/text",
        "private",
        "filter FPR"
    );
    let mut rows = Vec::new();
    // The real corpus's normalized text, once a build has said (its file's size until then).
    let mut text = std::fs::metadata(&a.corpus).unwrap().len() * 9 / 10;
    let mut shards = a.shards.clone();
    shards.sort_unstable();
    for n in shards {
        let c = Config {
            label: format!("real-{n}sh"),
            corpus: a.corpus.clone(),
            // A little over 1/n of the text, so that it makes n shards (documents are not split).
            shard_size: (n > 1).then(|| (text / n + text / (n * n) / 2).to_string()),
            memory_limit: None,
        };
        let (row, text_bytes) = measure(&c, a.queries, a.keep);
        text = text_bytes;
        rows.push(row);
    }
    for size in &a.sizes {
        let c = Config {
            label: format!("synthetic-{size}"),
            corpus: synthetic(&a.corpus, size),
            shard_size: a.size_shards.clone(),
            memory_limit: a.memory_limit.clone(),
        };
        rows.push(measure(&c, a.queries, a.keep).0);
    }
    print_queries(&rows);
    print_ratios(&rows);
    if a.peer {
        peer(&a.corpus, &rows, a.queries);
    }
}
