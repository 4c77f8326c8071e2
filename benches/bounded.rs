//! The cost of judging one degenerate text: `cargo bench --bench bounded [-- --mb N]`.
//!
//! The corpus is every licence in `/usr/share/common-licenses` and the demo corpus: real text
//! with long runs (the MPL-2.0 holds 72-character lines of `*`), and a page of the rulers and
//! repeats real corpora hold (72 of `=-`, `-`, `=`, `e` with a combining accent, a word said
//! twenty times), so each degenerate kind below has a shorter run of itself in the corpus. Each text
//! is `--mb` (1) megabytes of one kind: novel words; `*` over and over; `=-` over and over; one
//! word repeated; one corpus line repeated; one corpus paragraph repeated; a letter with a
//! combining accent repeated; whitespace. Each is checked by `memaudit check` in a process of
//! its own, exact spans alone and with near-verbatim spans (`--near`), under the daemon's default
//! work budget (`--max-seconds 5 --max-spans 20000`), and `/usr/bin/time` gives its CPU and peak
//! resident memory. The table prints CPU against novel text's, and memory above an empty
//! text's (the process at idle: the mapped index and the runtime).
//!
//! `--before BIN`: the same table for another `memaudit` binary (an older build) in the same
//! run, each text checked by both in turn, with the ratio of their CPU and memory. It is given
//! no budget flags (older builds have none).
//!
//! **One streamed output** (a second table; `--streams-only` prints it alone): each kind again,
//! plus one corpus document copied whole (the GPL-3, 35 KB) and combining marks with no letter,
//! streamed in chunks of `--chunk` (32) bytes through `Analyzer::push`, the daemon's per-chunk
//! step, in this process. It prints the median cost of chunks 8-12 and 998-1002 (over 5 passes),
//! their ratio (the target: chunk 1,000 at most 1.5× chunk 10), and the whole output's matching
//! time against one check of the whole text.

use memaudit::analyze::{Analyzer, Options};
use memaudit::index::read::incremental::Incremental;
use memaudit::index::Index;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// One `memaudit check` run.
struct Run {
    cpu: f64,
    rss_kib: u64,
    /// Spans as the report lists them (a run of repeats is one).
    spans: usize,
    /// The report's `incomplete`, or `-`; `killed` when it outlasted its limit.
    incomplete: String,
}

