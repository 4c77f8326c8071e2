//! The tokenizer built from the default model's GGUF metadata equals llama.cpp's tokenization
//! (fixture made by scripts/make-tokenizer-fixture.py) and round-trips text.
//!
//! Needs the default model: `scripts/fetch-model.sh` installs it (scripts/test.sh and .ci/run do);
//! `MEMAUDIT_MODEL` overrides the path.

mod common;

use memaudit::probe::tokenizer::Tokenizer;

#[test]
fn equals_llama_cpp_on_the_fixture() {
    let tok = Tokenizer::from_gguf(&common::default_model()).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/tokenizer-llamacpp.json")).unwrap();
    let rows = fixture["texts"].as_array().unwrap();
    assert!(rows.len() >= 15);
    for row in rows {
        let text = row["text"].as_str().unwrap();
        let want: Vec<u32> = row["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text).unwrap(), want, "{text:?}");
    }
}

#[test]
fn round_trips_text() {
    let tok = Tokenizer::from_gguf(&common::default_model()).unwrap();
    for text in [
        "",
        " ",
        "Hello  world\n\n",
        "naïve café 日本語 🎉",
        "x = [1, 22, 333]\n\tpass",
        "<|im_end|>",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
        assert_eq!(tok.count(text), ids.len());
    }
}

#[test]
fn refuses_what_it_cannot_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("not-a-model.gguf");
    std::fs::write(&p, b"GGUF but not really").unwrap();
    let e = format!("{:#}", Tokenizer::load(&p).err().unwrap());
    assert!(e.contains("not-a-model.gguf") && e.contains("GGUF"), "{e}");
}
