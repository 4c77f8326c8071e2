//! Audit benchmark: rows per second of the census (greedy continuation, C=32, K=16, end-of-text
//! masked) on the default model, against llama-cpp-python decoding the same rows with the same
//! GGUF one row at a time, in the same run; and how often the two agree on each row's score
//! (memaudit computes in f32 from the dequantized weights, llama.cpp in its quantized kernels:
//! near-ties can flip an argmax).
//!
//! ```text
//! cargo bench --bench audit                 # memaudit only
//! cargo bench --bench audit -- --peer       # and llama-cpp-python (installed into bench-data/)
//! cargo bench --bench audit -- --rows 256 --batch 64
//! ```
//!
//! Rows: seeded windows of the CPython standard library (`scripts/bench-corpus.py --only
//! cpython`, indexed into `bench-data/cpython-index` on first use).

mod common;

use common::{model_path, run_peer};
use memaudit::audit::rows::Windows;
use memaudit::audit::score::Matches;
use memaudit::index::Index;
use memaudit::probe::decode::DecodeOptions;
use memaudit::probe::model::Model;
use memaudit::probe::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const C: usize = 32;
const K: usize = 16;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].parse().expect("a number"))
        .unwrap_or(default)
}

fn index() -> PathBuf {
    let dir = PathBuf::from("bench-data/cpython-index");
    if !dir.join("manifest.json").exists() {
        let jsonl = PathBuf::from("bench-data/cpython.jsonl");
        let ok = Command::new("python3")
            .arg("scripts/bench-corpus.py")
            .arg(&jsonl)
            .args(["--only", "cpython"])
            .status()
            .unwrap();
        assert!(ok.success());
        let ok = Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args([
                "index",
                "build",
                "--keep-whitespace",
                "--quiet",
                "--force",
                "--out",
            ])
            .arg(&dir)
            .arg(&jsonl)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    dir
}

/// llama-cpp-python's rows/s and its generated continuations.
fn llama_cpp(model: &Path, rows: &[Vec<u32>], eos: Option<u32>) -> (f64, Vec<Vec<u32>>) {
    let v = run_peer(
        "scripts/peer-llama-greedy.py",
        model,
        Path::new("bench-data/audit-rows.json"),
        &serde_json::json!({"context": C, "continuation": K, "eos": eos, "rows": rows}).to_string(),
    );
    (
        v["rows_per_s"].as_f64().unwrap(),
        serde_json::from_value(v["generated"].clone()).unwrap(),
    )
}

fn main() {
    let peer = std::env::args().any(|a| a == "--peer");
    let (n, batch) = (arg("--rows", 100), arg("--batch", 128));
    let path = model_path();
    let tok = Tokenizer::from_gguf(&path).unwrap();
    let index = Index::open(index()).unwrap();
    let rows = Windows::from_index(&index, &[&tok], n, C + K, 1)
        .unwrap()
        .tokens
        .remove(0);
    let model = Model::load(&path, &candle_core::Device::Cpu).unwrap();
    let eos = tok.end_of_text();
    let opts = DecodeOptions {
        steps: K,
        mask: eos,
        hidden: false,
        context_entropy: true,
    };
    // Warm-up, then the timed run (entropies over the context included, as the audit's base set).
    model.greedy(&[&rows[0][..C]], &opts).unwrap();
    let t = Instant::now();
    let mut ours = Vec::with_capacity(n);
    for chunk in rows.chunks(batch) {
        let ctx: Vec<&[u32]> = chunk.iter().map(|r| &r[..C]).collect();
        ours.extend(
            model
                .greedy(&ctx, &opts)
                .unwrap()
                .into_iter()
                .map(|d| d.tokens),
        );
    }
    let rate = rows.len() as f64 / t.elapsed().as_secs_f64();
    let ks: Vec<usize> = ours
        .iter()
        .zip(&rows)
        .map(|(g, r)| Matches::of(g, &r[C..]).k(K))
        .collect();
    let mean = ks.iter().sum::<usize>() as f64 / (K * ks.len()) as f64;
    println!(
        "audit census, C={C} K={K}, {} rows of the CPython library, batch {batch}",
        rows.len()
    );
    println!("{:<34} {:>10} {:>12}", "", "rows/s", "mean score");
    println!(
        "{:<34} {:>10.2} {:>12.3}",
        "memaudit (f32, KV cache, batched)", rate, mean
    );
    if peer {
        let (peer_rate, theirs) = llama_cpp(&path, &rows, eos);
        let their_ks: Vec<usize> = theirs
            .iter()
            .zip(&rows)
            .map(|(g, r)| Matches::of(g, &r[C..]).k(K))
            .collect();
        let their_mean = their_ks.iter().sum::<usize>() as f64 / (K * ks.len()) as f64;
        println!(
            "{:<34} {:>10.2} {:>12.3}",
            "llama-cpp-python (Q4_1, one by one)", peer_rate, their_mean
        );
        let same_k = ks.iter().zip(&their_ks).filter(|(a, b)| a == b).count();
        let same_tokens = ours.iter().zip(&theirs).filter(|(a, b)| a == b).count();
        println!("ratio memaudit / llama.cpp: {:.2}x", rate / peer_rate);
        println!(
            "agreement: k equal on {same_k} of {n} rows ({:.1}%), continuation identical on {same_tokens} ({:.1}%)",
            100.0 * same_k as f64 / n as f64,
            100.0 * same_tokens as f64 / n as f64,
            n = rows.len()
        );
    }
}
