//! `memaudit index verify` and `memaudit index stats`: proving an index intact, and describing it.
//!
//! Verify goes past what opening checks (sizes and headers): it recomputes every file's BLAKE3
//! checksum, walks the document table (offsets increasing, each document ending in the separator,
//! no separator inside a document, metadata parsing as JSON), and checks suffix order on a random
//! sample of adjacent suffix-array slots, or on every slot with `--full`, which also proves the
//! array a permutation of the document positions.

use crate::index::format::{sampled_slots, FileEntry, FileKind, SEPARATOR};
use crate::index::read::open::{FileId, Index, Shard};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::io::Read;

/// How thorough to be.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Adjacent suffix pairs checked per shard (ignored with `full`).
    pub samples: usize,
    /// Check every suffix pair and that the suffix array is a permutation.
    pub full: bool,
    pub seed: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            samples: 100_000,
            full: false,
            seed: 0x6d656d61,
        }
    }
}

/// What verify found. An index is sound when `problems` is empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub index_id: String,
    pub files_checked: usize,
    pub bytes_hashed: u64,
    pub documents_checked: u64,
    pub suffix_pairs_checked: u64,
    /// The generation verified.
    pub generation: u64,
    /// Documents removed (hidden from queries) whose text is still in the shard files until
    /// `index compact` erases it. Not a problem: reported so a takedown is not mistaken for an
    /// erasure.
    pub hidden_not_erased: u64,
    pub problems: Vec<String>,
}

fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Every file `index` mapped, with its manifest record and identity as mapped: the shards'
/// files, then the presence filter's.
pub(crate) fn mapped_files(index: &Index) -> Vec<(&FileEntry, FileId)> {
    let shards = index
        .shards
        .iter()
        .flat_map(|s| FileKind::ALL.map(|k| (s.entry.file(k), s.file_id(k))));
    let filters = index.presence.iter().flat_map(|p| {
        p.entries
            .iter()
            .map(|e| &e.file)
            .zip(p.files.iter().map(|f| f.file_id()))
    });
    shards.chain(filters).collect()
}

/// Recomputes the BLAKE3 checksum of every file of `index` (shards and filter) except those
/// `skip` trusts; returns one problem per file that does not match its manifest entry, the
/// file named.
pub fn checksum_files(index: &Index, skip: impl Fn(&FileEntry, FileId) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (entry, id) in mapped_files(index) {
        if skip(entry, id) {
            continue;
        }
        let path = index.dir.join(&entry.name);
        match hash_file(&path) {
            Ok(sum) if sum == entry.blake3 => {}
            Ok(_) => problems.push(format!(
                "{}: checksum does not match the manifest (the file's contents changed)",
                path.display()
            )),
            Err(e) => problems.push(format!("{}: cannot read: {e}", path.display())),
        }
    }
    problems
}

/// Verifies the index in `dir`. Errors only when it cannot be opened at all (the error names the
/// file); everything else is collected in the report.
pub fn verify(dir: &std::path::Path, opts: VerifyOptions) -> Result<VerifyReport> {
    let index = Index::open(dir)?;
    let mut report = VerifyReport {
        index_id: index.id().to_string(),
        generation: index.manifest.generation,
        hidden_not_erased: index.manifest.removed.len() as u64,
        ..Default::default()
    };
    report.problems = checksum_files(&index, |_, _| false);
    for (entry, _) in mapped_files(&index) {
        report.files_checked += 1;
        report.bytes_hashed += entry.bytes;
    }
    for shard in &index.shards {
        check_documents(&index, shard, &mut report);
        check_erased(&index, shard, &mut report);
        check_suffixes(&index, shard, opts, &mut report);
    }
    Ok(report)
}

/// Every document the manifest lists as erased must hold no text in its shard.
fn check_erased(index: &Index, shard: &Shard, report: &mut VerifyReport) {
    let first = shard.entry.first_doc;
    let erased = &index.manifest.erased;
    let lo = erased.partition_point(|&d| d < first);
    let hi = erased.partition_point(|&d| d < first + shard.entry.documents);
    for &d in &erased[lo..hi] {
        let empty = shard
            .doc_bytes(d - first)
            .is_some_and(|(text, _)| text.len() == 1);
        if !empty {
            report.problems.push(format!(
                "{}: document {d} is listed as erased but its text is still there",
                index.dir.join(&shard.entry.text.name).display()
            ));
        }
    }
}

fn check_documents(index: &Index, shard: &Shard, report: &mut VerifyReport) {
    let name = |k| {
        index
            .dir
            .join(&shard.entry.file(k).name)
            .display()
            .to_string()
    };
    let docs = shard.docs();
    let text = shard.text();
    let n = shard.entry.documents as usize;
    let mut prev = (0u64, 0u64);
    for k in 0..=n {
        let (t, m) = (docs.get(2 * k), docs.get(2 * k + 1));
        if k == 0 && (t, m) != (0, 0) {
            report.problems.push(format!(
                "{}: the first document does not start at 0",
                name(FileKind::Docs)
            ));
            return;
        }
        if k > 0 && (t <= prev.0 || m < prev.1) {
            report.problems.push(format!(
                "{}: document {k} starts before document {}",
                name(FileKind::Docs),
                k - 1
            ));
            return;
        }
        if k > 0 && text.get(t as usize - 1) != Some(&SEPARATOR) {
            report.problems.push(format!(
                "{}: document {} does not end in the separator",
                name(FileKind::Text),
                k - 1
            ));
            return;
        }
        prev = (t, m);
    }
    if prev != (shard.entry.text_bytes, shard.entry.meta_bytes) {
        report.problems.push(format!(
            "{}: the end entry does not match the text and metadata sizes",
            name(FileKind::Docs)
        ));
        return;
    }
    let separators = text.iter().filter(|&&b| b == SEPARATOR).count();
    if separators != n {
        report.problems.push(format!(
            "{}: {separators} separators for {n} documents (a document contains a separator)",
            name(FileKind::Text)
        ));
    }
    for k in 0..n as u64 {
        if shard.doc_meta(k).is_null() {
            report.problems.push(format!(
                "{}: metadata of document {k} is not valid JSON",
                name(FileKind::Meta)
            ));
            break;
        }
    }
    report.documents_checked += n as u64;
}

