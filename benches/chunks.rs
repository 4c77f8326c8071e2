//! Streamed outputs: what a chunk costs, matched incrementally (`Analyzer::push`, what the daemon
//! runs per chunk), against re-scanning the whole text received so far on every chunk (the naive
//! way: `Analyzer::spans` of the prefix): `cargo bench --bench chunks [-- OPTIONS]`.
//!
//! Outputs of 200 chunks of 20 tokens (about 80 characters, cut at word boundaries) on the
//! benchmark index (`bench-data/index`, built from `bench-data/corpus.jsonl` if missing):
//! - `novel`: corpus words in a new random order (spans are rare);
//! - `quotes`: novel text with a 400-byte passage of a corpus document every 2 KB (spans start,
//!   grow across chunks and end);
//! - `one long copy`: a corpus document copied whole (one span in progress the whole time,
//!   extended chunk by chunk by narrowing its suffix-array ranges).
//!
//! For each kind it prints the median cost of chunks 2, 20 and 200 (over `--outputs` outputs),
//! incremental and naive, and the ratio. The target: a chunk costs the same whether it is the 2nd
//! or the 200th of its output (the `200/2` column of the incremental rows).
//!
//! Options: `--index DIR`, `--corpus FILE.jsonl`, `--outputs N` (12), `--chunks N` (200).

mod common;

use common::{arg, load_docs, open_or_build_index};
use memaudit::analyze::{Analyzer, Options};
use memaudit::index::read::incremental::Incremental;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

/// Random corpus words, about `bytes` long.
fn novel(words: &[&str], rng: &mut StdRng, bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes {
        s.push_str(words[rng.random_range(0..words.len())]);
        s.push(' ');
    }
    s
}

/// `text` cut into `n` chunks of about 80 characters, at spaces.
fn chunks(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for w in text.split_inclusive(' ') {
        cur.push_str(w);
        if cur.len() >= 80 {
            out.push(std::mem::take(&mut cur));
            if out.len() == n {
                break;
            }
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--exact") {
        return;
    }
    let index = PathBuf::from(arg("--index", "bench-data/index"));
    let corpus = PathBuf::from(arg("--corpus", "bench-data/corpus.jsonl"));
    let outputs: usize = arg("--outputs", "12").parse().expect("--outputs N");
    let n: usize = arg("--chunks", "200").parse().expect("--chunks N");
    let analyzer = Analyzer::new(
        open_or_build_index(&index, &corpus),
        None,
        None,
        Options::default(),
    )
    .unwrap();
    let docs = load_docs(&corpus, 4000);
    let words: Vec<&str> = docs
        .iter()
        .flat_map(|d| d.split_whitespace())
        .filter(|w| w.len() < 20)
        .take(200_000)
        .collect();
    let mut rng = StdRng::seed_from_u64(5);
    let need = n * 90;
    let long_docs: Vec<&String> = docs.iter().filter(|d| d.len() > need * 2).collect();
    assert!(
        !long_docs.is_empty(),
        "no corpus document of {} bytes",
        need * 2
    );
    let mut kinds: Vec<(&str, Vec<Vec<String>>)> = vec![
        ("novel", Vec::new()),
        ("quotes", Vec::new()),
        ("one long copy", Vec::new()),
    ];
    for _ in 0..outputs {
        kinds[0]
            .1
            .push(chunks(&novel(&words, &mut rng, need * 2), n));
        let mut q = String::new();
        while q.len() < need * 2 {
            q.push_str(&novel(&words, &mut rng, 1600));
            let d = &docs[rng.random_range(0..docs.len())];
            if d.len() > 400 {
                let at = common::floor_char(d, rng.random_range(0..d.len() - 400));
                let end = common::floor_char(d, at + 400);
                q.push_str(&d[at..end]);
                q.push(' ');
            }
        }
        kinds[1].1.push(chunks(&q, n));
        let d = long_docs[rng.random_range(0..long_docs.len())];
        kinds[2].1.push(chunks(d, n));
    }
    println!(
        "{} outputs of {n} chunks (about 80 characters, 20 tokens, each) per kind; median cost of one chunk, ms\n",
        outputs
    );
    println!(
        "| output | way | chunk 2 | chunk 20 | chunk 200 | 200/2 | naive/incremental at 200 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let at = [1usize, 19, n - 1];
    for (name, outs) in &kinds {
        let mut inc_t = vec![Vec::new(); 3];
        let mut naive_t = vec![Vec::new(); 3];
        for out in outs {
            assert_eq!(out.len(), n, "an output of {n} chunks");
            let mut inc = Incremental::new();
            let mut whole = String::new();
            for (k, c) in out.iter().enumerate() {
                let t = Instant::now();
                analyzer.push(&mut inc, c);
                let ti = t.elapsed().as_secs_f64() * 1e3;
                whole.push_str(c);
                if let Some(slot) = at.iter().position(|&a| a == k) {
                    let t = Instant::now();
                    let r = analyzer.spans(&whole);
                    naive_t[slot].push(t.elapsed().as_secs_f64() * 1e3);
                    inc_t[slot].push(ti);
                    // Both ways find the same spans.
                    assert_eq!(
                        analyzer
                            .report_parts(std::slice::from_ref(&inc), false)
                            .spans,
                        r.spans
                    );
                }
            }
        }
        let inc: Vec<f64> = inc_t.into_iter().map(median).collect();
        let naive: Vec<f64> = naive_t.into_iter().map(median).collect();
        println!(
            "| {name} | incremental | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} |",
            inc[0],
            inc[1],
            inc[2],
            inc[2] / inc[0],
            naive[2] / inc[2]
        );
        println!(
            "| {name} | re-scan | {:.3} | {:.3} | {:.3} | {:.2} | |",
            naive[0],
            naive[1],
            naive[2],
            naive[2] / naive[0]
        );
    }
}
