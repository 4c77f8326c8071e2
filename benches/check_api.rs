//! `POST /v1/check` latency and throughput against the in-process query on the same texts (the
//! ratio is the HTTP path's overhead): `cargo bench --bench check_api [-- OPTIONS]`.
//!
//! The daemon runs with `source.kind = "http"` and the probe off on the 350 MB benchmark index
//! (`bench-data/index`, built from `bench-data/corpus.jsonl` if missing). Texts: the 1 KiB novel and
//! copy texts of `cargo bench --bench index`. For each concurrency (1, 16, 64), the same number of
//! threads judge in process (`Analyzer::spans` + `judge`, what the handler runs) and then send
//! requests over HTTP, each one after another for `--seconds` (5), over one keep-alive connection
//! per client; latencies and rates are compared at equal concurrency. The clients share the
//! machine's cores with the daemon.
//!
//! Options: `--index DIR`, `--corpus FILE.jsonl`, `--queries N` (100 per set), `--seconds S`.

mod common;

use common::{arg, load_docs, make_sets, open_or_build_index, summarize, QueryFigures};
use memaudit::analyze::{Analyzer, Options};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One keep-alive HTTP/1.1 connection: POST /v1/check, read the status and the body by its
/// Content-Length.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn check(&mut self, body: &[u8]) -> u16 {
        let head = format!(
            "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let code = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut buf = vec![0u8; len];
        self.reader.read_exact(&mut buf).unwrap();
        code
    }
}

/// Latencies (ms) and completions of `clients` threads running `work(i)` for `seconds`.
fn closed_loop<W: FnMut(usize) -> bool + Send + 'static>(
    clients: usize,
    seconds: f64,
    make: impl Fn(usize) -> W,
) -> (QueryFigures, f64, u64) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let mut work = make(c);
            std::thread::spawn(move || {
                let (mut lat, mut bad, mut i) = (Vec::new(), 0u64, c);
                while Instant::now() < until {
                    let s = Instant::now();
                    if work(i) {
                        lat.push(s.elapsed().as_secs_f64() * 1e3);
                    } else {
                        bad += 1;
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
    let rate = lat.len() as f64 / seconds;
    (summarize(lat), rate, bad)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--exact") {
        return;
    }
    let index = PathBuf::from(arg("--index", "bench-data/index"));
    let corpus = PathBuf::from(arg("--corpus", "bench-data/corpus.jsonl"));
    let n: usize = arg("--queries", "100").parse().expect("--queries N");
    let seconds: f64 = arg("--seconds", "5").parse().expect("--seconds S");
    let opened = open_or_build_index(&index, &corpus);
    let docs = load_docs(&corpus, 4000);
    let texts: Vec<String> = make_sets(&docs, n)
        .into_iter()
        .filter(|s| s.name.starts_with("1 KiB"))
        .flat_map(|s| s.texts)
        .collect();

    let analyzer = Arc::new(Analyzer::new(opened, None, None, Options::default()).unwrap());
    let texts = Arc::new(texts);
    for t in texts.iter() {
        let r = analyzer.spans(t);
        let _ = analyzer.judge("x", &r, None);
    }

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
        "\n/v1/check against the in-process judge at the same concurrency, 1 KiB texts ({} texts), probe off\n",
        texts.len()
    );
    println!("| clients | in-process p50 / p99 | HTTP p50 / p99 | p99 difference | in-process /s | HTTP /s | HTTP / in-process | non-200 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for clients in [1usize, 16, 64] {
        let (inp, inp_rate, _) = closed_loop(clients, seconds, |_| {
            let (a, t) = (analyzer.clone(), texts.clone());
            move |i: usize| {
                let r = a.spans(&t[i % t.len()]);
                let _ = a.judge("x", &r, None);
                true
            }
        });
        let (http, http_rate, bad) = closed_loop(clients, seconds, |_| {
            let mut c = Client::connect(addr);
            let b = bodies.clone();
            move |i: usize| c.check(&b[i % b.len()]) == 200
        });
        println!(
            "| {clients} | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:+.3} ms | {inp_rate:.0} | {http_rate:.0} | {:.2} | {bad} |",
            inp.p50_ms,
            inp.p99_ms,
            http.p50_ms,
            http.p99_ms,
            http.p99_ms - inp.p99_ms,
            http_rate / inp_rate
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