/// Runs `memaudit check` on `text` under `/usr/bin/time`; `budget`: with the daemon's default
/// work budget (the build under test); an older build without one is killed after
/// `BEFORE_LIMIT_S` seconds instead.
fn check(bin: &Path, index: &Path, text: &Path, near: bool, budget: bool) -> Run {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%U %S %M"]);
    if !budget {
        cmd.args(["timeout", "-s", "KILL", &BEFORE_LIMIT_S.to_string()]);
    }
    let out = cmd
        .arg(bin)
        .args(["check", "--json"])
        .args(if budget {
            &["--max-seconds", "5", "--max-spans", "20000"][..]
        } else {
            &[][..]
        })
        .args(near.then_some("--near"))
        .arg("--index")
        .arg(index)
        .arg(text)
        .output()
        .expect("runs /usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert!(f.len() == 3, "no figures from /usr/bin/time: {err}");
    if !out.status.success() {
        assert!(!budget, "memaudit check failed: {err}");
        return Run {
            cpu: f[0] + f[1],
            rss_kib: f[2] as u64,
            spans: 0,
            incomplete: format!("killed at {BEFORE_LIMIT_S} s"),
        };
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let incomplete = match &report["incomplete"] {
        serde_json::Value::Null => "-".to_string(),
        i => format!(
            "{} at {}",
            i["reason"].as_str().unwrap_or("?"),
            i["checked_chars"]
        ),
    };
    Run {
        cpu: f[0] + f[1],
        rss_kib: f[2] as u64,
        spans: report["spans"].as_array().map_or(0, Vec::len),
        incomplete,
    }
}

/// How long an older build may check one text before it is killed.
const BEFORE_LIMIT_S: u64 = 60;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// Chunks streamed per output in the streams table.
const STREAM_CHUNKS: usize = 1005;

/// `text` cut into `n` chunks of about `size` bytes (at character boundaries).
fn chunks_of(text: &str, size: usize, n: usize) -> Vec<&str> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    while out.len() < n && at < text.len() {
        let mut end = (at + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[at..end]);
        at = end;
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The streams table: per-chunk cost early and late in one output of each kind.
fn streams(index_dir: &Path, kinds: &[(&str, String)], size: usize) {
    let index = Index::open(index_dir).expect("the bench index opens");
    index.prepare();
    let analyzer = Analyzer::new(index, None, None, Options::default()).unwrap();
    println!(
        "\nOne streamed output: {STREAM_CHUNKS} chunks of {size} bytes, Analyzer::push; median of 5 passes"
    );
    println!("| text | chunk 10 µs | chunk 1000 µs | 1000/10 | all chunks ms | one whole-text check ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, text) in kinds {
        let pieces = chunks_of(text, size, STREAM_CHUNKS);
        if pieces.len() < STREAM_CHUNKS {
            println!("| {name} | (shorter than {STREAM_CHUNKS} chunks) | | | | |");
            continue;
        }
        let mut per_chunk = vec![Vec::new(); pieces.len()];
        let mut totals = Vec::new();
        for _ in 0..5 {
            let mut inc = Incremental::new();
            let all = Instant::now();
            for (k, p) in pieces.iter().enumerate() {
                let t = Instant::now();
                analyzer.push(&mut inc, p);
                per_chunk[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
            totals.push(all.elapsed().as_secs_f64() * 1e3);
        }
        let around = |k: usize| {
            median(
                (k - 2..=k + 2)
                    .map(|i| median(per_chunk[i].clone()))
                    .collect(),
            )
        };
        let (early, late) = (around(10), around(1000));
        let streamed: String = pieces.concat();
        let t = Instant::now();
        let whole = analyzer.spans(&streamed);
        let whole_ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(whole.incomplete.is_none());
        println!(
            "| {name} | {early:.1} | {late:.1} | {:.2} | {:.1} | {whole_ms:.1} |",
            late / early.max(0.001),
            median(totals)
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: f64 = arg("--mb", "1").parse().expect("--mb N");
    let bytes = (mb * 1e6) as usize;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_memaudit"));
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-bounded");
    std::fs::create_dir_all(&work).unwrap();
    let index = work.join("index");
    if !index.join("manifest.json").exists() {
        // The licences have no extension: copied as .txt files, which the build reads.
        let licences = work.join("licences");
        std::fs::create_dir_all(&licences).unwrap();
        for e in std::fs::read_dir("/usr/share/common-licenses").unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                std::fs::copy(&p, licences.join(format!("{name}.txt"))).unwrap();
            }
        }
        let rulers = [
            "=-".repeat(36),
            "-".repeat(72),
            "=".repeat(72),
            "e\u{301}".repeat(36),
            "the ".repeat(20),
        ];
        std::fs::write(licences.join("rulers.txt"), rulers.join("\n\n")).unwrap();
        let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/demo/corpus");
        let st = Command::new(&bin)
            .args(["index", "build", "--force", "--out"])
            .arg(&index)
            .arg(&licences)
            .arg(&demo)
            .status()
            .unwrap();
        assert!(st.success(), "index build failed");
    }
    let mpl = std::fs::read_to_string("/usr/share/common-licenses/MPL-2.0").unwrap();
    let line = "This program is free software: you can redistribute it and/or modify\n";
    let paragraph: String = mpl.chars().skip(2000).take(600).collect();
    // Novel words: a seeded generator, no corpus text.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut novel = String::new();
    while novel.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 2 + (x % 8) as usize;
        novel.extend((0..len).map(|k| (b'a' + ((x >> (8 + 5 * k)) % 26) as u8) as char));
        novel.push(' ');
    }
    let fill = |unit: &str| unit.repeat(bytes / unit.len() + 1)[..bytes].to_string();
    let mut kinds: Vec<(&str, String)> = vec![
        ("novel words", novel),
        ("`*` run", fill("*")),
        ("`=-` run", fill("=-")),
        ("one word repeated", fill("the ")),
        ("a corpus line repeated", fill(line)),
        ("a corpus paragraph repeated", fill(&paragraph)),
        ("combining accents", fill("e\u{301}")),
        ("whitespace", fill(" \t\n")),
    ];
    for (_, t) in &mut kinds {
        while !t.is_char_boundary(t.len()) {
            t.pop();
        }
    }
    let size: usize = arg("--chunk", "32").parse().expect("--chunk BYTES");
    let mut streamed = kinds.clone();
    streamed.push((
        "one long copy (GPL-3)",
        std::fs::read_to_string("/usr/share/common-licenses/GPL-3").unwrap(),
    ));
    streamed.push(("combining marks alone", fill("\u{301}")));
    if std::env::args().any(|a| a == "--streams-only") {
        streams(&index, &streamed, size);
        return;
    }
    let before = std::env::args()
        .position(|a| a == "--before")
        .and_then(|i| std::env::args().nth(i + 1))
        .map(PathBuf::from);
    let empty = work.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    println!("{mb} MB per text; corpus: /usr/share/common-licenses, data/demo/corpus, rulers");
    match &before {
        None => {
            println!("| text | mode | CPU s | × novel CPU | peak RSS MiB | above idle MiB | spans | incomplete |");
            println!("|---|---|---:|---:|---:|---:|---:|---|");
        }
        Some(b) => {
            println!("before: {}", b.display());
            println!("| text | mode | CPU s | × novel CPU | above idle MiB | spans | incomplete | before: CPU s | above idle MiB | spans | ended | CPU before/now |");
            println!("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|");
        }
    }
    for near in [false, true] {
        let idle = check(&bin, &index, &empty, near, true).rss_kib;
        let idle_before = before
            .as_ref()
            .map(|b| check(b, &index, &empty, near, false).rss_kib);
        let mut novel_cpu = None;
        for (name, text) in &kinds {
            let path = work.join("text.txt");
            std::fs::write(&path, text).unwrap();
            let now = check(&bin, &index, &path, near, true);
            let base = *novel_cpu.get_or_insert(now.cpu.max(0.01));
            let mode = if near { "exact+near" } else { "exact" };
            let above = now.rss_kib.saturating_sub(idle) as f64 / 1024.0;
            match (&before, idle_before) {
                (Some(b), Some(idle_b)) => {
                    let then = check(b, &index, &path, near, false);
                    // A killed run's own figures are lost with it: it took at least the limit.
                    let killed = then.incomplete.starts_with("killed");
                    let (cpu_b, mem_b, ratio) = if killed {
                        (
                            format!("≥ {BEFORE_LIMIT_S} (wall)"),
                            "?".to_string(),
                            format!("> {:.0}×", BEFORE_LIMIT_S as f64 / now.cpu.max(0.01)),
                        )
                    } else {
                        (
                            format!("{:.2}", then.cpu),
                            format!("{:.1}", then.rss_kib.saturating_sub(idle_b) as f64 / 1024.0),
                            format!("{:.0}×", then.cpu / now.cpu.max(0.01)),
                        )
                    };
                    println!(
                        "| {name} | {mode} | {:.2} | {:.1} | {above:.1} | {} | {} | {cpu_b} | {mem_b} | {} | {} | {ratio} |",
                        now.cpu,
                        now.cpu / base,
                        now.spans,
                        now.incomplete,
                        then.spans,
                        then.incomplete,
                    );
                }
                _ => println!(
                    "| {name} | {mode} | {:.2} | {:.1} | {:.1} | {above:.1} | {} | {} |",
                    now.cpu,
                    now.cpu / base,
                    now.rss_kib as f64 / 1024.0,
                    now.spans,
                    now.incomplete,
                ),
            }
        }
    }
    streams(&index, &streamed, size);
}
