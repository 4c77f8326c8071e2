//! `memaudit serve` end to end against a real Kafka-protocol broker (tansu, SQLite storage;
//! inputs produced in batches, as real producers write them): verdicts, alerts, dead letters
//! and commits; kill -9 in the middle of a batch and restart; broker restart; SIGTERM under
//! load. Every test checks that each good message ends with a verdict, and the committed
//! offsets against the ends the produce acknowledgements gave.
//!
//! The tests share the machine's two cores, so they run one at a time (a lock).

mod broker;

use broker::workload::{
    build_index, config as workload_config, create_topics, messages as workload_messages,
    verdict_ids, wait_for_verdicts, wait_metric, Input, ALERTS, DLQ, INPUT, VERDICTS,
};
use broker::{Broker, Daemon};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

const PARTITIONS: i32 = 3;
const SESSION_MS: u64 = 10_000;

/// Before a daemon restarts in the group of one killed with SIGKILL, the dead member's session
/// must expire: tansu 0.6 (SQLite storage too, checked) gives a member that joins while the
/// killed leader's session lasts an empty assignment and never rebalances it, where Kafka
/// would. A supervisor restarting the service after the session timeout (systemd's RestartSec)
/// sees the same. A member that left with SIGTERM needs no wait.
fn wait_out_the_session() {
    std::thread::sleep(Duration::from_millis(SESSION_MS + 1_000));
}

fn messages(n: usize, quote_every: usize, tag: &str) -> (Vec<Input>, BTreeSet<String>) {
    workload_messages(n, quote_every, tag, PARTITIONS)
}

fn config(broker: &Broker, index: &Path, group: &str, extra: &str) -> String {
    workload_config(broker, index, group, SESSION_MS, extra)
}

fn start_broker(dir: &Path) -> Broker {
    let b = Broker::start(dir);
    create_topics(&b, PARTITIONS);
    b
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
    let acks = broker.produce(INPUT, &recs);

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
    broker.wait_committed("g-e2e", INPUT, &acks, PARTITIONS, Duration::from_secs(20));
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
    d.stop();
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let broker = start_broker(dir.path());
    let (recs, _) = messages(600, 10, "k9");
    let ids: BTreeSet<String> = recs.iter().map(|r| r.1.clone()).collect();
    // Produced in batches: the kill lands in the middle of one, and the restart resumes from
    // a committed offset inside it.
    let acks = broker.produce(INPUT, &recs);
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
    broker.wait_committed("g-k9", INPUT, &acks, PARTITIONS, Duration::from_secs(30));
    let dups = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "kill -9 after {before} of {} verdicts: all {} have a verdict after restart; {dups} re-delivered twice (at-least-once)",
        ids.len(),
        ids.len()
    );
    d2.stop();
}

#[test]
fn broker_restart_then_the_daemon_reconnects_and_continues() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let mut broker = start_broker(dir.path());
    let (a, _) = messages(300, 10, "before");
    let ids_a: BTreeSet<String> = a.iter().map(|r| r.1.clone()).collect();
    let mut acks = broker.produce(INPUT, &a);
    let cfg = config(&broker, &index, "g-restart", "[probe]\npolicy = \"off\"\n");
    let mut d = Daemon::start(dir.path(), &cfg, "daemon");
    let seen = verdict_ids(&wait_for_verdicts(
        &broker,
        &ids_a,
        Duration::from_secs(120),
    ));
    assert!(ids_a.iter().all(|i| seen.contains_key(i)));
    // The broker goes away and comes back with its SQLite storage: topics, records and the
    // group's offsets are still there.
    broker.restart(Duration::from_secs(3));
    let (b, _) = messages(300, 10, "after");
    let ids_b: BTreeSet<String> = b.iter().map(|r| r.1.clone()).collect();
    acks.extend(broker.produce(INPUT, &b));
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
    assert!(
        ids_a.iter().all(|i| seen.contains_key(i)),
        "the verdicts from before are kept"
    );
    broker.wait_committed(
        "g-restart",
        INPUT,
        &acks,
        PARTITIONS,
        Duration::from_secs(30),
    );
    d.stop();
}

