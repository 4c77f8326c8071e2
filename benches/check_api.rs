//! `POST /v1/check` latency and throughput against the in-process query on the same texts (the
//! ratio is the HTTP path's overhead): `cargo bench --bench check_api [-- OPTIONS]`.
//!
//! The daemon runs with `source.kind = "http"` and the probe off on the 350 MB benchmark index
//! (`bench-data/index`, built from `bench-data/corpus.jsonl` if missing). Texts: the 1 KiB novel and
//! copy texts of `cargo bench --bench index`. For each concurrency (1, 16, 64), the same number of
//! threads judge in process (`Analyzer::spans` + `judge`, what the handler runs) and as many
//! clients send requests over HTTP, each one after another for `--seconds` (5) in all, over one
//! keep-alive connection per client; latencies and rates are compared at equal concurrency. The
//! two sides take turns in `--rounds` (5) slices, so a neighbour's load on this shared machine
//! weighs on both; the ratio column gives the lowest and highest of the slices' ratios. The
//! HTTP clients are driven by one thread's event loop, as `wrk` does; they share the machine's
//! cores with the daemon. The CPU columns split the cost: the in-process judge's CPU per check,
//! and over HTTP the daemon's and the clients' CPU per request (from `/proc/PID/stat`).
//!
//! Options: `--index DIR`, `--corpus FILE.jsonl`, `--queries N` (100 per set), `--seconds S`,
//! `--rounds N`, `--clients N,N,...` (1,16,64).

mod common;

use common::{arg, load_docs, make_sets, open_or_build_index, summarize};
use memaudit::analyze::{Analyzer, Options};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One keep-alive HTTP/1.1 client: POST /v1/check one request after another until `until`,
/// reading each answer's status and its body by Content-Length. Returns the latencies (ms) of
/// the 200 answers and the count of others.
async fn http_client(
    addr: std::net::SocketAddr,
    bodies: Arc<Vec<Vec<u8>>>,
    first: usize,
    step: usize,
    until: Instant,
) -> (Vec<f64>, u64) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let (r, mut w) = s.into_split();
    let mut r = tokio::io::BufReader::new(r);
    let (mut lat, mut bad, mut i) = (Vec::new(), 0u64, first);
    let mut line = String::new();
    let mut body = Vec::new();
    while Instant::now() < until {
        let b = &bodies[i % bodies.len()];
        i += step;
        let started = Instant::now();
        // One write, as an HTTP client sends a small request.
        let mut request = format!(
            "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            b.len()
        )
        .into_bytes();
        request.extend_from_slice(b);
        w.write_all(&request).await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            r.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        body.resize(len, 0);
        r.read_exact(&mut body).await.unwrap();
        if code == 200 {
            lat.push(started.elapsed().as_secs_f64() * 1e3);
        } else {
            bad += 1;
        }
    }
    (lat, bad)
}

/// Latencies (ms) of the 200 answers and the count of others, of `clients` keep-alive
/// connections sending one request after another for `seconds`, all driven by one thread's event
/// loop (as `wrk` does), so the load generator spends little of the cores the daemon shares with
/// it.
fn http_closed_loop(
    clients: usize,
    seconds: f64,
    addr: std::net::SocketAddr,
    bodies: &Arc<Vec<Vec<u8>>>,
) -> (Vec<f64>, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|c| tokio::spawn(http_client(addr, bodies.clone(), c, clients, until)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let (mut lat, mut bad) = (Vec::new(), 0);
    for (l, b) in results {
        lat.extend(l);
        bad += b;
    }
    (lat, bad)
}

/// Latencies (ms) of the completed runs and the count of failed ones, of `clients` threads
/// running `work(i)` for `seconds`.
fn closed_loop<W: FnMut(usize) -> bool + Send + 'static>(
    clients: usize,
    seconds: f64,
    make: impl Fn(usize) -> W,
) -> (Vec<f64>, u64) {
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
    (lat, bad)
}

