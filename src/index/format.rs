//! The on-disk index format: the one place that says what the files in an index directory hold.
//!
//! An index is a directory:
//!
//! ```text
//! manifest.json          format version, normalization, build parameters, sources, shards, checksums
//! shard-00000.text       header + the shard's normalized documents, each followed by SEPARATOR
//! shard-00000.sa         header + sparse suffix array: the start positions, divided by the
//!                        shard's `sa_step` (8 by default, 1 in version 1: every suffix), as u32 LE,
//!                        of every suffix that does not begin with SEPARATOR and starts at a
//!                        multiple of the step, in lexicographic byte order
//! shard-00000.docs       header + u64 LE pairs (text_start, meta_start), one per document plus an end
//!                        sentinel; document k spans text[text_start(k) .. text_start(k+1) - 1]
//! shard-00000.meta       header + concatenated JSON objects, one per document (its metadata)
//! filter-g00001-000.filter  header + the presence filter's 64-byte blocks (`index::filter`) and
//!                        the search samples of the shards it covers; one file per operation that
//!                        added text, together covering every shard
//! ```
//!
//! Every binary file starts with a 32-byte [`FileHeader`] (magic, kind, format version, element count),
//! so a file that was swapped, truncated or written by another version is refused with its name before
//! any query touches it. The manifest records every file's size and BLAKE3 checksum; `index verify`
//! recomputes them. `manifest.json` is written last, so a directory without it is never an index.

use crate::corpus::normalize::Normalization;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Version of this format, written by every writer. Bump it on any incompatible change.
///
/// Version 2 made the suffix array sparse: a shard records its `sa_step` and the number of
/// slots its array holds ([`ShardEntry::sa_step`]), and an entry is a position divided by the
/// step. Every file keeps its version 1 layout, so a version 1 index is a version 2 index whose
/// shards all have step 1: it opens and answers as before, and `memaudit index upgrade DIR`
/// makes its arrays sparse.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this memaudit reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// The default [`ShardEntry::sa_step`] of a build: an array of 4 bytes per 8 bytes of text
/// (0.5×), so that the index with its presence filter stays under 2× the text.
pub const DEFAULT_SA_STEP: u32 = 8;
/// Whether position `p` of a shard's text has its suffix in an array of step `step`: a document
/// byte (not a separator) at a multiple of the step.
#[inline]
pub fn is_sampled(text: &[u8], p: usize, step: usize) -> bool {
    p.is_multiple_of(step) && text[p] != SEPARATOR
}

/// The slots of an array of step `step` over `text`: how many positions [`is_sampled`].
pub fn sampled_slots(text: &[u8], step: usize) -> u64 {
    (0..text.len())
        .step_by(step.max(1))
        .filter(|&p| text[p] != SEPARATOR)
        .count() as u64
}

/// The largest [`ShardEntry::sa_step`] an index may have (queries cost up to a search per step).
pub const MAX_SA_STEP: u32 = 64;
/// The `format` field of the manifest.
pub const FORMAT_NAME: &str = "memaudit-index";
/// Name of the manifest inside an index directory.
pub const MANIFEST: &str = "manifest.json";
/// Byte written after every document in a shard's text. NUL never survives normalization (it is
/// treated as whitespace), so no query or document byte equals it and no match can cross it.
pub const SEPARATOR: u8 = 0x00;
/// Size of the header at the start of every binary shard file.
pub const HEADER_LEN: usize = 32;
/// Magic bytes at the start of every binary shard file.
pub const MAGIC: [u8; 8] = *b"MEMAUDIT";
/// Largest shard text, separators included, for a suffix array of step `sa_step`: an entry is
/// the position divided by the step, as a u32, so 4 GiB × step (32 GiB at the default step 8).
/// Shards past what libsais sorts at once (2 GiB) are sorted in parts
/// ([`crate::index::write::sort`]).
pub fn max_shard_bytes(sa_step: u32) -> u64 {
    (1u64 << 32) * u64::from(sa_step.max(1)) - 1
}

/// The four binary files of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Text,
    Sa,
    Docs,
    Meta,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [FileKind::Text, FileKind::Sa, FileKind::Docs, FileKind::Meta];

    /// The 4-byte tag stored in the header.
    pub fn tag(self) -> [u8; 4] {
        match self {
            FileKind::Text => *b"TEXT",
            FileKind::Sa => *b"SARR",
            FileKind::Docs => *b"DOCS",
            FileKind::Meta => *b"META",
        }
    }

    /// File extension, also the key in the manifest.
    pub fn ext(self) -> &'static str {
        match self {
            FileKind::Text => "text",
            FileKind::Sa => "sa",
            FileKind::Docs => "docs",
            FileKind::Meta => "meta",
        }
    }

    /// Bytes per element counted in the header's `count`.
    pub fn elem_size(self) -> u64 {
        match self {
            FileKind::Text | FileKind::Meta => 1,
            FileKind::Sa => 4,
            FileKind::Docs => 16,
        }
    }
}

