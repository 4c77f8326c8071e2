//! `POST /v1/check` and `POST /v1/chunks` end to end: `memaudit serve` with `source.kind = "http"` (no broker) on the
//! demo corpus's index. Verdicts and actions by severity, redaction that leaves no span text
//! behind, the stream's decoding errors as 400s, and the limits: body size (413), bearer tokens
//! (401), concurrency (429), time (503), a panic (500); every answer counted in the metrics.

mod broker;

use broker::workload::{build_index, gettysburg, metric};
use broker::Daemon;
use std::path::Path;
use std::time::Duration;

/// Novel prose of about `n` characters.
fn novel(n: usize) -> String {
    const W: &[&str] = &[
        "amber", "harbor", "quietly", "lantern", "orchard", "ferry", "granite", "whistle",
        "meadow", "copper", "tangent", "velvet", "signal", "thimble", "canyon", "drizzle",
    ];
    let mut s = String::new();
    let mut x = 7u64;
    while s.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(W[(x % W.len() as u64) as usize]);
        s.push(' ');
    }
    s
}

fn start(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Daemon {
    let index = build_index(dir);
    let cfg = format!(
        "[source]\nkind = \"http\"\n[index]\ndir = {:?}\n[probe]\npolicy = \"off\"\n[input]\nmax_bytes = 8192\n{extra}",
        index.display().to_string()
    );
    let d = Daemon::start_env(dir, &cfg, "http", env);
    d.wait_ready(Duration::from_secs(60));
    d
}

fn post(d: &Daemon, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
    post_to(d, "/v1/check", headers, body)
}

fn post_to(
    d: &Daemon,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let (code, text) = memaudit::loopback::post(
        ([127, 0, 0, 1], d.http).into(),
        path,
        headers,
        body.as_bytes(),
    )
    .unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{code}: {text:?}: {e}"));
    (code, v)
}

fn check(d: &Daemon, text: &str) -> serde_json::Value {
    let (code, v) = post(
        d,
        &[],
        &serde_json::json!({"id": "x", "text": text, "model": "m1"}).to_string(),
    );
    assert_eq!(code, 200, "{v}");
    v
}

#[test]
fn verdicts_actions_and_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), "", &[]);
    let g = gettysburg();

    // Novel text: allowed, no spans.
    let v = check(&d, &novel(600));
    assert_eq!(v["action"], "allow");
    assert_eq!(v["verdict"]["severity"], "none");
    assert_eq!(v["model"], "m1");
    assert!(v.get("text").is_none());

    // Most of the text quoted: critical, blocked.
    let v = check(&d, &format!("Sure: {}", &g[..400]));
    assert_eq!(v["verdict"]["severity"], "critical", "{v}");
    assert_eq!(v["action"], "block");
    assert!(
        v.get("would").is_none(),
        "only audit mode says what it would do: {v}"
    );
    assert!(v["verdict"]["spans"][0]["provenance"][0]["source"]
        .as_str()
        .unwrap()
        .contains("gettysburg"));

    // Two 200-character quotes inside novel text: high, redacted.
    let (q1, q2) = (&g[0..200], &g[600..800]);
    let text = format!("{} {q1} {} {q2} {}", novel(700), novel(300), novel(400));
    let v = check(&d, &text);
    assert_eq!(v["verdict"]["severity"], "high", "{v}");
    assert_eq!(v["action"], "redact");
    let red = v["text"].as_str().unwrap();
    assert_eq!(red.matches("[redacted: training data]").count(), 2, "{red}");
    for s in v["verdict"]["spans"].as_array().unwrap() {
        let (a, b) = (
            s["start"].as_u64().unwrap() as usize,
            s["end"].as_u64().unwrap() as usize,
        );
        let span: String = text.chars().skip(a).take(b - a).collect();
        assert!(
            !red.contains(span.trim()),
            "span text left behind: {span:?}"
        );
    }
    // The redacted text raises nothing: no span of the corpus is left in it.
    let again = check(&d, red);
    assert_eq!(again["verdict"]["spans_total"], 0, "{again}");
    assert_eq!(again["action"], "allow");

    // Quotes the prompt holds are the model repeating its input: they count toward nothing
    // and are not redacted; the others still are.
    let with_prompt = |text: &str, prompt: &str| {
        let (code, v) = post(
            &d,
            &[],
            &serde_json::json!({"id": "p", "text": text, "prompt": prompt}).to_string(),
        );
        assert_eq!(code, 200, "{v}");
        v
    };
    let v = with_prompt(
        &format!("Sure: {}", &g[..400]),
        &format!("Repeat this back: {}", &g[..400]),
    );
    assert_eq!(v["verdict"]["severity"], "none", "{v}");
    assert_eq!(v["action"], "allow");
    assert_eq!(v["verdict"]["spans"][0]["in_prompt"], true, "{v}");
    let v = with_prompt(&text, &format!("What does this mean? {q1}"));
    assert_eq!(v["action"], "redact", "{v}");
    let spans = v["verdict"]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{v}");
    assert_eq!(spans[0]["in_prompt"], true, "{v}");
    assert!(spans[1].get("in_prompt").is_none(), "{v}");
    let red = v["text"].as_str().unwrap();
    assert_eq!(red.matches("[redacted: training data]").count(), 1, "{red}");
    assert!(red.contains(q1.trim()) && !red.contains(q2.trim()), "{red}");

    // A short quote (80 characters) in long novel text: low, allowed (redact_at = high).
    let v = check(
        &d,
        &format!("{} {} {}", novel(800), &g[300..380], novel(700)),
    );
    assert_eq!(v["verdict"]["severity"], "low", "{v}");
    assert_eq!(v["action"], "allow");

    // Bad payloads: the stream's dead-letter reasons, as 400 (413 for size).
    for (body, code, reason) in [
        ("{\"text\": ", 400, "invalid_json"),
        ("{\"id\": \"y\"}", 400, "missing_text"),
        ("{\"text\": 42}", 400, "text_not_string"),
        ("[1,2]", 400, "not_an_object"),
        ("", 400, "empty_payload"),
    ] {
        let (c, v) = post(&d, &[], body);
        assert_eq!(
            (c, v["error"].as_str().unwrap()),
            (code, reason),
            "{body}: {v}"
        );
    }
    let big = serde_json::json!({"text": "a".repeat(9000)}).to_string();
    let (c, v) = post(&d, &[], &big);
    assert_eq!((c, v["error"].as_str().unwrap()), (413, "oversize"), "{v}");

    let (_, m) = d.get("/metrics").unwrap();
    assert_eq!(
        metric(
            &m,
            "memaudit_http_requests_total{endpoint=\"/v1/check\",status=\"200\"}"
        ),
        7.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "memaudit_http_requests_total{endpoint=\"/v1/check\",status=\"400\"}"
        ),
        5.0
    );
    assert_eq!(
        metric(
            &m,
            "memaudit_http_requests_total{endpoint=\"/v1/check\",status=\"413\"}"
        ),
        1.0
    );
    // Each judged text's action, counted: allowed 4, redacted 2, blocked 1, all enforced.
    for (action, n) in [("allow", 4.0), ("redact", 2.0), ("block", 1.0)] {
        assert_eq!(
            metric(&m, &actions_series("/v1/check", action, "enforce")),
            n,
            "{m}"
        );
    }
    d.stop();
}

