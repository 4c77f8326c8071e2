//! `POST /v1/check` and `POST /v1/chunks` end to end: `memaudit serve` with `source.kind = "http"` (no broker) on the
//! demo corpus's index. Verdicts and actions by severity, redaction that leaves no span text
//! behind, the stream's decoding errors as 400s, and the limits: body size (413), bearer tokens
//! (401), concurrency (429), time (503), a panic (500); every answer counted in the metrics.

mod broker;

use broker::workload::{build_index, gettysburg, metric, wait_metric};
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
    // The scheme's case does not matter (RFC 9110 §11.1).
    for scheme in ["bearer", "BEARER"] {
        let (c, v) = post(
            &d,
            &[("Authorization", &format!("{scheme} beta-token-2"))],
            &body,
        );
        assert_eq!(c, 200, "{scheme}: {v}");
    }
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

/// A streamed output under redaction: each `redact` answer carries only the text no earlier
/// answer covered, from `text_from` on, so the answers tile the output and add up to its length
/// (before, each one carried the whole text so far: quadratic), and the end of a quote that
/// reached `redact` mid-stream is not in the text released after it.
#[test]
fn redacted_stream_answers_carry_only_text_not_sent_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), "[chunks]\nidle_timeout_secs = 60\n", &[]);
    let g = gettysburg();
    let text = format!("{} {} {}", novel(300), &g[..300], novel(1500));
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars.chunks(40).map(|c| c.iter().collect()).collect();
    let answers = stream(&d, "red-1", &text);
    let (mut covered, mut released, mut redacted_bytes) = (0, String::new(), 0);
    for (a, piece) in answers.iter().zip(&pieces) {
        if a["action"] == "redact" {
            assert_eq!(a["text_from"], covered, "{a}");
            let t = a["text"].as_str().expect("a redact answer has text");
            redacted_bytes += t.len();
            released.push_str(t);
        } else {
            assert!(
                a.get("text").is_none() && a.get("text_from").is_none(),
                "{a}"
            );
            released.push_str(piece);
        }
        covered += piece.chars().count();
    }
    let redacts = answers.iter().filter(|a| a["action"] == "redact").count();
    assert!(
        redacts > 10,
        "the output is redacted from the quote on: {answers:?}"
    );
    assert!(
        redacted_bytes <= text.len(),
        "{redacted_bytes} bytes of redact answers for a {}-byte output",
        text.len()
    );
    assert!(released.contains("[redacted: training data]"), "{released}");
    assert!(!released.contains(&g[250..300]), "{released}");
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

/// Sends `bytes` on a new connection to the daemon and reads the answer until the server
/// closes or 5 s pass: the status code and the raw answer.
fn raw(d: &Daemon, bytes: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

/// Malformed requests get a JSON error and are counted: a broken chunked body (400, not 413),
/// a payload with a key twice (400), an unknown path (404) or method (405).
#[test]
fn malformed_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path(), "", &[]);
    let (c, text) = raw(
        &d,
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(c, 400, "{text}");
    assert!(text.contains("\"bad_body\""), "{text}");
    let (c, v) = post(&d, &[], r#"{"text": "harmless", "text": "the quote"}"#);
    assert_eq!(
        (c, v["error"].as_str().unwrap()),
        (400, "invalid_json"),
        "{v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("duplicate key `text`"),
        "{v}"
    );
    let (c, text) = raw(
        &d,
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(c, 404, "{text}");
    assert!(text.contains("\"not_found\""), "{text}");
    let (c, text) = raw(
        &d,
        b"GET /v1/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(c, 405, "{text}");
    assert!(text.contains("\"method_not_allowed\""), "{text}");
    let (_, m) = d.get("/metrics").unwrap();
    for (series, n) in [
        (
            "memaudit_http_requests_total{endpoint=\"/v1/check\",status=\"400\"}",
            2.0,
        ),
        (
            "memaudit_http_requests_total{endpoint=\"other\",status=\"404\"}",
            1.0,
        ),
        (
            "memaudit_http_requests_total{endpoint=\"other\",status=\"405\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric(&m, series), n, "{series}");
    }
    d.stop();
}

/// 900 idle connections, a hundred half-sent headers and more trickling bodies than there are
/// check slots (together just under the default cap of 1,024 connections: past the cap a new
/// connection waits for a slot by design, so `/healthz` would wait for the header timeout and
/// the test would measure luck): `/healthz` still answers within 100 ms, ordinary checks are answered
/// (a slot is taken only once a body is in), the trickling bodies get 408 at the body timeout,
/// and the idle connections are closed at the header timeout.
#[test]
fn slow_and_idle_connections_hold_neither_checks_nor_health() {
    use std::io::{Read, Write};
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(
        dir.path(),
        "[http]\nmax_concurrent_checks = 4\nheader_timeout_ms = 2000\nbody_timeout_ms = 2000\n",
        &[],
    );
    let addr = ("127.0.0.1", d.http);
    let idle: Vec<_> = (0..900)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let half: Vec<_> = (0..100)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /v1/check HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let trickling: Vec<_> = (0..8)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(
                b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"text\": \"",
            )
            .unwrap();
            s
        })
        .collect();
    let opened = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let (c, body) = d.get("/healthz").unwrap();
        slowest = slowest.max(t.elapsed());
        assert_eq!((c, body.as_str()), (200, "ok\n"));
    }
    assert!(
        slowest < Duration::from_millis(100),
        "slowest /healthz {slowest:?}"
    );
    // A keep-alive connection left idle after its request: closed at the header timeout too.
    let mut kept = std::net::TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 512];
    let got = kept.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..got]).starts_with("HTTP/1.1 200"));
    for _ in 0..20 {
        let v = check(&d, &novel(300));
        assert_eq!(v["action"], "allow");
    }
    assert!(
        opened.elapsed() < Duration::from_millis(1800),
        "checked before the timeouts"
    );
    // The trickling bodies: 408 once the body timeout passes.
    for mut s in trickling {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"body_timeout\""), "{text}");
    }
    // The idle, half-sent and kept-alive connections: closed by the server at the header
    // timeout.
    for mut s in idle.into_iter().chain(half).chain([kept]) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        assert!(s.read_to_end(&mut out).is_ok(), "closed by the server");
    }
    std::thread::sleep(Duration::from_millis(200));
    let (_, m) = d.get("/metrics").unwrap();
    assert!(metric(&m, "memaudit_http_connections") <= 2.0, "{m}");
    d.stop();
}