/// The header tag of a presence-filter file (`index::filter`), whose elements are 64-byte blocks.
pub const FILTER_TAG: [u8; 4] = *b"FILT";

/// Name of a presence-filter file: the `k`-th written by generation `generation` (a merge
/// writes one per part).
pub fn filter_file_name(generation: u64, k: usize) -> String {
    format!("filter-g{generation:05}-{k:03}.filter")
}

/// Whether `name` is a name this format gives a presence-filter file.
pub fn is_filter_file_name(name: &str) -> bool {
    name.strip_prefix("filter-")
        .and_then(|rest| rest.strip_suffix(".filter"))
        .is_some_and(|stem| {
            !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// File name of one shard file as a build writes it.
pub fn shard_file_name(shard: u32, kind: FileKind) -> String {
    format!("shard-{shard:05}.{}", kind.ext())
}

/// File name of a shard file written by a later generation (`add`, `compact`): unique to that
/// generation, so a file a running reader maps is never overwritten in place.
pub fn generation_file_name(generation: u64, shard: u32, kind: FileKind) -> String {
    format!("shard-g{generation:05}-{shard:05}.{}", kind.ext())
}

/// Whether `name` is a name this format gives a shard file of `kind`: `shard-*.EXT`, a plain file
/// name inside the index directory (no path separators, no `..`).
pub fn is_shard_file_name(name: &str, kind: FileKind) -> bool {
    name.strip_prefix("shard-")
        .and_then(|rest| rest.strip_suffix(kind.ext()))
        .and_then(|stem| stem.strip_suffix('.'))
        .is_some_and(|stem| {
            !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The 32-byte header: magic, kind tag, format version, element count, reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub kind: FileKind,
    pub version: u32,
    pub count: u64,
}

impl FileHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = encode_header(self.kind.tag(), self.count);
        h[12..16].copy_from_slice(&self.version.to_le_bytes());
        h
    }

    /// Checks a file's bytes against the header it must have; returns a reason when it does not.
    pub fn check(bytes: &[u8], kind: FileKind, count: u64) -> Result<(), String> {
        check_header(bytes, kind.tag(), kind.elem_size(), count)
    }
}

/// The header of a file of another section than a shard's (a presence filter: [`FILTER_TAG`]).
pub fn encode_header(tag: [u8; 4], count: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&tag);
    h[12..16].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&count.to_le_bytes());
    h
}

/// Checks a file's bytes against the header of section `tag` with `count` elements of
/// `elem_size` bytes; returns a reason when they do not match.
pub fn check_header(bytes: &[u8], tag: [u8; 4], elem_size: u64, count: u64) -> Result<(), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    if bytes[0..8] != MAGIC {
        return Err("not a memaudit index file (bad magic)".into());
    }
    if bytes[8..12] != tag {
        return Err(format!(
            "holds a {:?} section where a {:?} section belongs",
            String::from_utf8_lossy(&bytes[8..12]),
            String::from_utf8_lossy(&tag)
        ));
    }
    let version = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!(
            "written by format version {version}; this memaudit reads versions \
             {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}"
        ));
    }
    let found = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if found != count {
        return Err(format!(
            "header counts {found} elements, the manifest {count}"
        ));
    }
    let Some(want) = count
        .checked_mul(elem_size)
        .and_then(|b| b.checked_add(HEADER_LEN as u64))
    else {
        return Err(format!("the manifest's count {count} is impossibly large"));
    };
    if bytes.len() as u64 != want {
        return Err(format!(
            "{} bytes where {want} belong (truncated or extended)",
            bytes.len()
        ));
    }
    Ok(())
}

/// One file's record in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub blake3: String,
}

