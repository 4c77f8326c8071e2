//! `memaudit serve` end to end against a real Kafka-protocol broker (tansu, memory storage):
//! verdicts, alerts, dead letters and commits; kill -9 and restart; broker restart; SIGTERM
//! under load. Every test checks that each good message ends with a verdict.
//!
//! The tests share the machine's two cores, so they run one at a time (a lock).

mod broker;

use broker::{Broker, Daemon, Output};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// An input record: partition, key (the message id), payload.
type Input = (i32, String, Vec<u8>);

const INPUT: &str = "llm-outputs";
const VERDICTS: &str = "memaudit-verdicts";
const ALERTS: &str = "memaudit-alerts";
const DLQ: &str = "memaudit-dead-letters";
const PARTITIONS: i32 = 3;
const SESSION_MS: u64 = 10_000;

/// Before a daemon restarts in the same group, its predecessor's session must have expired:
/// tansu 0.6 hands a group whose leader vanished (killed, or left) to a member that joined
/// earlier with an empty assignment and never rebalances it, where Kafka would. A supervisor
/// restarting the service after the session timeout (systemd's RestartSec) sees the same.
fn wait_out_the_session() {
    std::thread::sleep(Duration::from_millis(SESSION_MS + 1_000));
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The index of the demo corpus shipped in the repository (built once per test).
fn build_index(dir: &Path) -> PathBuf {
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

fn gettysburg() -> String {
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
/// spread over the partitions; returns the records and the ids that quote.
fn messages(n: usize, quote_every: usize, tag: &str) -> (Vec<Input>, BTreeSet<String>) {
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
            ((i % PARTITIONS as usize) as i32, id, payload.into_bytes())
        })
        .collect();
    (recs, quoting)
}

fn config(broker: &Broker, index: &Path, group: &str, extra: &str) -> String {
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
"session.timeout.ms" = "{SESSION_MS}"
"heartbeat.interval.ms" = "1000"
{extra}
"#,
        broker.brokers(),
        index.display().to_string()
    )
}

fn start_broker(dir: &Path) -> Broker {
    let b = Broker::start(dir);
    b.create_topics(&[(INPUT, PARTITIONS), (VERDICTS, 1), (ALERTS, 1), (DLQ, 1)]);
    b
}

