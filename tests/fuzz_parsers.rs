//! Everything that parses, fed arbitrary input: corpus files, manifests, query text. Each must
//! answer (a document, a skip with a reason, an error naming the file) and never panic.
//!
//! (Coverage-guided fuzzing, with cargo-fuzz on the stable toolchain, is in `fuzz/`: span search,
//! near chaining, streamed outputs and message decoding; `scripts/fuzz.sh`.)

mod common;

use memaudit::corpus::normalize::Normalization;
use memaudit::corpus::normalize::Normalizer;
use memaudit::corpus::{self, Item};
use memaudit::index::format::MANIFEST;
use memaudit::index::write::build::SaAlgorithm;
use memaudit::index::{Index, SpanOptions};
use proptest::prelude::*;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

fn items_of(path: &std::path::Path) -> Vec<Item> {
    let found = corpus::discover(&[path.to_path_buf()]).unwrap();
    let mut items = Vec::new();
    corpus::read_file(
        &found.files[0],
        "text",
        Arc::new(AtomicU64::new(0)),
        &mut |i| items.push(i),
    );
    items
}

/// Lines that are JSON-ish: valid objects, broken ones, wrong types, invalid UTF-8.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z ]{0,20}".prop_map(|t| serde_json::json!({ "text": t, "k": 1 })
            .to_string()
            .into_bytes()),
        prop::collection::vec(any::<u8>(), 0..60),
        "\\{\"text\": [0-9\\[\\]\"a-z,:{}]{0,20}".prop_map(String::into_bytes),
        Just(b"{\"text\": \"\xff\xfe\"}".to_vec()),
        Just(b"[\"text\"]".to_vec()),
        Just(b"   ".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every non-blank JSONL line becomes exactly one document or one skip with a reason.
    #[test]
    fn jsonl_lines_become_documents_or_reasons(lines in prop::collection::vec(line(), 0..30)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        let mut bytes = Vec::new();
        for l in &lines {
            bytes.extend(l.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
            bytes.push(b'\n');
        }
        std::fs::write(&p, &bytes).unwrap();
        let items = items_of(&p);
        let non_blank = bytes.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()).count();
        prop_assert_eq!(items.len(), non_blank);
        for i in &items {
            if let Item::Skipped(s) = i {
                prop_assert!(!s.reason.is_empty() && s.line.is_some());
            }
        }
    }

    /// Arbitrary bytes behind a compressed name: a skip with a reason, never a panic.
    #[test]
    fn corrupt_compressed_files_are_skipped(bytes in prop::collection::vec(any::<u8>(), 0..300), zst in any::<bool>(), txt in any::<bool>()) {
        let d = tempfile::tempdir().unwrap();
        let name = format!("x.{}.{}", if txt { "txt" } else { "jsonl" }, if zst { "zst" } else { "gz" });
        let p = d.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let _ = items_of(&p);
    }

    /// Normalization: the mapped and plain paths agree, it is idempotent, and every output byte maps
    /// to a valid, ordered range of input characters.
    #[test]
    fn normalization_is_consistent(s in "\\PC{0,60}|[a\u{301}\u{300}e \t\n\u{0}\u{1100}\u{1161}\u{11a8}가Å]{0,40}", ws in any::<bool>(), nfc in any::<bool>(), lower in any::<bool>()) {
        let n = Normalizer::new(Normalization { collapse_whitespace: ws, nfc, lowercase: lower, stream_safe: true });
        let m = n.normalize_mapped(&s);
        prop_assert_eq!(&n.normalize(&s), &m.text);
        prop_assert_eq!(n.normalize(&m.text), m.text.clone());
        prop_assert!(!m.text.contains('\0'));
        prop_assert_eq!(m.input_chars, s.chars().count());
        let mut prev = (0, 0);
        for &(a, b) in &m.origin {
            prop_assert!(a < b && b as usize <= m.input_chars && a >= prev.0);
            prev = (a, b);
        }
    }
}