/// One shard's record in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    pub id: u32,
    /// Global id of the shard's first document; documents are numbered across shards in input order.
    pub first_doc: u64,
    pub documents: u64,
    /// Length of the shard's text, separators included.
    pub text_bytes: u64,
    pub meta_bytes: u64,
    pub text: FileEntry,
    pub sa: FileEntry,
    pub docs: FileEntry,
    pub meta: FileEntry,
    /// The suffix array holds the suffixes starting at multiples of this (1: every suffix, as in
    /// version 1). Any occurrence of a pattern at least this long holds a sampled start within
    /// its first `sa_step` bytes ([`crate::index::read::search`]).
    #[serde(default = "dense_step", skip_serializing_if = "is_dense")]
    pub sa_step: u32,
    /// Slots of the suffix array (recorded when `sa_step` is above 1; with step 1 it is every
    /// position less the separators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sa_slots: Option<u64>,
}

fn dense_step() -> u32 {
    1
}

fn is_dense(step: &u32) -> bool {
    *step == 1
}

impl ShardEntry {
    pub fn file(&self, kind: FileKind) -> &FileEntry {
        match kind {
            FileKind::Text => &self.text,
            FileKind::Sa => &self.sa,
            FileKind::Docs => &self.docs,
            FileKind::Meta => &self.meta,
        }
    }

    /// Element count the header of each file must carry.
    pub fn count(&self, kind: FileKind) -> u64 {
        match kind {
            FileKind::Text => self.text_bytes,
            FileKind::Sa => self
                .sa_slots
                .unwrap_or(self.text_bytes.saturating_sub(self.documents)),
            FileKind::Docs => self.documents.saturating_add(1),
            FileKind::Meta => self.meta_bytes,
        }
    }
}

/// One input as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    pub path: String,
    pub bytes: u64,
    pub documents: u64,
    pub skipped: u64,
}

/// A document that was not indexed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedEntry {
    pub source: String,
    /// 1-based line for JSONL inputs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    pub reason: String,
}

/// Parameters the build ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildParams {
    pub shard_bytes: u64,
    pub threads: usize,
    pub memory_limit: u64,
    pub sa_algorithm: String,
    pub text_field: String,
    pub seconds: f64,
    /// The part of the inputs this index holds, when built with `--part I/N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<super::write::part::Part>,
}

/// Totals over the whole index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub documents: u64,
    pub text_bytes: u64,
    pub input_bytes: u64,
    pub skipped: u64,
}

/// Most skipped documents listed by name in the manifest; the rest are only counted.
pub const MAX_SKIPPED_LISTED: usize = 1000;

/// What one generation changed, as recorded in the manifest's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub generation: u64,
    pub created_unix: u64,
    /// `build`, `merge`, `remove`, `add` or `compact`.
    pub action: String,
    /// The index id this generation published.
    pub index_id: String,
    /// Documents this change added (build, merge, add), removed (remove) or erased (compact).
    pub documents: u64,
    /// The ids removed, for `remove`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<u64>,
    /// Why, as given with `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Shards after the change.
    pub shards: usize,
}

/// How the presence filter was built (`index::filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    /// Bytes of a k-gram.
    pub kgram: u32,
    /// K-grams per window; the filter holds each window's minimizer.
    pub window: u32,
    /// Filter bits per expected minimizer (sizing only).
    pub bits_per_key: u32,
    /// Bits per expected minimizer of one shard in the routing slots (sizing only).
    pub route_bits_per_key: u32,
}

/// One presence-filter file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterFileEntry {
    pub file: FileEntry,
    /// 64-byte blocks of the presence filter proper (the union of its shards' minimizers).
    pub blocks: u64,
    /// Rows of routing slots that follow them: one 64-byte slot per shard per row, each shard's
    /// own filter (the header counts `blocks + route_rows * shards` blocks).
    pub route_rows: u64,
    /// The shards it covers: ids `first_shard .. first_shard + shards`.
    pub first_shard: u32,
    /// See `first_shard`.
    pub shards: u32,
    /// Blocks of search samples that follow the routing rows: for each shard in order, the
    /// first 8 bytes of every few of its suffixes (`index::search::Sample`), as big-endian
    /// numbers stored little-endian, padded to whole blocks.
    pub sample_blocks: u64,
    /// Minimizer positions inserted.
    pub keys: u64,
    /// Text bytes it was built from.
    pub text_bytes: u64,
}

/// The presence filter of an index: the union of its files holds every minimizer of every
/// shard's text. Absent in an index built before filters (queries then search everything;
/// `memaudit index upgrade` adds one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSet {
    pub params: FilterParams,
    pub files: Vec<FilterFileEntry>,
}