/// A check past `http.check_timeout_ms` is answered 503 and its work stops there (its budget is
/// cancelled, counted as an incomplete search): its slot is free for the next check at once, not
/// when the work would have ended.
#[test]
fn a_check_over_its_time_stops_and_frees_its_slot() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let cfg = format!(
        "[source]\nkind = \"http\"\n[index]\ndir = {:?}\n[probe]\npolicy = \"off\"\n[input]\nmax_bytes = 16000000\n[http]\nmax_concurrent_checks = 1\ncheck_timeout_ms = 50\n[spans]\nnear = true\n",
        index.display().to_string()
    );
    let mut d = Daemon::start_env(dir.path(), &cfg, "http", &[]);
    d.wait_ready(Duration::from_secs(60));
    let big = serde_json::json!({"text": novel(8_000_000)}).to_string();
    let (c, v) = post(&d, &[], &big);
    assert_eq!((c, v["error"].as_str().unwrap()), (503, "timeout"), "{v}");
    let answered = Instant::now();
    let small = serde_json::json!({"text": novel(200)}).to_string();
    loop {
        let (c, v) = post(&d, &[], &small);
        if c == 200 {
            break;
        }
        assert_eq!(c, 429, "{v}");
        assert!(
            answered.elapsed() < Duration::from_secs(1),
            "the slot stayed taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, m) = d.get("/metrics").unwrap();
    assert_eq!(
        metric(&m, "memaudit_incomplete_total{reason=\"cancelled\"}"),
        1.0,
        "the work was stopped, not finished"
    );
    d.stop();
}

/// SIGHUP while the daemon is still starting (here loading the probe model) waits for the
/// reload task instead of killing the process: the daemon comes up, answers, and stops cleanly.
#[test]
fn sighup_during_start_up_is_queued_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let model = std::env::var_os("MEMAUDIT_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(memaudit::probe::default_model_path);
    assert!(
        model.exists(),
        "{} missing: run scripts/fetch-model.sh",
        model.display()
    );
    let cfg = format!(
        "[source]\nkind = \"http\"\n[index]\ndir = {:?}\n[model]\npath = {:?}\n[probe]\npolicy = \"always\"\n",
        index.display().to_string(),
        model.display().to_string()
    );
    let mut d = Daemon::start_env(dir.path(), &cfg, "http", &[]);
    for wait in [50, 100, 200] {
        std::thread::sleep(Duration::from_millis(wait));
        d.signal("HUP");
    }
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "killed by SIGHUP:\n{}",
        d.log_text()
    );
    d.wait_ready(Duration::from_secs(60));
    let v = check(&d, &novel(200));
    assert_eq!(v["action"], "allow");
    d.stop();
}

