//! The living index (issue 14): takedown, additions, compaction and merging change an index in
//! place, and what a query sees always equals an index built from scratch on the documents that
//! remain. Also: a second writer is refused, a writer killed at any point leaves the last complete
//! generation in force, and readers opening while writers publish always get a whole index.

mod common;

use common::{bin, options};
use memaudit::index::format::Manifest;
use memaudit::index::write::add::{add, AddOptions};
use memaudit::index::write::build::{build, SaAlgorithm};
use memaudit::index::write::compact::{compact, CompactOptions};
use memaudit::index::write::generation::WriterLock;
use memaudit::index::write::merge::{merge, Transfer};
use memaudit::index::write::remove::{remove, Selection};
use memaudit::index::{Index, SpanOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WORDS: [&str; 7] = ["the", "cat", "sat", "on", "a", "mat", "quietly"];

fn random_doc(rng: &mut StdRng) -> String {
    let n = rng.random_range(8..40);
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes documents `(n, text)` as JSONL with metadata `n` and `group`.
fn write_docs(path: &Path, docs: &[(u64, String)]) {
    let mut s = String::new();
    for (n, t) in docs {
        s.push_str(
            &serde_json::json!({"text": t, "n": n, "group": format!("g{}", n % 5)}).to_string(),
        );
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// Everything a query reports that must not depend on how the index got its documents: spans
/// with counts, and every hit as (the document's `n`, offset).
type Answer = Vec<(usize, usize, u64, String, BTreeSet<(u64, u64)>)>;

fn answer(index: &Index, text: &str) -> Answer {
    answer_at(index, text, 12)
}

/// [`answer`] with spans of at least `min_len` characters.
fn answer_at(index: &Index, text: &str, min_len: usize) -> Answer {
    let opts = SpanOptions {
        min_len,
        max_hits: 100_000,
        tokens: None,
        budget: None,
    };
    index
        .spans(text, &opts)
        .spans
        .into_iter()
        .map(|s| {
            let hits = s
                .hits
                .iter()
                .map(|h| (h.meta["n"].as_u64().expect("n in meta"), h.offset))
                .collect::<BTreeSet<_>>();
            assert_eq!(hits.len() as u64, s.count, "every occurrence listed once");
            (s.start, s.end, s.count, s.text, hits)
        })
        .collect()
}

/// Queries: pieces of live and removed documents, joined with novel text.
fn queries(rng: &mut StdRng, all: &[(u64, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..6 {
        let (_, d) = &all[rng.random_range(0..all.len())];
        let a = rng.random_range(0..d.len() / 2);
        let b = rng.random_range(a + 1..=d.len());
        let (_, e) = &all[rng.random_range(0..all.len())];
        let c = rng.random_range(0..e.len());
        out.push(format!(
            "{} zz {}",
            d.get(a..b).unwrap_or(d),
            e.get(c..).unwrap_or(e)
        ));
    }
    out
}

fn fresh(dir: &Path, live: &[(u64, String)]) -> Index {
    let input = dir.join("fresh.jsonl");
    write_docs(&input, live);
    let out = dir.join("fresh");
    let mut o = options(out.clone(), vec![input], 1 << 20);
    o.force = true;
    build(&o).unwrap();
    Index::open(&out).unwrap()
}

/// Spans, counts and provenance after any sequence of remove / add / compact equal those of an
/// index built from scratch on the remaining documents, with the presence filter and search
/// samples each change leaves (a takedown keeps every filter file). Odd seeds keep a sparse
/// suffix array (every third suffix), which every change keeps, against a full one's answers.
#[test]
fn any_sequence_of_changes_answers_like_a_fresh_build_of_what_remains() {
    for seed in 0..16u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("index");
        let mut all: Vec<(u64, String)> = (0..12).map(|n| (n, random_doc(&mut rng))).collect();
        let mut removed: BTreeSet<u64> = BTreeSet::new();
        let input = tmp.path().join("first.jsonl");
        write_docs(&input, &all);
        let sa_step = if seed % 2 == 1 { 3 } else { 1 };
        let mut o = options(dir.clone(), vec![input], 400);
        o.sa_step = sa_step;
        build(&o).unwrap();
        let mut log = Vec::new();
        let mut previous = Index::open(&dir).unwrap();
        previous.prepare();
        for step in 0..8 {
            let change = rng.random_range(0..4);
            match change {
                0 => {
                    let live: Vec<u64> = all
                        .iter()
                        .map(|d| d.0)
                        .filter(|n| !removed.contains(n))
                        .collect();
                    if live.len() < 3 {
                        continue;
                    }
                    let ids: Vec<u64> = (0..rng.random_range(1..3))
                        .map(|_| live[rng.random_range(0..live.len())])
                        .collect();
                    log.push(format!("remove {ids:?}"));
                    remove(
                        &dir,
                        &Selection {
                            ids: ids.clone(),
                            wheres: vec![],
                        },
                        None,
                    )
                    .unwrap();
                    removed.extend(ids);
                }
                1 => {
                    let group = format!("g{}", rng.random_range(0..5));
                    let hit: Vec<u64> = all
                        .iter()
                        .map(|d| d.0)
                        .filter(|n| format!("g{}", n % 5) == group && !removed.contains(n))
                        .collect();
                    let live = all.len() - removed.len();
                    if hit.is_empty() || live - hit.len() < 2 {
                        continue;
                    }
                    log.push(format!("remove --where group={group}"));
                    let sel = Selection {
                        ids: vec![],
                        wheres: vec![("group".into(), group)],
                    };
                    remove(&dir, &sel, Some("test".into())).unwrap();
                    removed.extend(hit);
                }
                2 => {
                    let first = all.len() as u64;
                    let new: Vec<(u64, String)> = (0..rng.random_range(1..6))
                        .map(|i| (first + i, random_doc(&mut rng)))
                        .collect();
                    let f = tmp.path().join(format!("add-{step}.jsonl"));
                    write_docs(&f, &new);
                    log.push(format!("add {}", new.len()));
                    let s = add(
                        &dir,
                        &AddOptions {
                            inputs: vec![f],
                            threads: 1,
                            memory_limit: 1 << 30,
                            algorithm: SaAlgorithm::Libsais,
                            progress: false,
                        },
                    )
                    .unwrap();
                    assert_eq!(s.first_doc, first, "added documents continue the ids");
                    all.extend(new);
                }
                _ => {
                    let target = [300u64, 800, 5000][rng.random_range(0..3)];
                    log.push(format!("compact {target}"));
                    compact(
                        &dir,
                        &CompactOptions {
                            shard_bytes: Some(target),
                            threads: 1,
                            algorithm: SaAlgorithm::Libsais,
                        },
                    )
                    .unwrap();
                }
            }
            let live: Vec<(u64, String)> = all
                .iter()
                .filter(|d| !removed.contains(&d.0))
                .cloned()
                .collect();
            let living = Index::open(&dir).unwrap();
            // The presence filter survives every change and covers what each added; a
            // compaction leaves one file for everything.
            let filter = living.manifest.filter.as_ref().expect("a filter");
            if change == 3 && living.generation() > previous.generation() {
                assert_eq!(filter.files.len(), 1, "seed {seed}: {log:?}");
            }
            living.prepare();
            assert!(
                living.shards.iter().all(|s| s.step() == sa_step as usize),
                "seed {seed}: every change keeps the step ({log:?})"
            );
            // Every shard has its search sample, mapped from the filter files.
            assert!(
                living.shards.iter().all(|s| s.has_sample()),
                "seed {seed}: {log:?}"
            );
            if change < 2 {
                assert_eq!(
                    living.manifest.filter, previous.manifest.filter,
                    "seed {seed}: a takedown keeps every filter file ({log:?})"
                );
            }
            let reference = fresh(tmp.path(), &live);
            assert_eq!(
                living.manifest.live_documents(),
                live.len() as u64,
                "seed {seed}: {log:?}"
            );
            for q in queries(&mut rng, &all) {
                assert_eq!(
                    answer(&living, &q),
                    answer(&reference, &q),
                    "seed {seed} after {log:?}, query {q:?}"
                );
                let pat = &q[..q.len().min(15)];
                assert_eq!(living.count(pat), reference.count(pat), "count {pat:?}");
            }
            for (n, text) in &all {
                let shard = living
                    .shards
                    .iter()
                    .find(|s| {
                        (s.entry.first_doc..s.entry.first_doc + s.entry.documents).contains(n)
                    })
                    .unwrap();
                let got = shard.doc_text(n - shard.entry.first_doc);
                if removed.contains(n) {
                    assert!(got.is_empty(), "a removed document's text is not served");
                } else {
                    assert_eq!(got, text.as_bytes(), "document {n} keeps its id");
                }
            }
            previous = living;
        }
    }
}

/// Runs `memaudit index ARGS... DIR`: whether it succeeded, and its standard error.
fn index_command(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(bin())
        .arg("index")
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An index in format version 1 (every suffix in its arrays, no presence filter, as earlier
/// releases wrote it) opens and answers by searching everything; `memaudit index upgrade` makes
/// its arrays sparse (every 8th suffix) and adds a filter for all its shards as a new
/// generation, with the same answers, its arrays in under a sixth of the bytes, and a second upgrade changes
/// nothing. A daemon following the index moves to it (the id changes). A step that would need
/// suffixes the arrays no longer have is refused, naming the rebuild.
#[test]
fn a_version_1_index_opens_and_upgrades_to_sparse_arrays_and_a_filter() {
    let mut rng = StdRng::seed_from_u64(3);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let all: Vec<(u64, String)> = (0..40).map(|n| (n, random_doc(&mut rng))).collect();
    let input = tmp.path().join("docs.jsonl");
    write_docs(&input, &all);
    build(&options(dir.clone(), vec![input], 700)).unwrap();
    let built = Index::open(&dir).unwrap();
    // Written as an earlier release wrote it: no filter in the manifest, no filter file.
    let mut m = built.manifest.clone();
    for f in &m.filter.take().unwrap().files {
        std::fs::remove_file(dir.join(&f.file.name)).unwrap();
    }
    m.index_id = m.id();
    let mut raw = serde_json::to_value(&m).unwrap();
    assert!(raw.get("filter").is_none());
    raw["generation"] = 1.into();
    raw["format_version"] = 1.into();
    assert!(
        raw["shards"][0].get("sa_step").is_none(),
        "a full array, as version 1"
    );
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&raw).unwrap(),
    )
    .unwrap();

    let old = Index::open(&dir).unwrap();
    assert!(old.presence.is_none());
    let queries: Vec<String> = (0..3)
        .flat_map(|_| queries(&mut rng, &all))
        .chain(
            all.iter()
                .take(5)
                .map(|(_, d)| format!("novel words first, then {d}")),
        )
        .collect();
    // Spans of 15 characters: the shortest that an array of every 8th suffix finds.
    let before: Vec<(Answer, Answer)> = queries
        .iter()
        .map(|q| (answer_at(&built, q, 15), answer_at(&built, q, 50)))
        .collect();
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(
            &(answer_at(&old, q, 15), answer_at(&old, q, 50)),
            want,
            "{q:?}"
        );
    }
    // The suffix arrays' bytes (each file has a 32-byte header).
    let bytes = |index: &Index| -> u64 { index.manifest.shards.iter().map(|s| s.sa.bytes).sum() };
    let old_bytes = bytes(&old);
    assert!(
        before.iter().any(|(_, long)| !long.is_empty()),
        "some long span"
    );

    let (ok, said) = index_command(&["upgrade"], &dir);
    assert!(
        ok && said.contains("presence filter") && said.contains("one suffix per 8 positions"),
        "{said}"
    );
    let upgraded = Index::open(&dir).unwrap();
    assert_eq!(upgraded.generation(), 2);
    assert_eq!(upgraded.manifest.format_version, 2);
    assert!(upgraded.shards.iter().all(|s| s.step() == 8));
    assert!(
        bytes(&upgraded) * 6 < old_bytes,
        "{} bytes from {old_bytes}",
        bytes(&upgraded)
    );
    assert_ne!(upgraded.id(), old.id(), "a following daemon moves to it");
    assert_eq!(
        upgraded.manifest.history.last().map(|c| c.action.as_str()),
        Some("upgrade")
    );
    let reach = upgraded.presence.as_ref().expect("a filter").params.reach();
    assert!(reach <= 50);
    for (q, want) in queries.iter().zip(&before) {
        assert_eq!(
            &(answer_at(&upgraded, q, 15), answer_at(&upgraded, q, 50)),
            want,
            "{q:?}"
        );
    }
    let (ok, said) = index_command(&["verify"], &dir);
    assert!(ok, "{said}");
    let (ok, said) = index_command(&["verify", "--full"], &dir);
    assert!(ok, "{said}");
    let (ok, said) = index_command(&["upgrade", "--sa-step", "4"], &dir);
    assert!(
        !ok && said.contains("memaudit index build --sa-step 4"),
        "{said}"
    );

    let (ok, said) = index_command(&["upgrade"], &dir);
    assert!(ok && said.contains("already current"), "{said}");
    assert_eq!(Index::open(&dir).unwrap().generation(), 2);
    assert_no_leftovers(&dir);
}

/// A passage that occurs only in removed documents yields no span; once compacted, its bytes are
/// in no file of the index, and verify says so before and after.
#[test]
fn takedown_hides_at_once_and_compaction_erases_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "the secret recipe calls for four cups of flour and one of sugar";
    let docs: Vec<(u64, String)> = vec![
        (
            0,
            "an ordinary first document about weather and trains".into(),
        ),
        (1, format!("a private letter: {secret}, signed")),
        (
            2,
            "another ordinary document about rivers and bridges".into(),
        ),
    ];
    let input = tmp.path().join("in.jsonl");
    write_docs(&input, &docs);
    let dir = tmp.path().join("index");
    build(&options(dir.clone(), vec![input], 1 << 20)).unwrap();
    let before = Index::open(&dir).unwrap();
    assert_eq!(answer(&before, secret).len(), 1);

    let out = Command::new(bin())
        .args(["index", "remove"])
        .arg(&dir)
        .args(["--where", "n=1", "--reason", "takedown request #12"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = Index::open(&dir).unwrap();
    assert!(
        answer(&after, secret).is_empty(),
        "no span after the takedown"
    );
    assert_eq!(after.count("recipe calls for"), 0);
    assert_ne!(after.id(), before.id(), "the id names the change");
    assert_eq!(after.manifest.generation, 2);
    let stats = Command::new(bin())
        .args(["index", "stats"])
        .arg(&dir)
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats.contains("takedown request #12") && stats.contains("1 removed but not yet erased"),
        "{stats}"
    );
    let verify = Command::new(bin())
        .args(["index", "verify"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stdout)
        .contains("hidden from queries but their text is still"));
    let on_disk = |needle: &str| {
        std::fs::read_dir(&dir).unwrap().any(|e| {
            let p = e.unwrap().path();
            p.is_file()
                && std::fs::read(&p)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
        })
    };
    assert!(on_disk("secret recipe"), "hidden, not yet erased");

    let out = Command::new(bin())
        .args(["index", "compact"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!on_disk("secret recipe"), "erased from every file");
    let verify = Command::new(bin())
        .args(["index", "verify", "--full"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(!String::from_utf8_lossy(&verify.stdout).contains("hidden from queries"));
    let done = Index::open(&dir).unwrap();
    assert_eq!(done.manifest.erased, vec![1]);
    assert!(answer(&done, secret).is_empty());
    assert_eq!(
        answer(&done, &docs[2].1)[0].4.iter().next().unwrap().0,
        2,
        "ids unchanged"
    );
}

/// `--where` that matches nothing, an unknown id and an empty selection are refused; removing
/// again what is already removed publishes nothing.
#[test]
fn removal_refusals_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    write_docs(
        &input,
        &[
            (0, "one two three four".into()),
            (1, "five six seven".into()),
        ],
    );
    let dir = tmp.path().join("index");
    build(&options(dir.clone(), vec![input], 1 << 20)).unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(bin())
            .args(["index", "remove"])
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["7"]);
    assert!(
        !ok && err.contains("no document 7") && err.contains("ids 0 to 1"),
        "{err}"
    );
    let (ok, err) = run(&["--where", "group=nope"]);
    assert!(
        !ok && err.contains("no document matches group=nope"),
        "{err}"
    );
    let (ok, err) = run(&[]);
    assert!(!ok && err.contains("nothing selected"), "{err}");
    let (ok, err) = run(&["--where", "noequals"]);
    assert!(!ok && err.contains("KEY=VALUE"), "{err}");
    assert!(run(&["1"]).0);
    let (ok, err) = run(&["1"]);
    assert!(ok && err.contains("already removed"), "{err}");
    assert_eq!(Index::open(&dir).unwrap().manifest.generation, 2);
}

/// Two writers at once: the second is refused, naming the index and the holder.
#[test]
fn a_second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    write_docs(&input, &[(0, "one two three four".into())]);
    let dir = tmp.path().join("index");
    build(&options(dir.clone(), vec![input.clone()], 1 << 20)).unwrap();
    let lock = WriterLock::acquire(&dir).unwrap();
    for args in [
        vec!["remove", "0"],
        vec!["compact"],
        vec!["add", input.to_str().unwrap()],
    ] {
        let o = Command::new(bin())
            .arg("index")
            .arg(args[0])
            .arg(&dir)
            .args(&args[1..])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            err.contains("another memaudit command is changing this index"),
            "{err}"
        );
    }
    drop(lock);
    let o = Command::new(bin())
        .args(["index", "remove"])
        .arg(&dir)
        .arg("0")
        .output()
        .unwrap();
    assert!(o.status.success(), "the lock goes with its holder");
}

/// A writer that finished frees the index at once, even while other threads of the process start
/// child processes (a forked child holds a copy of the lock's descriptor until its exec). This
/// test process is such a process: other tests spawn `memaudit` while this one writes.
#[test]
fn a_finished_writer_frees_the_index_while_children_are_forked() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    write_docs(&input, &[(0, "one two three four".into())]);
    let dir = tmp.path().join("index");
    build(&options(dir.clone(), vec![input], 1 << 20)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                Command::new("true").status().unwrap();
            }
        })
    };
    let refused = (0..400)
        .filter(|_| WriterLock::acquire(&dir).is_err())
        .count();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spawner.join().unwrap();
    assert_eq!(
        refused, 0,
        "acquires refused after the previous writer dropped its lock"
    );
}

