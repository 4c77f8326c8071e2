//! The probe as a library user drives it, with the real default model: windowing of long texts,
//! token offsets, the boundary signals on real text, and loading a safetensors checkpoint.
//!
//! Needs the default model (`scripts/fetch-model.sh`; `MEMAUDIT_MODEL` overrides the path).

mod common;

use candle_core::{Device, Tensor};
use memaudit::probe::boundary::{analyze, BoundaryOptions};
use memaudit::probe::checkpoint::rotate_half_rope_rows;
use memaudit::probe::{self, Probe, ProbeOptions};
use std::collections::HashMap;

fn probe_with(window: usize, overlap: usize) -> Probe {
    probe::load(
        &common::default_model(),
        None,
        &Device::Cpu,
        ProbeOptions {
            window,
            overlap,
            ..ProbeOptions::default()
        },
    )
    .unwrap()
}

fn licence() -> String {
    std::fs::read_to_string("/usr/share/common-licenses/GPL-3").unwrap()
}

#[test]
fn tokens_cover_the_text_in_order_with_offsets() {
    let p = probe_with(512, 128);
    let text = "Ünïcode tëxt, 数字 12345 and emoji 🦀 in one line.\n\tTabs too.";
    let s = p.score(&[text, ""]).unwrap();
    let t = &s[0].tokens;
    assert_eq!(t.len(), p.tokenizer.encode(text).unwrap().len());
    let chars = text.chars().count();
    for w in t.windows(2) {
        assert!(w[0].start <= w[1].start && w[0].end <= w[1].end);
    }
    assert!(t.iter().all(|k| k.start <= k.end && k.end <= chars));
    assert!(t
        .iter()
        .all(|k| k.entropy >= 0.0 && k.surprisal >= 0.0 && k.entropy.is_finite()));
    // The first token is scored too (predicted from the document-start token).
    assert!(t[0].surprisal > 0.0);
    let m = &s[0].summary;
    assert_eq!(m.tokens, t.len());
    let mean = t.iter().map(|k| k.entropy).sum::<f32>() / t.len() as f32;
    assert!((m.mean_entropy.unwrap() - mean).abs() < 1e-4);
    // The empty text: no tokens, no means.
    assert!(s[1].tokens.is_empty() && s[1].summary.mean_entropy.is_none());
}

#[test]
fn long_texts_are_windowed_with_enough_context() {
    let text: String = licence().chars().take(6000).collect();
    let whole = probe_with(2048, 128).score(&[&text]).unwrap().remove(0);
    let windowed = probe_with(256, 128).score(&[&text]).unwrap().remove(0);
    let n = whole.tokens.len();
    assert!(
        n > 1000 && n < 2047,
        "{n} tokens: the text must need several small windows"
    );
    assert_eq!(windowed.tokens.len(), n);
    for (a, b) in whole.tokens.iter().zip(&windowed.tokens) {
        assert_eq!((a.id, a.start, a.end), (b.id, b.start, b.end));
    }
    // The first window (255 scored rows) sees the same context: the same numbers.
    for (a, b) in whole.tokens.iter().zip(&windowed.tokens).take(255) {
        assert!((a.entropy - b.entropy).abs() < 2e-3);
        assert!((a.surprisal - b.surprisal).abs() < 2e-3);
    }
    // Later tokens see 129..255 tokens of context instead of all before them: close, not equal
    // (0.30 nats mean on this licence text, whose phrases recur far apart; a window misaligned by
    // one token gives ~2).
    let later: Vec<f32> = whole.tokens[255..]
        .iter()
        .zip(&windowed.tokens[255..])
        .map(|(a, b)| (a.entropy - b.entropy).abs())
        .collect();
    let mean = later.iter().sum::<f32>() / later.len() as f32;
    assert!(
        mean < 0.4,
        "mean |Δentropy| {mean} with 128+ tokens of context"
    );
    assert!(later.iter().any(|&d| d > 1e-3), "windows really were cut");
    // No overlap, one-token windows, or windows beyond the model's context are refused.
    let m = probe_with(512, 0);
    assert!(Probe::new(
        m.model.clone(),
        m.tokenizer.clone(),
        ProbeOptions {
            window: 100,
            overlap: 99,
            ..ProbeOptions::default()
        }
    )
    .is_err());
    assert!(Probe::new(
        m.model.clone(),
        m.tokenizer.clone(),
        ProbeOptions {
            window: 1 << 20,
            overlap: 0,
            ..ProbeOptions::default()
        }
    )
    .is_err());
}

