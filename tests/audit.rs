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
    };
    let cached = model.greedy(&refs, &opts).unwrap();
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