fn first_generation() -> u64 {
    1
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// Short content hash of all shard checksums: names this exact index in verdicts.
    pub index_id: String,
    pub memaudit_version: String,
    pub created_unix: u64,
    pub normalization: Normalization,
    pub build: BuildParams,
    pub totals: Totals,
    pub sources: Vec<SourceEntry>,
    pub skipped: Vec<SkippedEntry>,
    pub shards: Vec<ShardEntry>,
    /// Counts up with every published change; a build is generation 1.
    #[serde(default = "first_generation")]
    pub generation: u64,
    /// Documents taken down but still in the shard files (hidden at query time, not yet erased by
    /// `index compact`): global ids, sorted, unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<u64>,
    /// Documents taken down whose text `index compact` has erased (they are empty documents now,
    /// so ids stay contiguous): global ids, sorted, unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<u64>,
    /// One entry per generation, oldest first (empty for an index built before generations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Change>,
    /// The presence filter, when the index has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSet>,
}

impl Manifest {
    /// The index id: BLAKE3 over every file checksum in shard order, the hidden document ids and
    /// the presence filter's files, first 16 hex digits. Two indexes with the same id answer
    /// every query the same. (A filter changes no answer, only what a query reads; it is in the
    /// id so that a daemon following the index moves to a generation that adds one.)
    pub fn compute_id(
        shards: &[ShardEntry],
        removed: &[u64],
        filter: Option<&FilterSet>,
    ) -> String {
        let mut h = blake3::Hasher::new();
        for s in shards {
            for k in FileKind::ALL {
                h.update(s.file(k).blake3.as_bytes());
            }
        }
        if !removed.is_empty() {
            h.update(b"removed");
            for id in removed {
                h.update(&id.to_le_bytes());
            }
        }
        if let Some(f) = filter {
            h.update(b"filter");
            for file in &f.files {
                h.update(file.file.blake3.as_bytes());
            }
        }
        h.finalize().to_hex()[..16].to_string()
    }

    /// The suffix-array step of the index: its shards' largest (what `index add` and `index
    /// compact` write new shards with; 1 for an empty or version 1 index).
    pub fn sa_step(&self) -> u32 {
        self.shards.iter().map(|s| s.sa_step).max().unwrap_or(1)
    }

    /// Documents a query can find: every document slot less the removed and erased ones.
    pub fn live_documents(&self) -> u64 {
        self.totals
            .documents
            .saturating_sub(self.removed.len() as u64 + self.erased.len() as u64)
    }

    /// [`Manifest::compute_id`] of this manifest.
    pub fn id(&self) -> String {
        Manifest::compute_id(&self.shards, &self.removed, self.filter.as_ref())
    }

    /// Every file this manifest names: the shards' and the filter's.
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        let shards = self
            .shards
            .iter()
            .flat_map(|s| FileKind::ALL.map(|k| s.file(k).name.as_str()));
        let filters = self
            .filter
            .iter()
            .flat_map(|f| f.files.iter().map(|e| e.file.name.as_str()));
        shards.chain(filters)
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST)
    }
}

/// Reads little-endian u32 elements from a byte slice without alignment requirements.
#[derive(Clone, Copy)]
pub struct U32s<'a>(pub &'a [u8]);

impl U32s<'_> {
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.len() < 4
    }

    /// Element `i`; the caller guarantees `i < len()`.
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        let b = &self.0[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// Reads little-endian u64 elements from a byte slice without alignment requirements.
#[derive(Clone, Copy)]
pub struct U64s<'a>(pub &'a [u8]);

impl U64s<'_> {
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.len() < 8
    }

    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        let b = &self.0[i * 8..i * 8 + 8];
        u64::from_le_bytes(b.try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_refusals() {
        let h = FileHeader {
            kind: FileKind::Sa,
            version: FORMAT_VERSION,
            count: 2,
        };
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        assert!(FileHeader::check(&bytes, FileKind::Sa, 2).is_ok());
        assert!(FileHeader::check(&bytes, FileKind::Text, 2)
            .unwrap_err()
            .contains("section"));
        assert!(FileHeader::check(&bytes, FileKind::Sa, 3)
            .unwrap_err()
            .contains("elements"));
        assert!(FileHeader::check(&bytes[..35], FileKind::Sa, 2)
            .unwrap_err()
            .contains("truncated"));
        assert!(FileHeader::check(&bytes[..10], FileKind::Sa, 2)
            .unwrap_err()
            .contains("header"));
        let mut wrong = bytes.clone();
        wrong[12] = 9;
        assert!(FileHeader::check(&wrong, FileKind::Sa, 2)
            .unwrap_err()
            .contains("version 9"));
        wrong[0] = b'X';
        assert!(FileHeader::check(&wrong, FileKind::Sa, 2)
            .unwrap_err()
            .contains("magic"));
    }
}