/// The `memaudit_http_actions_total` series of one endpoint, action and mode.
fn actions_series(endpoint: &str, action: &str, mode: &str) -> String {
    format!(
        "memaudit_http_actions_total{{action=\"{action}\",endpoint=\"{endpoint}\",mode=\"{mode}\"}}"
    )
}

/// Audit mode, for watching a policy before it acts: every text is allowed and left as it is,
/// whole or streamed; the answer's `would` and the metrics say what enforcing would have done.
#[test]
fn audit_mode_allows_everything_and_says_what_enforcing_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), "[actions]\nmode = \"audit\"\n", &[]);
    let g = gettysburg();

    let v = check(&d, &format!("Sure: {}", &g[..400]));
    assert_eq!(v["verdict"]["severity"], "critical", "{v}");
    assert_eq!(
        (&v["action"], &v["would"]),
        (&"allow".into(), &"block".into()),
        "{v}"
    );
    let text = format!(
        "{} {} {} {} {}",
        novel(700),
        &g[0..200],
        novel(300),
        &g[600..800],
        novel(400)
    );
    let v = check(&d, &text);
    assert_eq!(v["verdict"]["severity"], "high", "{v}");
    assert_eq!(
        (&v["action"], &v["would"]),
        (&"allow".into(), &"redact".into()),
        "{v}"
    );
    assert!(
        v.get("text").is_none(),
        "nothing redacted in audit mode: {v}"
    );
    let v = check(&d, &novel(600));
    assert_eq!(
        (&v["action"], &v["would"]),
        (&"allow".into(), &"allow".into()),
        "{v}"
    );

    // Streamed: every open answer allows; the final one says the output would be blocked.
    let answers = stream(&d, "out-1", &format!("Sure: {}", &g[..400]));
    assert!(
        answers.iter().all(|a| a["action"] == "allow"),
        "{answers:?}"
    );
    let last = answers.last().unwrap();
    assert_eq!(
        (&last["state"], &last["would"]),
        (&"final".into(), &"block".into()),
        "{last}"
    );

    let (_, m) = d.get("/metrics").unwrap();
    for (action, n) in [("allow", 1.0), ("redact", 1.0), ("block", 1.0)] {
        assert_eq!(
            metric(&m, &actions_series("/v1/check", action, "audit")),
            n,
            "{m}"
        );
    }
    assert_eq!(
        metric(&m, &actions_series("/v1/chunks", "block", "audit")),
        1.0 + answers[..answers.len() - 1]
            .iter()
            .filter(|a| a["would"] == "block")
            .count() as f64,
        "{m}"
    );
    assert_eq!(
        metric(&m, &actions_series("/v1/check", "block", "enforce")),
        0.0
    );
    d.stop();
}