fn check_suffixes(index: &Index, shard: &Shard, opts: VerifyOptions, report: &mut VerifyReport) {
    let path = index.dir.join(&shard.entry.sa.name).display().to_string();
    let sa = shard.sa();
    let text = shard.text();
    let len = sa.len();
    let step = shard.step();
    // A document position (entries are positions divided by the step).
    let valid = |i: usize| {
        let p = shard.pos(i);
        p < text.len() && text[p] != SEPARATOR
    };
    let ordered = |i: usize| shard.suffix(i) < shard.suffix(i + 1);
    let mut bad = None;
    if opts.full {
        // One bit per sampled position (entry).
        let mut seen = vec![0u64; text.len().div_ceil(step).div_ceil(64)];
        for i in 0..len {
            if !valid(i) {
                bad = Some(format!(
                    "slot {i} holds position {}, not a document position",
                    shard.pos(i)
                ));
                break;
            }
            let e = sa.get(i) as usize;
            let p = shard.pos(i);
            if seen[e / 64] & (1 << (e % 64)) != 0 {
                bad = Some(format!("position {p} appears twice"));
                break;
            }
            seen[e / 64] |= 1 << (e % 64);
            if i + 1 < len && !ordered(i) {
                bad = Some(format!("slots {i} and {} are out of order", i + 1));
                break;
            }
            report.suffix_pairs_checked += 1;
        }
        // Distinct sampled positions, as many as there are: every one is there.
        let sampled = sampled_slots(text, step) as usize;
        if bad.is_none() && sampled != len {
            bad = Some(format!(
                "holds {len} suffixes where the text has {sampled} sampled document positions"
            ));
        }
    } else if len > 0 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ shard.entry.id as u64);
        for _ in 0..opts.samples.min(len) {
            let i = rng.random_range(0..len);
            if !valid(i) {
                bad = Some(format!(
                    "slot {i} holds position {}, not a document position",
                    shard.pos(i)
                ));
                break;
            }
            if i + 1 < len && (!valid(i + 1) || !ordered(i)) {
                bad = Some(format!("slots {i} and {} are out of order", i + 1));
                break;
            }
            report.suffix_pairs_checked += 1;
        }
    }
    if let Some(b) = bad {
        report.problems.push(format!("{path}: {b}"));
    }
}

/// What `index stats` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub dir: String,
    pub index_id: String,
    pub format_version: u32,
    pub memaudit_version: String,
    pub created_unix: u64,
    pub normalization: crate::corpus::normalize::Normalization,
    pub shards: usize,
    pub documents: u64,
    pub text_bytes: u64,
    pub input_bytes: u64,
    pub index_bytes: u64,
    /// Of `index_bytes`, the presence filter's files (0 without one).
    pub filter_bytes: u64,
    /// Of `index_bytes`, the suffix arrays.
    pub sa_bytes: u64,
    /// The suffix arrays' step: every how many positions a suffix is kept (the shards'
    /// largest; 1: every suffix).
    pub sa_step: u32,
    /// The shortest spans the index finds, characters ([`Index::min_span_chars`]).
    pub min_span_chars: usize,
    pub skipped: u64,
    pub sources: usize,
    pub sa_algorithm: String,
    pub build_seconds: f64,
    /// The generation in force.
    pub generation: u64,
    /// Documents a query can find.
    pub live_documents: u64,
    /// Documents removed but whose text is still in the shard files (until `index compact`).
    pub hidden_not_erased: u64,
    /// Documents removed and erased.
    pub erased: u64,
    /// Every generation, oldest first.
    pub history: Vec<crate::index::format::Change>,
}

/// Summarizes an index from its manifest (opening it checks the files are there and whole).
pub fn stats(index: &Index) -> Stats {
    let m = &index.manifest;
    Stats {
        dir: index.dir.display().to_string(),
        index_id: m.index_id.clone(),
        format_version: m.format_version,
        memaudit_version: m.memaudit_version.clone(),
        created_unix: m.created_unix,
        normalization: m.normalization,
        shards: m.shards.len(),
        documents: m.totals.documents,
        text_bytes: m.totals.text_bytes,
        input_bytes: m.totals.input_bytes,
        index_bytes: mapped_files(index).iter().map(|(f, _)| f.bytes).sum(),
        sa_bytes: m.shards.iter().map(|s| s.sa.bytes).sum(),
        sa_step: m.sa_step(),
        min_span_chars: index.min_span_chars(),
        filter_bytes: index
            .presence
            .iter()
            .flat_map(|p| p.entries.iter().map(|f| f.file.bytes))
            .sum(),
        skipped: m.totals.skipped,
        sources: m.sources.len(),
        sa_algorithm: m.build.sa_algorithm.clone(),
        build_seconds: m.build.seconds,
        generation: m.generation,
        live_documents: m.live_documents(),
        hidden_not_erased: m.removed.len() as u64,
        erased: m.erased.len() as u64,
        history: m.history.clone(),
    }
}
