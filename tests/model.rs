//! The probe's f32 all-positions forward pass against references: llama.cpp's entropies and
//! surprisals on the committed fixture (scripts/make-entropy-fixture.py), and candle-transformers'
//! quantized llama decoding token by token with its KV cache; and GPT-NeoX (Pythia's
//! architecture) on tiny random checkpoints against Python transformers
//! (scripts/make-neox-fixture.py).
//!
//! Needs the default model (`scripts/fetch-model.sh`; `MEMAUDIT_MODEL` overrides the path).

mod common;

use candle_core::{Device, Tensor};
use memaudit::probe::model::{scores, Model};

fn ids(row: &serde_json::Value, key: &str) -> Vec<f64> {
    row[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn entropies_match_llama_cpp() {
    let model = Model::load(&common::default_model(), &Device::Cpu).unwrap();
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/entropy-llamacpp.json")).unwrap();
    for row in fixture["texts"].as_array().unwrap() {
        let toks: Vec<u32> = ids(row, "ids").iter().map(|&x| x as u32).collect();
        let s = scores(&model.log_probs(&toks).unwrap(), &toks).unwrap();
        let (want_h, want_s) = (ids(row, "entropy"), ids(row, "surprisal"));
        let mean_abs = |a: &[f32], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (*x as f64 - y).abs())
                .sum::<f64>()
                / b.len() as f64
        };
        let dh = mean_abs(&s.entropy, &want_h);
        let ds = mean_abs(&s.surprisal, &want_s);
        // Q4_1 weights (llama.cpp) against the same weights dequantized to f32 (here).
        assert!(
            dh < 0.15,
            "mean |Δentropy| {dh:.3} nats on {:?}",
            row["text"]
        );
        assert!(
            ds < 0.25,
            "mean |Δsurprisal| {ds:.3} nats on {:?}",
            row["text"]
        );
        eprintln!("mean |Δentropy| {dh:.3}, |Δsurprisal| {ds:.3} nats");
    }
}