#[test]
fn sigterm_under_load_drains_and_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let broker = start_broker(dir.path());
    let (recs, _) = messages(600, 10, "term");
    let ids: BTreeSet<String> = recs.iter().map(|r| r.1.clone()).collect();
    let acks = broker.produce(INPUT, &recs);
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
    for (r, &(_, offset)) in recs.iter().zip(&acks.0) {
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
    let quick = config(&broker, &index, "g-term", "[probe]\npolicy = \"off\"\n");
    let mut d2 = Daemon::start(dir.path(), &quick, "second");
    let seen = verdict_ids(&wait_for_verdicts(&broker, &ids, Duration::from_secs(180)));
    assert!(ids.iter().all(|i| seen.contains_key(i)));
    broker.wait_committed("g-term", INPUT, &acks, PARTITIONS, Duration::from_secs(30));
    eprintln!(
        "SIGTERM after {} verdicts: drained in {drain:.1?}, committed {committed:?}; all {} verdicts after restart, {} duplicates",
        verdicts.len(),
        ids.len(),
        seen.values().filter(|&&n| n > 1).count()
    );
    d2.stop();
}

/// A record quoting `text` (200 characters from `skip`).
fn quoting(id: &str, text: &str, skip: usize, partition: i32) -> Input {
    let quote: String = text.chars().skip(skip).take(200).collect();
    let payload = serde_json::json!({"id": id, "text": format!("Here it is: {quote} Anything else?"), "model": "m1"});
    (partition, id.to_string(), payload.to_string().into_bytes())
}

