//! The probe's f32 all-positions forward pass against references: llama.cpp's entropies and
//! surprisals on the committed fixture (scripts/make-entropy-fixture.py), and candle-transformers'
//! quantized llama decoding token by token with its KV cache.
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