#[test]
fn bearer_tokens_concurrency_time_and_panics() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# the gateway\nalpha-token-1\n\nbeta-token-2\n").unwrap();
    let extra = format!(
        "[http]\nbind = \"127.0.0.1:0\"\nmax_concurrent_checks = 1\ncheck_timeout_ms = 700\ntokens_file = {:?}\n",
        tokens.display().to_string()
    );
    // `bind` is replaced by the harness's --http flag; SLOW texts take 1.5 s.
    let mut d = start(
        dir.path(),
        &extra,
        &[
            ("MEMAUDIT_FAILPOINT", "match:SLOW"),
            ("MEMAUDIT_FAILPOINT_SLEEP_MS", "1500"),
        ],
    );
    let body = serde_json::json!({"text": novel(300)}).to_string();
    let (c, v) = post(&d, &[], &body);
    assert_eq!((c, v["error"].as_str().unwrap()), (401, "unauthorized"));
    let (c, _) = post(&d, &[("Authorization", "Bearer beta-token-3")], &body);
    assert_eq!(c, 401);
    let (c, _) = post(&d, &[("Authorization", "Basic beta-token-2")], &body);
    assert_eq!(c, 401);
    let (c, v) = post(&d, &[("Authorization", "Bearer beta-token-2")], &body);
    assert_eq!((c, v["action"].as_str().unwrap()), (200, "allow"));
    assert!(
        !d.log_text().contains("beta-token"),
        "tokens are never logged"
    );

    // One slow check holds the only slot: a second is refused with 429, the slow one times out
    // with 503.
    let auth = [("Authorization", "Bearer alpha-token-1")];
    let slow = serde_json::json!({"text": format!("SLOW {}", novel(100))}).to_string();
    let addr = d.http;
    let first = std::thread::spawn(move || {
        memaudit::loopback::post(
            ([127, 0, 0, 1], addr).into(),
            "/v1/check",
            &[("Authorization", "Bearer alpha-token-1")],
            slow.as_bytes(),
        )
        .unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    let (c, v) = post(&d, &auth, &body);
    assert_eq!((c, v["error"].as_str().unwrap()), (429, "busy"), "{v}");
    let (c, text) = first.join().unwrap();
    assert_eq!(c, 503, "{text}");
    assert!(text.contains("\"timeout\""));
    // The slot is held until the slow work ends, then checks are answered again.
    std::thread::sleep(Duration::from_millis(1200));
    let (c, _) = post(&d, &auth, &body);
    assert_eq!(c, 200);
    d.stop();

    // A panic while judging: 500, and the daemon keeps answering.
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), "", &[("MEMAUDIT_FAILPOINT", "match:BOOM")]);
    let (c, v) = post(
        &d,
        &[],
        &serde_json::json!({"text": "BOOM now"}).to_string(),
    );
    assert_eq!((c, v["error"].as_str().unwrap()), (500, "internal"));
    let v = check(&d, &novel(200));
    assert_eq!(v["action"], "allow");
    let (_, m) = d.get("/metrics").unwrap();
    assert_eq!(
        metric(
            &m,
            "memaudit_http_requests_total{endpoint=\"/v1/check\",status=\"500\"}"
        ),
        1.0
    );
    d.stop();
}

