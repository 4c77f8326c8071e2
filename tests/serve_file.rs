//! `memaudit serve` without a broker: the embedded source (JSON lines from a file or stdin,
//! records to files or stdout), `--check-config`, a second signal, and `memaudit demo` (the
//! README's run-it command). The binary runs as a child process, as a user would run it.

mod broker;

use broker::workload::{build_index, messages};
use broker::{free_port, Daemon};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn memaudit(args: &[&str], env: &[(&str, &str)]) -> Output {
    memaudit_with_stdin(args, env, &[])
}

/// Runs memaudit with `stdin` as its standard input, to the end.
fn memaudit_with_stdin(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(args)
        .envs(env.iter().copied())
        .env("MEMAUDIT_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running memaudit");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `memaudit serve` on a JSON-lines file with the probe off and no HTTP server, each of `sets`
/// a `--set KEY=VALUE`, run to the end of its input.
fn serve_file_input(index: &Path, input: &Path, sets: &[String]) -> Output {
    let mut args = vec![
        "serve".to_string(),
        "--index".into(),
        index.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--http".into(),
        String::new(),
        "--set".into(),
        "probe.policy=\"off\"".into(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    memaudit(&args, &[])
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

/// 40 good lines (every fourth quotes the Gettysburg Address) and three bad ones.
fn input_lines() -> (Vec<Vec<u8>>, usize) {
    let (recs, quoting) = messages(40, 4, "f", 1);
    let mut out: Vec<Vec<u8>> = recs.into_iter().map(|r| r.2).collect();
    out.insert(3, b"{\"id\": \"x\", \"text\": ".to_vec());
    out.insert(10, br#"{"id":"z"}"#.to_vec());
    out.insert(20, b"{\"id\":\"u\",\"text\":\"\xff\xfe\"}".to_vec());
    (out, quoting.len())
}

/// `memaudit serve` reading a stdin that stays open (returned with it), HTTP on `http`, the
/// `--set` overrides `sets`, `lines` already written; its log goes to a pipe on stderr.
fn serve_on_open_stdin(
    index: &Path,
    http: u16,
    sets: &[String],
    lines: &[broker::workload::Input],
) -> (Daemon, std::process::ChildStdin) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memaudit"));
    cmd.args(["serve", "--input", "-", "--index"])
        .arg(index)
        .args(["--http", &format!("127.0.0.1:{http}")]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let mut child = cmd
        .env("MEMAUDIT_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for r in lines {
        stdin.write_all(&r.2).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    stdin.flush().unwrap();
    let log = std::path::PathBuf::from("unused");
    (Daemon { child, http, log }, stdin)
}

#[test]
fn file_source_writes_verdicts_alerts_and_lossless_dead_letters() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let (input, quoting) = input_lines();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input.join(&b'\n')).unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();
    let o = serve_file_input(
        &index,
        &path,
        &[
            format!("file.verdicts={:?}", out("v.jsonl")),
            format!("file.alerts={:?}", out("a.jsonl")),
            format!("file.dead_letters={:?}", out("d.jsonl")),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verdicts = lines(&dir.path().join("v.jsonl"));
    assert_eq!(verdicts.len(), 40, "one verdict per good line");
    let copies = verdicts.iter().filter(|v| v["severity"] != "none").count();
    assert_eq!(copies, quoting);
    assert_eq!(lines(&dir.path().join("a.jsonl")).len(), quoting);
    let mut dead = lines(&dir.path().join("d.jsonl"));
    dead.sort_by_key(|d| d["source"]["offset"].as_i64());
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["invalid_json", "missing_text", "invalid_utf8"]);
    // The line number points back at the input; the original bytes are all there.
    assert_eq!(dead[0]["source"]["offset"], 3);
    assert_eq!(dead[1]["payload"], r#"{"id":"z"}"#);
    assert_eq!(
        dead[2]["payload_hex"].as_str().unwrap(),
        input[20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        "invalid UTF-8 kept byte for byte"
    );
}

/// A message whose `prompt` holds the passage it quotes is the model repeating its input: no
/// alert, the span marked `in_prompt`. The same quote without the prompt, or running on past
/// what the prompt holds, is the usual critical verdict and alert.
#[test]
fn quotes_of_the_prompt_raise_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let g = broker::workload::gettysburg();
    let (quote, longer) = (&g[..300], &g[..600]);
    let input = [
        serde_json::json!({"id": "echo", "text": format!("As you wrote: {quote}"), "prompt": format!("Summarize: {quote}")}),
        serde_json::json!({"id": "bare", "text": format!("As you wrote: {quote}")}),
        serde_json::json!({"id": "on", "text": format!("It goes on: {longer}"), "prompt": format!("Continue: {quote}")}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input).unwrap();
    let out = |name: &str| dir.path().join(name).display().to_string();
    let o = serve_file_input(
        &index,
        &path,
        &[
            format!("file.verdicts={:?}", out("v.jsonl")),
            format!("file.alerts={:?}", out("a.jsonl")),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verdicts = lines(&dir.path().join("v.jsonl"));
    let by_id = |id: &str| verdicts.iter().find(|v| v["id"] == id).unwrap();
    let echo = by_id("echo");
    assert_eq!(echo["severity"], "none", "{echo}");
    assert_eq!(echo["spans"][0]["in_prompt"], true, "{echo}");
    assert_eq!(by_id("bare")["severity"], "critical");
    let on = by_id("on");
    assert_eq!(on["severity"], "critical", "{on}");
    assert!(on["spans"][0].get("in_prompt").is_none(), "{on}");
    let alerted: Vec<String> = lines(&dir.path().join("a.jsonl"))
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut alerted = alerted;
    alerted.sort();
    assert_eq!(alerted, ["bare", "on"]);
}

#[test]
fn stdin_to_stdout() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let (input, quoting) = input_lines();
    let o = memaudit_with_stdin(
        &[
            "serve",
            "--input",
            "-",
            "--http",
            "",
            "--index",
            index.to_str().unwrap(),
            "--set",
            "probe.policy=\"off\"",
        ],
        &[],
        &input.join(&b'\n'),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records = json_lines(&String::from_utf8(o.stdout).unwrap());
    let kinds = |k: &str| records.iter().filter(|r| r["kind"] == k).count();
    assert_eq!(kinds("verdict"), 40);
    assert_eq!(kinds("alert"), quoting);
    assert_eq!(kinds("dead_letter"), 3);
}

#[test]
fn check_config_validates_and_names_the_bad_key() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let config = broker::workload::repo().join("config/memaudit.toml");
    let base = [
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--index",
        index.to_str().unwrap(),
        "--check-config",
    ];
    let ok = memaudit(&base, &[("MEMAUDIT_PROBE__POLICY", "off")]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let printed: toml::Value = toml::from_str(&String::from_utf8_lossy(&ok.stdout)).unwrap();
    assert_eq!(
        printed["probe"]["policy"].as_str(),
        Some("off"),
        "env applied"
    );
    assert_eq!(
        printed["index"]["dir"].as_str(),
        index.to_str(),
        "flag applied"
    );

    let refused = |args: &[&str], env: &[(&str, &str)], wants: &[&str]| {
        let o = memaudit(&[&base[..], args].concat(), env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        for w in wants {
            assert!(err.contains(w), "{w:?} not in: {err}");
        }
    };
    refused(
        &["--set", "limits.max_in_flight=-3"],
        &[],
        &["limits.max_in_flight", "--set"],
    );
    refused(
        &[],
        &[("MEMAUDIT_PROBE__POLICY", "sometimes")],
        &["probe.policy", "MEMAUDIT_PROBE__POLICY"],
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[kafka]\nbrokerz = \"x\"\n").unwrap();
    let o = memaudit(
        &["serve", "--config", bad.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("brokerz"));
    let o = memaudit(
        &[
            "serve",
            "--index",
            dir.path().join("nope").to_str().unwrap(),
            "--check-config",
        ],
        &[("MEMAUDIT_PROBE__POLICY", "off")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("index.dir"), "{err}");
}

#[test]
fn a_second_signal_exits_at_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let http = free_port();
    // The probe scores every line, so the first signal's drain has seconds of work left.
    let (input, _) = messages(200, 0, "sig", 1);
    let sets = ["probe.policy=\"always\"", "probe.batch_size=4"].map(String::from);
    let (d, stdin) = serve_on_open_stdin(&index, http, &sets, &input);
    let until = Instant::now() + Duration::from_secs(60);
    while d.get("/healthz").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < until, "no /healthz");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    d.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    d.signal("TERM");
    let t = Instant::now();
    let mut d = d;
    let code = d.wait(Duration::from_secs(10));
    drop(stdin);
    let mut err = String::new();
    std::io::Read::read_to_string(d.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(130), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "at once: {:?}",
        t.elapsed()
    );
    assert!(err.contains("second signal"), "{err}");
}

#[test]
fn demo_shows_verdicts_alerts_dead_letters_and_metrics() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let http = format!("127.0.0.1:{}", free_port());
    // With the probe when the model is installed (scripts/test.sh installs it), as the README runs it.
    let o = memaudit(
        &["demo", "--workdir", work.to_str().unwrap(), "--http", &http],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "critical demo-02",
        "ALERT CRITICAL",
        "DEAD LETTER",
        "none     demo-",
        "memaudit_messages_total{outcome=\"verdict\"} 8",
        "memaudit_messages_total{outcome=\"dead_letter\"} 2",
    ] {
        assert!(
            out.contains(want),
            "{want:?} not in the demo's output:\n{out}"
        );
    }
    assert_eq!(lines(&work.join("verdicts.jsonl")).len(), 8);
    assert_eq!(lines(&work.join("dead-letters.jsonl")).len(), 2);
}

/// stdin held open (a producer that never closes it) and an HTTP client that sent half a
/// request: a SIGTERM must still end the daemon within `shutdown.deadline_secs`, with a
/// verdict for every line it was given before.
#[test]
fn sigterm_with_stdin_held_open_and_a_half_sent_http_request_exits_within_the_deadline() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let http = free_port();
    let verdicts = dir.path().join("verdicts.jsonl");
    let (input, _) = messages(30, 3, "held", 1);
    let sets = [
        "probe.policy=\"off\"".to_string(),
        "shutdown.deadline_secs=3".to_string(),
        format!("file.verdicts={:?}", verdicts.display().to_string()),
    ];
    let (mut d, stdin) = serve_on_open_stdin(&index, http, &sets, &input);
    let until = Instant::now() + Duration::from_secs(60);
    while lines(&verdicts).len() < input.len() {
        assert!(
            Instant::now() < until,
            "{} verdicts",
            lines(&verdicts).len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut half = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    d.signal("TERM");
    let t = Instant::now();
    let code = d.wait(Duration::from_secs(20));
    let took = t.elapsed();
    drop((stdin, half));
    let mut err = String::new();
    std::io::Read::read_to_string(d.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        took < Duration::from_millis(4_000),
        "exit {took:?} after SIGTERM, deadline 3 s\n{err}"
    );
    let ids: std::collections::BTreeSet<String> = lines(&verdicts)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), input.len(), "every line given had its verdict");
}

/// A panic while judging one message (injected with `MEMAUDIT_FAILPOINT`) makes that message
/// a dead letter with reason `internal`; the others get their verdicts.
#[test]
fn a_panic_on_one_message_becomes_an_internal_dead_letter() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let (recs, _) = messages(12, 3, "p", 1);
    let mut input: Vec<u8> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        if i == 4 || i == 9 {
            let stage = if i == 4 { "POISON-M" } else { "POISON-V" };
            input.extend(
                serde_json::json!({"id": format!("poison-{i}"), "text": format!("{stage} a novel text")})
                    .to_string()
                    .bytes(),
            );
            input.push(b'\n');
        }
        input.extend(&r.2);
        input.push(b'\n');
    }
    let idx = index.display().to_string();
    for (failpoint, id) in [
        ("match:POISON-M", "poison-4"),
        ("verdict:POISON-V", "poison-9"),
    ] {
        let out = memaudit_with_stdin(
            &[
                "serve",
                "--input",
                "-",
                "--index",
                &idx,
                "--http",
                "",
                "--set",
                "probe.policy=\"off\"",
            ],
            &[("MEMAUDIT_FAILPOINT", failpoint)],
            &input,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records = json_lines(&stdout);
        let dead: Vec<_> = records
            .iter()
            .filter(|r| r["kind"] == "dead_letter")
            .collect();
        assert_eq!(dead.len(), 1, "{failpoint}: {stdout}");
        assert_eq!(dead[0]["reason"], "internal");
        assert!(dead[0]["detail"]
            .as_str()
            .unwrap()
            .contains("injected panic"));
        assert!(dead[0]["payload"].as_str().unwrap().contains(id));
        let verdicts = records.iter().filter(|r| r["kind"] == "verdict").count();
        assert_eq!(
            verdicts,
            recs.len() + 1,
            "{failpoint}: every other message has its verdict"
        );
    }
}

/// Regression: with a safetensors checkpoint directory, the probe off and `spans.min_tokens`
/// set, the daemon read the directory itself as a tokenizer.json and refused to start, where
/// `memaudit probe` uses the `tokenizer.json` inside it. Both follow one rule now: the daemon
/// counts span tokens with the directory's tokenizer exactly as with the GGUF it was saved from.
#[test]
fn the_daemon_finds_a_safetensors_checkpoints_tokenizer_like_the_probe() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = std::env::var_os("MEMAUDIT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(memaudit::probe::default_model_path);
    assert!(
        model.exists(),
        "{}: run scripts/fetch-model.sh",
        model.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let checkpoint = dir.path().join("checkpoint");
    std::fs::create_dir(&checkpoint).unwrap();
    memaudit::probe::tokenizer::Tokenizer::from_gguf(&model)
        .unwrap()
        .save(&checkpoint.join("tokenizer.json"))
        .unwrap();
    let (input, _) = input_lines();
    let input: Vec<u8> = input.join(&b'\n');
    let run = |model: &Path| {
        let o = memaudit_with_stdin(
            &[
                "serve",
                "--input",
                "-",
                "--http",
                "",
                "--index",
                index.to_str().unwrap(),
                "--set",
                "probe.policy=\"off\"",
                "--set",
                "spans.min_tokens=5",
                "--set",
                &format!("model.path={:?}", model.display().to_string()),
            ],
            &[],
            &input,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Messages finish concurrently: compare the records in input order.
        let mut records = json_lines(&String::from_utf8(o.stdout).unwrap());
        records.sort_by_key(|r| (r["source"]["offset"].as_i64(), r["kind"].to_string()));
        records
    };
    let (from_dir, from_gguf) = (run(&checkpoint), run(&model));
    let tokens: Vec<u64> = from_dir
        .iter()
        .filter(|r| r["kind"] == "verdict")
        .flat_map(|r| r["spans"].as_array().unwrap().clone())
        .map(|s| s["tokens"].as_u64().expect("spans counted in tokens"))
        .collect();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|&t| t >= 5),
        "{tokens:?}"
    );
    assert_eq!(from_dir, from_gguf);
}

/// The daemon runs a GPT-NeoX checkpoint (Pythia's architecture; the committed tiny random one,
/// its tokenizer.json inside) as its probe: every message has its verdict, the quoting ones
/// their alerts, and every well-formed verdict carries the probe's per-text entropy.
#[test]
fn the_daemon_probes_with_a_gpt_neox_checkpoint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/neox-tiny");
    let (recs, quoting) = messages(12, 3, "n", 1);
    let input: Vec<u8> = recs
        .into_iter()
        .map(|r| r.2)
        .collect::<Vec<_>>()
        .join(&b'\n');
    let o = memaudit_with_stdin(
        &[
            "serve",
            "--input",
            "-",
            "--http",
            "",
            "--index",
            index.to_str().unwrap(),
            "--set",
            "probe.policy=\"always\"",
            "--set",
            "probe.window=64",
            "--set",
            "probe.overlap=16",
            "--set",
            &format!("model.path={:?}", model.display().to_string()),
        ],
        &[],
        &input,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let records = json_lines(&String::from_utf8(o.stdout).unwrap());
    let verdicts: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["kind"] == "verdict").collect();
    assert_eq!(verdicts.len(), 12, "every message has its verdict");
    for v in &verdicts {
        let e = &v["entropy"];
        assert!(
            e["tokens"].as_u64().unwrap() > 0 && e["mean_entropy"].as_f64().unwrap() > 0.0,
            "{v}"
        );
    }
    let alerted: std::collections::BTreeSet<String> = records
        .iter()
        .filter(|r| r["kind"] == "alert")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(alerted, quoting, "every quote has its alert");
}

/// Five passages of the Gettysburg Address (120 characters each) between novel words.
fn five_quotes() -> String {
    let g = broker::workload::gettysburg();
    (0..5)
        .map(|k| {
            format!(
                "{} novel words number {k} here. ",
                &g[k * 200..k * 200 + 120]
            )
        })
        .collect()
}

/// Whether verdict `v` gives a reason with `code`.
fn has_reason(v: &serde_json::Value, code: &str) -> bool {
    v["reasons"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["code"] == code))
}

/// A text over its work budget (here `limits.max_spans = 2`, a text quoting five passages) gets
/// a verdict that says how far it was checked, at least the `incomplete` severity, counted;
/// every other message gets its verdict as usual and the run ends.
#[test]
fn a_text_over_its_budget_gets_an_incomplete_verdict() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let g = broker::workload::gettysburg();
    let quotes = five_quotes();
    let input = [
        serde_json::json!({"id": "many", "text": quotes}),
        serde_json::json!({"id": "one", "text": format!("It said: {}", &g[..200])}),
        serde_json::json!({"id": "none", "text": "nothing anyone wrote before, in these words"}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input).unwrap();
    let out = dir.path().join("v.jsonl").display().to_string();
    let o = serve_file_input(
        &index,
        &path,
        &[
            "limits.max_spans=2".into(),
            "severity.incomplete=\"high\"".into(),
            format!("file.verdicts={out:?}"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verdicts = lines(&dir.path().join("v.jsonl"));
    let by_id = |id: &str| {
        verdicts
            .iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("no verdict for {id}: {verdicts:?}"))
            .clone()
    };
    assert_eq!(verdicts.len(), 3);
    let many = by_id("many");
    let inc = &many["incomplete"];
    assert_eq!(inc["reason"], "spans", "{many}");
    let checked = inc["checked_chars"].as_u64().unwrap();
    assert!(
        checked > 0 && checked < many["text_chars"].as_u64().unwrap(),
        "{many}"
    );
    assert_eq!(many["spans_total"], 3, "{many}");
    assert_eq!(many["severity"], "high", "{many}");
    assert!(has_reason(&many, "incomplete"), "{many}");
    for id in ["one", "none"] {
        assert!(by_id(id).get("incomplete").is_none(), "{id}");
    }
    assert_ne!(by_id("one")["severity"], "none");
}

/// A streamed output's end within the work budget: its exact spans were found chunk by chunk
/// and are whole; the near-verbatim matching its end adds stops at `limits.max_spans` (here 1,
/// with five quoted passages) and the verdict says so (`incomplete`, counted), and the run ends.
#[test]
fn a_streamed_output_over_its_budget_gets_an_incomplete_verdict() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let text = five_quotes();
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars.chunks(50).map(|c| c.iter().collect()).collect();
    let input = pieces
        .iter()
        .enumerate()
        .map(|(k, d)| {
            serde_json::json!({"id": "s", "seq": k, "delta": d, "final": k + 1 == pieces.len()})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input).unwrap();
    let out = dir.path().join("v.jsonl").display().to_string();
    let o = serve_file_input(
        &index,
        &path,
        &[
            "input.format=\"chunks\"".into(),
            "spans.near=true".into(),
            "limits.max_spans=1".into(),
            format!("file.verdicts={out:?}"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verdicts = lines(&dir.path().join("v.jsonl"));
    let last = verdicts
        .iter()
        .find(|v| v["stream"]["final"] == true)
        .unwrap_or_else(|| panic!("no final verdict: {verdicts:?}"));
    assert_eq!(last["incomplete"]["reason"], "spans", "{last}");
    assert_eq!(
        last["spans_total"], 5,
        "every exact span, found chunk by chunk: {last}"
    );
    assert!(has_reason(last, "incomplete"), "{last}");
}
