//! End-to-end daemon throughput through a real broker: `cargo bench --bench serve [-- OPTIONS]`.
//!
//! Starts tansu (memory storage) on 127.0.0.1, fills the input topic with 1 KiB JSON messages
//! (10% quote the corpus), runs `memaudit serve` against the index, and reads the daemon's own
//! /metrics until every message is finished. Prints messages/s, CPU and peak memory of the
//! daemon per message, and the per-stage means from `memaudit_stage_seconds`.
//!
//! Options: `--index DIR` (default bench-data/index, the 350 MB benchmark index; else the demo
//! corpus is indexed), `--messages N` (20000), `--policy off|on-match` (off).

#[path = "../tests/broker/mod.rs"]
mod broker;

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

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

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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
    let quote: String =
        std::fs::read_to_string(repo.join("data/demo/corpus/gettysburg-address.txt"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
    let b = broker::Broker::start(dir.path());
    b.create_topics(&[("in", 2), ("v", 1), ("a", 1), ("d", 1)]);
    let filler = "the quick survey of regional rainfall patterns suggests a modest shift ";
    let recs: Vec<(i32, String, Vec<u8>)> = (0..n)
        .map(|i| {
            let mut text = String::new();
            if i % 10 == 0 {
                text.push_str(&quote[..300]);
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
    let t = Instant::now();
    b.produce("in", &recs);
    eprintln!(
        "produced {n} messages ({:.0} B mean) in {:.1?}",
        bytes as f64 / n as f64,
        t.elapsed()
    );
    let cfg = format!(
        "[kafka]\nbrokers = \"{}\"\ngroup_id = \"bench\"\n[topics]\ninput = \"in\"\nverdicts = \"v\"\nalerts = \"a\"\ndead_letters = \"d\"\n[index]\ndir = {:?}\n[probe]\npolicy = \"{policy}\"\n",
        b.brokers(),
        index.display().to_string()
    );
    let d = broker::Daemon::start(dir.path(), &cfg, "bench");
    let pid = d.child.id();
    // The topic is full before the daemon starts: time from its first finished message to its
    // last (start-up and the group join are left out), CPU over the same interval.
    let start = Instant::now();
    let mut first: Option<(Instant, f64)> = None;
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
    let rss = proc_field(pid, "status", "VmRSS:").unwrap_or(0);
    println!("memaudit serve, probe {policy}, index {}", index.display());
    println!(
        "  {done:.0} messages of ~1 KiB in {:.2} s = {:.0} messages/s end to end (first verdict to last)",
        wall.as_secs_f64(),
        done / wall.as_secs_f64()
    );
    println!(
        "  daemon CPU {:.1} s = {:.0} µs per message ({:.2} cores busy); RSS {} MiB, peak {} MiB",
        cpu,
        cpu / done * 1e6,
        cpu / wall.as_secs_f64(),
        rss / 1024,
        hwm / 1024
    );
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
    d.signal("TERM");
}
