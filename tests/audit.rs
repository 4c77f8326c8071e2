//! `memaudit audit` on the real default model and real text: the decode primitive, the score
//! and the whole command (report numbers, seeds, resume).

mod common;

use candle_core::{Device, D};
use memaudit::probe::decode::{argmax, DecodeOptions};
use memaudit::probe::model::Model;
use memaudit::probe::tokenizer::Tokenizer;

/// Contexts of real text: a licence, code and prose.
fn contexts(tok: &Tokenizer, c: usize) -> Vec<Vec<u32>> {
    let texts = [
        std::fs::read_to_string("/usr/share/common-licenses/Apache-2.0").unwrap(),
        std::fs::read_to_string("src/probe/decode.rs").unwrap(),
        std::fs::read_to_string("data/demo/corpus/gettysburg-address.txt").unwrap(),
    ];
    texts
        .iter()
        .map(|t| tok.encode(t).unwrap()[40..40 + c].to_vec())
        .collect()
}

#[test]
fn greedy_decoding_with_the_cache_equals_decoding_without_it() {
    let path = common::default_model();
    let model = Model::load(&path, &Device::Cpu).unwrap();
    let tok = Tokenizer::for_model(&path, None).unwrap();
    let eos = tok.end_of_text();
    let ctx = contexts(&tok, 24);
    let refs: Vec<&[u32]> = ctx.iter().map(|c| c.as_slice()).collect();
    let steps = 12;
    let opts = DecodeOptions {
        steps,
        mask: eos,
        hidden: true,
        context_entropy: true,
    };
    let cached = model.greedy(&refs, &opts).unwrap();
    // Without the context's entropies: the same tokens and continuation entropies.
    let lean = model
        .greedy(
            &refs,
            &DecodeOptions {
                hidden: false,
                context_entropy: false,
                ..opts
            },
        )
        .unwrap();
    for (a, b) in cached.iter().zip(&lean) {
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(b.entropy.len(), steps);
        for (x, y) in a.entropy[a.entropy.len() - steps..].iter().zip(&b.entropy) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
    for (i, c) in ctx.iter().enumerate() {
        // Without a cache: a full forward over everything so far at every step.
        let mut seq = c.clone();
        let mut entropies = Vec::new();
        for _ in 0..steps {
            let lp = model.log_probs(&seq).unwrap();
            let last = lp.narrow(0, seq.len() - 1, 1).unwrap().squeeze(0).unwrap();
            let mut row: Vec<f32> = last.to_vec1().unwrap();
            if let Some(m) = eos {
                row[m as usize] = f32::NEG_INFINITY;
            }
            let norm: f32 = row.iter().map(|l| l.exp()).sum();
            entropies.push(
                -row.iter()
                    .map(|&l| {
                        if l.is_finite() {
                            (l.exp() / norm) * (l - norm.ln())
                        } else {
                            0.0
                        }
                    })
                    .sum::<f32>(),
            );
            seq.push(argmax(&row));
        }
        assert_eq!(cached[i].tokens, seq[c.len()..], "row {i}");
        let from_cache = &cached[i].entropy[c.len() - 1..];
        for (a, b) in from_cache.iter().zip(&entropies) {
            assert!((a - b).abs() < 2e-3, "row {i}: entropy {a} vs {b}");
        }
        assert_eq!(cached[i].entropy.len(), c.len() + steps - 1);
        let hidden = cached[i].hidden.as_ref().unwrap();
        assert_eq!(hidden.len(), (c.len() + steps - 1) * model.config.embedding);
        // The prefill's entropies are those of the full forward over the context.
        let lp = model.log_probs(c).unwrap();
        let full = lp.exp().unwrap().mul(&lp).unwrap().sum(D::Minus1).unwrap();
        let full: Vec<f32> = full.to_vec1().unwrap();
        // (Unmasked here; the EOS token carries almost no mass inside real text.)
        for (p, (a, b)) in cached[i].entropy.iter().zip(full.iter()).enumerate() {
            assert!((a + b).abs() < 2e-2, "row {i} position {p}: {a} vs {}", -b);
        }
    }
}

use std::path::{Path, PathBuf};
use std::process::Command;

/// An index of real text (the licences Debian ships, and the demo corpus) with whitespace kept,
/// as an audit wants.
fn licence_index(dir: &Path) -> PathBuf {
    let mut docs = Vec::new();
    for d in ["/usr/share/common-licenses", "data/demo/corpus"] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for p in names {
            if let Ok(t) = std::fs::read_to_string(&p) {
                docs.push(t);
            }
        }
    }
    let input = common::write_jsonl(dir, &docs);
    let out = dir.join("index");
    let mut opts = common::options(out.clone(), vec![input], 1 << 30);
    opts.normalization.collapse_whitespace = false;
    memaudit::index::write::build::build(&opts).unwrap();
    out
}

