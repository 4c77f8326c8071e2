//! The test workload shared by the broker tests (tansu and mock cluster): topic names, the demo
//! index, input messages (quoting and novel), the daemon's config, reading verdicts back.

use super::{Broker, Output};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const INPUT: &str = "llm-outputs";
pub const VERDICTS: &str = "memaudit-verdicts";
pub const ALERTS: &str = "memaudit-alerts";
pub const DLQ: &str = "memaudit-dead-letters";

/// An input record: partition, key (the message id), payload.
pub type Input = (i32, String, Vec<u8>);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The index of the demo corpus shipped in the repository.
pub fn build_index(dir: &Path) -> PathBuf {
    let out = dir.join("index");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(["index", "build", "--quiet", "--out"])
        .arg(&out)
        .arg(repo().join("data/demo/corpus"))
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// Creates the input topic with `partitions` and the three output topics with one each.
pub fn create_topics(broker: &Broker, partitions: i32) {
    broker.create_topics(&[(INPUT, partitions), (VERDICTS, 1), (ALERTS, 1), (DLQ, 1)]);
}

/// The Gettysburg Address of the demo corpus, whitespace collapsed as the index stores it.
pub fn gettysburg() -> String {
    std::fs::read_to_string(repo().join("data/demo/corpus/gettysburg-address.txt"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Deterministic novel prose.
fn novel(i: usize) -> String {
    const W: &[&str] = &[
        "amber", "harbor", "quietly", "lantern", "orchard", "ferry", "granite", "whistle",
        "meadow", "copper", "tangent", "velvet", "signal", "thimble", "canyon", "drizzle", "pylon",
        "saffron", "lattice", "ember",
    ];
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..40)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            W[(x % W.len() as u64) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `n` good messages (every `quote_every`-th quotes 200 characters of the Gettysburg Address),
/// round-robin over `partitions` in order; returns the records and the ids that quote.
pub fn messages(
    n: usize,
    quote_every: usize,
    tag: &str,
    partitions: i32,
) -> (Vec<Input>, BTreeSet<String>) {
    let g = gettysburg();
    let mut quoting = BTreeSet::new();
    let recs = (0..n)
        .map(|i| {
            let id = format!("{tag}-{i}");
            let text = if quote_every > 0 && i % quote_every == 0 {
                quoting.insert(id.clone());
                let start = (i * 7) % 600;
                let quote: String = g.chars().skip(start).take(200).collect();
                format!("As requested, the passage: {quote} Let me know if you need more.")
            } else {
                novel(i)
            };
            let payload = serde_json::json!({"id": id, "text": text, "model": "m1"}).to_string();
            ((i % partitions as usize) as i32, id, payload.into_bytes())
        })
        .collect();
    (recs, quoting)
}

/// The daemon's config for `broker`: fast commits and statistics, a 20 s shutdown deadline,
/// the given consumer session timeout, then `extra` TOML (a `[kafka.options]` table is open at
/// its start, so it may begin with more librdkafka options).
pub fn config(broker: &Broker, index: &Path, group: &str, session_ms: u64, extra: &str) -> String {
    format!(
        r#"
[kafka]
brokers = "{}"
group_id = "{group}"
commit_interval_ms = 200
statistics_interval_ms = 1000

[topics]
input = "{INPUT}"
verdicts = "{VERDICTS}"
alerts = "{ALERTS}"
dead_letters = "{DLQ}"

[index]
dir = {:?}

[input]
max_bytes = 4096

[shutdown]
deadline_secs = 20

# A killed member's partitions move after this long (librdkafka's default is 45 s).
[kafka.options]
"session.timeout.ms" = "{session_ms}"
"heartbeat.interval.ms" = "1000"
{extra}
"#,
        broker.brokers(),
        index.display().to_string()
    )
}

/// Verdict count per message id.
pub fn verdict_ids(out: &[Output]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in out {
        *m.entry(o.json()["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

/// Reads the verdict topic until every id in `ids` has a verdict, or `timeout`.
pub fn wait_for_verdicts(
    broker: &Broker,
    ids: &BTreeSet<String>,
    timeout: Duration,
) -> Vec<Output> {
    // Incremental: parse each record once, count the ids still missing.
    let mut missing = ids.clone();
    let mut parsed = 0;
    broker.read(VERDICTS, timeout, |out| {
        for o in &out[parsed..] {
            missing.remove(o.json()["id"].as_str().unwrap());
        }
        parsed = out.len();
        missing.is_empty()
    })
}

/// Waits until the daemon's `/metrics` shows `series` at `value` (30 s at most).
pub fn wait_metric(d: &super::Daemon, series: &str, value: f64) {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = d.get("/metrics").map(|m| m.1).unwrap_or_default();
        if metric(&page, series) == value {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{series} is not {value} after 30 s\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one sample line of a Prometheus text page (0 when absent).
pub fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