/// The daemon follows the index while it consumes: a takedown and an addition published by
/// `memaudit index remove | add` while messages flow are in effect for the messages after the
/// swap; every message gets exactly one verdict, carrying the index id and generation it was
/// judged on; a generation that fails its check is refused (metric on, old one served) until a
/// good one appears; offsets are committed to the end.
#[test]
fn the_daemon_follows_takedowns_and_additions_without_losing_a_message() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let broker = start_broker(dir.path());
    let cfg = config(&broker, &index, "g-follow", "[probe]\npolicy = \"off\"\n")
        .replace("[index]\n", "[index]\npoll_secs = 0.2\n");
    let mut d = Daemon::start(dir.path(), &cfg, "daemon");
    d.wait_ready(Duration::from_secs(60));
    let g = broker::workload::gettysburg();
    let poem = "Seven lanterns swung above the orchard gate while the ferryman counted copper \
                coins, and the granite pylon hummed a tune nobody in the valley had ever heard \
                before; the saffron lattice of the harbor caught the last ember of the drizzle \
                and the whistle of the canyon train answered twice.";
    let new_doc = dir.path().join("new");
    std::fs::create_dir(&new_doc).unwrap();
    std::fs::write(new_doc.join("lantern-poem.txt"), poem).unwrap();
    let gettysburg_id = {
        let ix = memaudit::index::Index::open(&index).unwrap();
        let s = &ix.shards[0];
        (0..s.entry.documents)
            .find(|&k| {
                s.doc_meta(k)["source"]
                    .as_str()
                    .unwrap()
                    .contains("gettysburg")
            })
            .unwrap()
    };
    let metrics = |d: &Daemon| d.get("/metrics").map(|m| m.1).unwrap_or_default();

    // Phase 1, generation 1: quotes of the Gettysburg Address are found.
    let before: Vec<Input> = (0..30)
        .map(|i| quoting(&format!("before-{i}"), &g, i * 11, i as i32 % PARTITIONS))
        .collect();
    let mut acks = broker.produce(INPUT, &before);
    // Changes while messages flow: filler is produced in chunks while the takedown and the
    // addition are published.
    let run = |args: &[&std::ffi::OsStr]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let filler_ids: BTreeSet<String> = (0..200).map(|i| format!("during-{i}")).collect();
    for chunk in 0..20 {
        let recs: Vec<Input> = (0..10)
            .map(|j| {
                let i = chunk * 10 + j;
                let id = format!("during-{i}");
                let p = serde_json::json!({"id": id, "text": format!("filler message {i} about the weather"), "model": "m1"});
                (i % PARTITIONS, id, p.to_string().into_bytes())
            })
            .collect();
        acks.extend(broker.produce(INPUT, &recs));
        if chunk == 5 {
            let id = gettysburg_id.to_string();
            run(&[
                "index".as_ref(),
                "remove".as_ref(),
                index.as_os_str(),
                id.as_ref(),
                "--reason".as_ref(),
                "takedown".as_ref(),
            ]);
        }
        if chunk == 12 {
            run(&[
                "index".as_ref(),
                "add".as_ref(),
                "--quiet".as_ref(),
                index.as_os_str(),
                new_doc.as_os_str(),
            ]);
        }
    }
    wait_metric(&d, "memaudit_index_generation", 3.0);

    // Phase 2, generation 3: the removed text is no longer found, the added one is.
    let after: Vec<Input> = (0..30)
        .map(|i| {
            if i % 2 == 0 {
                quoting(&format!("after-g-{i}"), &g, i * 11, i as i32 % PARTITIONS)
            } else {
                quoting(&format!("after-new-{i}"), poem, i, i as i32 % PARTITIONS)
            }
        })
        .collect();
    acks.extend(broker.produce(INPUT, &after));

    let all: BTreeSet<String> = before
        .iter()
        .chain(&after)
        .map(|r| r.1.clone())
        .chain(filler_ids.iter().cloned())
        .collect();
    let verdicts = wait_for_verdicts(&broker, &all, Duration::from_secs(180));
    let seen = verdict_ids(&verdicts);
    let missing: Vec<_> = all
        .iter()
        .filter(|i| !seen.contains_key(*i))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "no verdict for {missing:?}\n{}",
        d.log_text()
    );
    assert!(seen.values().all(|&n| n == 1), "one verdict each");
    let ids: Vec<String> = {
        let m = memaudit::index::Index::open(&index).unwrap().manifest;
        m.history.iter().map(|c| c.index_id.clone()).collect()
    };
    for v in &verdicts {
        let j = v.json();
        let id = j["id"].as_str().unwrap();
        let generation = j["index_generation"].as_u64().unwrap();
        assert_eq!(j["index_id"], ids[generation as usize - 1], "{j}");
        if id.starts_with("before-") {
            assert_eq!(
                generation, 1,
                "{id} was judged before the takedown was published"
            );
            assert_eq!(j["severity"], "critical", "{j}");
        } else if id.starts_with("after-g-") {
            assert_eq!(generation, 3);
            assert_eq!(
                j["severity"], "none",
                "the taken-down text raises nothing: {j}"
            );
            assert!(j["spans"].as_array().unwrap().is_empty());
        } else if id.starts_with("after-new-") {
            assert_eq!(generation, 3);
            assert_eq!(j["severity"], "critical", "{j}");
            assert!(j["spans"][0]["provenance"][0]["source"]
                .as_str()
                .unwrap()
                .contains("lantern-poem"));
        }
    }

    // A generation that fails its check is refused and the old one served.
    let manifest_path = index.join("manifest.json");
    let good = std::fs::read(&manifest_path).unwrap();
    // A checksum that does not match its file, under an index id made to match the manifest
    // (an id that does not is refused before any file is read).
    let mut bad: memaudit::index::format::Manifest = serde_json::from_slice(&good).unwrap();
    bad.generation = 4;
    let last = bad.shards.len() - 1;
    bad.shards[last].text.blake3 = "0".repeat(64);
    bad.index_id = bad.id();
    let tmp = index.join("manifest.json.edit");
    std::fs::write(&tmp, serde_json::to_vec(&bad).unwrap()).unwrap();
    std::fs::rename(&tmp, &manifest_path).unwrap();
    wait_metric(&d, "memaudit_index_reload_failed", 1.0);
    let m = metrics(&d);
    assert_eq!(
        broker::workload::metric(&m, "memaudit_index_generation"),
        3.0
    );
    assert_eq!(
        broker::workload::metric(&m, "memaudit_index_reloads_total{result=\"ok\"}"),
        2.0
    );
    assert!(broker::workload::metric(&m, "memaudit_index_reloads_total{result=\"failed\"}") >= 1.0);
    assert!(
        d.log_text().contains("checksum does not match"),
        "the log says why"
    );
    let still: Vec<Input> = (0..6)
        .map(|i| quoting(&format!("refused-{i}"), poem, i, i as i32 % PARTITIONS))
        .collect();
    acks.extend(broker.produce(INPUT, &still));
    let ids_still: BTreeSet<String> = still.iter().map(|r| r.1.clone()).collect();
    let v = wait_for_verdicts(&broker, &ids_still, Duration::from_secs(60));
    for o in v.iter().filter(|o| o.key.starts_with("refused-")) {
        let j = o.json();
        assert_eq!(
            j["index_generation"], 3,
            "the previous generation is served: {j}"
        );
        assert_eq!(j["severity"], "critical");
    }
    // The good manifest back, and SIGHUP: the alarm clears.
    std::fs::write(&tmp, &good).unwrap();
    std::fs::rename(&tmp, &manifest_path).unwrap();
    d.signal("HUP");
    wait_metric(&d, "memaudit_index_reload_failed", 0.0);
    broker.wait_committed(
        "g-follow",
        INPUT,
        &acks,
        PARTITIONS,
        Duration::from_secs(30),
    );
    d.stop();
}