#[test]
fn a_bad_token_file_or_action_order_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let run = |extra: &str| {
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!("[source]\nkind = \"http\"\n[index]\ndir = {:?}\n[probe]\npolicy = \"off\"\n{extra}", index.display().to_string()),
        )
        .unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .args(["--http", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let err = run(&format!(
        "[http]\ntokens_file = {:?}\n",
        empty.display().to_string()
    ));
    assert!(
        err.contains("http.tokens_file") && err.contains("holds no token"),
        "{err}"
    );
    let err = run("[http]\ntokens_file = \"/nonexistent/tokens\"\n");
    assert!(
        err.contains("/nonexistent/tokens") && err.contains("cannot read"),
        "{err}"
    );
    let err = run("[actions]\nredact_at = \"critical\"\nblock_at = \"high\"\n");
    assert!(err.contains("actions.block_at"), "{err}");
}

fn chunk(d: &Daemon, id: &str, seq: u64, delta: &str, last: bool) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"id": id, "seq": seq, "delta": delta, "final": last});
    post_to(d, "/v1/chunks", &[], &body.to_string())
}

/// `text` streamed as output `id` in chunks of 40 characters, in order: the answers, each a 200.
fn stream(d: &Daemon, id: &str, text: &str) -> Vec<serde_json::Value> {
    let chars: Vec<char> = text.chars().collect();
    let cut: Vec<String> = chars.chunks(40).map(|c| c.iter().collect()).collect();
    (0..cut.len())
        .map(|k| {
            let (code, a) = chunk(d, id, k as u64, &cut[k], k + 1 == cut.len());
            assert_eq!(code, 200, "{a}");
            a
        })
        .collect()
}

/// A streamed output over HTTP: each chunk is answered with the verdict and action so far, so a
/// gateway can stop a leak mid-stream; the final chunk gets the output's verdict, equal to
/// `/v1/check` on the whole text; out-of-order chunks wait, repeats change nothing; bounds and
/// bad chunks are answered with the dead-letter reason.
#[test]
fn streamed_output_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(
        dir.path(),
        "[chunks]\nmax_open_outputs = 2\nmax_output_bytes = 2000\nidle_timeout_secs = 60\n",
        &[],
    );
    let g = gettysburg();
    let text = format!("{} and then: {}", novel(200), &g[..300]);
    let words: Vec<&str> = text.split(' ').collect();
    let pieces: Vec<String> = words.chunks(6).map(|c| c.join(" ") + " ").collect();
    let whole: String = pieces.concat();
    let n = pieces.len() as u64;
    let mut first_block = None;
    for (seq, p) in pieces.iter().enumerate() {
        let seq = seq as u64;
        let (code, v) = chunk(&d, "s1", seq, p, seq + 1 == n);
        assert_eq!(code, 200, "{v}");
        if seq + 1 < n {
            assert_eq!(v["state"], "open", "{v}");
            if v["action"] != "allow" && first_block.is_none() {
                first_block = Some(seq);
            }
            // A repeat of the same chunk changes nothing.
            if seq == 3 {
                let (_, again) = chunk(&d, "s1", seq, p, false);
                assert_eq!(again["state"], "duplicate", "{again}");
            }
        } else {
            assert_eq!(v["state"], "final", "{v}");
            assert_eq!(v["stream"]["complete"], true);
            assert_eq!(v["stream"]["chunks"], n);
            let whole_check = check(&d, &whole);
            assert_eq!(v["verdict"]["spans"], whole_check["verdict"]["spans"]);
            assert_eq!(v["verdict"]["severity"], whole_check["verdict"]["severity"]);
            assert_eq!(v["action"], whole_check["action"]);
        }
    }
    let first_block = first_block.expect("the gateway is told to act before the output ends");
    assert!(first_block < n - 1, "blocked at chunk {first_block} of {n}");

    // Out of order: chunk 1 waits for chunk 0.
    let (_, v) = chunk(&d, "s2", 1, "world ", true);
    assert_eq!(v["state"], "waiting", "{v}");
    let (_, v) = chunk(&d, "s2", 0, "hello ", false);
    assert_eq!(v["state"], "final", "{v}");
    assert_eq!(v["verdict"]["text_chars"], 12);

    // Bounds and bad chunks.
    let (code, v) = chunk(&d, "big", 0, &"x".repeat(2001), false);
    assert_eq!(
        (code, v["error"].as_str()),
        (413, Some("output_too_large")),
        "{v}"
    );
    let (code, _) = chunk(&d, "open-1", 0, "a ", false);
    assert_eq!(code, 200);
    let (code, v) = chunk(&d, "open-2", 0, "b ", false);
    assert_eq!(
        (code, v["error"].as_str()),
        (429, Some("too_many_open_outputs")),
        "{v}"
    );
    let (code, v) = post_to(&d, "/v1/chunks", &[], r#"{"id":"z","delta":"a"}"#);
    assert_eq!((code, v["error"].as_str()), (400, Some("bad_chunk")), "{v}");
    let m = d.get("/metrics").unwrap().1;
    assert_eq!(
        metric(
            &m,
            "memaudit_stream_outputs_ended_total{ended_by=\"final\"}"
        ),
        2.0
    );
    assert!(
        metric(
            &m,
            "memaudit_http_requests_total{endpoint=\"/v1/chunks\",status=\"200\"}"
        ) >= n as f64
    );
    d.stop();
}