fn verdict_ids(out: &[Output]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in out {
        *m.entry(o.json()["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

fn wait_for_verdicts(broker: &Broker, ids: &BTreeSet<String>, timeout: Duration) -> Vec<Output> {
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

#[test]
fn verdicts_alerts_dead_letters_and_commits() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let broker = start_broker(dir.path());
    let (mut recs, quoting) = messages(120, 4, "e2e");
    let good: BTreeSet<String> = recs.iter().map(|r| r.1.clone()).collect();
    // Malformed inputs: every dead-letter reason the daemon can meet on a topic.
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{\"id\": \"x\", \"text\": ".to_vec()),
        (
            "invalid_utf8",
            b"{\"id\":\"y\",\"text\":\"\xff\xfe\"}".to_vec(),
        ),
        ("missing_text", br#"{"id":"z"}"#.to_vec()),
        ("text_not_string", br#"{"id":"w","text":42}"#.to_vec()),
        ("not_an_object", b"[1,2,3]".to_vec()),
        (
            "oversize",
            serde_json::json!({"id":"big","text":"a".repeat(5000)})
                .to_string()
                .into_bytes(),
        ),
        ("empty_payload", Vec::new()),
    ];
    for (i, (reason, payload)) in bad.iter().enumerate() {
        recs.insert(
            i * 13,
            (
                (i as i32) % PARTITIONS,
                format!("bad-{reason}"),
                payload.clone(),
            ),
        );
    }
    broker.produce(INPUT, &recs);

    let mut d = Daemon::start(
        dir.path(),
        &config(
            &broker,
            &index,
            "g-e2e",
            "[probe]\npolicy = \"on-match\"\nbatch_size = 8\n",
        ),
        "daemon",
    );
    d.wait_ready(Duration::from_secs(60));
    let verdicts = wait_for_verdicts(&broker, &good, Duration::from_secs(180));
    let seen = verdict_ids(&verdicts);
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        good,
        "one verdict per good message\n{}",
        d.log_text()
    );
    assert!(
        seen.values().all(|&n| n == 1),
        "no duplicates without faults"
    );
    for v in &verdicts {
        let j = v.json();
        let id = j["id"].as_str().unwrap();
        assert_eq!(v.key, id, "verdicts are keyed by message id");
        assert_eq!(j["kind"], "verdict");
        assert_eq!(j["model"], "m1");
        if quoting.contains(id) {
            assert!(j["longest_span_chars"].as_u64().unwrap() >= 150, "{j}");
            assert_eq!(j["severity"], "critical", "200 of ~257 chars copied: {j}");
            assert!(
                j["entropy"]["mean_entropy"].as_f64().is_some(),
                "probe on-match scored {id}"
            );
            assert!(j["spans"][0]["provenance"][0]["source"]
                .as_str()
                .unwrap()
                .contains("gettysburg"));
        } else {
            assert_eq!(j["severity"], "none", "{j}");
            assert!(j.get("entropy").is_none(), "no probe without a match");
        }
    }
    let alerts = broker.read(ALERTS, Duration::from_secs(30), |o| {
        o.len() >= quoting.len()
    });
    let alerted: BTreeSet<String> = alerts.iter().map(|a| a.key.clone()).collect();
    assert_eq!(alerted, quoting, "an alert for every copy, keyed by id");
    let dead = broker.read(DLQ, Duration::from_secs(30), |o| o.len() >= bad.len());
    assert_eq!(dead.len(), bad.len());
    for (reason, payload) in &bad {
        let d = dead
            .iter()
            .find(|o| o.key == format!("bad-{reason}"))
            .unwrap_or_else(|| panic!("no dead letter for {reason}"));
        assert_eq!(d.header("memaudit-reason"), Some(*reason));
        assert_eq!(&d.payload, payload, "the original payload");
        assert_eq!(d.header("memaudit-source-topic"), Some(INPUT));
        assert!(d
            .header("memaudit-source-offset")
            .unwrap()
            .parse::<i64>()
            .is_ok());
    }
    // Offsets: every partition committed to its end.
    let mut per_partition = vec![0i64; PARTITIONS as usize];
    for r in &recs {
        per_partition[r.0 as usize] += 1;
    }
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let c = broker.committed("g-e2e", INPUT, PARTITIONS);
        if c == per_partition {
            break;
        }
        assert!(
            Instant::now() < until,
            "committed {c:?}, expected {per_partition:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, metrics) = d.get("/metrics").unwrap();
    assert!(
        metrics.contains("memaudit_messages_total{outcome=\"verdict\"} 120"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "memaudit_messages_total{{outcome=\"dead_letter\"}} {}",
        bad.len()
    )));
    assert!(metrics.contains("memaudit_dead_letters_total{reason=\"oversize\"} 1"));
    assert!(metrics.contains(&format!(
        "memaudit_alerts_total{{severity=\"critical\"}} {}",
        quoting.len()
    )));
    assert!(
        metrics.contains("memaudit_consumer_lag_messages{"),
        "lag from librdkafka statistics"
    );
    d.signal("TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log_text());
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let broker = start_broker(dir.path());
    let (recs, _) = messages(600, 10, "k9");
    let ids: BTreeSet<String> = recs.iter().map(|r| r.1.clone()).collect();
    broker.produce(INPUT, &recs);
    // The probe scores every message, so the kill lands with batches in flight.
    let busy = config(
        &broker,
        &index,
        "g-k9",
        "[probe]\npolicy = \"always\"\nbatch_size = 8\n[limits]\nmax_in_flight = 48\n",
    );
    let mut d = Daemon::start(dir.path(), &busy, "first");
    let partial = broker.read(VERDICTS, Duration::from_secs(180), |o| o.len() >= 40);
    assert!(partial.len() >= 40, "{}", d.log_text());
    d.signal("KILL");
    assert_eq!(
        d.wait(Duration::from_secs(10)),
        None,
        "killed by the signal"
    );
    let before = broker
        .read(VERDICTS, Duration::from_secs(5), |_| false)
        .len();
    assert!(
        before < ids.len(),
        "killed mid-stream ({before} verdicts of {})",
        ids.len()
    );
    wait_out_the_session();
    // The restart runs with the probe off, to be quick.
    let cfg = config(&broker, &index, "g-k9", "[probe]\npolicy = \"off\"\n");
    let mut d2 = Daemon::start(dir.path(), &cfg, "second");
    let verdicts = wait_for_verdicts(&broker, &ids, Duration::from_secs(180));
    let seen = verdict_ids(&verdicts);
    let missing: Vec<_> = ids.iter().filter(|i| !seen.contains_key(*i)).collect();
    assert!(
        missing.is_empty(),
        "{} messages without a verdict, e.g. {:?}; {} verdicts read; daemon metrics: {:?}\n{}",
        missing.len(),
        &missing[..5.min(missing.len())],
        verdicts.len(),
        d2.get("/metrics").map(|m| m
            .1
            .lines()
            .filter(|l| l.starts_with("memaudit_messages_total")
                || l.starts_with("memaudit_in_flight")
                || l.starts_with("memaudit_consumer_lag"))
            .collect::<Vec<_>>()
            .join("; ")),
        d2.log_text()
    );
    let dups = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "kill -9 after {before} of {} verdicts: all {} have a verdict after restart; {dups} re-delivered twice (at-least-once)",
        ids.len(),
        ids.len()
    );
    d2.signal("TERM");
    assert_eq!(d2.wait(Duration::from_secs(30)), Some(0));
}

#[test]
fn broker_restart_then_the_daemon_reconnects_and_continues() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let mut broker = start_broker(dir.path());
    let (a, _) = messages(300, 10, "before");
    let ids_a: BTreeSet<String> = a.iter().map(|r| r.1.clone()).collect();
    broker.produce(INPUT, &a);
    let cfg = config(&broker, &index, "g-restart", "[probe]\npolicy = \"off\"\n");
    let mut d = Daemon::start(dir.path(), &cfg, "daemon");
    let seen = verdict_ids(&wait_for_verdicts(
        &broker,
        &ids_a,
        Duration::from_secs(120),
    ));
    assert!(ids_a.iter().all(|i| seen.contains_key(i)));
    // The broker goes away (memory storage: topics and group state go with it) and comes back.
    broker.restart(Duration::from_secs(3));
    broker.create_topics(&[(INPUT, PARTITIONS), (VERDICTS, 1), (ALERTS, 1), (DLQ, 1)]);
    let (b, _) = messages(300, 10, "after");
    let ids_b: BTreeSet<String> = b.iter().map(|r| r.1.clone()).collect();
    broker.produce(INPUT, &b);
    let seen = verdict_ids(&wait_for_verdicts(
        &broker,
        &ids_b,
        Duration::from_secs(180),
    ));
    let missing: Vec<_> = ids_b
        .iter()
        .filter(|i| !seen.contains_key(*i))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "after the broker restart, no verdict for {missing:?}\n{}",
        d.log_text()
    );
    d.signal("TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log_text());
}

#[test]
fn sigterm_under_load_drains_and_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let broker = start_broker(dir.path());
    let (recs, _) = messages(600, 10, "term");
    let ids: BTreeSet<String> = recs.iter().map(|r| r.1.clone()).collect();
    broker.produce(INPUT, &recs);
    // The probe scores every message, so the daemon is busy (a probe batch in flight) when the
    // signal arrives; in-flight work is bounded so the drain fits the deadline.
    let busy = config(
        &broker,
        &index,
        "g-term",
        "[probe]\npolicy = \"always\"\nbatch_size = 8\n[limits]\nmax_in_flight = 48\n",
    );
    let mut d = Daemon::start(dir.path(), &busy, "first");
    broker.read(VERDICTS, Duration::from_secs(180), |o| o.len() >= 40);
    d.signal("TERM");
    let t = Instant::now();
    assert_eq!(
        d.wait(Duration::from_secs(30)),
        Some(0),
        "exit 0 after draining\n{}",
        d.log_text()
    );
    let drain = t.elapsed();
    let log = d.log_text();
    assert!(
        log.contains("drained: every received message finished and committed"),
        "{log}"
    );
    // Everything below the committed offsets has its verdict: nothing in flight was lost.
    let committed = broker.committed("g-term", INPUT, PARTITIONS);
    let verdicts = broker.read(VERDICTS, Duration::from_secs(5), |_| false);
    let seen = verdict_ids(&verdicts);
    let mut covered = 0;
    for (i, r) in recs.iter().enumerate() {
        let offset = (i / PARTITIONS as usize) as i64; // round-robin over partitions, in order
        if offset < committed[r.0 as usize] {
            covered += 1;
            assert!(
                seen.contains_key(&r.1),
                "{} committed without a verdict",
                r.1
            );
        }
    }
    assert!(covered >= 40, "committed {committed:?}");
    assert!(covered < ids.len(), "stopped under load, before the end");
    // A second run (probe off, to be quick) finishes the rest.
    wait_out_the_session();
    let quick = config(&broker, &index, "g-term", "[probe]\npolicy = \"off\"\n");
    let mut d2 = Daemon::start(dir.path(), &quick, "second");
    let seen = verdict_ids(&wait_for_verdicts(&broker, &ids, Duration::from_secs(180)));
    assert!(ids.iter().all(|i| seen.contains_key(i)));
    eprintln!(
        "SIGTERM after {} verdicts: drained in {drain:.1?}, committed {committed:?}; all {} verdicts after restart, {} duplicates",
        verdicts.len(),
        ids.len(),
        seen.values().filter(|&&n| n > 1).count()
    );
    d2.signal("TERM");
    assert_eq!(d2.wait(Duration::from_secs(30)), Some(0));
}
