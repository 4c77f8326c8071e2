//! A damaged index is refused with the file named, or (for damage that keeps sizes) found by
//! `verify`; and no file content, however damaged, makes a query panic.

mod common;

use memaudit::index::format::{
    filter_file_name, shard_file_name, FileKind, Manifest, HEADER_LEN, MANIFEST,
};
use memaudit::index::read::verify::{verify, VerifyOptions};
use memaudit::index::write::build::SaAlgorithm;
use memaudit::index::{Index, SpanOptions};
use proptest::prelude::*;
use std::path::Path;

fn docs() -> Vec<String> {
    (0..30)
        .map(|i| {
            format!(
                "Document {i}: the quick brown fox jumps over the lazy dog {} times. 日本語 {}",
                i * 7,
                "ab".repeat(i)
            )
        })
        .collect()
}

/// An index whose shard files the test may damage: they are written read-only (checked here),
/// and made writable again, as an operator with the rights to would.
fn build(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    common::index_of(dir, &docs(), 600, SaAlgorithm::Libsais);
    let idx = dir.join("index");
    for e in std::fs::read_dir(&idx).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("shard-") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o222, 0, "{name} is written read-only");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    idx
}

fn full_verify(idx: &Path) -> memaudit::index::read::verify::VerifyReport {
    verify(
        idx,
        VerifyOptions {
            full: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn open_err(dir: &Path) -> String {
    match Index::open(dir) {
        Ok(_) => panic!("a damaged index was opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_and_extended_files_are_refused_by_name() {
    let names = FileKind::ALL
        .map(|kind| shard_file_name(1, kind))
        .into_iter()
        .chain([filter_file_name(1, 0)]);
    for name in names {
        let d = tempfile::tempdir().unwrap();
        let idx = build(d.path());
        let path = idx.join(&name);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let e = open_err(&idx);
        assert!(e.contains(&name) && e.contains("truncated"), "{e}");
        f.set_len(len + 5).unwrap();
        let e = open_err(&idx);
        assert!(e.contains(&name), "{e}");
    }
}

#[test]
fn missing_file_wrong_version_and_bad_manifest_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let idx = build(d.path());
    let sa = idx.join(shard_file_name(0, FileKind::Sa));
    let saved = std::fs::read(&sa).unwrap();
    std::fs::remove_file(&sa).unwrap();
    assert!(open_err(&idx).contains("shard-00000.sa"));
    std::fs::write(&sa, &saved).unwrap();

    // A file of the right size but another section's header.
    let text = idx.join(shard_file_name(0, FileKind::Text));
    let mut bytes = std::fs::read(&text).unwrap();
    bytes[8..12].copy_from_slice(b"SARR");
    std::fs::write(&text, &bytes).unwrap();
    let e = open_err(&idx);
    assert!(
        e.contains("shard-00000.text") && e.contains("section"),
        "{e}"
    );
    bytes[8..12].copy_from_slice(b"TEXT");
    std::fs::write(&text, &bytes).unwrap();

    let manifest = idx.join(MANIFEST);
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        original.replace("\"format_version\": 2", "\"format_version\": 7"),
    )
    .unwrap();
    let e = open_err(&idx);
    assert!(
        e.contains("manifest.json") && e.contains("version 7") && e.contains("versions 1 to 2"),
        "{e}"
    );
    // A sparse array whose step or slot count the manifest gets wrong.
    let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
    m["shards"][0]["sa_step"] = 0.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = open_err(&idx);
    assert!(e.contains("manifest.json") && e.contains("step 0"), "{e}");
    m["shards"][0]["sa_step"] = 4.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = open_err(&idx);
    assert!(e.contains("manifest.json") && e.contains("step 4"), "{e}");
    m["shards"][0]["sa_slots"] = 3.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = open_err(&idx);
    assert!(e.contains("shard-00000.sa"), "{e}");
    std::fs::write(&manifest, &original[..original.len() / 2]).unwrap();
    let e = open_err(&idx);
    assert!(
        e.contains("manifest.json") && e.contains("not valid"),
        "{e}"
    );
    std::fs::remove_file(&manifest).unwrap();
    assert!(open_err(&idx).contains("manifest.json"));
    std::fs::write(&manifest, &original).unwrap();
    assert!(Index::open(&idx).is_ok());
}

#[test]
fn verify_finds_flipped_bytes_by_file() {
    let names = FileKind::ALL
        .map(|kind| shard_file_name(0, kind))
        .into_iter()
        .chain([filter_file_name(1, 0)]);
    for name in names {
        let d = tempfile::tempdir().unwrap();
        let idx = build(d.path());
        assert!(full_verify(&idx).problems.is_empty());
        let path = idx.join(&name);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
        bytes[at] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        let report = full_verify(&idx);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains(&name) && p.contains("checksum")),
            "{name}: {:?}",
            report.problems
        );
    }
}

/// A manifest changed by hand that keeps its index id (a document taken out of `removed`, say)
/// is refused at open, naming the manifest: the id is what tells a daemon the index changed.
#[test]
fn a_manifest_whose_id_does_not_match_its_contents_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let idx = build(d.path());
    let manifest = idx.join(MANIFEST);
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["removed"] = serde_json::json!([3]);
    std::fs::write(&manifest, m.to_string()).unwrap();
    let e = open_err(&idx);
    assert!(
        e.contains("manifest.json") && e.contains("changed by hand"),
        "{e}"
    );
}