/// CPU time (user + system, every thread, those ended included) of process `pid` (or "self"),
/// seconds, from `/proc/PID/stat` (in USER_HZ = 100 ticks).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which can hold spaces) in parentheses: utime and stime are
    // the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--exact") {
        return;
    }
    let index = PathBuf::from(arg("--index", "bench-data/index"));
    let corpus = PathBuf::from(arg("--corpus", "bench-data/corpus.jsonl"));
    let n: usize = arg("--queries", "100").parse().expect("--queries N");
    let seconds: f64 = arg("--seconds", "5").parse().expect("--seconds S");
    let rounds: usize = arg("--rounds", "5").parse().expect("--rounds N");
    assert!(rounds > 0, "--rounds must be at least 1");
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
    println!("| clients | in-process p50 / p99 | HTTP p50 / p99 | p99 difference | in-process /s | HTTP /s | HTTP / in-process (slices) | CPU per check in process | daemon CPU per request | client CPU per request | non-200 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let concurrency: Vec<usize> = arg("--clients", "1,16,64")
        .split(',')
        .map(|c| c.trim().parse().expect("--clients N,N,..."))
        .collect();
    for clients in concurrency {
        // The two sides alternate in `rounds` slices of equal length, so a change in what else
        // runs on the machine (it is shared) weighs on both alike; the spread of the slices'
        // ratios shows how much it moved.
        let slice = seconds / rounds as f64;
        let (mut inp_lat, mut http_lat, mut bad) = (Vec::new(), Vec::new(), 0u64);
        let (mut own_inp, mut own_http, mut daemon_cpu) = (0.0, 0.0, 0.0);
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            let own = cpu_seconds("self");
            let (l, _) = closed_loop(clients, slice, |_| {
                let (a, t) = (analyzer.clone(), texts.clone());
                move |i: usize| {
                    let r = a.spans(&t[i % t.len()]);
                    let _ = a.judge("x", &r, None);
                    true
                }
            });
            let (own2, daemon) = (cpu_seconds("self"), cpu_seconds(&child.id().to_string()));
            let (h, b) = http_closed_loop(clients, slice, addr, &bodies);
            let (own3, daemon2) = (cpu_seconds("self"), cpu_seconds(&child.id().to_string()));
            ratios.push(h.len() as f64 / l.len().max(1) as f64);
            own_inp += own2 - own;
            own_http += own3 - own2;
            daemon_cpu += daemon2 - daemon;
            bad += b;
            inp_lat.extend(l);
            http_lat.extend(h);
        }
        let (inp_rate, http_rate) = (
            inp_lat.len() as f64 / seconds,
            http_lat.len() as f64 / seconds,
        );
        let (inp, http) = (summarize(inp_lat), summarize(http_lat));
        let per = |cpu: f64, rate: f64| cpu * 1e6 / (rate * seconds);
        ratios.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {clients} | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:+.3} ms | {inp_rate:.0} | {http_rate:.0} | **{:.2}** ({:.2}–{:.2}) | {:.0} µs | {:.0} µs | {:.0} µs | {bad} |",
            inp.p50_ms,
            inp.p99_ms,
            http.p50_ms,
            http.p99_ms,
            http.p99_ms - inp.p99_ms,
            http_rate / inp_rate,
            ratios[0],
            ratios[ratios.len() - 1],
            per(own_inp, inp_rate),
            per(daemon_cpu, http_rate),
            per(own_http, http_rate),
        );
    }
    // What a check costs on a thread that slept before it, as a daemon's threads do between
    // requests: the same checks, one thread, back to back and after a pause.
    let mut per_check = Vec::new();
    for pause in [0u64, 1000] {
        let mut total = Duration::ZERO;
        for i in 0..2000 {
            if pause > 0 {
                std::thread::sleep(Duration::from_micros(pause));
            }
            let t = Instant::now();
            let r = analyzer.spans(&texts[i % texts.len()]);
            let _ = analyzer.judge("x", &r, None);
            total += t.elapsed();
        }
        per_check.push(total.as_secs_f64() * 1e6 / 2000.0);
    }
    println!(
        "\nOne thread in process: {:.0} µs per check back to back, {:.0} µs after a 1 ms sleep ({:.2}×).",
        per_check[0],
        per_check[1],
        per_check[1] / per_check[0]
    );
    let _ = child.kill();
    let _ = child.wait();
}
