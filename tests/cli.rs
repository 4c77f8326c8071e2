//! The `memaudit` binary as a user runs it: index build / verify / stats, check and probe.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(common::bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        // The command may exit before reading its input (an error found first): a broken pipe here
        // is that, not a failure of the test.
        if let Err(e) = child.stdin.take().unwrap().write_all(s.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// `memaudit index build EXTRA... --out OUT INPUT`.
fn build_index(out: &Path, input: &str, extra: &[&str]) -> Output {
    let mut args = vec!["index", "build"];
    args.extend_from_slice(extra);
    args.extend(["--out", out.to_str().unwrap(), input]);
    run(&args, None)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PASSAGE: &str =
    "It was the best of times, it was the worst of times, it was the age of wisdom, \
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity";

fn corpus(dir: &Path) -> std::path::PathBuf {
    let c = dir.join("corpus");
    std::fs::create_dir_all(c.join("sub")).unwrap();
    std::fs::write(
        c.join("novel.txt"),
        format!("Chapter 1\n\n{PASSAGE}, it was the season of Light."),
    )
    .unwrap();
    std::fs::write(
        c.join("sub/web.jsonl"),
        "{\"text\": \"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\", \"url\": \"https://example.org/a\"}\n\
         this line is not json\n\
         {\"body\": \"no text field\"}\n",
    )
    .unwrap();
    let mut zst = zstd::Encoder::new(
        std::fs::File::create(c.join("sub/more.jsonl.zst")).unwrap(),
        3,
    )
    .unwrap();
    zst.write_all(b"{\"text\": \"Call me Ishmael. Some years ago, never mind how long precisely, having little money.\"}\n").unwrap();
    zst.finish().unwrap();
    std::fs::write(c.join("sub/bad.txt"), b"valid start \xff\xfe then garbage").unwrap();
    std::fs::write(c.join("README.md"), "ignored: not a corpus type").unwrap();
    c
}

#[test]
fn build_stats_verify_check() {
    let d = tempfile::tempdir().unwrap();
    let c = corpus(d.path());
    let idx = d.path().join("idx");
    let o = build_index(&idx, c.to_str().unwrap(), &["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["documents"], 3);
    assert_eq!(
        summary["skipped"], 3,
        "bad JSON line, missing field, invalid UTF-8: {summary}"
    );
    assert_eq!(summary["ignored_files"], 1);
    let manifest = std::fs::read_to_string(idx.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("invalid UTF-8")
            && manifest.contains("invalid JSON")
            && manifest.contains("no \\\"text\\\" field")
    );

    let o = run(&["index", "stats", idx.to_str().unwrap()], None);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("documents    3"));

    let o = run(&["index", "verify", "--full", idx.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("is intact"));

    // A model output that quotes the novel (with different line breaks) and is otherwise new.
    let output = format!(
        "Sure! Here is the opening you asked for:\n{}\nI hope this helps.",
        PASSAGE.replace(", it", ",\n  it")
    );
    let o = run(
        &["check", "--index", idx.to_str().unwrap(), "--json"],
        Some(&output),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let spans = r["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{r}");
    let s = &spans[0];
    let chars: Vec<char> = output.chars().collect();
    let quoted: String = chars
        [s["start"].as_u64().unwrap() as usize..s["end"].as_u64().unwrap() as usize]
        .iter()
        .collect();
    assert!(
        quoted.trim_start().starts_with("It was the best") && quoted.ends_with("incredulity"),
        "{quoted:?}"
    );
    assert_eq!(s["count"], 1);
    assert!(s["hits"][0]["meta"]["source"]
        .as_str()
        .unwrap()
        .ends_with("novel.txt"));
    assert!(r["coverage"].as_f64().unwrap() > 0.5);

    // With the passage in the prompt (`--prompt`), the span is the model repeating its input;
    // a prompt holding only part of it does not excuse the rest.
    for (prompt, held) in [
        (format!("Please quote this: {PASSAGE}"), true),
        (PASSAGE[..80].to_string(), false),
    ] {
        let p = d.path().join("prompt.txt");
        std::fs::write(&p, prompt).unwrap();
        let o = run(
            &[
                "check",
                "--index",
                idx.to_str().unwrap(),
                "--json",
                "--prompt",
                p.to_str().unwrap(),
            ],
            Some(&output),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["spans"][0].get("in_prompt").is_some(), held, "{r}");
    }

    // Piped output defaults to JSON; --pretty marks the span for a person.
    let o = run(
        &["check", "--index", idx.to_str().unwrap(), "--pretty"],
        Some(&output),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("[[\nIt was the best") && text.contains("novel.txt"),
        "{text}"
    );

    // Novel text: no spans. From a file argument.
    let f = d.path().join("novel-output.txt");
    std::fs::write(
        &f,
        "Nothing in this sentence was ever written in the corpus, as far as anyone knows.",
    )
    .unwrap();
    let o = run(
        &[
            "check",
            "--index",
            idx.to_str().unwrap(),
            f.to_str().unwrap(),
        ],
        None,
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["spans"].as_array().unwrap().len(), 0);
}

#[test]
fn existing_directory_needs_force() {
    let d = tempfile::tempdir().unwrap();
    let c = corpus(d.path());
    let idx = d.path().join("idx");
    std::fs::create_dir(&idx).unwrap();
    std::fs::write(idx.join("precious.txt"), "do not delete").unwrap();
    let o = build_index(&idx, c.to_str().unwrap(), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(idx.join("precious.txt").exists());
    let o = build_index(&idx, c.to_str().unwrap(), &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!idx.join("precious.txt").exists() && idx.join("manifest.json").exists());
    // Only the index is left beside it: no temporary directories.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().starts_with('.')),
        "{names:?}"
    );
}

#[test]
fn clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let o = build_index(&d.path().join("x"), "/no/such/input.jsonl", &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("/no/such/input.jsonl"),
        "{}",
        stderr(&o)
    );
    let bad = d.path().join("data.csv");
    std::fs::write(&bad, "a,b").unwrap();
    let o = build_index(&d.path().join("x"), bad.to_str().unwrap(), &[]);
    assert!(stderr(&o).contains("unknown file type"), "{}", stderr(&o));
    let o = run(
        &["check", "--index", d.path().to_str().unwrap()],
        Some("text"),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("manifest.json"),
        "{}",
        stderr(&o)
    );
    // Each cause said once (an error chain printed the OS error twice).
    assert_eq!(
        stderr(&o).matches("No such file or directory").count(),
        1,
        "{}",
        stderr(&o)
    );
    let o = run(
        &[
            "serve",
            "--check-config",
            "--index",
            d.path().join("none").to_str().unwrap(),
        ],
        None,
    );
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("index.dir"), "{e}");
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    assert_eq!(
        e.matches(d.path().join("none").to_str().unwrap()).count(),
        1,
        "{e}"
    );
    let o = build_index(
        &d.path().join("x"),
        bad.to_str().unwrap(),
        &["--shard-size", "3 parsecs"],
    );
    assert!(
        stderr(&o).contains("not a size") || stderr(&o).contains("unknown unit"),
        "{}",
        stderr(&o)
    );
    assert!(!d.path().join("x").exists());
}

#[test]
fn interrupted_build_leaves_no_index() {
    let d = tempfile::tempdir().unwrap();
    // ~40 MB of text: long enough to kill mid-build.
    let line = format!(
        "{{\"text\": \"{}\"}}\n",
        "some words of a long synthetic document ".repeat(50)
    );
    let mut f = std::io::BufWriter::new(std::fs::File::create(d.path().join("big.jsonl")).unwrap());
    for _ in 0..20_000 {
        f.write_all(line.as_bytes()).unwrap();
    }
    drop(f);
    let idx = d.path().join("idx");
    let mut child = Command::new(common::bin())
        .args([
            "index",
            "build",
            "--out",
            idx.to_str().unwrap(),
            d.path().join("big.jsonl").to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it is demonstrably mid-build: its hidden work directory exists.
    let building = |dir: &Path| {
        std::fs::read_dir(dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".idx.building-")
        })
    };
    let t = std::time::Instant::now();
    while !building(d.path()) {
        assert!(t.elapsed().as_secs() < 30, "the build never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !idx.exists(),
        "a killed build must not leave {}",
        idx.display()
    );
    assert!(
        building(d.path()),
        "the dead build's work directory is still there"
    );
    // Starting again works and produces the index.
    let o = build_index(&idx, d.path().join("big.jsonl").to_str().unwrap(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(idx.join("manifest.json").exists());
    assert!(
        !building(d.path()),
        "the next build removes a dead build's work directory"
    );
}

#[test]
fn tokens_when_a_tokenizer_is_given() {
    // A tiny word-level tokenizer.json written here: one token per whitespace-separated word.
    let d = tempfile::tempdir().unwrap();
    let c = corpus(d.path());
    let idx = d.path().join("idx");
    assert!(build_index(&idx, c.to_str().unwrap(), &[]).status.success());
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    for (i, w) in PASSAGE.split_whitespace().enumerate() {
        vocab.entry(w.to_string()).or_insert((i + 1).into());
    }
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    let tp = d.path().join("tokenizer.json");
    std::fs::write(&tp, tok.to_string()).unwrap();
    let o = run(
        &[
            "check",
            "--index",
            idx.to_str().unwrap(),
            "--tokenizer",
            tp.to_str().unwrap(),
            "--json",
        ],
        Some(PASSAGE),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["spans"][0]["len_tokens"],
        PASSAGE.split_whitespace().count()
    );
    std::fs::write(&tp, "{not a tokenizer").unwrap();
    let o = run(
        &[
            "check",
            "--index",
            idx.to_str().unwrap(),
            "--tokenizer",
            tp.to_str().unwrap(),
        ],
        Some(PASSAGE),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("tokenizer.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn probe_table_json_and_boundary() {
    let model = common::default_model();
    let m = model.to_str().unwrap();
    let d = tempfile::tempdir().unwrap();
    let c = corpus(d.path());
    let idx = d.path().join("idx");
    assert!(build_index(&idx, c.to_str().unwrap(), &[]).status.success());
    let text = format!("A preface nobody indexed, then the quote: {PASSAGE} And a novel ending.");
    // The table.
    let o = run(&["probe", "--model", m], Some(&text));
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.contains("entropy") && table.contains("surprisal") && table.contains("rank"));
    assert!(table.contains("\" preface\""), "{table}");
    // JSON, with the spans' boundary signals.
    let o = run(
        &[
            "probe",
            "--model",
            m,
            "--json",
            "--index",
            idx.to_str().unwrap(),
        ],
        Some(&text),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tokens = r["tokens"].as_array().unwrap();
    assert!(tokens.len() > 20);
    assert_eq!(r["summary"]["tokens"], tokens.len());
    for t in tokens {
        assert!(t["entropy"].as_f64().unwrap() >= 0.0 && t["rank"].is_u64());
    }
    let spans = r["boundary"]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{}", r["boundary"]);
    assert!(spans[0]["entropy_inside"].as_f64().unwrap() > 0.0);
    // Clear errors: no model, CUDA in a CPU build, a bad window, a missing file.
    let o = run(&["probe", "--model", "/nonexistent/model.gguf"], Some("x"));
    assert!(
        !o.status.success() && stderr(&o).contains("fetch-model.sh"),
        "{}",
        stderr(&o)
    );
    let o = run(&["probe", "--model", m, "--device", "cuda"], Some("x"));
    assert!(
        !o.status.success() && stderr(&o).contains("without CUDA support"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &["probe", "--model", m, "--window", "64", "--overlap", "63"],
        Some("x"),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("overlap"),
        "{}",
        stderr(&o)
    );
    let o = run(&["probe", "--model", m, "/nonexistent/input.txt"], None);
    assert!(!o.status.success() && stderr(&o).contains("/nonexistent/input.txt"));
    let o = run(&["probe", "--model", c.to_str().unwrap()], Some("x"));
    assert!(
        !o.status.success() && stderr(&o).contains("cannot load the model"),
        "{}",
        stderr(&o)
    );
}

/// Every document of an index, in id order: (metadata, normalized text).
fn documents(dir: &Path) -> Vec<(serde_json::Value, Vec<u8>)> {
    let index = memaudit::index::Index::open(dir).unwrap();
    index
        .shards
        .iter()
        .flat_map(|s| (0..s.entry.documents).map(move |k| (s.doc_meta(k), s.doc_text(k).to_vec())))
        .collect()
}

/// `index build --part I/N` for every I: the parts split the inputs by whole files, and taken
/// in order hold exactly the documents of a single build, in its order; each manifest records its
/// part. A part the inputs leave empty, and a malformed part, are refused.
#[test]
fn parts_of_a_build_hold_the_single_builds_documents_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("inputs");
    std::fs::create_dir(&c).unwrap();
    for i in 0..7 {
        let text: String = (0..(1 + i * 37 % 11))
            .map(|j| format!("file {i} paragraph {j}: {PASSAGE}\n"))
            .collect();
        std::fs::write(c.join(format!("doc{i}.txt")), text).unwrap();
    }
    let input = c.to_str().unwrap();
    let single = dir.path().join("single");
    let o = build_index(&single, input, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut joined = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("part{i}"));
        let o = build_index(&out, input, &["--part", &format!("{i}/3")]);
        assert!(o.status.success(), "{}", stderr(&o));
        let docs = documents(&out);
        assert!(
            !docs.is_empty() && docs.len() < 7,
            "part {i}: {} files",
            docs.len()
        );
        joined.extend(docs);
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(
            m["build"]["part"],
            serde_json::json!({"index": i, "count": 3})
        );
    }
    assert_eq!(joined, documents(&single));
    // Ten parts of seven files: at least three are empty and refused, naming the part.
    let mut empty = 0;
    for i in 0..10 {
        let o = build_index(
            &dir.path().join(format!("ten{i}")),
            input,
            &["--part", &format!("{i}/10")],
        );
        if !o.status.success() {
            assert!(
                stderr(&o).contains(&format!("part {i}/10 holds no input files")),
                "{}",
                stderr(&o)
            );
            empty += 1;
        }
    }
    assert!(empty >= 3, "{empty} empty parts");
    let o = build_index(&dir.path().join("p3"), input, &["--part", "3/3"]);
    assert!(
        !o.status.success() && stderr(&o).contains("0 <= I < N"),
        "{}",
        stderr(&o)
    );
}

/// `serve --check-config` prints the configuration with librdkafka's secrets as `***`.
#[test]
fn check_config_prints_no_secret() {
    let d = tempfile::tempdir().unwrap();
    let c = corpus(d.path());
    let idx = d.path().join("idx");
    assert!(build_index(&idx, c.to_str().unwrap(), &[]).status.success());
    let o = run(
        &[
            "serve",
            "--check-config",
            "--index",
            idx.to_str().unwrap(),
            "--set",
            "kafka.options.sasl.password=hunter2-pass",
            "--set",
            "kafka.options.ssl.key.password=hunter3-key",
            "--set",
            "kafka.options.sasl.username=alice",
            "--set",
            "probe.policy=\"off\"",
        ],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !out.contains("hunter2") && !out.contains("hunter3"),
        "{out}"
    );
    assert!(out.contains("\"sasl.password\" = \"***\""), "{out}");
    assert!(out.contains("alice"), "{out}");
}
