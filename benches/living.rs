//! The living index benchmark (issue 14), on the 350 MB benchmark corpus: takedown, addition,
//! compaction, query cost by shard count, and the daemon's swap under load.
//!
//! ```text
//! python3 scripts/bench-corpus.py bench-data/corpus.jsonl     # once
//! cargo bench --bench living
//! options: --corpus FILE.jsonl (default bench-data/corpus.jsonl) --work DIR (default
//!          bench-data/living; about 8 GB while it runs) --queries N (1 KiB texts per set, 100)
//!          --add-bytes SIZE (default 10MB: split off the end of the corpus, added later)
//! ```
//!
//! Every change is made by the `memaudit` binary, timed as a process (what a user waits for).
//! Query latency: the 1 KiB novel and copy texts of `cargo bench --bench index`, each run once to
//! warm, then once timed, one at a time on one thread. The swap: two threads judge texts
//! through one shared `Analyzer` as the daemon's pipeline does, while a takedown is published and
//! the new generation is opened, checked and swapped in by the daemon's own code path
//! (`index::read::live::open_next`, `Analyzer::replace_index`); throughput is read in 100 ms windows.

mod common;

use common::{load_docs, make_sets, metric, summarize, QueryFigures};
use memaudit::analyze::{Analyzer, Options};
use memaudit::index::{Index, SpanOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    corpus: PathBuf,
    work: PathBuf,
    queries: usize,
    add_bytes: u64,
}

fn args() -> Args {
    let mut a = Args {
        corpus: PathBuf::from("bench-data/corpus.jsonl"),
        work: PathBuf::from("bench-data/living"),
        queries: 100,
        add_bytes: 10_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--corpus" => a.corpus = it.next().expect("--corpus FILE").into(),
            "--work" => a.work = it.next().expect("--work DIR").into(),
            "--queries" => a.queries = it.next().expect("--queries N").parse().expect("a number"),
            "--add-bytes" => {
                a.add_bytes = memaudit::units::parse_size(&it.next().expect("--add-bytes SIZE"))
                    .expect("a size")
            }
            "--bench" => {}
            other => panic!("unknown argument {other:?}; see the doc comment of benches/living.rs"),
        }
    }
    a
}

/// Runs `memaudit ARGS`, asserting success; returns stdout and the wall time.
fn memaudit(args: &[&str], paths: &[&Path]) -> (String, f64) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(args)
        .args(paths)
        .output()
        .expect("run memaudit");
    let s = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "memaudit {args:?} {paths:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (String::from_utf8(o.stdout).unwrap(), s)
}

fn build(inputs: &[&Path], out: &Path, shard_size: &str) -> f64 {
    let mut paths = vec![out];
    paths.extend_from_slice(inputs);
    memaudit(
        &[
            "index",
            "build",
            "--force",
            "--quiet",
            "--shard-size",
            shard_size,
            "--out",
        ],
        &paths,
    )
    .1
}