/// A passage seen earlier in the same text is copied from context (induction): the model's
/// entropy falls inside the repeat and rises after it. The boundary signals must show that on
/// real model output: the second occurrence scores far above the first.
#[test]
fn boundary_signals_see_a_repeated_passage() {
    let p = probe_with(1024, 128);
    let passage: String = licence()
        .split("\n\n")
        .find(|s| s.starts_with("  The licenses for most software"))
        .unwrap()
        .to_string();
    let intro = "Notes from the Tuesday planning meeting, kept by the storage team. ";
    let middle = " After the break we argued about retention windows for the audit logs, and nobody could agree on a number. Then someone read the paragraph out again: ";
    let outro =
        " Lunch was late, the espresso machine broke twice, and we still have no retention policy.";
    let text = format!("{intro}{passage}{middle}{passage}{outro}");
    let s = p.score(&[&text]).unwrap().remove(0);
    let chars = |s: &str| s.chars().count();
    let first = chars(intro)..chars(intro) + chars(&passage);
    let second_start = first.end + chars(middle);
    let second = second_start..second_start + chars(&passage);
    let b = analyze(
        &s.tokens,
        &[first, second.clone()],
        &BoundaryOptions::default(),
    );
    let (a, r) = (&b.spans[0], &b.spans[1]);
    eprintln!("first: {a:?}\nrepeat: {r:?}");
    assert!(
        r.entropy_inside < 0.5 * a.entropy_inside,
        "repeat {} vs first {}",
        r.entropy_inside,
        a.entropy_inside
    );
    assert!(r.entropy_inside < 1.0);
    assert!(
        r.jump_at_end.unwrap() > 0.7,
        "entropy jumps where the copy ends"
    );
    assert!(r.score > a.score + 0.3);
    assert!((b.score - r.score).abs() < 1e-6);
    // Without spans, the repeat is an unexplained low-entropy run.
    let runs = analyze(&s.tokens, &[], &BoundaryOptions::default()).unexplained_runs;
    assert!(
        runs.iter()
            .any(|run| run.start >= second.start && run.end <= second.end + 10 && run.tokens >= 24),
        "{runs:?}"
    );
}

/// A Hugging Face style checkpoint (config.json, model.safetensors with rotate-half q/k rows,
/// tokenizer.json), written from the default GGUF's dequantized weights, scores like the GGUF.
#[test]
fn safetensors_checkpoint_scores_like_the_gguf() {
    use candle_core::quantized::gguf_file;
    let gguf = common::default_model();
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::open(&gguf).unwrap();
    let c = gguf_file::Content::read(&mut f).unwrap();
    let md = |k: &str| c.metadata[k].to_u32().unwrap() as usize;
    let (layers, heads, kv) = (
        md("llama.block_count"),
        md("llama.attention.head_count"),
        md("llama.attention.head_count_kv"),
    );
    let mut get = |n: &str| -> Tensor {
        c.tensor(&mut f, n, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
    };
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("model.embed_tokens.weight".into(), get("token_embd.weight"));
    t.insert("model.norm.weight".into(), get("output_norm.weight"));
    for i in 0..layers {
        let (g, h) = (format!("blk.{i}"), format!("model.layers.{i}"));
        let pairs = [
            ("attn_norm", "input_layernorm"),
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_norm", "post_attention_layernorm"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
        ];
        for (a, b) in pairs {
            t.insert(format!("{h}.{b}.weight"), get(&format!("{g}.{a}.weight")));
        }
        let q = rotate_half_rope_rows(&get(&format!("{g}.attn_q.weight")), heads).unwrap();
        let k = rotate_half_rope_rows(&get(&format!("{g}.attn_k.weight")), kv).unwrap();
        t.insert(format!("{h}.self_attn.q_proj.weight"), q);
        t.insert(format!("{h}.self_attn.k_proj.weight"), k);
    }
    candle_core::safetensors::save(&t, dir.path().join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": "llama",
        "hidden_size": md("llama.embedding_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "num_hidden_layers": layers,
        "vocab_size": 49152,
        "rms_norm_eps": c.metadata["llama.attention.layer_norm_rms_epsilon"].to_f32().unwrap(),
        "rope_theta": c.metadata["llama.rope.freq_base"].to_f32().unwrap(),
        "max_position_embeddings": md("llama.context_length"),
        "tie_word_embeddings": true
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let from_gguf = probe_with(512, 128);
    from_gguf
        .tokenizer
        .save(&dir.path().join("tokenizer.json"))
        .unwrap();
    let from_st = probe::load(dir.path(), None, &Device::Cpu, ProbeOptions::default()).unwrap();
    let text = "fn main() { println!(\"memaudit scores every token\"); } // 2026";
    let (a, b) = (
        from_gguf.score(&[text]).unwrap().remove(0),
        from_st.score(&[text]).unwrap().remove(0),
    );
    assert_eq!(a.tokens.len(), b.tokens.len());
    for (x, y) in a.tokens.iter().zip(&b.tokens) {
        assert_eq!(x.id, y.id);
        assert!((x.entropy - y.entropy).abs() < 1e-3, "{x:?} vs {y:?}");
        assert!((x.surprisal - y.surprisal).abs() < 1e-3);
    }
    // A checkpoint that is not llama, or lacks a tensor, is refused with the path named.
    std::fs::write(
        dir.path().join("config.json"),
        config.to_string().replace("\"llama\"", "\"gpt2\""),
    )
    .unwrap();
    let e = format!(
        "{:#}",
        probe::load(dir.path(), None, &Device::Cpu, ProbeOptions::default())
            .err()
            .unwrap()
    );
    assert!(
        e.contains("not supported") && e.contains(&dir.path().display().to_string()),
        "{e}"
    );
}

/// A text longer than `max_tokens` is scored on its first `max_tokens` tokens only: the probe's
/// time on a degenerate output is bounded whatever its length.
#[test]
fn the_probe_scores_at_most_max_tokens_of_a_text() {
    let p = probe::load(
        &common::default_model(),
        None,
        &Device::Cpu,
        ProbeOptions {
            window: 64,
            overlap: 16,
            max_tokens: 100,
        },
    )
    .unwrap();
    let text = "the cat sat on the mat and ".repeat(200);
    let s = p.score(&[&text]).unwrap().remove(0);
    assert_eq!(s.tokens.len(), 100);
    assert_eq!(s.summary.tokens, 100);
    assert!(s.tokens.last().unwrap().end < text.len() / 4);
}