fn part_options(
    out: PathBuf,
    inputs: Vec<PathBuf>,
    part: &str,
) -> memaudit::index::write::build::BuildOptions {
    let mut o = options(out, inputs, 700);
    o.part = Some(part.parse().unwrap());
    o
}

/// Merging the N parts of a `--part I/N` build gives the single build's documents, ids and answers;
/// mismatched parts are refused naming the difference.
#[test]
fn merging_parts_equals_the_single_build() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let mut all = Vec::new();
    for f in 0..7u64 {
        let docs: Vec<(u64, String)> = (0..rng.random_range(2..9))
            .map(|i| (f * 100 + i, random_doc(&mut rng)))
            .collect();
        write_docs(&corpus.join(format!("f{f}.jsonl")), &docs);
        all.extend(docs);
    }
    let single = tmp.path().join("single");
    build(&options(single.clone(), vec![corpus.clone()], 700)).unwrap();
    let parts: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("part{i}")))
        .collect();
    for (i, p) in parts.iter().enumerate() {
        build(&part_options(
            p.clone(),
            vec![corpus.clone()],
            &format!("{i}/3"),
        ))
        .unwrap();
    }
    for how in [Transfer::Link, Transfer::Copy] {
        let merged = tmp.path().join(format!("merged-{how:?}"));
        let s = merge(&merged, &parts, how, false).unwrap();
        assert_eq!(
            if how == Transfer::Link {
                s.copied
            } else {
                s.linked
            },
            0
        );
        let (a, b) = (Index::open(&single).unwrap(), Index::open(&merged).unwrap());
        assert_eq!(a.manifest.totals.documents, b.manifest.totals.documents);
        for doc in 0..a.manifest.totals.documents {
            let text = |ix: &Index| {
                let s = ix
                    .shards
                    .iter()
                    .find(|s| doc < s.entry.first_doc + s.entry.documents)
                    .unwrap();
                (
                    s.doc_text(doc - s.entry.first_doc).to_vec(),
                    s.doc_meta(doc - s.entry.first_doc),
                )
            };
            assert_eq!(text(&a), text(&b), "document {doc}");
        }
        for q in queries(&mut rng, &all) {
            assert_eq!(answer(&a, &q), answer(&b, &q), "{q:?}");
        }
        let v = Command::new(bin())
            .args(["index", "verify", "--full"])
            .arg(&merged)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    }

    // Refusals, each naming what differs.
    let lower = tmp.path().join("lower1");
    let mut o = part_options(lower.clone(), vec![corpus.clone()], "1/3");
    o.normalization.lowercase = true;
    build(&o).unwrap();
    let err = merge(
        &tmp.path().join("x"),
        &[parts[0].clone(), lower.clone(), parts[2].clone()],
        Transfer::Link,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("lower1")
            && err.contains("normalization")
            && err.contains("\"lowercase\":true"),
        "{err}"
    );
    let err = merge(&tmp.path().join("x"), &parts[..2], Transfer::Link, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("part 2/3 is missing"), "{err}");
    let err = merge(
        &tmp.path().join("x"),
        &[parts[1].clone(), parts[0].clone(), parts[2].clone()],
        Transfer::Link,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("part 1/3 but stands at position 0"), "{err}");
    let err = merge(
        &tmp.path().join("x"),
        &[parts[0].clone(), single.clone()],
        Transfer::Link,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("single is a whole index"), "{err}");
    assert!(
        !tmp.path().join("x").exists(),
        "a refused merge leaves nothing"
    );
}