/// Source and licence rules over HTTP, on an index of JSONL documents with a `license` field:
/// an allowed document's text raises nothing (listed, with the rule), a denied licence raises at
/// once even for a short quote, provenance shows the source and the licence, redaction leaves
/// the allowed text alone, and a bad rule stops the start with the key named.
#[test]
fn source_and_license_rules() {
    let dir = tempfile::tempdir().unwrap();
    let ours = "Our own product manual explains how the valve assembly is cleaned every spring, \
                which parts are replaced, and in what order the seals are fitted back in place.";
    let gpl = "The quick survey of compiler passes describes register allocation by graph \
               colouring, then spilling, then coalescing of the remaining move instructions.";
    let other =
        "An unrelated essay about tidal patterns along the northern coast recounts how the \
                 fishermen read the water before dawn and which harbours stay calm in a gale.";
    let docs = dir.path().join("docs.jsonl");
    let line = |t: &str, l: &str| serde_json::json!({"text": t, "license": l}).to_string();
    std::fs::write(
        &docs,
        [
            line(ours, "proprietary-ours"),
            line(gpl, "GPL-3.0"),
            line(other, "CC-BY-4.0"),
        ]
        .join("\n"),
    )
    .unwrap();
    let index = dir.path().join("index");
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(["index", "build", "--quiet", "--out"])
        .arg(&index)
        .arg(&docs)
        .status()
        .unwrap();
    assert!(ok.success());
    let rules = r#"
[[severity.sources]]
name = "our-manuals"
action = "allow"
field = "license"
equals = ["proprietary-ours"]
[[severity.sources]]
name = "no-gpl"
action = "deny"
field = "license"
equals = ["GPL-3.0", "AGPL-3.0"]
"#;
    let cfg = |rules: &str| {
        format!(
            "[source]\nkind = \"http\"\n[index]\ndir = {:?}\n[probe]\npolicy = \"off\"\n[severity]\n{rules}",
            index.display().to_string()
        )
    };
    let mut d = Daemon::start_env(dir.path(), &cfg(rules), "rules", &[]);
    d.wait_ready(Duration::from_secs(60));

    // All of our own text: allowed, nothing raised, the span listed with the rule.
    let v = check(&d, &format!("From the manual: {ours}"));
    assert_eq!(v["verdict"]["severity"], "none", "{v}");
    assert_eq!(v["action"], "allow");
    let span = &v["verdict"]["spans"][0];
    assert_eq!(span["allowed_by"], "our-manuals", "{v}");
    assert_eq!(span["provenance"][0]["license"], "proprietary-ours");
    assert!(span["provenance"][0]["source"]
        .as_str()
        .unwrap()
        .ends_with("docs.jsonl"));
    assert!(v["verdict"]["reasons"].to_string().contains("our-manuals"));

    // 60 characters of the GPL text: low by length, critical by the rule.
    let v = check(&d, &format!("Well, {} and so on.", &gpl[..60]));
    assert_eq!(v["verdict"]["severity"], "critical", "{v}");
    assert_eq!(v["action"], "block");
    assert_eq!(v["verdict"]["spans"][0]["denied_by"], "no-gpl");
    assert!(
        v["verdict"]["reasons"].to_string().contains("no-gpl"),
        "{v}"
    );

    // Our text and the unrelated essay: the essay raises (redact), and only it is redacted.
    let v = check(&d, &format!("{ours} {other}"));
    assert_eq!(v["action"], "redact", "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(text.contains(ours), "the allowed text stays: {text}");
    assert!(
        !text.contains(&other[20..140]),
        "the other text is redacted: {text}"
    );
    assert_eq!(
        v["verdict"]["spans"][1]["provenance"][0]["license"],
        "CC-BY-4.0"
    );
    d.stop();

    // A rule without values stops the start, naming the key.
    let bad = "[[severity.sources]]\nname = \"x\"\naction = \"allow\"\nfield = \"license\"\n";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(["serve", "--check-config", "--config"])
        .arg({
            let p = dir.path().join("bad.toml");
            std::fs::write(&p, cfg(bad)).unwrap();
            p
        })
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("severity.sources[0].equals"), "{err}");
}