/// Runs a `memaudit` command to the end; panics with its stderr when it fails.
fn memaudit_ok(args: &[&str]) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_memaudit"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "memaudit {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Writes `manifest.json` of `index` atomically, as a restore of a backup or a hand edit would
/// leave it (the daemon never reads half a file).
fn put_manifest(index: &Path, bytes: &[u8]) {
    let tmp = index.join("manifest.json.restore");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, index.join("manifest.json")).unwrap();
}

/// The daemon following the index refuses a generation older than the one it serves (a backup
/// restored over a takedown: the takedown holds), until `memaudit index rollback` publishes it
/// as a new generation; refuses a manifest whose id does not match its contents; and fails
/// closed (not ready, the alarm set) on an index with no live document, until one with
/// documents is published. `index build --force` over the live index is its next generation.
#[test]
fn the_daemon_refuses_older_forged_and_empty_generations() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(dir.path());
    let idx = index.to_str().unwrap();
    let backup = std::fs::read(index.join("manifest.json")).unwrap();
    let cfg = format!(
        "[source]\nkind = \"http\"\n[index]\ndir = {idx:?}\npoll_secs = 0.1\n[probe]\npolicy = \"off\"\n"
    );
    let mut d = Daemon::start_env(dir.path(), &cfg, "http", &[]);
    d.wait_ready(Duration::from_secs(60));
    let g = gettysburg();
    let quote = format!("He said: {}", &g[..300]);
    let v = check(&d, &quote);
    assert_eq!(v["verdict"]["severity"], "critical", "{v}");
    let doc = v["verdict"]["spans"][0]["provenance"][0]["doc"]
        .as_u64()
        .unwrap();

    // The takedown (generation 2), then the backup of generation 1 restored over it: refused.
    memaudit_ok(&["index", "remove", idx, &doc.to_string()]);
    wait_metric(&d, "memaudit_index_generation", 2.0);
    assert_eq!(check(&d, &quote)["verdict"]["severity"], "none");
    put_manifest(&index, &backup);
    wait_metric(&d, "memaudit_index_reload_failed", 1.0);
    assert!(
        d.log_text().contains("index rollback"),
        "the log says what to do"
    );
    assert_eq!(
        check(&d, &quote)["verdict"]["severity"],
        "none",
        "the takedown holds"
    );
    // Rolled back on purpose: generation 3, the document back.
    memaudit_ok(&["index", "rollback", idx, "--after", "2", "--reason", "test"]);
    wait_metric(&d, "memaudit_index_generation", 3.0);
    wait_metric(&d, "memaudit_index_reload_failed", 0.0);
    assert_eq!(check(&d, &quote)["verdict"]["severity"], "critical");

    // A hand-edited manifest that keeps its id: refused, never served.
    let good = std::fs::read(index.join("manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&good).unwrap();
    m["removed"] = serde_json::json!([doc]);
    m["generation"] = serde_json::json!(9);
    put_manifest(&index, m.to_string().as_bytes());
    wait_metric(&d, "memaudit_index_reload_failed", 1.0);
    assert!(d.log_text().contains("changed by hand"), "{}", d.log_text());
    assert_eq!(check(&d, &quote)["verdict"]["severity"], "critical");
    put_manifest(&index, &good);
    wait_metric(&d, "memaudit_index_reload_failed", 0.0);

    // Every document taken down: refused, and the daemon is not ready (fails closed).
    let documents = m["totals"]["documents"].as_u64().unwrap();
    let all: Vec<String> = (0..documents).map(|i| i.to_string()).collect();
    let mut args = vec!["index", "remove", idx];
    args.extend(all.iter().map(String::as_str));
    memaudit_ok(&args);
    wait_metric(&d, "memaudit_index_reload_failed", 1.0);
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"index_open\":false"), "{body}");
    // Rebuilt with --force over the live index: the next generation, served, ready again.
    let corpus = format!("{}/data/demo/corpus", env!("CARGO_MANIFEST_DIR"));
    memaudit_ok(&[
        "index", "build", "--quiet", "--force", "--out", idx, &corpus,
    ]);
    wait_metric(&d, "memaudit_index_generation", 5.0);
    wait_metric(&d, "memaudit_index_reload_failed", 0.0);
    d.wait_ready(Duration::from_secs(10));
    assert_eq!(check(&d, &quote)["verdict"]["severity"], "critical");
    d.stop();
}

/// `chunk` with extra request headers (a bearer token, a namespace).
fn chunk_as(
    d: &Daemon,
    headers: &[(&str, &str)],
    id: &str,
    seq: u64,
    delta: &str,
    last: bool,
) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"id": id, "seq": seq, "delta": delta, "final": last});
    post_to(d, "/v1/chunks", headers, &body.to_string())
}