/// `text` cut into chunks of `words` words each, as `{id, seq, delta, final}` payloads (the
/// last one final when `last` is set).
fn chunked(id: &str, text: &str, words: usize, partition: i32, last: bool) -> Vec<Input> {
    let w: Vec<&str> = text.split(' ').collect();
    let pieces: Vec<String> = w.chunks(words).map(|c| c.join(" ") + " ").collect();
    let n = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(seq, delta)| {
            let p = serde_json::json!({"id": id, "seq": seq, "delta": delta, "final": last && seq + 1 == n, "model": "m1"});
            (partition, id.to_string(), p.to_string().into_bytes())
        })
        .collect()
}

/// Streamed outputs on tansu. tansu 0.6 keeps a commit's metadata but does not return it on
/// an offset fetch, so the output that ended past the open one is judged again after the
/// restart (the same verdict; at-least-once) where a Kafka broker returns the note.
#[test]
fn streamed_outputs_reordered_duplicated_unfinished_and_across_a_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path());
    streamed_outputs(&broker, dir.path(), false);
}

/// The same on librdkafka's mock cluster, which returns commit metadata as Kafka does: exactly
/// one verdict per output across the restart.
#[test]
fn streamed_outputs_get_one_verdict_each_across_a_restart_where_commit_notes_round_trip() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::mock();
    create_topics(&broker, PARTITIONS);
    streamed_outputs(&broker, dir.path(), true);
}