#[test]
fn full_sequence_equals_cached_decoding() {
    use candle_core::quantized::gguf_file;
    use candle_transformers::models::quantized_llama::ModelWeights;
    let path = common::default_model();
    let model = Model::load(&path, &Device::Cpu).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let mut reference = ModelWeights::from_gguf(content, &mut f, &Device::Cpu).unwrap();
    let toks: Vec<u32> = vec![
        504, 23068, 327, 768, 3197, 284, 550, 4786, 1806, 359, 2724, 288,
    ];
    let ours: Vec<Vec<f32>> = model.log_probs(&toks).unwrap().to_vec2().unwrap();
    for (pos, &t) in toks.iter().enumerate() {
        let logits = reference
            .forward(
                &Tensor::new(&[t], &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
                pos,
            )
            .unwrap();
        let lp = candle_nn::ops::log_softmax(&logits.squeeze(0).unwrap(), 0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let top = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        };
        let diff = ours[pos]
            .iter()
            .zip(&lp)
            .map(|(a, b)| (a.exp() - b.exp()).abs())
            .sum::<f32>();
        assert!(diff < 0.2, "position {pos}: total variation {diff}");
        if diff < 0.05 {
            assert_eq!(top(&ours[pos]), top(&lp), "position {pos}");
        }
    }
}

#[test]
fn batched_equals_unbatched() {
    let model = Model::load(&common::default_model(), &Device::Cpu).unwrap();
    let a: Vec<u32> = vec![
        504, 23068, 327, 768, 3197, 284, 550, 4786, 1806, 359, 2724, 288,
    ];
    let b: Vec<u32> = vec![19556, 905];
    let c: Vec<u32> = (100..140).collect();
    let batch = model.log_probs_batch(&[&a, &b, &c]).unwrap();
    for (t, got) in [&a, &b, &c].into_iter().zip(&batch) {
        let want: Vec<Vec<f32>> = model.log_probs(t).unwrap().to_vec2().unwrap();
        let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
        assert_eq!(got.len(), t.len());
        let worst = got
            .iter()
            .flatten()
            .zip(want.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "max |Δlog p| {worst}");
    }
    assert!(model.log_probs_batch(&[&a, &[]]).is_err());
}

#[test]
fn fast_scoring_equals_the_log_softmax_reference() {
    let model = Model::load(&common::default_model(), &Device::Cpu).unwrap();
    // Lengths around the attention block (128) and pass size, in a batch mixing them.
    let texts: Vec<Vec<u32>> = [1usize, 2, 127, 128, 129, 300]
        .iter()
        .map(|&n| {
            (0..n as u32)
                .map(|i| (i * 7919 + n as u32) % 49152)
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = texts.iter().map(|t| t.as_slice()).collect();
    let fast = model.score_batch(&refs).unwrap();
    for (t, got) in texts.iter().zip(&fast) {
        let want = scores(&model.log_probs(t).unwrap(), t).unwrap();
        assert_eq!(got.entropy.len(), t.len());
        assert_eq!(got.surprisal.len(), t.len() - 1);
        let worst = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        assert!(worst(&got.entropy, &want.entropy) < 2e-3);
        assert!(worst(&got.surprisal, &want.surprisal) < 2e-3);
        let rank_off = got
            .rank
            .iter()
            .zip(&want.rank)
            .filter(|(a, b)| a.abs_diff(**b) > 1)
            .count();
        assert_eq!(rank_off, 0, "ranks differ by more than a tie");
    }
    assert!(
        model.score_batch(&[&[49152]]).is_err(),
        "id outside the vocabulary"
    );
}

/// The committed GPT-NeoX checkpoints: parallel residual, a quarter of each head rotary, exact
/// GELU (Pythia's settings); and sequential residual, full rotary, tanh GELU.
const NEOX: [&str; 2] = ["neox-tiny", "neox-tiny-sequential"];

fn neox_dir(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn neox_reference(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(neox_dir(name).join("reference.json")).unwrap()).unwrap()
}

/// Every position's log-probabilities agree with transformers' to 1e-4, on the reference path
/// and on the fast scoring path (entropy, surprisal, rank).
#[test]
fn gpt_neox_forward_matches_transformers() {
    for name in NEOX {
        let model = Model::load(&neox_dir(name), &Device::Cpu).unwrap();
        let reference = neox_reference(name);
        for row in reference["texts"].as_array().unwrap() {
            let toks: Vec<u32> = ids(row, "ids").iter().map(|&x| x as u32).collect();
            let want: Vec<Vec<f64>> = row["log_probs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect()
                })
                .collect();
            let lp = model.log_probs(&toks).unwrap();
            let ours: Vec<Vec<f32>> = lp.to_vec2().unwrap();
            let mut worst = 0f64;
            for (a, b) in ours.iter().zip(&want) {
                for (x, y) in a.iter().zip(b) {
                    worst = worst.max((*x as f64 - y).abs());
                }
            }
            assert!(worst < 1e-4, "{name}: log-probabilities differ by {worst}");
            // The spread of the reference shows the check can fail: a uniform model would
            // pass any wiring.
            let spread = want[0].iter().cloned().fold(f64::MIN, f64::max)
                - want[0].iter().cloned().fold(f64::MAX, f64::min);
            assert!(spread > 3.0, "{name}: reference too flat ({spread})");
            let fast = model.score_batch(&[&toks]).unwrap().remove(0);
            let slow = scores(&lp, &toks).unwrap();
            assert_eq!(fast.rank, slow.rank, "{name}");
            for (a, b) in fast.entropy.iter().zip(&slow.entropy) {
                assert!((a - b).abs() < 1e-4, "{name}: entropy {a} vs {b}");
            }
        }
    }
}

/// Greedy decoding with the KV cache (EOS masked, as transformers' `min_new_tokens` does)
/// writes the tokens transformers' `generate` wrote.
#[test]
fn gpt_neox_greedy_decoding_matches_transformers_generate() {
    use memaudit::probe::decode::DecodeOptions;
    for name in NEOX {
        let model = Model::load(&neox_dir(name), &Device::Cpu).unwrap();
        let reference = neox_reference(name);
        for row in reference["texts"].as_array().unwrap() {
            let toks: Vec<u32> = ids(row, "ids").iter().map(|&x| x as u32).collect();
            let want: Vec<u32> = ids(row, "greedy").iter().map(|&x| x as u32).collect();
            let opts = DecodeOptions {
                steps: want.len(),
                mask: Some(0),
                hidden: true,
                context_entropy: true,
            };
            // Alone, and batched (each row of a batch decodes as alone).
            let got = model.greedy(&[&toks], &opts).unwrap().remove(0);
            assert_eq!(got.tokens, want, "{name}: {:?}", row["text"]);
            for got in model.greedy(&[toks.as_slice(); 3], &opts).unwrap() {
                assert_eq!(got.tokens, want, "{name}, batched: {:?}", row["text"]);
            }
        }
    }
}

/// The probe loads a GPT-NeoX checkpoint with the tokenizer.json inside it and scores text as
/// the model does on the same ids.
#[test]
fn the_probe_scores_with_a_gpt_neox_checkpoint() {
    use memaudit::probe::{self, ProbeOptions};
    let opts = ProbeOptions {
        window: 64,
        overlap: 16,
        ..ProbeOptions::default()
    };
    let probe = probe::load(&neox_dir("neox-tiny"), None, &Device::Cpu, opts).unwrap();
    let reference = neox_reference("neox-tiny");
    // The reference row of the text after the document-start token, as the probe reads it.
    let row = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["start"] == true)
        .unwrap();
    let scored = probe
        .score(&[row["text"].as_str().unwrap()])
        .unwrap()
        .remove(0);
    let got: Vec<u32> = scored.tokens.iter().map(|t| t.id).collect();
    let want: Vec<u32> = ids(row, "ids").iter().map(|&x| x as u32).collect();
    assert_eq!(
        want[0], 0,
        "the reference row starts with the document-start token"
    );
    assert_eq!(
        got,
        want[1..],
        "the checkpoint's tokenizer.json tokenizes the text"
    );
    // Token i of the text is predicted at reference position i (after the start token).
    let lp = row["log_probs"].as_array().unwrap();
    for (i, t) in scored.tokens.iter().enumerate() {
        let lp_i: Vec<f64> = lp[i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let want_s = -lp_i[t.id as usize];
        let want_h: f64 = -lp_i.iter().map(|l| l.exp() * l).sum::<f64>();
        assert!(
            (t.surprisal as f64 - want_s).abs() < 1e-3,
            "token {i}: {t:?} vs {want_s}"
        );
        assert!(
            (t.entropy as f64 - want_h).abs() < 1e-3,
            "token {i}: {t:?} vs {want_h}"
        );
    }
}
