//! `POST /v1/check` latency and throughput against the in-process query on the same texts (the
//! ratio is the HTTP path's overhead): `cargo bench --bench check_api [-- OPTIONS]`.
//!
//! The daemon runs with `source.kind = "http"` and the probe off on the 350 MB benchmark index
//! (`bench-data/index`, built from `bench-data/corpus.jsonl` if missing). Texts: the 1 KiB novel and
//! copy texts of `cargo bench --bench index`. In process: `Analyzer::spans` + `judge` on one
//! thread (latency) and on as many threads as cores (the machine's rate). Over HTTP: 1, 16 and 64
//! clients, each sending one request after another for `--seconds` (5) on its own connection
//! per request (the loopback client has no keep-alive, so each latency includes a TCP connect).
//!
//! Options: `--index DIR`, `--corpus FILE.jsonl`, `--queries N` (100 per set), `--seconds S`.

mod common;

use common::{load_docs, make_sets, summarize, QueryFigures};
use memaudit::analyze::{Analyzer, Options};
use memaudit::index::Index;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--exact") {
        return;
    }
    let index = PathBuf::from(arg("--index", "bench-data/index"));
    let corpus = PathBuf::from(arg("--corpus", "bench-data/corpus.jsonl"));
    let n: usize = arg("--queries", "100").parse().expect("--queries N");
    let seconds: f64 = arg("--seconds", "5").parse().expect("--seconds S");
    assert!(
        corpus.exists(),
        "{} is missing: run python3 scripts/bench-corpus.py {}",
        corpus.display(),
        corpus.display()
    );
    if !index.join("manifest.json").exists() {
        let ok = Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args(["index", "build", "--quiet", "--out"])
            .arg(&index)
            .arg(&corpus)
            .status()
            .unwrap()
            .success();
        assert!(ok, "index build");
    }
    let docs = load_docs(&corpus, 4000);
    let texts: Vec<String> = make_sets(&docs, n)
        .into_iter()
        .filter(|s| s.name.starts_with("1 KiB"))
        .flat_map(|s| s.texts)
        .collect();

    // In process: latency on one thread, rate on every core.
    let analyzer = Arc::new(
        Analyzer::new(Index::open(&index).unwrap(), None, None, Options::default()).unwrap(),
    );
    let judge = |a: &Analyzer, t: &str| {
        let r = a.spans(t);
        a.judge("x", &r, None)
    };
    for t in &texts {
        let _ = judge(&analyzer, t);
    }
    let mut lat = Vec::new();
    for t in &texts {
        let s = Instant::now();
        let _ = judge(&analyzer, t);
        lat.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let inproc = summarize(lat);
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let rate_inproc = {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let handles: Vec<_> = (0..cores)
            .map(|w| {
                let (a, texts) = (analyzer.clone(), texts.clone());
                std::thread::spawn(move || {
                    let mut done = 0u64;
                    let mut i = w;
                    while Instant::now() < until {
                        let r = a.spans(&texts[i % texts.len()]);
                        let _ = a.judge("x", &r, None);
                        done += 1;
                        i += cores;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>() as f64 / seconds
    };
    drop(analyzer);

    // The daemon.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"http\"\n[index]\ndir = {:?}\n[probe]\npolicy = \"off\"\n[http]\nmax_concurrent_checks = 256\n",
            std::fs::canonicalize(&index).unwrap().display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("memaudit serve");
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    while !matches!(memaudit::loopback::get(addr, "/readyz"), Ok((200, _))) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        texts
            .iter()
            .map(|t| serde_json::json!({"text": t}).to_string().into_bytes())
            .collect(),
    );
    for b in bodies.iter() {
        let (code, _) = memaudit::loopback::post(addr, "/v1/check", &[], b).unwrap();
        assert_eq!(code, 200);
    }

    println!(
        "\n/v1/check against the in-process judge, 1 KiB texts ({} texts), probe off\n",
        texts.len()
    );
    println!(
        "in process: p50 {:.3} ms, p99 {:.3} ms (one thread); {:.0} texts/s on {cores} threads\n",
        inproc.p50_ms, inproc.p99_ms, rate_inproc
    );
    println!(
        "| clients | p50 | p99 | p99 − in-process p99 | requests/s | / in-process rate | non-200 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for clients in [1usize, 16, 64] {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let bodies = bodies.clone();
                std::thread::spawn(move || {
                    let mut lat = Vec::new();
                    let mut bad = 0u64;
                    let mut i = c;
                    while Instant::now() < until {
                        let s = Instant::now();
                        match memaudit::loopback::post(
                            addr,
                            "/v1/check",
                            &[],
                            &bodies[i % bodies.len()],
                        ) {
                            Ok((200, _)) => lat.push(s.elapsed().as_secs_f64() * 1e3),
                            _ => bad += 1,
                        }
                        i += clients;
                    }
                    (lat, bad)
                })
            })
            .collect();
        let (mut lat, mut bad) = (Vec::new(), 0);
        for h in handles {
            let (l, b) = h.join().unwrap();
            lat.extend(l);
            bad += b;
        }
        let count = lat.len();
        let f: QueryFigures = summarize(lat);
        let rate = count as f64 / seconds;
        println!(
            "| {clients} | {:.3} ms | {:.3} ms | {:+.3} ms | {rate:.0} | {:.2} | {bad} |",
            f.p50_ms,
            f.p99_ms,
            f.p99_ms - inproc.p99_ms,
            rate / rate_inproc
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