/// Runs `memaudit audit` with small sizes on the default model; returns (status, stdout +
/// stderr).
fn audit(index: &Path, out: &Path, cache: &Path, extra: &[&str]) -> (bool, String) {
    audit_models(index, out, cache, &[common::default_model()], extra)
}

/// [`audit`] with the models given.
fn audit_models(
    index: &Path,
    out: &Path,
    cache: &Path,
    models: &[PathBuf],
    extra: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new(common::bin());
    cmd.args(["audit", "--quiet", "--index"])
        .arg(index)
        .arg("--out")
        .arg(out);
    for m in models {
        cmd.arg("--model").arg(m);
    }
    let o = cmd
        .args([
            "--rows",
            "40",
            "--rows-per-config",
            "12",
            "--context",
            "16,24",
            "--continuation",
            "8,16",
            "--batch",
            "8",
            "--predictor-epochs",
            "4",
        ])
        .args(extra)
        .env("MEMAUDIT_CACHE_DIR", cache)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// report.json without what differs between runs (times, the command line).
fn numbers(out: &Path) -> serde_json::Value {
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let o = r.as_object_mut().unwrap();
    for k in ["timings", "written_at", "command"] {
        o.remove(k);
    }
    for m in o["models"].as_array_mut().unwrap() {
        let m = m.as_object_mut().unwrap();
        m.remove("decode_seconds");
        m.remove("rows_decoded");
    }
    for p in o["predictors"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("seconds");
    }
    r
}

#[test]
fn the_same_seed_gives_the_same_report_and_a_killed_audit_resumes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let index = licence_index(dir.path());
    let cache = dir.path().join("cache");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (ok, log) = audit(&index, &a, &cache, &[]);
    assert!(ok, "{log}");
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    for section in [
        "id=\"a1\"",
        "id=\"a2\"",
        "id=\"a4\"",
        "id=\"a6\"",
        "id=\"a7\"",
        "id=\"a8\"",
        "<svg",
    ] {
        assert!(html.contains(section), "report.html lacks {section}");
    }
    let first = numbers(&a);
    // Every row of every set was scored and recorded once.
    let lines = std::fs::read_to_string(a.join("rows.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 40 + 12);
    let base = &first["census"]["base"][0];
    assert_eq!(base["rows"], 40);
    assert_eq!(
        base["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>(),
        40
    );

    // Kill an audit of the same rows part-way, then resume it.
    let mut child = Command::new(common::bin())
        .args(["audit", "--quiet", "--index"])
        .arg(&index)
        .arg("--out")
        .arg(&b)
        .arg("--model")
        .arg(common::default_model())
        .args([
            "--rows",
            "40",
            "--rows-per-config",
            "12",
            "--context",
            "16,24",
        ])
        .args([
            "--continuation",
            "8,16",
            "--batch",
            "8",
            "--predictor-epochs",
            "4",
        ])
        .env("MEMAUDIT_CACHE_DIR", &cache)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n = std::fs::read_to_string(b.join("rows.jsonl"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 16 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no rows appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the audit ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::read_to_string(b.join("rows.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        partial < 52,
        "killed too late to test resuming ({partial} rows)"
    );
    let (ok, log) = audit(&index, &b, &cache, &[]);
    assert!(ok, "{log}");
    let resumed = numbers(&b);
    let rows_b = std::fs::read_to_string(b.join("rows.jsonl")).unwrap();
    assert_eq!(rows_b.lines().count(), 52, "rows redone or lost on resume");
    assert_eq!(
        first, resumed,
        "a resumed audit differs from an uninterrupted one"
    );

    // Other parameters in the same directory are refused, naming the difference.
    let (ok, log) = audit(&index, &b, &cache, &["--seed", "2"]);
    assert!(!ok && log.contains("seed: 1 before, 2 now"), "{log}");
}

/// Pythia's architecture audits like any model: two GPT-NeoX checkpoints (the committed tiny
/// random ones, parallel and sequential residual) score the same text, with the transition
/// matrix between them, whose invariant holds.
#[test]
fn two_gpt_neox_checkpoints_audit_with_transitions_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let index = licence_index(dir.path());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let models = [
        fixtures.join("neox-tiny"),
        fixtures.join("neox-tiny-sequential"),
    ];
    let out = dir.path().join("neox");
    let (ok, log) = audit_models(&index, &out, &dir.path().join("cache"), &models, &[]);
    assert!(ok, "{log}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let archs: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["gpt-neox (parallel residual)", "gpt-neox"]);
    let t = r["transitions"].as_array().unwrap();
    assert_eq!(t.len(), 2, "one matrix each way");
    for t in t {
        assert_eq!(t["rows"], 40);
        let sizes = |k: &str| -> Vec<f64> {
            t[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        let (from, to) = (sizes("from_sizes"), sizes("to_sizes"));
        assert_eq!(from.iter().sum::<f64>(), 40.0);
        for j in 0..5 {
            let through: f64 = (0..5)
                .filter(|&i| from[i] > 0.0)
                .map(|i| from[i] * t["p"][i][j].as_f64().unwrap())
                .sum();
            assert!(
                (through - to[j]).abs() < 1e-9,
                "bucket {j}: {through} vs {}",
                to[j]
            );
        }
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("gpt-neox (parallel residual)") && html.contains("id=\"a3\""));
}

#[test]
fn bad_input_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let index = licence_index(dir.path());
    let cache = dir.path().join("cache");
    // Longer than any document.
    let (ok, log) = audit(
        &index,
        &dir.path().join("r1"),
        &cache,
        &["--context", "60000"],
    );
    assert!(!ok && log.contains("no place in the corpus"), "{log}");
    // Not a model.
    let bogus = dir.path().join("model.bin");
    std::fs::write(&bogus, b"not a model").unwrap();
    let o = Command::new(common::bin())
        .args(["audit", "--quiet", "--index"])
        .arg(&index)
        .arg("--out")
        .arg(dir.path().join("r2"))
        .arg("--model")
        .arg(&bogus)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("model.bin"), "{err}");
    // A token file that is not whole rows.
    let rows = dir.path().join("rows.bin");
    std::fs::write(&rows, [0u8; 7]).unwrap();
    let o = Command::new(common::bin())
        .args(["audit", "--quiet", "--rows-file"])
        .arg(&rows)
        .args(["--row-len", "4", "--out"])
        .arg(dir.path().join("r3"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not a whole number of rows"),
        "{err}"
    );
}

#[test]
fn a_row_whose_teacher_forced_ranks_are_all_zero_scores_k_equal_to_k() {
    let path = common::default_model();
    let model = Model::load(&path, &Device::Cpu).unwrap();
    let tok = Tokenizer::for_model(&path, None).unwrap();
    let (c, k) = (24, 12);
    for ctx in contexts(&tok, c) {
        // A continuation whose every token is the model's first choice (checked by the
        // teacher-forced scoring path, not the decoder): free-running decoding must recall it.
        let mut row = ctx.clone();
        for _ in 0..k {
            let lp = model.log_probs(&row).unwrap();
            let last: Vec<f32> = lp
                .narrow(0, row.len() - 1, 1)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            row.push(argmax(&last));
        }
        let scores = model.score_batch(&[&row]).unwrap().remove(0);
        assert!(
            scores.rank[c - 1..].iter().all(|&r| r == 0),
            "{:?}",
            &scores.rank[c - 1..]
        );
        let d = model
            .greedy(
                &[&row[..c]],
                &DecodeOptions {
                    steps: k,
                    mask: None,
                    hidden: false,
                    context_entropy: false,
                },
            )
            .unwrap()
            .remove(0);
        let m = memaudit::audit::score::Matches::of(&d.tokens, &row[c..]);
        assert_eq!(m.k(k), k);
    }
}