/// Streamed outputs on Kafka (`input.format = "chunks"`): chunks interleaved across outputs,
/// out of order and duplicated, one output missing a chunk, one missing its final chunk, and
/// one open across a SIGTERM and restart. Every output gets its final verdict, equal to the
/// whole text's; a quoting output raises an alert before it ends; nothing open is committed,
/// and everything is committed at the end. With `notes_round_trip`, exactly one verdict each.
fn streamed_outputs(broker: &Broker, dir: &Path, notes_round_trip: bool) {
    let index = build_index(dir);
    let cfg = config(
        broker,
        &index,
        "g-chunks",
        "[probe]\npolicy = \"off\"\n[chunks]\nidle_timeout_secs = 10\n",
    )
    .replace("[input]\n", "[input]\nformat = \"chunks\"\n");
    let g = broker::workload::gettysburg();
    let (novel, _) = messages(8, 0, "novel");
    let novel_text = |i: usize| {
        let v: serde_json::Value = serde_json::from_slice(&novel[i].2).unwrap();
        v["text"].as_str().unwrap().to_string()
    };
    // Whole texts by output id: quotes for even outputs, novel text for odd ones.
    let mut texts = std::collections::BTreeMap::new();
    for i in 0..6 {
        let text = if i % 2 == 0 {
            let q: String = g.chars().skip(i * 40).take(400).collect();
            format!("Sure. {q} That is the passage.")
        } else {
            novel_text(i)
        };
        texts.insert(format!("out-{i}"), text);
    }
    texts.insert("gap".to_string(), g.chars().take(300).collect::<String>());
    texts.insert("unfinished".to_string(), novel_text(7));
    let restart_text: String = format!(
        "Quoting: {}",
        g.chars().skip(500).take(500).collect::<String>()
    );

    // Each output's chunks, shuffled a little and with duplicates; then all interleaved.
    let mut per_output: Vec<Vec<Input>> = Vec::new();
    for (k, (id, text)) in texts.iter().enumerate() {
        let part = k as i32 % PARTITIONS;
        let mut c = chunked(id, text, 5, part, id != "unfinished");
        if id == "gap" {
            c.remove(2);
        }
        // Swap neighbours and repeat a chunk: what at-least-once producers and retries do.
        for j in (1..c.len()).step_by(3) {
            c.swap(j - 1, j);
        }
        let dup = c[c.len() / 2].clone();
        c.insert(c.len() - 1, dup);
        per_output.push(c);
    }
    let restart_chunks = chunked("restart", &restart_text, 5, 0, true);
    let (first_half, second_half) = restart_chunks.split_at(restart_chunks.len() / 2);
    let mut interleaved = Vec::new();
    let longest = per_output.iter().map(Vec::len).max().unwrap();
    for j in 0..longest {
        for c in &per_output {
            if let Some(r) = c.get(j) {
                interleaved.push(r.clone());
            }
        }
    }
    let mut acks = broker.produce(INPUT, &interleaved);
    let mut d = Daemon::start(dir, &cfg, "first");
    let ids: BTreeSet<String> = texts.keys().cloned().collect();
    wait_for_verdicts(broker, &ids, Duration::from_secs(120));

    // Then an output left open (half its chunks) and, after it on the same partition, a short
    // one that ends; SIGTERM while the first is open (within the idle timeout).
    let open_acks = broker.produce(INPUT, first_half);
    let restart_first_offset = open_acks.0[0].1;
    acks.extend(open_acks);
    let after_open = "A short output that ends while the other one is still open. ";
    acks.extend(broker.produce(INPUT, &chunked("after-open", after_open, 4, 0, true)));
    texts.insert("after-open".to_string(), after_open.to_string());
    let ids: BTreeSet<String> = texts.keys().cloned().collect();
    wait_for_verdicts(broker, &ids, Duration::from_secs(60));
    // The open output raised its alert already: its first half quotes the address.
    let alerts = broker.read(ALERTS, Duration::from_secs(30), |o| {
        o.iter().any(|a| a.json()["id"] == "restart")
    });
    let early = alerts
        .iter()
        .map(|a| a.json())
        .find(|a| a["id"] == "restart")
        .expect("an early alert for the open output");
    assert_eq!(early["stream"]["final"], false, "{early}");
    assert_eq!(early["stream"]["ended_by"], "open");
    d.signal("TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log_text());
    let committed = broker.committed("g-chunks", INPUT, PARTITIONS);
    assert!(
        committed[0] <= restart_first_offset,
        "the open output's chunks are not committed: partition 0 committed {}, its first chunk is at {restart_first_offset}",
        committed[0]
    );

    // Every output that ended has its verdict, equal to the whole text's spans.
    let whole = memaudit::index::Index::open(&index).unwrap();
    // The streamed text: each chunk is its words and a space.
    let check = |id: &str, v: &serde_json::Value, text: &str| {
        let text = &format!("{text} ");
        let want = whole.spans(text, &memaudit::index::SpanOptions::default());
        let got: Vec<(u64, u64)> = v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap()))
            .collect();
        let want: Vec<(u64, u64)> = want
            .spans
            .iter()
            .map(|s| (s.start as u64, s.end as u64))
            .collect();
        assert_eq!(got, want, "{id}: {v}");
        assert_eq!(
            v["text_chars"].as_u64().unwrap() as usize,
            text.chars().count(),
            "{id}"
        );
    };
    let verdicts = broker.read(VERDICTS, Duration::from_secs(5), |_| false);
    assert!(
        verdicts.iter().all(|o| o.key != "restart"),
        "no verdict while open"
    );
    for o in &verdicts {
        let v = o.json();
        let id = v["id"].as_str().unwrap();
        let text = &texts[id];
        let stream = &v["stream"];
        assert_eq!(stream["final"], true, "{v}");
        match id {
            "gap" => {
                assert_eq!(stream["ended_by"], "idle_timeout", "{v}");
                assert_eq!(stream["complete"], false);
                assert_eq!(stream["missing"], serde_json::json!([[2, 3]]));
                assert_eq!(v["severity"], "critical", "a gap does not hide the quote");
            }
            "unfinished" => {
                assert_eq!(stream["ended_by"], "idle_timeout", "{v}");
                assert_eq!(stream["complete"], false);
                check(id, &v, text);
            }
            _ => {
                assert_eq!(stream["ended_by"], "final", "{v}");
                assert_eq!(stream["complete"], true, "{v}");
                check(id, &v, text);
                let quoting = id.ends_with('0') || id.ends_with('2') || id.ends_with('4');
                assert_eq!(v["severity"] == "critical", quoting, "{v}");
            }
        }
    }

    // The rest of the open output after a restart: it is rebuilt from its first chunk.
    let mut d2 = Daemon::start(dir, &cfg, "second");
    acks.extend(broker.produce(INPUT, second_half));
    let all: BTreeSet<String> = ids.iter().cloned().chain(["restart".to_string()]).collect();
    let verdicts = wait_for_verdicts(broker, &all, Duration::from_secs(120));
    let restart: Vec<serde_json::Value> = verdicts
        .iter()
        .map(|o| o.json())
        .filter(|v| v["id"] == "restart")
        .collect();
    assert_eq!(
        restart.len(),
        1,
        "one verdict for the output open across the restart"
    );
    assert_eq!(restart[0]["stream"]["complete"], true, "{}", restart[0]);
    assert_eq!(restart[0]["stream"]["chunks"], restart_chunks.len() as u64);
    check("restart", &restart[0], &restart_text);
    broker.wait_committed(
        "g-chunks",
        INPUT,
        &acks,
        PARTITIONS,
        Duration::from_secs(60),
    );
    // One verdict each, also for the output that ended while the other was open: its chunks
    // lay past the commit and were read again after the restart, as duplicates (the commit
    // note named it).
    let verdicts = broker.read(VERDICTS, Duration::from_secs(5), |_| false);
    let seen = verdict_ids(&verdicts);
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), all);
    let twice: Vec<&String> = seen
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(id, _)| id)
        .collect();
    if notes_round_trip {
        assert!(twice.is_empty(), "one verdict each: {seen:?}");
    } else {
        assert!(twice.iter().all(|id| *id == "after-open"), "{seen:?}");
    }
    assert!(seen.values().all(|&n| n <= 2), "{seen:?}");
    let m = d2.get("/metrics").map(|m| m.1).unwrap_or_default();
    let dups = broker::workload::metric(&m, "memaudit_chunks_total{kind=\"duplicate\"}");
    if notes_round_trip {
        assert!(
            dups >= 1.0,
            "the ended output's chunks were read again as duplicates"
        );
    }
    eprintln!(
        "streamed outputs: {} verdicts for {} outputs; chunks dropped as duplicates after the restart: {dups}",
        verdicts.len(),
        all.len(),
    );
    d2.stop();
}
