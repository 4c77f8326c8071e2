//! Near-verbatim recall, false alarms and cost against exact matching alone:
//! `cargo bench --bench near [-- OPTIONS]`.
//!
//! Passages of about 300 characters from random documents of the benchmark corpus
//! (`bench-data/index`, built from `bench-data/corpus.jsonl` if missing), between novel words,
//! disguised one way per row: 1 word in 10, 20 or 50 replaced by another corpus word; 1 word in
//! 10 with its case changed; a comma added after 1 word in 10; a zero-width space after every
//! word; Cyrillic look-alikes for a, e and o in 1 word in 5. A passage is found when spans cover
//! at least 80% of its characters: exact spans alone (`memaudit check`'s defaults), or exact and
//! near-verbatim spans with folding (`spans.near = true`, `spans.fold = true`). False alarms:
//! novel texts (corpus words in a new random order, 300 characters) that get a near-verbatim
//! span. Time: the mean of one text's query, both ways, over the same texts.
//!
//! Options: `--index DIR`, `--corpus FILE.jsonl`, `--passages N` (300 per row), `--novel N`
//! (10000), `--seed-chars N` (`spans.near_seed_chars`), `--max-gap N` (`spans.near_max_gap`),
//! `--max-seed-hits N` (`spans.near_max_seed_hits`); all three default to the daemon's defaults.

mod common;

use common::{arg, load_docs, open_or_build_index};
use memaudit::analyze::{Analyzer, Options};
use memaudit::index::read::near::NearOptions;
use memaudit::index::read::search::covered_chars;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

type Disguise = fn(&mut StdRng, &[&str], Vec<String>) -> Vec<String>;

/// A disguise, boxed: plain functions and the word replacer alike.
type Boxed = Box<dyn Fn(&mut StdRng, &[&str], Vec<String>) -> Vec<String>>;

