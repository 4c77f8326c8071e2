//! End-to-end daemon throughput through a real broker: `cargo bench --bench serve [-- OPTIONS]`.
//!
//! For each in-flight limit: starts tansu (SQLite storage) on 127.0.0.1, fills the input topic
//! with 1 KiB JSON messages (10% quote 300 bytes of documents taken from the index; produced in
//! batches), runs `memaudit serve` against the index and reads the daemon's own /metrics until
//! every message is finished. Prints messages/s, CPU and peak
//! memory of the daemon per message, the per-stage means from `memaudit_stage_seconds`, and a
//! table of messages/s by `limits.max_in_flight`.
//!
//! Options: `--index DIR` (default bench-data/index, the 350 MB benchmark index; else the demo
//! corpus is indexed), `--messages N` (20000), `--policy off|on-match` (off),
//! `--in-flight 16,64,256,4096` (the limits measured, in turn), `--swap-every SECS` (0: while the
//! daemon consumes, publish a takedown of 100 documents every SECS seconds with `memaudit index
//! remove` on a hard-linked copy of the index, which the daemon follows with `index.poll_secs =
//! 0.2`; prints messages/s around each swap and the longest time without a finished message).

#[path = "../tests/broker/mod.rs"]
mod broker;
mod common;

use common::{arg, metric};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Reads every file of the index once; returns the bytes read.
fn warm_page_cache(index: &std::path::Path) -> u64 {
    use std::io::Read;
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    for e in std::fs::read_dir(index).unwrap().flatten() {
        let Ok(mut f) = std::fs::File::open(e.path()) else {
            continue;
        };
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

/// Up to `n` distinct 300-byte quotes cut from the middle of documents of the index itself, so
/// every tenth message shares a span with the corpus whichever index is measured.
fn corpus_quotes(index: &std::path::Path, n: usize) -> Vec<String> {
    let idx = memaudit::index::Index::open(index).expect("open the index");
    let mut quotes = Vec::new();
    for shard in &idx.shards {
        let docs = shard.entry.documents;
        // Walk the documents with a stride coprime to most counts, so quotes spread over the shard.
        for k in (0..docs).map(|j| (j * 7919) % docs) {
            let text = String::from_utf8_lossy(shard.doc_text(k));
            if text.len() < 900 {
                continue;
            }
            let mut a = text.len() / 3;
            while !text.is_char_boundary(a) {
                a += 1;
            }
            let mut b = a + 300;
            while !text.is_char_boundary(b) {
                b += 1;
            }
            quotes.push(text[a..b].to_string());
            if quotes.len() == n {
                return quotes;
            }
        }
    }
    assert!(
        !quotes.is_empty(),
        "no document of 900+ bytes in {}",
        index.display()
    );
    quotes
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--exact") {
        return; // `cargo bench --no-run`-style discovery: nothing to list
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let n: usize = arg("--messages", "20000").parse().unwrap();
    let policy = arg("--policy", "off");
    let dir = tempfile::tempdir().unwrap();
    let mut index = PathBuf::from(arg(
        "--index",
        &repo.join("bench-data/index").display().to_string(),
    ));
    if !index.join("manifest.json").exists() {
        eprintln!(
            "{} not found: indexing the demo corpus instead",
            index.display()
        );
        index = dir.path().join("index");
        let ok = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args(["index", "build", "--quiet", "--out"])
            .arg(&index)
            .arg(repo.join("data/demo/corpus"))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let quotes = corpus_quotes(&index, n.div_ceil(10));
    // A long-running daemon has its index in the page cache; so does this measurement.
    let t = Instant::now();
    let warmed = warm_page_cache(&index);
    eprintln!(
        "read the index ({} MB) into the page cache in {:.1?}",
        warmed / 1_000_000,
        t.elapsed()
    );
    let filler = "the quick survey of regional rainfall patterns suggests a modest shift ";
    let recs: Vec<(i32, String, Vec<u8>)> = (0..n)
        .map(|i| {
            let mut text = String::new();
            if i % 10 == 0 {
                text.push_str(&quotes[(i / 10) % quotes.len()]);
                text.push(' ');
            }
            while text.len() < 960 {
                text.push_str(filler);
                text.push_str(&i.to_string());
                text.push(' ');
            }
            text.truncate(960);
            let id = format!("m{i}");
            let payload = serde_json::json!({"id": id, "text": text}).to_string();
            ((i % 2) as i32, id, payload.into_bytes())
        })
        .collect();
    let bytes: usize = recs.iter().map(|r| r.2.len()).sum();
    let limits: Vec<usize> = arg("--in-flight", "16,64,256,4096")
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .expect("--in-flight takes numbers, e.g. 16,64")
        })
        .collect();
    let mut table = Vec::new();
    for limit in limits {
        // A new broker for each run: tansu's SQLite storage slows as its topics grow (a second
        // run on the same broker produced at ~6 messages/s), which would measure the broker.
        let run_dir = dir.path().join(format!("run-{limit}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let b = broker::Broker::start(&run_dir);
        b.create_topics(&[("in", 2), ("v", 1), ("a", 1), ("d", 1)]);
        let t = Instant::now();
        b.produce("in", &recs);
        eprintln!(
            "produced {n} messages ({:.0} B mean) in {:.1?}",
            bytes as f64 / n as f64,
            t.elapsed()
        );
        let rate = run_daemon(&b, &index, &run_dir, &policy, limit, n);
        table.push((limit, rate));
    }
    println!("\nmessages/s by limits.max_in_flight (probe {policy}, {n} messages, one run each):");
    println!("  | max_in_flight | messages/s |");
    println!("  |---:|---:|");
    for (limit, rate) in table {
        println!("  | {limit} | {rate:.0} |");
    }
}

/// One daemon in a new consumer group over the whole input topic; prints its figures and
/// returns messages/s.
fn run_daemon(
    b: &broker::Broker,
    index: &std::path::Path,
    dir: &std::path::Path,
    policy: &str,
    limit: usize,
    n: usize,
) -> f64 {
    let swap_every: f64 = arg("--swap-every", "0").parse().expect("--swap-every SECS");
    // The daemon follows a hard-linked copy (`index merge` of one index), so takedowns leave the
    // benchmark index as it is.
    let index = if swap_every > 0.0 {
        let copy = dir.join("index-followed");
        let ok = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args(["index", "merge", "--force"])
            .arg(&copy)
            .arg(index)
            .status()
            .unwrap()
            .success();
        assert!(ok, "index merge");
        copy
    } else {
        index.to_path_buf()
    };
    let cfg = format!(
        "[kafka]\nbrokers = \"{}\"\ngroup_id = \"bench-{limit}\"\n[topics]\ninput = \"in\"\nverdicts = \"v\"\nalerts = \"a\"\ndead_letters = \"d\"\n[index]\ndir = {:?}\n[probe]\npolicy = \"{policy}\"\n[limits]\nmax_in_flight = {limit}\n",
        b.brokers(),
        index.display().to_string()
    );
    let cfg = cfg.replace(
        "[index]\n",
        &format!(
            "[index]\npoll_secs = {}\n",
            if swap_every > 0.0 { 0.2 } else { 2.0 }
        ),
    );
    let mut d = broker::Daemon::start(dir, &cfg, &format!("bench-{limit}"));
    let pid = d.child.id();
    // The topic is full before the daemon starts: time from its first finished message to its
    // last (start-up and the group join are left out), CPU over the same interval.
    let start = Instant::now();
    let mut first: Option<(Instant, f64)> = None;
    // (time, messages finished, generation in use), every poll.
    let mut samples: Vec<(Instant, f64, f64)> = Vec::new();
    let mut next_swap: Option<Instant> = None;
    let mut swaps = 0u64;
    let mut writers = Vec::new();
    let last_text = loop {
        let Some((_, text)) = d.get("/metrics") else {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "daemon did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let done = metric(&text, "memaudit_messages_total");
        if first.is_none() && done > 0.0 {
            first = Some((Instant::now(), cpu_seconds(pid)));
            next_swap =
                (swap_every > 0.0).then(|| Instant::now() + Duration::from_secs_f64(swap_every));
        }
        samples.push((
            Instant::now(),
            done,
            metric(&text, "memaudit_index_generation"),
        ));
        if next_swap.is_some_and(|t| Instant::now() >= t) {
            let ids: Vec<String> = (swaps * 100..swaps * 100 + 100)
                .map(|i| i.to_string())
                .collect();
            let writer = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
                .args(["index", "remove"])
                .arg(&index)
                .args(&ids)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("memaudit index remove");
            writers.push(writer);
            swaps += 1;
            next_swap = Some(Instant::now() + Duration::from_secs_f64(swap_every));
        }
        if done as usize >= n || start.elapsed() > Duration::from_secs(600) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (t0, cpu0) = first.expect("no message finished");
    let wall = t0.elapsed();
    let done = metric(&last_text, "memaudit_messages_total");
    let cpu = cpu_seconds(pid) - cpu0;
    let hwm = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    let anon = proc_field(pid, "status", "RssAnon:").unwrap_or(0);
    let file = proc_field(pid, "status", "RssFile:").unwrap_or(0);
    println!(
        "memaudit serve, probe {policy}, max_in_flight {limit}, index {}",
        index.display()
    );
    println!(
        "  {done:.0} messages of ~1 KiB in {:.2} s = {:.0} messages/s end to end (first verdict to last)",
        wall.as_secs_f64(),
        done / wall.as_secs_f64()
    );
    println!(
        "  daemon CPU {:.1} s = {:.0} µs per message ({:.2} cores busy)",
        cpu,
        cpu / done * 1e6,
        cpu / wall.as_secs_f64(),
    );
    println!(
        "  daemon memory: {} MiB private (RssAnon) + {} MiB mapped file pages (index, binary; \
         page cache, reclaimable); peak RSS {} MiB",
        anon / 1024,
        file / 1024,
        hwm / 1024
    );
    let severities: Vec<String> = ["none", "low", "high", "critical"]
        .iter()
        .map(|s| {
            let v = metric(
                &last_text,
                &format!("memaudit_verdicts_total{{severity=\"{s}\"}}"),
            );
            format!("{s} {v:.0}")
        })
        .collect();
    println!("  verdicts: {}", severities.join(", "));
    if swap_every > 0.0 {
        for mut w in writers {
            assert!(w.wait().unwrap().success(), "a takedown failed");
        }
        common::report_swaps(&samples, t0);
    }
    println!("  per stage (mean over messages; probe: per batch):");
    for s in memaudit::metrics::STAGES {
        let sum = metric(
            &last_text,
            &format!("memaudit_stage_seconds_sum{{stage=\"{s}\"}}"),
        );
        let count = metric(
            &last_text,
            &format!("memaudit_stage_seconds_count{{stage=\"{s}\"}}"),
        );
        if count > 0.0 {
            println!(
                "    {s:<10} {:>9.1} µs  ({count:.0} observations)",
                sum / count * 1e6
            );
        }
    }
    d.stop();
    done / wall.as_secs_f64()
}
