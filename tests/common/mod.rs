//! Helpers shared by the integration tests: building small indexes from in-memory documents.

#![allow(dead_code)]

use memaudit::corpus::normalize::Normalization;
use memaudit::index::format::FilterParams;
use memaudit::index::write::build::{build, BuildOptions, SaAlgorithm};
use memaudit::index::Index;
use std::path::{Path, PathBuf};

/// Writes `docs` as JSONL (field `text`, plus an `id`) into `dir/corpus.jsonl`.
pub fn write_jsonl(dir: &Path, docs: &[String]) -> PathBuf {
    let path = dir.join("corpus.jsonl");
    let mut s = String::new();
    for (i, d) in docs.iter().enumerate() {
        s.push_str(&serde_json::json!({ "text": d, "id": format!("d{i}") }).to_string());
        s.push('\n');
    }
    std::fs::write(&path, s).unwrap();
    path
}

pub fn options(out: PathBuf, inputs: Vec<PathBuf>, shard_bytes: u64) -> BuildOptions {
    BuildOptions {
        out,
        inputs,
        shard_bytes,
        threads: 2,
        memory_limit: 1 << 30,
        normalization: Normalization::default(),
        text_field: "text".into(),
        force: false,
        algorithm: SaAlgorithm::Libsais,
        progress: false,
        part: None,
        filter: SHORT_FILTER,
        // Every suffix, so that spans of any length are found; the tests of sparse arrays
        // ask for their step.
        sa_step: 1,
    }
}

/// The presence filter the tests build with: a reach of 6 bytes, so that the short spans of
/// small test corpora are found through it (a query whose minimum span is shorter searches
/// everything, which the same tests cover). Real builds use `FilterParams::current()`.
pub const SHORT_FILTER: FilterParams = FilterParams {
    kgram: 3,
    window: 4,
    bits_per_key: 14,
    route_bits_per_key: 14,
};

/// Builds an index of `docs` in `dir/index` with shards of `shard_bytes`, and opens it with its
/// presence filter and search samples read into memory, as the daemon does.
pub fn index_of(dir: &Path, docs: &[String], shard_bytes: u64, algorithm: SaAlgorithm) -> Index {
    sparse_index_of(dir, docs, shard_bytes, algorithm, 1)
}

/// [`index_of`] with a suffix array of every `sa_step`-th suffix.
pub fn sparse_index_of(
    dir: &Path,
    docs: &[String],
    shard_bytes: u64,
    algorithm: SaAlgorithm,
    sa_step: u32,
) -> Index {
    let input = write_jsonl(dir, docs);
    let out = dir.join("index");
    let mut opts = options(out.clone(), vec![input], shard_bytes);
    opts.algorithm = algorithm;
    opts.sa_step = sa_step;
    build(&opts).unwrap();
    let index = Index::open(&out).unwrap();
    index.prepare();
    index
}

/// Path to the compiled `memaudit` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_memaudit"))
}

/// The default probe model: `MEMAUDIT_MODEL`, else `SmolLM2-135M-Instruct.Q4_1.gguf` in
/// `MEMAUDIT_MODEL_DIR` (default `~/.cache/memaudit/models`), where `scripts/fetch-model.sh` puts it.
pub fn default_model() -> PathBuf {
    let path = std::env::var_os("MEMAUDIT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(memaudit::probe::default_model_path);
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-model.sh (or set MEMAUDIT_MODEL)",
        path.display()
    );
    path
}