/// Every shard and filter file in the directory is one the manifest names: nothing a killed
/// writer left survives the next writer.
fn assert_no_leftovers(dir: &Path) {
    let m: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let named: BTreeSet<String> = m.file_names().map(str::to_string).collect();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            named.contains(&name) || name == "manifest.json" || name == ".memaudit-writer.lock",
            "{name} left in {}",
            dir.display()
        );
    }
}

fn big_docs(rng: &mut StdRng, first: u64, n: u64) -> Vec<(u64, String)> {
    (first..first + n)
        .map(|i| {
            let words: Vec<String> = (0..rng.random_range(100..300))
                .map(|_| format!("w{}", rng.random_range(0..5000u32)))
                .collect();
            (i, words.join(" "))
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// kill -9 of `add` and of `compact` at points spread over their run: the index always opens, on
/// the old generation or the new one, answers as that generation should, and the next writer
/// cleans up what the killed one left.
#[test]
fn a_writer_killed_at_any_point_leaves_a_complete_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let base_docs = big_docs(&mut rng, 0, 4000);
    let input = tmp.path().join("base.jsonl");
    write_docs(&input, &base_docs);
    let base = tmp.path().join("base");
    build(&options(base.clone(), vec![input], 1 << 20)).unwrap();
    // Removed documents and many shards, so compaction has work to do.
    let ids: Vec<u64> = (0..4000).step_by(7).collect();
    remove(
        &base,
        &Selection {
            ids,
            wheres: vec![],
        },
        None,
    )
    .unwrap();
    let more = tmp.path().join("more.jsonl");
    write_docs(&more, &big_docs(&mut rng, 4000, 3000));
    let probe = base_docs[1].1[..200].to_string();
    let before = answer(&Index::open(&base).unwrap(), &probe);

    for (what, args) in [
        (
            "add",
            vec![more.to_str().unwrap().to_string(), "--quiet".into()],
        ),
        ("compact", vec!["--shard-size".into(), "3MiB".into()]),
    ] {
        // Time an uninterrupted run, then kill runs at points spread over it.
        let timed = tmp.path().join(format!("timed-{what}"));
        copy_dir(&base, &timed);
        let t = Instant::now();
        let o = Command::new(bin())
            .args(["index", what])
            .arg(&timed)
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let full = t.elapsed();
        let after = Index::open(&timed).unwrap();
        let after_answer = answer(&after, &probe);
        let mut outcomes = BTreeSet::new();
        for k in 0..8u32 {
            let dir = tmp.path().join(format!("{what}-{k}"));
            copy_dir(&base, &dir);
            let mut child = Command::new(bin())
                .args(["index", what])
                .arg(&dir)
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(full.mul_f64(k as f64 / 8.0 + rng.random_range(0.0..0.1)));
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            let index = Index::open(&dir).unwrap_or_else(|e| panic!("{what} killed at {k}/8: {e}"));
            let generation = index.manifest.generation;
            assert!(
                generation == 2 || generation == 3,
                "{what}: generation {generation}"
            );
            outcomes.insert(generation);
            let got = answer(&index, &probe);
            assert_eq!(
                got,
                if generation == 2 {
                    before.clone()
                } else {
                    after_answer.clone()
                }
            );
            assert_eq!(
                index.manifest.index_id,
                if generation == 2 {
                    Index::open(&base).unwrap().manifest.index_id
                } else {
                    after.manifest.index_id.clone()
                }
            );
            drop(index);
            // The next writer finds no lock held and removes what the killed one left.
            let o = Command::new(bin())
                .args(["index", "remove"])
                .arg(&dir)
                .arg("1")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_no_leftovers(&dir);
            let v = Command::new(bin())
                .args(["index", "verify"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
        }
        assert!(
            outcomes.contains(&2),
            "{what}: some kill landed before the publish"
        );
    }
}

/// Readers opening the index over and over while writers publish generations always get a whole
/// index that answers, never an error.
#[test]
fn readers_never_see_a_half_written_index() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let docs = big_docs(&mut rng, 0, 600);
    let input = tmp.path().join("base.jsonl");
    write_docs(&input, &docs);
    let dir = tmp.path().join("index");
    build(&options(dir.clone(), vec![input], 64 << 10)).unwrap();
    let kept = docs[0].1[..300].to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (dir, stop, kept) = (dir.clone(), stop.clone(), kept.clone());
        std::thread::spawn(move || {
            let mut opens = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let index = Index::open(&dir).unwrap_or_else(|e| panic!("open {opens}: {e}"));
                let a = answer(&index, &kept);
                assert_eq!(a.len(), 1, "document 0 is never removed");
                assert!(a[0].4.contains(&(0, 0)));
                opens += 1;
            }
            opens
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0..12u64 {
        let f = tmp.path().join(format!("add{round}.jsonl"));
        write_docs(&f, &big_docs(&mut rng, 600 + round * 20, 20));
        add(
            &dir,
            &AddOptions {
                inputs: vec![f],
                threads: 1,
                memory_limit: 1 << 30,
                algorithm: SaAlgorithm::Libsais,
                progress: false,
            },
        )
        .unwrap();
        remove(
            &dir,
            &Selection {
                ids: vec![1 + round],
                wheres: vec![],
            },
            None,
        )
        .unwrap();
        compact(
            &dir,
            &CompactOptions {
                shard_bytes: None,
                threads: 1,
                algorithm: SaAlgorithm::Libsais,
            },
        )
        .unwrap();
        assert!(Instant::now() < deadline);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opens = reader.join().expect("the reader never failed");
    assert!(opens > 10, "the reader kept reading ({opens} opens)");
    assert_eq!(Index::open(&dir).unwrap().manifest.generation, 1 + 36);
}

/// A build whose shards do not fit a whole sort within `--memory-limit` sorts them in parts
/// merged from disk, and writes exactly the index a whole sort writes (the same files, so the same
/// id), for full and sparse arrays, on documents whose copies are longer than a part's overlap;
/// the index answers like it, and `verify --full` passes.
#[test]
fn shards_sorted_in_parts_equal_shards_sorted_whole() {
    let mut rng = StdRng::seed_from_u64(11);
    let tmp = tempfile::tempdir().unwrap();
    let mut all: Vec<(u64, String)> = Vec::new();
    for n in 0..120u64 {
        let text = if n > 4 && n % 5 == 0 {
            // A copy of an earlier document, long enough to tie across a cut.
            let k = rng.random_range(0..all.len());
            all[k].1.repeat(6)
        } else {
            random_doc(&mut rng)
        };
        all.push((n, text));
    }
    let input = tmp.path().join("docs.jsonl");
    write_docs(&input, &all);
    for sa_step in [1, 8] {
        let whole_dir = tmp.path().join(format!("whole-{sa_step}"));
        let mut o = options(whole_dir.clone(), vec![input.clone()], 8_000);
        o.sa_step = sa_step;
        build(&o).unwrap();
        let parts_dir = tmp.path().join(format!("parts-{sa_step}"));
        let mut o = options(parts_dir.clone(), vec![input.clone()], 8_000);
        o.sa_step = sa_step;
        // A whole sort needs 7 × 8 kB: parts of the smallest size, 4 kB, with 512-byte overlaps.
        o.memory_limit = 24_000;
        build(&o).unwrap();
        let whole = Index::open(&whole_dir).unwrap();
        let parts = Index::open(&parts_dir).unwrap();
        assert!(whole.shards.len() > 1);
        assert_eq!(
            parts.manifest.shards, whole.manifest.shards,
            "step {sa_step}"
        );
        assert_eq!(parts.id(), whole.id());
        for q in queries(&mut rng, &all) {
            assert_eq!(
                answer_at(&parts, &q, 15),
                answer_at(&whole, &q, 15),
                "{q:?}"
            );
        }
        let (ok, said) = index_command(&["verify", "--full"], &parts_dir);
        assert!(ok, "{said}");
    }
}