fn replace_every(n: usize) -> impl Fn(&mut StdRng, &[&str], Vec<String>) -> Vec<String> {
    move |rng, vocab, mut w| {
        let off = rng.random_range(0..n);
        for (k, x) in w.iter_mut().enumerate() {
            if k % n == off {
                *x = vocab[rng.random_range(0..vocab.len())].to_string();
            }
        }
        w
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--exact") {
        return;
    }
    let index = PathBuf::from(arg("--index", "bench-data/index"));
    let corpus = PathBuf::from(arg("--corpus", "bench-data/corpus.jsonl"));
    let n: usize = arg("--passages", "300").parse().expect("--passages N");
    let novel_n: usize = arg("--novel", "10000").parse().expect("--novel N");
    let exact = Analyzer::new(
        open_or_build_index(&index, &corpus),
        None,
        None,
        Options::default(),
    )
    .unwrap();
    let seed_chars: usize = arg(
        "--seed-chars",
        &NearOptions::default().seed_chars.to_string(),
    )
    .parse()
    .expect("--seed-chars N");
    let defaults = NearOptions::default();
    let max_gap: usize = arg("--max-gap", &defaults.max_gap.to_string())
        .parse()
        .expect("--max-gap N");
    let max_seed_hits: usize = arg("--max-seed-hits", &defaults.max_seed_hits.to_string())
        .parse()
        .expect("--max-seed-hits N");
    let near = Analyzer::new(
        open_or_build_index(&index, &corpus),
        None,
        None,
        Options {
            near: Some(NearOptions {
                seed_chars,
                max_gap,
                max_seed_hits,
                ..defaults
            }),
            fold: true,
            ..Options::default()
        },
    )
    .unwrap();
    let docs = load_docs(&corpus, 4000);
    let prose: Vec<&String> = docs
        .iter()
        .filter(|d| d.len() > 2000 && d.split_whitespace().count() * 9 > d.len())
        .collect();
    let vocab: Vec<&str> = docs
        .iter()
        .flat_map(|d| d.split_whitespace())
        .filter(|w| w.len() > 2 && w.len() < 12 && w.chars().all(|c| c.is_alphabetic()))
        .take(100_000)
        .collect();
    let mut rng = StdRng::seed_from_u64(17);
    let words = |rng: &mut StdRng, k: usize| -> String {
        (0..k)
            .map(|_| vocab[rng.random_range(0..vocab.len())])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows: Vec<(&str, Boxed)> = vec![
        ("1 word in 10 changed", Box::new(replace_every(10))),
        ("1 word in 20 changed", Box::new(replace_every(20))),
        ("1 word in 50 changed", Box::new(replace_every(50))),
        (
            "case of 1 word in 10",
            Box::new(
                (|rng, _, mut w| {
                    let off = rng.random_range(0..10);
                    for (k, x) in w.iter_mut().enumerate() {
                        if k % 10 == off {
                            *x = x.to_uppercase();
                        }
                    }
                    w
                }) as Disguise,
            ),
        ),
        (
            "a comma after 1 word in 10",
            Box::new(
                (|rng, _, mut w| {
                    let off = rng.random_range(0..10);
                    for (k, x) in w.iter_mut().enumerate() {
                        if k % 10 == off {
                            x.push(',');
                        }
                    }
                    w
                }) as Disguise,
            ),
        ),
        (
            "zero-width space after every word",
            Box::new((|_, _, w| w.into_iter().map(|x| x + "\u{200B}").collect()) as Disguise),
        ),
        (
            "look-alike a/e/o in 1 word in 5",
            Box::new(
                (|rng, _, mut w| {
                    let off = rng.random_range(0..5);
                    for (k, x) in w.iter_mut().enumerate() {
                        if k % 5 == off {
                            *x = x
                                .replace('a', "\u{0430}")
                                .replace('e', "\u{0435}")
                                .replace('o', "\u{043E}");
                        }
                    }
                    w
                }) as Disguise,
            ),
        ),
    ];
    // Warm the page cache and both paths before anything is timed.
    for d in prose.iter().take(200) {
        let t: String = d.chars().take(600).collect();
        let _ = (exact.spans(&t), near.spans(&t));
    }
    for _ in 0..2000 {
        let t = words(&mut rng, 45);
        let _ = (exact.spans(&t), near.spans(&t));
    }
    println!(
        "{} prose documents; {n} passages of about 300 characters per row; found = spans cover ≥ 80% of the passage\n",
        prose.len()
    );
    println!("| disguise | exact alone: found | exact + near + folding: found | exact ms/text | near ms/text | time ratio |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, disguise) in &rows {
        let (mut found_exact, mut found_near) = (0, 0);
        let (mut t_exact, mut t_near) = (0.0, 0.0);
        for _ in 0..n {
            let d = prose[rng.random_range(0..prose.len())];
            let w: Vec<&str> = d.split_whitespace().collect();
            let start = rng.random_range(0..w.len().saturating_sub(80).max(1));
            let mut passage = Vec::new();
            let mut len = 0;
            for x in &w[start..] {
                if len >= 300 {
                    break;
                }
                passage.push(x.to_string());
                len += x.len() + 1;
            }
            let edited = disguise(&mut rng, &vocab, passage).join(" ");
            let before = words(&mut rng, 10);
            let text = format!("{before} {edited} {}", words(&mut rng, 10));
            let lo = before.chars().count() + 1;
            let hi = lo + edited.chars().count();
            let covered = |ranges: Vec<(usize, usize)>| {
                let mut r: Vec<(usize, usize)> = ranges
                    .into_iter()
                    .map(|(a, b)| (a.max(lo), b.min(hi)))
                    .filter(|(a, b)| a < b)
                    .collect();
                r.sort_unstable();
                covered_chars(r) * 5 >= (hi - lo) * 4
            };
            let t = Instant::now();
            let r = exact.spans(&text);
            t_exact += t.elapsed().as_secs_f64();
            if covered(r.spans.iter().map(|s| (s.start, s.end)).collect()) {
                found_exact += 1;
            }
            let t = Instant::now();
            let r = near.spans(&text);
            t_near += t.elapsed().as_secs_f64();
            let ranges = r
                .spans
                .iter()
                .map(|s| (s.start, s.end))
                .chain(r.near.iter().map(|s| (s.start, s.end)))
                .collect();
            if covered(ranges) {
                found_near += 1;
            }
        }
        println!(
            "| {name} | {:.1}% | **{:.1}%** | {:.3} | {:.3} | {:.2} |",
            found_exact as f64 * 100.0 / n as f64,
            found_near as f64 * 100.0 / n as f64,
            t_exact * 1e3 / n as f64,
            t_near * 1e3 / n as f64,
            t_near / t_exact
        );
    }
    let mut alarms = 0;
    let (mut t_exact, mut t_near) = (0.0, 0.0);
    for _ in 0..novel_n {
        let text = words(&mut rng, 45);
        let t = Instant::now();
        let _ = exact.spans(&text);
        t_exact += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let r = near.spans(&text);
        t_near += t.elapsed().as_secs_f64();
        if !r.near.is_empty() {
            alarms += 1;
        }
    }
    println!(
        "| novel text (false alarms) | | **{alarms} of {novel_n}** | {:.3} | {:.3} | {:.2} |",
        t_exact * 1e3 / novel_n as f64,
        t_near * 1e3 / novel_n as f64,
        t_near / t_exact
    );
}