/// p50/p99 of every text, warm; with `check`, asserts each copy's passage was found (after a
/// takedown some passages come from removed documents and rightly are not).
///
/// Each text is timed three times and its fastest run kept: the work is deterministic, and on a
/// shared 2-core machine a single run's tail is mostly other processes.
fn measure_with(index: &Index, texts: &[(String, bool)], check: bool) -> QueryFigures {
    let opts = SpanOptions::default();
    let mut lat = vec![f64::INFINITY; texts.len()];
    for (t, copy) in texts {
        let r = index.spans(t, &opts);
        if check && *copy {
            assert!(!r.spans.is_empty(), "a copied passage was not found");
        }
    }
    for _ in 0..3 {
        for (i, (t, _)) in texts.iter().enumerate() {
            let start = Instant::now();
            let _ = index.spans(t, &opts);
            lat[i] = lat[i].min(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    summarize(lat)
}

fn measure(index: &Index, texts: &[(String, bool)]) -> QueryFigures {
    measure_with(index, texts, false)
}

/// Two indexes timed text by text in alternation (each text's fastest of three runs on each), so
/// that drift in the machine's speed falls on both alike: for the ratios.
fn measure_pair(a: &Index, b: &Index, texts: &[(String, bool)]) -> (QueryFigures, QueryFigures) {
    let opts = SpanOptions::default();
    let (mut la, mut lb) = (
        vec![f64::INFINITY; texts.len()],
        vec![f64::INFINITY; texts.len()],
    );
    for (t, _) in texts {
        let _ = a.spans(t, &opts);
        let _ = b.spans(t, &opts);
    }
    let time = |ix: &Index, t: &str| {
        let start = Instant::now();
        let _ = ix.spans(t, &opts);
        start.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..3 {
        for (i, (t, _)) in texts.iter().enumerate() {
            la[i] = la[i].min(time(a, t));
            lb[i] = lb[i].min(time(b, t));
        }
    }
    (summarize(la), summarize(lb))
}

fn row(label: &str, shards: usize, f: &QueryFigures, base: &QueryFigures) {
    println!(
        "| {label} | {shards} | {:.3} ms | {:.3} ms | {:.0} | {:.2}× |",
        f.p50_ms,
        f.p99_ms,
        f.qps,
        f.p99_ms / base.p99_ms
    );
}

/// Splits the corpus: the last `add_bytes` of lines go to `add`, the rest to `base`.
fn split(corpus: &Path, base: &Path, add: &Path, add_bytes: u64) -> (u64, u64) {
    let total = std::fs::metadata(corpus).unwrap().len();
    let cut = total.saturating_sub(add_bytes);
    let r = std::io::BufReader::new(std::fs::File::open(corpus).unwrap());
    let mut b = std::io::BufWriter::new(std::fs::File::create(base).unwrap());
    let mut a = std::io::BufWriter::new(std::fs::File::create(add).unwrap());
    let (mut seen, mut added) = (0u64, 0u64);
    for line in r.lines().map_while(Result::ok) {
        seen += line.len() as u64 + 1;
        if seen > cut {
            added += line.len() as u64 + 1;
            writeln!(a, "{line}").unwrap();
        } else {
            writeln!(b, "{line}").unwrap();
        }
    }
    (seen - added, added)
}

/// Writes the live documents of `index` as JSONL (already normalized text re-normalizes to
/// itself), for a fresh build of exactly the documents that remain.
fn export_live(index: &Index, out: &Path) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    for s in &index.shards {
        for k in 0..s.entry.documents {
            let text = s.doc_text(k);
            if text.is_empty() {
                continue;
            }
            let line =
                serde_json::json!({"text": String::from_utf8_lossy(text), "meta": s.doc_meta(k)});
            writeln!(w, "{line}").unwrap();
        }
    }
}

fn ids_file(path: &Path, ids: &[u64]) {
    let s: String = ids.iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(path, s).unwrap();
}

fn main() {
    let a = args();
    assert!(
        a.corpus.exists(),
        "{} is missing: run python3 scripts/bench-corpus.py {}",
        a.corpus.display(),
        a.corpus.display()
    );
    let _ = std::fs::remove_dir_all(&a.work);
    std::fs::create_dir_all(&a.work).unwrap();
    let w = |name: &str| a.work.join(name);
    let (base_bytes, add_bytes) = split(&a.corpus, &w("base.jsonl"), &w("add.jsonl"), a.add_bytes);
    let docs = load_docs(&w("base.jsonl"), 4000);
    let sets = make_sets(&docs, a.queries);
    let texts: Vec<(String, bool)> = sets
        .iter()
        .filter(|s| s.name.starts_with("1 KiB"))
        .flat_map(|s| {
            s.texts
                .iter()
                .map(|t| (t.clone(), s.name.ends_with("copy")))
        })
        .collect();
    println!(
        "corpus: {:.1} MB base + {:.1} MB to add; {} query texts of 1 KiB (half with a 512-byte copy)\n",
        base_bytes as f64 / 1e6,
        add_bytes as f64 / 1e6,
        texts.len()
    );

    // One shard: the baseline.
    let idx = w("index");
    let build_s = build(&[&w("base.jsonl")], &idx, "1GiB");
    let base = measure_with(&Index::open(&idx).unwrap(), &texts, true);
    let documents = Index::open(&idx).unwrap().manifest.totals.documents;
    println!("full build of the base: {build_s:.1} s, {documents} documents\n");

    // Takedown.
    let mut ids: Vec<u64> = (0..documents).collect();
    ids.shuffle(&mut StdRng::seed_from_u64(5));
    ids_file(&w("ids-1000"), &ids[..1000]);
    let (_, remove_1k) = memaudit(
        &["index", "remove", "--reason", "bench", "--ids-file"],
        &[&w("ids-1000"), &idx],
    );
    let after_1k = measure(&Index::open(&idx).unwrap(), &texts);
    ids_file(&w("ids-9000"), &ids[1000..10_000]);
    let (_, remove_9k) = memaudit(
        &["index", "remove", "--reason", "bench", "--ids-file"],
        &[&w("ids-9000"), &idx],
    );
    let after_10k_index = Index::open(&idx).unwrap();
    // The same documents built from scratch: the same answers, so the difference is the cost of
    // skipping removed documents (against the baseline, texts whose passage was taken down also
    // change their answer and their cost).
    export_live(&after_10k_index, &w("live-10k.jsonl"));
    drop(after_10k_index);
    let fresh_dir = w("fresh");
    build(&[&w("live-10k.jsonl")], &fresh_dir, "1GiB");
    let after_10k_index = Index::open(&idx).unwrap();
    let (after_10k, fresh_10k) =
        measure_pair(&after_10k_index, &Index::open(&fresh_dir).unwrap(), &texts);
    drop(after_10k_index);
    std::fs::remove_dir_all(&fresh_dir).unwrap();

    // Addition.
    let (_, add_s) = memaudit(&["index", "add", "--quiet"], &[&idx, &w("add.jsonl")]);
    let added = measure(&Index::open(&idx).unwrap(), &texts);
    let shards_after_add = Index::open(&idx).unwrap().shards.len();

    // Compaction (erases 10,000 documents, merges the added shard in).
    let (_, compact_s) = memaudit(&["index", "compact"], &[&idx]);
    let compacted_index = Index::open(&idx).unwrap();
    export_live(&compacted_index, &w("live.jsonl"));
    let shards_compacted = compacted_index.shards.len();
    let fresh_dir = w("fresh");
    let fresh_s = build(&[&w("live.jsonl")], &fresh_dir, "1GiB");
    let (compacted, fresh) =
        measure_pair(&compacted_index, &Index::open(&fresh_dir).unwrap(), &texts);
    drop(compacted_index);
    std::fs::remove_dir_all(&fresh_dir).unwrap();

    println!("## Changes (each a `memaudit index ...` process, wall time)\n");
    println!("| change | time | against |");
    println!("|---|---:|---|");
    println!("| remove 1,000 documents | {remove_1k:.3} s | target < 1 s |");
    println!("| remove 9,000 more (10,000 in all) | {remove_9k:.3} s | |");
    println!(
        "| add {:.1} MB | {add_s:.2} s | full build {build_s:.1} s: {:.3}× (target < 0.1×) |",
        add_bytes as f64 / 1e6,
        add_s / build_s
    );
    println!(
        "| compact (erase 10,000, merge {shards_after_add} shards into {shards_compacted}) | {compact_s:.1} s | fresh build of the same documents {fresh_s:.1} s |"
    );

    println!("\n## Query latency, 1 KiB texts\n");
    println!("| index | shards | p50 | p99 | q/s | p99 / baseline |");
    println!("|---|---:|---:|---:|---:|---:|");
    row("built, nothing removed (baseline)", 1, &base, &base);
    row("1,000 removed", 1, &after_1k, &base);
    row("10,000 removed", 1, &after_10k, &base);
    row("fresh build without those 10,000", 1, &fresh_10k, &base);
    row(
        "10,000 removed + 10 MB added",
        shards_after_add,
        &added,
        &base,
    );
    row("after compact", shards_compacted, &compacted, &base);
    row("fresh build of the same documents", 1, &fresh, &base);
    println!(
        "\n10,000 removed / fresh build of the rest: p50 {:.2}×, p99 {:.2}× (target ≤ 1.10×)",
        after_10k.p50_ms / fresh_10k.p50_ms,
        after_10k.p99_ms / fresh_10k.p99_ms
    );
    println!(
        "after compact / fresh build of the same documents: p50 {:.2}×, p99 {:.2}× (target ≤ 1.2×)",
        compacted.p50_ms / fresh.p50_ms,
        compacted.p99_ms / fresh.p99_ms
    );

    // Shard count.
    let total_text = Index::open(&idx).unwrap().manifest.totals.text_bytes;
    let mut by_shards = Vec::new();
    for n in [4u64, 16] {
        let dir = w(&format!("index-{n}"));
        let size = format!("{}", total_text.div_ceil(n) + 4096);
        build(&[&w("base.jsonl")], &dir, &size);
        let ix = Index::open(&dir).unwrap();
        by_shards.push((ix.shards.len(), measure(&ix, &texts)));
        if n == 16 {
            drop(ix);
            let (_, s) = memaudit(&["index", "compact", "--shard-size", "1GiB"], &[&dir]);
            let ix = Index::open(&dir).unwrap();
            println!(
                "\ncompact of the {n}-shard index into {}: {s:.1} s",
                ix.shards.len()
            );
            by_shards.push((ix.shards.len(), measure(&ix, &texts)));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!("\n## Query latency by shard count (base corpus, 1 KiB texts)\n");
    println!("| index | shards | p50 | p99 | q/s | p99 / one shard |");
    println!("|---|---:|---:|---:|---:|---:|");
    row("one shard", 1, &base, &base);
    row(
        "--shard-size total/4",
        by_shards[0].0,
        &by_shards[0].1,
        &base,
    );
    row(
        "--shard-size total/16",
        by_shards[1].0,
        &by_shards[1].1,
        &base,
    );
    row(
        "the 16 shards after compact",
        by_shards[2].0,
        &by_shards[2].1,
        &base,
    );

    swap_under_load(&idx, &w("ids-swap"), &ids[10_000..11_000], &texts);
    daemon_swaps(&idx, &a.work, &ids[11_000..], &texts);
    std::fs::remove_dir_all(&a.work).unwrap();
}

/// `memaudit serve` (file source, probe off: the daemon's pipeline without a broker, whose own
/// latency would hide the swap) judges 1 KiB texts while `memaudit index remove` publishes a
/// takedown of 100 documents every half second; /metrics is read every few milliseconds.
fn daemon_swaps(idx: &Path, work: &Path, ids: &[u64], texts: &[(String, bool)]) {
    let n = 150_000usize;
    let input = work.join("messages.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for i in 0..n {
        let line = serde_json::json!({"id": format!("m{i}"), "text": texts[i % texts.len()].0});
        writeln!(w, "{line}").unwrap();
    }
    drop(w);
    let cfg = work.join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "[index]\ndir = {:?}\npoll_secs = 0.2\n[probe]\npolicy = \"off\"\n",
            idx.display().to_string()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--input")
        .arg(&input)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .stdout(std::fs::File::create(work.join("verdicts.jsonl")).unwrap())
        .stderr(std::fs::File::create(work.join("serve.log")).unwrap())
        .spawn()
        .expect("memaudit serve");
    let mut samples: Vec<(Instant, f64, f64)> = Vec::new();
    let mut writers = Vec::new();
    let (mut t0, mut next_swap, mut k) = (None, None, 0usize);
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let Ok((_, page)) = memaudit::loopback::get(([127, 0, 0, 1], port).into(), "/metrics")
        else {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let done = metric(&page, "memaudit_messages_total");
        let now = Instant::now();
        if t0.is_none() && done > 0.0 {
            t0 = Some(now);
            next_swap = Some(now + Duration::from_millis(500));
        }
        samples.push((now, done, metric(&page, "memaudit_index_generation")));
        // One writer at a time, as an operator's takedowns run (a second is refused while the
        // first holds the lock; under this load one can take longer than the interval).
        let writing = writers
            .last_mut()
            .is_some_and(|w: &mut std::process::Child| w.try_wait().unwrap().is_none());
        if !writing && next_swap.is_some_and(|t| now >= t) && (k + 1) * 100 <= ids.len() {
            let batch: Vec<String> = ids[k * 100..(k + 1) * 100]
                .iter()
                .map(u64::to_string)
                .collect();
            let writer = Command::new(env!("CARGO_BIN_EXE_memaudit"))
                .args(["index", "remove"])
                .arg(idx)
                .args(&batch)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("memaudit index remove");
            writers.push(writer);
            k += 1;
            next_swap = Some(now + Duration::from_millis(500));
        }
        if done as usize >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    for mut w in writers {
        assert!(w.wait().unwrap().success(), "a takedown failed");
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "memaudit serve failed: see {}",
        work.join("serve.log").display()
    );
    let verdicts = std::fs::read_to_string(work.join("verdicts.jsonl")).unwrap();
    let ids: std::collections::HashSet<&str> = verdicts
        .lines()
        .filter_map(|l| l.split("\"id\":\"").nth(1)?.split('"').next())
        .collect();
    let t0 = t0.expect("no message finished");
    let (t1, done) = samples.last().map(|s| (s.0, s.1)).unwrap();
    println!("\n## The daemon during swaps (`memaudit serve --input`, probe off, 1 KiB texts)\n");
    println!(
        "{done:.0} messages judged in {:.1} s = {:.0} messages/s, while {k} takedowns were published; \
         {} of {n} messages have their verdict",
        (t1 - t0).as_secs_f64(),
        done / (t1 - t0).as_secs_f64(),
        ids.len()
    );
    common::report_swaps(&samples, t0);
}

/// Two threads judge texts through one `Analyzer` while a takedown is published and swapped in.
fn swap_under_load(idx: &Path, ids_path: &Path, ids: &[u64], texts: &[(String, bool)]) {
    let first = Index::open(idx).unwrap();
    first.prepare();
    let analyzer = Arc::new(Analyzer::new(first, None, None, Options::default()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let done: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (an, stop, done) = (analyzer.clone(), stop.clone(), done.clone());
            let texts = texts.to_vec();
            std::thread::spawn(move || {
                let mut i = w;
                let mut local = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let _ = an.spans(&texts[i % texts.len()].0);
                    local.push(Instant::now());
                    i += 2;
                }
                done.lock().unwrap().extend(local);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    ids_file(ids_path, ids);
    let (_, remove_s) = memaudit(&["index", "remove", "--ids-file"], &[ids_path, idx]);
    let swap_start = Instant::now();
    let current = analyzer.index();
    let next = memaudit::index::read::live::open_next(idx, &current).unwrap();
    let checked = swap_start.elapsed();
    let t = Instant::now();
    next.prepare();
    let prepared = t.elapsed();
    drop(current);
    let replaced = Instant::now();
    let _old = analyzer.replace_index(next);
    let swap_pointer = replaced.elapsed();
    let swapped_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let mut times = done.lock().unwrap().clone();
    times.sort();
    let rate = |from: Instant, to: Instant| {
        times.iter().filter(|&&t| t >= from && t < to).count() as f64 / (to - from).as_secs_f64()
    };
    let before = rate(t0 + Duration::from_millis(500), swap_start);
    let after = rate(
        swapped_at + Duration::from_millis(100),
        swapped_at + Duration::from_secs(3),
    );
    let windows: Vec<f64> = (0..10)
        .map(|k| {
            let from = swap_start - Duration::from_millis(500) + Duration::from_millis(100 * k);
            rate(from, from + Duration::from_millis(100))
        })
        .collect();
    let gap = |lo: Instant, hi: Instant| {
        times
            .windows(2)
            .filter(|p| p[1] >= lo && p[0] <= hi)
            .map(|p| p[1] - p[0])
            .max()
            .unwrap_or_default()
    };
    let gap_swap = gap(swap_start, swapped_at + Duration::from_millis(100));
    let gap_before = gap(
        t0 + Duration::from_millis(500),
        swap_start - Duration::from_millis(200),
    );
    println!("\n## Swap under load (2 threads judging 1 KiB texts through one Analyzer)\n");
    println!(
        "takedown of {} documents published by `memaudit index remove` in {remove_s:.3} s",
        ids.len()
    );
    println!(
        "new generation opened and checked in {:.2} ms; filter and samples prepared (page cache) in {:.2} ms; pointer swap {:.1} µs",
        checked.as_secs_f64() * 1e3,
        prepared.as_secs_f64() * 1e3,
        swap_pointer.as_secs_f64() * 1e6
    );
    // The same generation prepared again, no load.
    let again = Index::open(idx).unwrap();
    let t = Instant::now();
    again.prepare();
    println!(
        "(the same generation prepared again, no load: {:.2} ms)",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("texts/s before {before:.0}, after {after:.0}");
    println!(
        "texts/s in 100 ms windows from 0.5 s before the swap: {}",
        windows
            .iter()
            .map(|w| format!("{w:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "longest gap between two finished texts: {:.2} ms around the swap, {:.2} ms before it (target: stall < 100 ms)",
        gap_swap.as_secs_f64() * 1e3,
        gap_before.as_secs_f64() * 1e3
    );
    println!("texts judged: {} (every one finished)", times.len());
}