/// A streamed output belongs to the client that sent it (its token is part of the key): another
/// client can neither end it nor pre-send its chunks. A `seq` sent again with other text is a
/// conflict (409), not a duplicate; a final chunk sent again gets the same final answer; a final
/// chunk over the output's size still ends it with a verdict; `seq = u64::MAX` is refused. The
/// open outputs and the bytes they hold show in the gauges, and one cap bounds those bytes.
#[test]
fn streamed_outputs_are_owned_and_their_final_answer_kept() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "alice-token\nmallory-token\n").unwrap();
    let extra = format!(
        "[http]\ntokens_file = {:?}\n[chunks]\nmax_output_bytes = 3000\nmax_held_bytes = 4000\nidle_timeout_secs = 60\n",
        tokens.display().to_string()
    );
    let mut d = start(dir.path(), &extra, &[]);
    let alice = [("Authorization", "Bearer alice-token")];
    let mallory = [("Authorization", "Bearer mallory-token")];
    let g = gettysburg();

    // Mallory pre-sends harmless text for Alice's next seq and ends "o1" first: her own output.
    let (c, v) = chunk_as(&d, &mallory, "o1", 1, "harmless", true);
    assert_eq!((c, v["state"].as_str()), (200, Some("waiting")), "{v}");
    let (c, v) = chunk_as(&d, &mallory, "o1", 0, "nothing to see, ", false);
    assert_eq!((c, v["state"].as_str()), (200, Some("final")), "{v}");
    // Alice's "o1" is untouched: her quote is judged, and blocked.
    let (c, v) = chunk_as(&d, &alice, "o1", 0, "As he said: ", false);
    assert_eq!((c, v["state"].as_str()), (200, Some("open")), "{v}");
    let (m, _) = (d.get("/metrics").unwrap().1, ());
    assert_eq!(
        metric(&m, "memaudit_stream_outputs_open"),
        1.0,
        "HTTP outputs are counted"
    );
    assert!(metric(&m, "memaudit_stream_held_bytes") > 0.0);
    let (c, fin) = chunk_as(&d, &alice, "o1", 1, &g[..400], true);
    assert_eq!((c, fin["state"].as_str()), (200, Some("final")), "{fin}");
    assert_eq!(fin["action"], "block", "{fin}");
    assert_eq!(fin["id"], "o1");
    assert_eq!(fin["verdict"]["id"], "o1");
    // The final chunk again (its answer lost on the way): the same answer, not "duplicate".
    let (c, again) = chunk_as(&d, &alice, "o1", 1, &g[..400], true);
    assert_eq!(c, 200);
    assert_eq!(again, fin);

    // A seq sent again with other text: 409; with the same text: a duplicate.
    let (c, _) = chunk_as(&d, &alice, "o2", 0, "first words ", false);
    assert_eq!(c, 200);
    let (c, v) = chunk_as(&d, &alice, "o2", 0, "other words ", false);
    assert_eq!(
        (c, v["error"].as_str()),
        (409, Some("chunk_conflict")),
        "{v}"
    );
    let (c, v) = chunk_as(&d, &alice, "o2", 0, "first words ", false);
    assert_eq!((c, v["state"].as_str()), (200, Some("duplicate")), "{v}");
    let (c, v) = chunk_as(&d, &alice, "o2", u64::MAX, "x", false);
    assert_eq!((c, v["error"].as_str()), (400, Some("bad_chunk")), "{v}");

    // One cap for the bytes of every open output: a second large output does not fit.
    let (c, _) = chunk_as(&d, &alice, "big1", 0, &novel(2500), false);
    assert_eq!(c, 200);
    let (c, v) = chunk_as(&d, &alice, "big2", 0, &novel(2500), false);
    assert_eq!((c, v["error"].as_str()), (429, Some("streams_full")), "{v}");
    // A final chunk past the output's own size still ends it, with a verdict naming it.
    let (c, v) = chunk_as(&d, &alice, "big1", 1, &novel(1000), true);
    assert_eq!((c, v["state"].as_str()), (200, Some("final")), "{v}");
    assert_eq!(v["stream"]["left_out"], serde_json::json!([1]), "{v}");
    // Ended outputs give their bytes back.
    chunk_as(&d, &alice, "o2", 1, "end", true);
    let m = d.get("/metrics").unwrap().1;
    assert_eq!(metric(&m, "memaudit_stream_outputs_open"), 0.0, "{m}");
    assert_eq!(metric(&m, "memaudit_stream_held_bytes"), 0.0, "{m}");
    d.stop();
}
