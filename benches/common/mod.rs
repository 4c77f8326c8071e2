//! Helpers shared by the benchmarks: the default model, the llama-cpp-python peer's Python, and the
//! index benchmarks' query texts and latency summaries.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The default model, fetched (or found in the cache) by `scripts/fetch-model.sh`.
pub fn model_path() -> PathBuf {
    let o = Command::new("scripts/fetch-model.sh")
        .output()
        .expect("run scripts/fetch-model.sh");
    assert!(
        o.status.success(),
        "fetch-model failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// Python with llama-cpp-python and numpy, installed into `bench-data/llama-venv` on first use
/// The Python of virtual environment `dir`, created with `packages` installed on first use.
fn venv_with(dir: &str, packages: &[&str], what: &str) -> PathBuf {
    let venv = PathBuf::from(dir);
    let py = venv.join("bin/python");
    if !py.exists() {
        eprintln!("installing {what} into {}", venv.display());
        assert!(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success());
        let ok = Command::new(&py)
            .args(["-m", "pip", "install", "-q"])
            .args(packages)
            .status()
            .unwrap();
        assert!(ok.success(), "installing {what} failed");
    }
    py
}

/// Python with llama-cpp-python and numpy, installed into `bench-data/llama-venv` on first use
/// (pip builds llama.cpp from source: minutes).
pub fn peer_python() -> PathBuf {
    venv_with(
        "bench-data/llama-venv",
        &["llama-cpp-python", "numpy"],
        "llama-cpp-python and numpy (builds llama.cpp: minutes)",
    )
}

/// Runs the llama-cpp-python peer `script` on `model` with `query` written to `file` (its
/// second argument), and returns the JSON it prints; panics with its standard error when it fails.
pub fn run_peer(script: &str, model: &Path, file: &Path, query: &str) -> serde_json::Value {
    std::fs::create_dir_all(file.parent().unwrap_or(Path::new("."))).unwrap();
    std::fs::write(file, query).unwrap();
    python_json(&peer_python(), script, &[model, file])
}

/// Python with the peer span finder, infini-gram 2.6.0 (and transformers, which its indexer
/// imports), installed into `bench-data/peer-venv` on first use.
pub fn infini_gram_python() -> PathBuf {
    venv_with(
        "bench-data/peer-venv",
        &["infini-gram==2.6.0", "transformers"],
        "the peer (infini-gram 2.6.0 and transformers)",
    )
}

/// Assembles the benchmark corpus at `path` with `scripts/bench-corpus.py` when it is missing.
pub fn ensure_corpus(path: &Path) {
    if path.exists() {
        return;
    }
    eprintln!(
        "{} missing: assembling it with scripts/bench-corpus.py",
        path.display()
    );
    let ok = Command::new("python3")
        .arg("scripts/bench-corpus.py")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "scripts/bench-corpus.py failed");
}

/// Runs `scripts/peer-infini-gram.py ARGS` (`build DATA SAVE` or `attribute SAVE QUERIES.json`)
/// and returns the JSON it prints.
pub fn infini_gram(py: &Path, args: &[&Path]) -> serde_json::Value {
    python_json(py, "scripts/peer-infini-gram.py", args)
}

/// Runs the Python `script` with `args` under `py` and returns the JSON it prints; panics with
/// its standard error when it fails.
pub fn python_json(py: &Path, script: &str, args: &[&Path]) -> serde_json::Value {
    let o = Command::new(py).arg(script).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{script} {:?} failed: {}",
        args.first(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The benchmark index in `index`, built from `corpus` first when it is missing (a clear
/// message when the corpus is missing too).
pub fn open_or_build_index(index: &Path, corpus: &Path) -> memaudit::index::Index {
    if !index.join("manifest.json").exists() {
        assert!(
            corpus.exists(),
            "{} is missing: run python3 scripts/bench-corpus.py {}",
            corpus.display(),
            corpus.display()
        );
        let ok = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args(["index", "build", "--quiet", "--out"])
            .arg(index)
            .arg(corpus)
            .status()
            .unwrap()
            .success();
        assert!(ok, "index build");
    }
    let opened = memaudit::index::Index::open(index).expect("open the benchmark index");
    // As the daemon does: searches start on the in-memory sample.
    opened.prepare();
    opened
}

/// Query texts of the index benchmarks: seeded "novel" texts (corpus words in a new random order)
/// and "copy" texts (novel text with a 512-byte passage of a random corpus document in the middle).
/// Reads up to `limit` documents' text from the corpus.
pub fn load_docs(corpus: &Path, limit: usize) -> Vec<String> {
    use std::io::BufRead;
    let f = std::io::BufReader::new(std::fs::File::open(corpus).expect("corpus"));
    let mut rng = StdRng::seed_from_u64(11);
    f.lines()
        .map_while(Result::ok)
        .filter(|_| rng.random_bool(0.25))
        .take(limit)
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(&l).ok()?["text"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

pub fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub struct QuerySet {
    pub name: String,
    pub texts: Vec<String>,
    /// The copied passage (empty for novel sets).
    pub passages: Vec<String>,
}

pub fn make_sets(docs: &[String], n: usize) -> Vec<QuerySet> {
    let mut rng = StdRng::seed_from_u64(42);
    let mut words: Vec<&str> = docs
        .iter()
        .flat_map(|d| d.split_whitespace())
        .filter(|w| w.len() < 15 && w.chars().all(|c| c.is_alphanumeric()))
        .take(200_000)
        .collect();
    words.sort_unstable();
    words.dedup();
    let novel = |rng: &mut StdRng, len: usize| {
        let mut s = String::new();
        while s.len() < len {
            s.push_str(words[rng.random_range(0..words.len())]);
            s.push(' ');
        }
        let cut = floor_char(&s, len);
        s.truncate(cut);
        s
    };
    let long: Vec<&String> = docs.iter().filter(|d| d.len() > 2048).collect();
    let mut sets = Vec::new();
    for size in [1024usize, 8192] {
        let count = if size == 1024 { n } else { (n / 2).max(1) };
        let mut set = QuerySet {
            name: format!("{} KiB novel", size / 1024),
            texts: vec![],
            passages: vec![],
        };
        for _ in 0..count {
            set.texts.push(novel(&mut rng, size));
            set.passages.push(String::new());
        }
        sets.push(set);
        let mut set = QuerySet {
            name: format!("{} KiB copy", size / 1024),
            texts: vec![],
            passages: vec![],
        };
        for _ in 0..count {
            let d = long[rng.random_range(0..long.len())];
            let at = floor_char(d, rng.random_range(0..d.len() - 600));
            let passage = &d[at..floor_char(d, at + 512)];
            let side = (size - passage.len()) / 2;
            let text = format!(
                "{} {} {}",
                novel(&mut rng, side - 1),
                passage,
                novel(&mut rng, size - side - passage.len() - 1)
            );
            set.passages.push(passage.to_string());
            set.texts.push(text);
        }
        sets.push(set);
    }
    sets
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub struct QueryFigures {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub qps: f64,
}

pub fn summarize(mut lat_ms: Vec<f64>) -> QueryFigures {
    let total: f64 = lat_ms.iter().sum();
    let qps = lat_ms.len() as f64 / (total / 1000.0);
    lat_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    QueryFigures {
        p50_ms: percentile(&lat_ms, 0.5),
        p99_ms: percentile(&lat_ms, 0.99),
        qps,
    }
}

/// Messages/s around each generation change the daemon reported, and the longest time without a
/// finished message near a swap and elsewhere (samples every ~5 ms from /metrics).
pub fn report_swaps(samples: &[(Instant, f64, f64)], t0: Instant) {
    let samples: Vec<_> = samples.iter().filter(|s| s.0 >= t0).collect();
    let changes: Vec<Instant> = samples
        .windows(2)
        .filter(|w| w[1].2 != w[0].2)
        .map(|w| w[1].0)
        .collect();
    let rate = |from: Instant, to: Instant| {
        let a = samples.iter().find(|s| s.0 >= from);
        let b = samples.iter().rev().find(|s| s.0 <= to);
        match (a, b) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0).as_secs_f64(),
            _ => f64::NAN,
        }
    };
    let near = |t: Instant| {
        changes
            .iter()
            .any(|&c| t + Duration::from_millis(300) >= c && t <= c + Duration::from_millis(300))
    };
    let (mut stall_near, mut stall_far) = (Duration::ZERO, Duration::ZERO);
    let mut since = samples.first().map(|s| s.0).unwrap_or(t0);
    for w in samples.windows(2) {
        if w[1].1 > w[0].1 {
            let stalled = w[1].0 - since;
            if near(w[1].0) {
                stall_near = stall_near.max(stalled);
            } else {
                stall_far = stall_far.max(stalled);
            }
            since = w[1].0;
        }
    }
    println!(
        "  index swaps: {} generations taken up while consuming (one takedown of 100 documents each)",
        changes.len()
    );
    for (i, &c) in changes.iter().enumerate().take(8) {
        println!(
            "    swap {}: messages/s in the second before {:.0}, in the 100 ms after {:.0}, in the second after {:.0}",
            i + 1,
            rate(c - Duration::from_secs(1), c),
            rate(c, c + Duration::from_millis(100)),
            rate(c, c + Duration::from_secs(1))
        );
    }
    println!(
        "  longest time without a finished message: {:.1} ms within 300 ms of a swap, {:.1} ms elsewhere",
        stall_near.as_secs_f64() * 1e3,
        stall_far.as_secs_f64() * 1e3
    );
}

/// The value of `--NAME VALUE` on the command line, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The sum of the samples of `name` (any labels) on a Prometheus text page.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
