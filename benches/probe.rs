//! Probe benchmark: tokens scored per second (all positions, entropy/surprisal/rank), and
//! llama-cpp-python scoring the same token windows with the same GGUF in the same run.
//!
//! ```text
//! cargo bench --bench probe                # memaudit on the CPU only
//! cargo bench --bench probe -- --peer      # and llama-cpp-python (installed into bench-data/)
//! cargo bench --features cuda --bench probe -- --device cpu --device cuda
//!                                          # each device in turn, the last against the first
//! ```
//!
//! Texts: windows of 128 and 512 tokens cut from `/usr/share/common-licenses` and the Python
//! standard library, scored in batches of 1, 8 and 32 (one forward pass per batch).

mod common;

use common::{model_path, run_peer};
use memaudit::memory::{peak_rss_bytes, rss_bytes};
use memaudit::probe::device;
use memaudit::probe::model::Model;
use memaudit::probe::tokenizer::Tokenizer;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn corpus_tokens(tok: &Tokenizer) -> Vec<u32> {
    let mut text = String::new();
    for f in ["GPL-3", "Apache-2.0", "MPL-2.0"] {
        text.push_str(
            &std::fs::read_to_string(Path::new("/usr/share/common-licenses").join(f))
                .unwrap_or_default(),
        );
    }
    let stdlib = Command::new("python3")
        .args([
            "-c",
            "import os,sysconfig;print(os.path.join(sysconfig.get_paths()['stdlib'],'os.py'))",
        ])
        .output()
        .unwrap();
    text.push_str(
        &std::fs::read_to_string(String::from_utf8_lossy(&stdlib.stdout).trim())
            .unwrap_or_default(),
    );
    tok.encode(&text).unwrap()
}

/// The devices named by `--device` (repeatable), or the CPU alone.
fn devices() -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    let named: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--device")
        .map(|w| w[1].clone())
        .collect();
    if named.is_empty() {
        vec!["cpu".into()]
    } else {
        named
    }
}

/// Tokens per second for each (length, batch) cell, in the order of `CELLS`.
const CELLS: [(usize, usize); 6] = [(128, 1), (128, 8), (128, 32), (512, 1), (512, 8), (512, 32)];

fn windows(all: &[u32], len: usize, batch: usize) -> Vec<Vec<u32>> {
    all.chunks_exact(len)
        .cycle()
        .take(batch)
        .map(|w| w.to_vec())
        .collect()
}

fn llama_cpp_rate(path: &Path, windows: &[Vec<u32>]) -> f64 {
    let v = run_peer(
        "scripts/peer-llama-cpp.py",
        path,
        Path::new("bench-data/probe-windows.json"),
        &serde_json::to_string(windows).unwrap(),
    );
    v["tokens_per_s"].as_f64().unwrap()
}

fn main() {
    let peer = std::env::args().any(|a| a == "--peer");
    let path = model_path();
    let tok = Tokenizer::from_gguf(&path).unwrap();
    let all = corpus_tokens(&tok);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let mut first: Option<(String, Vec<f64>)> = None;
    for spec in devices() {
        let dev = device::select(&spec).unwrap();
        let t = Instant::now();
        let model = std::sync::Arc::new(Model::load(&path, &dev).unwrap());
        println!(
            "[{spec}] model loaded ({:?}) in {:.2} s: weights {:.0} MiB, process RSS {:.0} MiB",
            model.dtype,
            t.elapsed().as_secs_f64(),
            mib(model.weight_bytes() as u64),
            mib(rss_bytes().unwrap_or(0))
        );
        let against = first.as_ref().map(|(name, _)| format!("vs {name}"));
        println!(
            "{:<8} {:>6} {:>12} {:>14}",
            "length",
            "batch",
            "tokens/s",
            if peer {
                "llama.cpp t/s"
            } else {
                against.as_deref().unwrap_or("")
            }
        );
        let mut rates = Vec::new();
        for (i, &(len, batch)) in CELLS.iter().enumerate() {
            let windows = windows(&all, len, batch);
            let refs: Vec<&[u32]> = windows.iter().map(|w| w.as_slice()).collect();
            // Warm-up: one window on the CPU; on a GPU the measured shape itself (the first call
            // of a shape loads kernels and picks cuBLAS algorithms).
            let warm = if dev.is_cpu() { &refs[..1] } else { &refs[..] };
            let _ = model.score_batch(warm).unwrap();
            let t = Instant::now();
            std::hint::black_box(model.score_batch(&refs).unwrap());
            let ours = (batch * len) as f64 / t.elapsed().as_secs_f64();
            rates.push(ours);
            // llama.cpp scores the same windows one after another (its own batching is per text).
            if peer {
                let p = llama_cpp_rate(&path, &windows);
                println!(
                    "{len:<8} {batch:>6} {ours:>12.0} {p:>14.0}   ratio {:.2}×",
                    ours / p
                );
            } else if let Some((_, base)) = &first {
                println!("{len:<8} {batch:>6} {ours:>12.0} {:>13.2}×", ours / base[i]);
            } else {
                println!("{len:<8} {batch:>6} {ours:>12.0}");
            }
        }
        // Two workers sharing the one loaded model (as the daemon's workers do): memory grows by
        // activations only, not by another copy of the weights.
        let windows: Vec<Vec<u32>> = all.chunks_exact(128).take(8).map(|w| w.to_vec()).collect();
        let before = rss_bytes().unwrap_or(0);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                let (model, windows) = (model.clone(), &windows);
                s.spawn(move || {
                    let refs: Vec<&[u32]> = windows.iter().map(|w| w.as_slice()).collect();
                    std::hint::black_box(model.score_batch(&refs).unwrap());
                });
            }
        });
        println!(
            "[{spec}] 2 workers sharing one model: {:.0} tokens/s together, RSS {:.0} MiB (was {:.0} before them)",
            (2 * 8 * 128) as f64 / t.elapsed().as_secs_f64(),
            mib(rss_bytes().unwrap_or(0)),
            mib(before)
        );
        if first.is_none() {
            first = Some((spec, rates));
        }
    }
    println!("peak RSS {:.0} MiB", mib(peak_rss_bytes().unwrap_or(0)));
}