/// Near-verbatim spans and folding through the daemon (`spans.near`, `spans.fold`): a quote
/// with one word in ten changed is a near span naming its source, with its edits and
/// similarity, and raises the verdict by its length; a quote disguised with zero-width spaces
/// and look-alike letters is found exactly once folded, and the verdict says it was folded.
#[test]
fn near_verbatim_and_folded_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), "[spans]\nnear = true\nfold = true\n", &[]);
    let g = gettysburg();
    let words: Vec<&str> = g.split(' ').take(60).collect();
    let edited: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(k, w)| {
            if k % 10 == 5 {
                "banana".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    let v = check(&d, &format!("He said: {} and left.", edited.join(" ")));
    let near = &v["verdict"]["near_spans"];
    assert_eq!(near.as_array().map(Vec::len), Some(1), "{v}");
    assert!(near[0]["chars"].as_u64().unwrap() >= 250, "{v}");
    assert!(near[0]["edits"].as_u64().unwrap() >= 5);
    assert!(near[0]["similarity"].as_f64().unwrap() > 0.8);
    assert!(near[0]["provenance"]["source"]
        .as_str()
        .unwrap()
        .contains("gettysburg"));
    assert!(
        v["verdict"]["reasons"]
            .to_string()
            .contains("near_verbatim"),
        "{v}"
    );
    assert_ne!(v["verdict"]["severity"], "none");

    // The same text streamed in chunks: its final verdict holds the same near span.
    let whole = format!("He said: {} and left.", edited.join(" "));
    let answers = stream(&d, "streamed-near", &whole);
    let (a, open) = answers.split_last().unwrap();
    assert_eq!(a["state"], "final", "{a}");
    let streamed = &a["verdict"]["near_spans"];
    assert_eq!(streamed.as_array().map(Vec::len), Some(1), "{a}");
    assert_eq!(
        (
            &streamed[0]["start"],
            &streamed[0]["end"],
            &streamed[0]["edits"]
        ),
        (&near[0]["start"], &near[0]["end"], &near[0]["edits"]),
        "{a}"
    );
    for a in open {
        assert!(a["verdict"]["near_spans"].is_null(), "{a}");
    }

    let disguised: String = g[..300]
        .chars()
        .map(|c| match c {
            ' ' => " \u{200B}".to_string(),
            'o' => "\u{043E}".to_string(),
            c => c.to_string(),
        })
        .collect();
    let v = check(&d, &disguised);
    assert_eq!(v["verdict"]["folded"], true, "{v}");
    assert_eq!(v["verdict"]["longest_span_chars"], 300, "{v}");
    let span = &v["verdict"]["spans"][0];
    assert_eq!(span["start"], 0);
    assert!(
        span["end"].as_u64().unwrap() as usize + 3 >= disguised.chars().count(),
        "{v}"
    );

    // The disguised text streamed in chunks: the open answers match it as written (nothing), the
    // final verdict folded, with the whole-text check's span.
    let answers = stream(&d, "streamed-folded", &disguised);
    let (a, open) = answers.split_last().unwrap();
    assert_eq!(a["state"], "final", "{a}");
    assert_eq!(a["verdict"]["folded"], true, "{a}");
    let streamed = &a["verdict"]["spans"];
    assert_eq!(streamed.as_array().map(Vec::len), Some(1), "{a}");
    assert_eq!(
        (&streamed[0]["start"], &streamed[0]["end"]),
        (&span["start"], &span["end"]),
        "{a}"
    );
    assert_eq!(a["verdict"]["longest_span_chars"], 300, "{a}");
    for a in open {
        assert_eq!(
            a["verdict"]["spans"].as_array().map(Vec::len),
            Some(0),
            "{a}"
        );
    }
    d.stop();
}