fn built() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let d = tempfile::tempdir().unwrap();
    let docs: Vec<String> = (0..20)
        .map(|i| format!("document number {i} with some shared words"))
        .collect();
    common::index_of(d.path(), &docs, 300, SaAlgorithm::Libsais);
    let idx = d.path().join("index");
    // A takedown, so the manifest has removed ids and a history to tamper with too.
    let sel = memaudit::index::write::remove::Selection {
        ids: vec![1, 7, 12],
        wheres: vec![],
    };
    memaudit::index::write::remove::remove(&idx, &sel, Some("fuzz".into())).unwrap();
    let manifest = std::fs::read_to_string(idx.join(MANIFEST)).unwrap();
    (d, idx, manifest)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A manifest with any number replaced by an arbitrary one: opened or refused (naming a file),
    /// and if opened, queries still answer.
    #[test]
    fn manifest_numbers_tampered(which in any::<prop::sample::Index>(), value in prop_oneof![any::<u64>(), 0u64..1000, Just(u64::MAX)]) {
        let (_d, idx, manifest) = built();
        let mut v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        let mut numbers = Vec::new();
        fn collect(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| collect(x, format!("{path}/{k}"), out)),
                serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| collect(x, format!("{path}/{i}"), out)),
                serde_json::Value::Number(_) => out.push(path),
                _ => {}
            }
        }
        collect(&v, String::new(), &mut numbers);
        let target = which.get(&numbers).clone();
        *v.pointer_mut(&target).unwrap() = value.into();
        std::fs::write(idx.join(MANIFEST), serde_json::to_string(&v).unwrap()).unwrap();
        match Index::open(&idx) {
            Ok(index) => {
                let _ = index.spans("document number 3 with some shared words and more", &SpanOptions { min_len: 5, ..Default::default() });
                let _ = index.count("shared");
            }
            Err(e) => prop_assert!(e.to_string().contains(&idx.display().to_string()), "{}", e),
        }
    }

    /// A shard file name from anywhere (paths, other extensions, empty): refused naming the
    /// manifest unless it is a plain `shard-*.EXT` name in the directory.
    #[test]
    fn manifest_file_names_tampered(name in prop_oneof![
        Just("../shard-00000.text".to_string()),
        Just("/etc/passwd".to_string()),
        Just("shard-00000.sa".to_string()),
        Just("shard-.text".to_string()),
        Just(String::new()),
        "[a-z./-]{0,20}",
    ]) {
        let (_d, idx, manifest) = built();
        let mut v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        v["shards"][0]["text"]["name"] = name.clone().into();
        std::fs::write(idx.join(MANIFEST), serde_json::to_string(&v).unwrap()).unwrap();
        match Index::open(&idx) {
            Ok(_) => prop_assert!(name == "shard-00000.text", "{name:?} opened"),
            Err(e) => prop_assert!(e.to_string().contains(&idx.display().to_string()), "{}", e),
        }
    }

    /// Arbitrary bytes as the manifest: refused with the manifest named.
    #[test]
    fn manifest_garbage_refused(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let (_d, idx, _) = built();
        std::fs::write(idx.join(MANIFEST), &bytes).unwrap();
        match Index::open(&idx) {
            Ok(_) => prop_assert!(false, "garbage manifest opened"),
            Err(e) => prop_assert!(e.to_string().contains("manifest.json"), "{}", e),
        }
    }
}

/// The committed GPT-NeoX checkpoint's config.json with one value replaced.
fn tampered_checkpoint(key: &str, value: serde_json::Value) -> tempfile::TempDir {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/neox-tiny");
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    cfg[key] = value;
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    dir
}

/// A checkpoint's config.json with any of these values in any key loads or is refused with the
/// file named; it never panics (and never tries to allocate what it declares). Every pair is
/// tried: a sampled few would miss the one that divides by zero.
#[test]
fn checkpoint_config_values_tampered() {
    let keys = [
        "hidden_size",
        "num_attention_heads",
        "num_hidden_layers",
        "rotary_pct",
        "max_position_embeddings",
        "layer_norm_eps",
        "rotary_emb_base",
        "hidden_act",
        "use_parallel_residual",
        "attention_bias",
        "model_type",
        "intermediate_size",
        "vocab_size",
    ];
    let values = [
        serde_json::json!(0),
        serde_json::json!(1),
        serde_json::json!(3),
        serde_json::json!(-1),
        serde_json::json!(1e300),
        serde_json::json!(u64::MAX),
        serde_json::json!(0.5),
        serde_json::json!(0.3),
        serde_json::json!("gelu"),
        serde_json::json!("llama"),
        serde_json::json!(null),
        serde_json::json!(false),
        serde_json::json!([1]),
    ];
    for key in keys {
        for value in &values {
            let dir = tampered_checkpoint(key, value.clone());
            let r = std::panic::catch_unwind(|| {
                memaudit::probe::model::Model::load(dir.path(), &candle_core::Device::Cpu)
                    .map(|_| ())
            });
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => assert!(
                    format!("{e:#}").contains(&dir.path().display().to_string()),
                    "{key} = {value}: {e:#}"
                ),
                Err(_) => panic!("panicked with {key} = {value}"),
            }
        }
    }
}