#[test]
fn verify_full_finds_disorder_even_with_matching_checksum() {
    // Swap two suffix-array entries and re-record the checksum: only the order check can see it.
    let d = tempfile::tempdir().unwrap();
    let idx = build(d.path());
    let path = idx.join(shard_file_name(0, FileKind::Sa));
    let mut bytes = std::fs::read(&path).unwrap();
    let (a, b) = (HEADER_LEN + 4 * 10, HEADER_LEN + 4 * 200);
    for k in 0..4 {
        bytes.swap(a + k, b + k);
    }
    std::fs::write(&path, &bytes).unwrap();
    let manifest = idx.join(MANIFEST);
    // The checksum re-recorded, and the index id recomputed to match it (an id that does not
    // match its manifest is refused at open).
    let mut m: Manifest =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m.shards[0].sa.blake3 = blake3::hash(&bytes).to_hex().to_string();
    m.index_id = m.id();
    std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();
    let report = full_verify(&idx);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("shard-00000.sa") && p.contains("out of order")),
        "{:?}",
        report.problems
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Overwrite the body of any shard file with arbitrary bytes (sizes and headers intact, so the
    /// index still opens): queries must still return, never panic.
    #[test]
    fn garbage_file_contents_never_panic_a_query(
        kind in prop::sample::select(FileKind::ALL.to_vec()),
        shard in 0u32..2,
        seed in any::<u64>(),
        fill in prop::sample::select(vec![0u8, 0xff, 0x41, 0x80]),
        random in any::<bool>(),
        query in "[a-zA-Z0-9 :.日本語]{0,200}",
    ) {
        let d = tempfile::tempdir().unwrap();
        let idx = build(d.path());
        let path = idx.join(shard_file_name(shard, kind));
        let mut bytes = std::fs::read(&path).unwrap();
        let mut x = seed | 1;
        for b in &mut bytes[HEADER_LEN..] {
            *b = if random { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 } else { fill };
        }
        std::fs::write(&path, &bytes).unwrap();
        let index = Index::open(&idx).unwrap();
        for min_len in [1, 4, 30] {
            let r = index.spans(&query, &SpanOptions { min_len, max_hits: 5, tokens: None, budget: None });
            prop_assert!(r.coverage <= 1.0);
            let _ = index.count(&query);
        }
        let whole = docs().concat();
        let _ = index.spans(&whole, &SpanOptions { min_len: 10, max_hits: 5, tokens: None, budget: None });
        let report = full_verify(&idx);
        prop_assert!(!report.problems.is_empty());
    }
}

/// A shard file replaced under its own name (a backup copied over it, another build's file)
/// while a reader has the index open: moving to the "next" generation checksums it again,
/// because its inode changed, and refuses it naming the file, though the manifest is unchanged.
#[test]
fn a_file_replaced_under_its_name_is_checksummed_again_before_it_is_used() {
    let d = tempfile::tempdir().unwrap();
    let idx = build(d.path());
    let current = Index::open(&idx).unwrap();
    let name = shard_file_name(0, FileKind::Text);
    let path = idx.join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
    bytes[at] ^= 0x20;
    let tmp = idx.join("replacement.tmp");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let e = memaudit::index::read::live::open_next(&idx, &current)
        .err()
        .expect("a replaced file is checked, not trusted")
        .to_string();
    assert!(e.contains(&name) && e.contains("checksum"), "{e}");
    // Unchanged files are not read again: the same generation opens as the next one.
    let d2 = tempfile::tempdir().unwrap();
    let idx2 = build(d2.path());
    let current = Index::open(&idx2).unwrap();
    assert!(memaudit::index::read::live::open_next(&idx2, &current).is_ok());
}
