//! Opening an index: the manifest is parsed and every shard file is mapped read-only.
//!
//! Opening costs O(shards): each file's size and 32-byte header are checked against the manifest
//! (wrong version, swapped, truncated or extended files are refused with the file named), but no
//! content is read, so start-up time and resident memory do not grow with the corpus
//! ([`Index::prepare`] reads the presence filter and search samples into the page cache, for
//! long-running users; they are mapped, never copied). Content
//! corruption that keeps sizes intact is found by `index verify`; until then every access below is
//! bounds-checked, so a corrupted file can give a wrong answer for the corrupted region but can never
//! make a query panic or read outside its mapping.

use crate::corpus::normalize::Normalizer;
use crate::index::filter::{Presence, BLOCK_BYTES};
use crate::index::format::{
    check_header, is_filter_file_name, is_shard_file_name, FileEntry, FileHeader, FileKind,
    Manifest, ShardEntry, U32s, U64s, FILTER_TAG, FORMAT_NAME, FORMAT_VERSION, HEADER_LEN,
    MANIFEST, MAX_SA_STEP, OLDEST_FORMAT_VERSION,
};
use crate::index::read::search::Sample;
use memmap2::Mmap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Why an index could not be opened. Every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    // The I/O error is part of the message, not a `source`: a chain printer (`{:#}`) would say
    // the same cause twice.
    #[error("{path}: cannot read the index manifest: {cause}. Is this a directory made by `memaudit index build`?")]
    Manifest {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: the index manifest is not valid: {reason}. Rebuild the index with `memaudit index build`.")]
    BadManifest { path: PathBuf, reason: String },
    #[error("{path}: index format version {found}; this memaudit reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}. An index older than that: rebuild it with this version's `memaudit index build`; a newer one: use the memaudit that wrote it.")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: cannot open index file: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: corrupted or truncated index file: {reason}. Run `memaudit index verify` and rebuild the index.")]
    Corrupt { path: PathBuf, reason: String },
}

/// A mapped file with its header skipped.
pub(crate) struct Mapped {
    map: Mmap,
    /// The file as it was when mapped.
    id: FileId,
}

/// Which file, as the file system saw it when it was mapped: a file replaced or rewritten under
/// the same name since has another inode, size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        }
    }
}

impl Mapped {
    /// The file's contents after its header (the header was checked when it was mapped).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map[HEADER_LEN..]
    }

    /// The file as it was when mapped.
    pub(crate) fn file_id(&self) -> FileId {
        self.id
    }
}

fn map_file(dir: &Path, entry: &ShardEntry, kind: FileKind) -> Result<Mapped, OpenError> {
    let expected = entry.file(kind);
    if !is_shard_file_name(&expected.name, kind) {
        return Err(OpenError::BadManifest {
            path: dir.join(MANIFEST),
            reason: format!(
                "shard {} lists file {:?} for its {:?} section (expected shard-*.{})",
                entry.id,
                expected.name,
                kind,
                kind.ext()
            ),
        });
    }
    map_checked(dir, expected, |bytes| {
        FileHeader::check(bytes, kind, entry.count(kind))
    })
}

/// Maps presence-filter file `entry` of `blocks` blocks.
pub(crate) fn map_filter(dir: &Path, entry: &FileEntry, blocks: u64) -> Result<Mapped, OpenError> {
    if !is_filter_file_name(&entry.name) {
        return Err(OpenError::BadManifest {
            path: dir.join(MANIFEST),
            reason: format!(
                "the filter lists file {:?} (expected filter-*.filter)",
                entry.name
            ),
        });
    }
    map_checked(dir, entry, |bytes| {
        check_header(bytes, FILTER_TAG, BLOCK_BYTES as u64, blocks)
    })
}

/// Maps the text file of shard `entry` (what a writer reads a shard's text from).
pub(crate) fn map_text(dir: &Path, entry: &ShardEntry) -> Result<Mapped, OpenError> {
    map_file(dir, entry, FileKind::Text)
}

/// Maps the suffix-array file of shard `entry`.
pub(crate) fn map_sa(dir: &Path, entry: &ShardEntry) -> Result<Mapped, OpenError> {
    map_file(dir, entry, FileKind::Sa)
}

// One of the two places with `unsafe` (Cargo.toml [lints]): mapping an index file.
#[allow(unsafe_code)]
fn map_checked(
    dir: &Path,
    expected: &FileEntry,
    check: impl Fn(&[u8]) -> Result<(), String>,
) -> Result<Mapped, OpenError> {
    let path = dir.join(&expected.name);
    let file = File::open(&path).map_err(|cause| OpenError::Io {
        path: path.clone(),
        cause,
    })?;
    let meta = file.metadata().map_err(|cause| OpenError::Io {
        path: path.clone(),
        cause,
    })?;
    let len = meta.len();
    if len != expected.bytes {
        return Err(OpenError::Corrupt {
            path,
            reason: format!(
                "{len} bytes on disk, the manifest records {}",
                expected.bytes
            ),
        });
    }
    // SAFETY: the file is opened read-only, and no memaudit writer ever changes a shard file after
    // a manifest has named it: builds write a new directory and rename it into place, and later
    // generations write files under new names and only unlink the old ones (a mapping outlives
    // the unlink). A truncation by another program would be outside this contract, as with any
    // mapped file.
    let map = unsafe { Mmap::map(&file) }.map_err(|cause| OpenError::Io {
        path: path.clone(),
        cause,
    })?;
    check(&map).map_err(|reason| OpenError::Corrupt { path, reason })?;
    Ok(Mapped {
        map,
        id: FileId::of(&meta),
    })
}

/// One mapped shard.
pub struct Shard {
    pub entry: ShardEntry,
    text: Mapped,
    sa: Mapped,
    docs: Mapped,
    meta: Mapped,
    /// Text ranges `[start, end)` of the shard's removed (hidden, not yet erased) documents,
    /// sorted; queries skip suffixes inside them.
    removed: Vec<(u64, u64)>,
    /// Per 4 KiB page of text: [`PAGE_LIVE`], [`PAGE_REMOVED`] or [`PAGE_MIXED`], so most
    /// positions are classified by one lookup and only those in mixed pages search `removed`.
    removed_pages: Vec<u8>,
    /// The first bytes of every few suffixes, mapped from the filter file covering the shard
    /// (none for an index without a filter).
    pub(super) sample: Option<crate::index::read::search::Sample>,
}

const PAGE_SHIFT: u32 = 12;
const PAGE_LIVE: u8 = 0;
const PAGE_REMOVED: u8 = 1;
const PAGE_MIXED: u8 = 2;

/// The page map of `removed` over a text of `len` bytes (empty when nothing is removed).
fn page_map(removed: &[(u64, u64)], len: u64) -> Vec<u8> {
    if removed.is_empty() {
        return Vec::new();
    }
    let page = 1u64 << PAGE_SHIFT;
    let mut pages = vec![PAGE_LIVE; len.div_ceil(page) as usize];
    for &(start, end) in removed {
        let end = end.min(len);
        if start >= end {
            continue;
        }
        for p in start >> PAGE_SHIFT..=(end - 1) >> PAGE_SHIFT {
            let whole = start <= p * page && (p + 1) * page <= end;
            let slot = &mut pages[p as usize];
            *slot = if whole && *slot == PAGE_LIVE {
                PAGE_REMOVED
            } else {
                PAGE_MIXED
            };
        }
    }
    pages
}

/// A document of a shard as located by [`Shard::locate_doc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocPos {
    /// Index of the document inside the shard.
    pub local: u64,
    /// Byte offset of the position inside the document's normalized text.
    pub offset: u64,
}

impl Shard {
    fn open(dir: &Path, entry: &ShardEntry, removed: &[u64]) -> Result<Shard, OpenError> {
        if entry.documents == 0 || entry.text_bytes < entry.documents {
            return Err(OpenError::BadManifest {
                path: dir.join(MANIFEST),
                reason: format!(
                    "shard {} has {} documents in {} bytes",
                    entry.id, entry.documents, entry.text_bytes
                ),
            });
        }
        let step_ok = (1..=MAX_SA_STEP).contains(&entry.sa_step)
            && (entry.sa_step == 1 || entry.sa_slots.is_some_and(|n| n <= entry.text_bytes));
        if !step_ok {
            return Err(OpenError::BadManifest {
                path: dir.join(MANIFEST),
                reason: format!(
                    "shard {} has a suffix array of step {} and {:?} slots",
                    entry.id, entry.sa_step, entry.sa_slots
                ),
            });
        }
        let mut shard = Shard {
            entry: entry.clone(),
            text: map_file(dir, entry, FileKind::Text)?,
            sa: map_file(dir, entry, FileKind::Sa)?,
            docs: map_file(dir, entry, FileKind::Docs)?,
            meta: map_file(dir, entry, FileKind::Meta)?,
            removed: Vec::new(),
            removed_pages: Vec::new(),
            sample: None,
        };
        let first = entry.first_doc;
        let end = first + entry.documents;
        let lo = removed.partition_point(|&d| d < first);
        let hi = removed.partition_point(|&d| d < end);
        let docs = shard.docs();
        shard.removed = removed[lo..hi]
            .iter()
            .map(|&d| {
                let k = (d - first) as usize;
                (docs.get(2 * k), docs.get(2 * k + 2))
            })
            .collect();
        shard.removed_pages = page_map(&shard.removed, shard.entry.text_bytes);
        Ok(shard)
    }

    /// Whether the shard has a search sample (its index has a presence filter).
    pub fn has_sample(&self) -> bool {
        self.sample.is_some()
    }

    /// Whether the shard holds removed documents (queries take the slower, filtering path).
    #[inline]
    pub fn has_removed(&self) -> bool {
        !self.removed.is_empty()
    }

    /// Whether text position `pos` lies inside a removed document.
    #[inline]
    pub fn is_removed_pos(&self, pos: u64) -> bool {
        match self.removed_pages.get((pos >> PAGE_SHIFT) as usize) {
            None | Some(&PAGE_LIVE) => return false,
            Some(&PAGE_REMOVED) => return true,
            Some(_) => {}
        }
        let i = self.removed.partition_point(|&(start, _)| start <= pos);
        i > 0 && pos < self.removed[i - 1].1
    }

    /// Whether local document `k` is removed.
    pub fn is_removed(&self, k: u64) -> bool {
        let docs = self.docs();
        let k = k as usize;
        2 * k < docs.len() && self.is_removed_pos(docs.get(2 * k))
    }

    /// Whether suffix-array slot `i` starts inside a live (not removed) document.
    #[inline]
    pub fn is_live_slot(&self, i: usize) -> bool {
        !self.is_removed_pos(self.pos(i) as u64)
    }

    /// The text position of the suffix at slot `i`: the entry times the shard's step.
    #[inline]
    pub fn pos(&self, i: usize) -> usize {
        self.sa().get(i) as usize * self.entry.sa_step.max(1) as usize
    }

    /// The shard's text: documents each followed by the separator.
    #[inline]
    /// The identity of the file of section `kind` as it was mapped.
    pub fn file_id(&self, kind: FileKind) -> FileId {
        match kind {
            FileKind::Text => self.text.id,
            FileKind::Sa => self.sa.id,
            FileKind::Docs => self.docs.id,
            FileKind::Meta => self.meta.id,
        }
    }

    pub fn text(&self) -> &[u8] {
        self.text.bytes()
    }

    #[inline]
    pub fn sa(&self) -> U32s<'_> {
        U32s(self.sa.bytes())
    }

    #[inline]
    pub fn docs(&self) -> U64s<'_> {
        U64s(self.docs.bytes())
    }

    /// Text from suffix-array slot `i` to the end of the shard; empty when the slot holds a position
    /// outside the text (only possible in a corrupted file).
    #[inline]
    pub fn suffix(&self, i: usize) -> &[u8] {
        let text = self.text();
        text.get(self.pos(i)..).unwrap_or(&[])
    }

    /// The document holding text position `pos`, by binary search over document starts.
    pub fn locate_doc(&self, pos: u64) -> Option<DocPos> {
        let docs = self.docs();
        let n = self.entry.documents as usize;
        if n == 0 || docs.len() < 2 * (n + 1) {
            return None;
        }
        // Largest k < n with text_start(k) <= pos.
        let (mut lo, mut hi) = (0usize, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if docs.get(2 * mid) <= pos {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let start = docs.get(2 * lo);
        Some(DocPos {
            local: lo as u64,
            offset: pos.checked_sub(start)?,
        })
    }

    /// Stored bytes of local document `k`, removed or not: its text with the separator that ends
    /// it, and its metadata; `None` if the offsets are damaged.
    pub fn doc_bytes(&self, k: u64) -> Option<(&[u8], &[u8])> {
        let docs = self.docs();
        let k = k as usize;
        if 2 * k + 3 >= docs.len() {
            return None;
        }
        let (t0, m0) = (docs.get(2 * k) as usize, docs.get(2 * k + 1) as usize);
        let (t1, m1) = (docs.get(2 * k + 2) as usize, docs.get(2 * k + 3) as usize);
        Some((self.text().get(t0..t1)?, self.meta.bytes().get(m0..m1)?))
    }

    /// Metadata of local document `k` as JSON; `Null` if the stored bytes are damaged.
    pub fn doc_meta(&self, k: u64) -> serde_json::Value {
        let docs = self.docs();
        let k = k as usize;
        if 2 * k + 3 >= docs.len() {
            return serde_json::Value::Null;
        }
        let (a, b) = (docs.get(2 * k + 1) as usize, docs.get(2 * k + 3) as usize);
        self.meta
            .bytes()
            .get(a..b)
            .and_then(|s| serde_json::from_slice(s).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Normalized text of local document `k` (without separator); empty if the document is
    /// removed or its offsets are damaged.
    pub fn doc_text(&self, k: u64) -> &[u8] {
        let docs = self.docs();
        let k = k as usize;
        if 2 * k + 2 >= docs.len() || self.is_removed(k as u64) {
            return &[];
        }
        let (a, b) = (docs.get(2 * k) as usize, docs.get(2 * k + 2) as usize);
        self.text().get(a..b.saturating_sub(1)).unwrap_or(&[])
    }
}

/// An open index: manifest, normalizer and mapped shards.
pub struct Index {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub normalizer: Normalizer,
    pub shards: Vec<Shard>,
    /// The presence filter, when the index has one ([`crate::index::filter`]).
    pub presence: Option<Presence>,
}

impl Index {
    /// Opens the index in `dir`, checking every file's size and header against the manifest.
    ///
    /// A writer may publish a new generation while this runs and unlink files of the old one; a
    /// file that vanished while the manifest changed under us is not an error: the new manifest is
    /// read and opened instead (a few times at most).
    pub fn open(dir: impl AsRef<Path>) -> Result<Index, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(MANIFEST);
        let mut attempts = 0;
        loop {
            let raw = std::fs::read(&path).map_err(|cause| OpenError::Manifest {
                path: path.clone(),
                cause,
            })?;
            match Self::open_manifest(&dir, &raw) {
                Err(OpenError::Io { cause, .. })
                    if cause.kind() == std::io::ErrorKind::NotFound
                        && attempts < 5
                        && std::fs::read(&path).is_ok_and(|now| now != raw) =>
                {
                    attempts += 1;
                    tracing::debug!(dir = %dir.display(), "the manifest changed while opening; reopening");
                }
                other => return other,
            }
        }
    }

    /// Opens the index whose manifest bytes are `raw`.
    fn open_manifest(dir: &Path, raw: &[u8]) -> Result<Index, OpenError> {
        let dir = dir.to_path_buf();
        let path = dir.join(MANIFEST);
        // Check the version before the schema, so an old or newer index gets the helpful error.
        let value: serde_json::Value =
            serde_json::from_slice(raw).map_err(|e| OpenError::BadManifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
            return Err(OpenError::BadManifest {
                path,
                reason: format!("\"format\" is not {FORMAT_NAME:?}"),
            });
        }
        match value.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if (OLDEST_FORMAT_VERSION as u64..=FORMAT_VERSION as u64).contains(&v) => {}
            Some(v) => {
                return Err(OpenError::Version {
                    path,
                    found: v as u32,
                })
            }
            None => {
                return Err(OpenError::BadManifest {
                    path,
                    reason: "no \"format_version\"".into(),
                })
            }
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| OpenError::BadManifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // The id names the exact contents in verdicts and tells a reloading daemon whether
        // anything changed: one that does not match them is refused, never trusted.
        let computed = manifest.id();
        if manifest.index_id != computed {
            return Err(OpenError::BadManifest {
                path,
                reason: format!(
                    "\"index_id\" is {:?} but its shards and removed documents make {computed:?}: \
                     the manifest was changed by hand; publish changes with `memaudit index`",
                    manifest.index_id
                ),
            });
        }
        let mut next_doc = 0;
        for (i, s) in manifest.shards.iter().enumerate() {
            if s.id as usize != i || s.first_doc != next_doc {
                return Err(OpenError::BadManifest {
                    path,
                    reason: format!("shard list out of order at entry {i}"),
                });
            }
            next_doc = next_doc
                .checked_add(s.documents)
                .ok_or_else(|| OpenError::BadManifest {
                    path: path.clone(),
                    reason: format!("shard {i} has an impossible document count"),
                })?;
        }
        for (what, ids) in [("removed", &manifest.removed), ("erased", &manifest.erased)] {
            if ids.windows(2).any(|w| w[0] >= w[1]) || ids.last().is_some_and(|&d| d >= next_doc) {
                return Err(OpenError::BadManifest {
                    path,
                    reason: format!(
                        "\"{what}\" must list document ids below {next_doc}, sorted, each once"
                    ),
                });
            }
        }
        let mut shards = manifest
            .shards
            .iter()
            .map(|e| Shard::open(&dir, e, &manifest.removed))
            .collect::<Result<Vec<_>, _>>()?;
        let presence = match &manifest.filter {
            None => None,
            Some(set) => {
                if !set.params.valid() || set.files.is_empty() {
                    return Err(OpenError::BadManifest {
                        path,
                        reason: format!("the filter's parameters {:?} are not valid", set.params),
                    });
                }
                for f in &set.files {
                    let covers = f.first_shard as u64 + f.shards as u64;
                    if f.shards == 0 || covers > manifest.shards.len() as u64 {
                        return Err(OpenError::BadManifest {
                            path,
                            reason: format!(
                                "filter file {} covers shards {}..{covers} of {}",
                                f.file.name,
                                f.first_shard,
                                manifest.shards.len()
                            ),
                        });
                    }
                }
                // Routing names only the shards a file covers: one no file covers would never
                // be searched.
                let mut covered = vec![false; manifest.shards.len()];
                for f in &set.files {
                    for c in &mut covered[f.first_shard as usize..][..f.shards as usize] {
                        *c = true;
                    }
                }
                if let Some(missing) = covered.iter().position(|&c| !c) {
                    return Err(OpenError::BadManifest {
                        path,
                        reason: format!("no filter file covers shard {missing}"),
                    });
                }
                let files = set
                    .files
                    .iter()
                    .map(|f| {
                        let total = f
                            .route_rows
                            .checked_mul(f.shards as u64)
                            .and_then(|r| r.checked_add(f.blocks))
                            .and_then(|r| r.checked_add(f.sample_blocks))
                            .filter(|_| f.blocks > 0 && f.route_rows > 0)
                            .ok_or_else(|| OpenError::BadManifest {
                                path: path.clone(),
                                reason: format!(
                                    "filter file {} has an impossible shape",
                                    f.file.name
                                ),
                            })?;
                        map_filter(&dir, &f.file, total).map(std::sync::Arc::new)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // Each shard's search sample, in its file after the union and routing rows.
                for (f, file) in set.files.iter().zip(&files) {
                    let mut at = (f.blocks + f.route_rows * f.shards as u64) as usize * BLOCK_BYTES;
                    for shard in &mut shards[f.first_shard as usize..][..f.shards as usize] {
                        let n = shard.sa().len();
                        let sample =
                            Sample::new(file.clone(), at, n).ok_or_else(|| OpenError::Corrupt {
                                path: dir.join(&f.file.name),
                                reason: format!(
                                    "holds no room for shard {}'s search sample",
                                    shard.entry.id
                                ),
                            })?;
                        at += sample.bytes().next_multiple_of(BLOCK_BYTES);
                        shard.sample = Some(sample);
                    }
                    if at != file.bytes().len() {
                        return Err(OpenError::Corrupt {
                            path: dir.join(&f.file.name),
                            reason: format!(
                                "{} bytes where its shards' filter and samples take {at}",
                                file.bytes().len()
                            ),
                        });
                    }
                }
                Some(Presence {
                    params: set.params,
                    files,
                    entries: set.files.clone(),
                })
            }
        };
        Ok(Index {
            normalizer: Normalizer::new(manifest.normalization),
            dir,
            manifest,
            shards,
            presence,
        })
    }

    /// This index as it would answer without its presence filter (and so without search
    /// samples): every shard searched, every search from the whole suffix array. The answers are
    /// the same; for tests and benchmarks that compare the two.
    pub fn without_filter(mut self) -> Index {
        self.presence = None;
        for s in &mut self.shards {
            s.sample = None;
        }
        self
    }

    /// The index id recorded in the manifest.
    pub fn id(&self) -> &str {
        &self.manifest.index_id
    }

    /// The manifest generation this reader opened (1 for a fresh build).
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page map agrees with the ranges at every position: live pages hold no removed byte,
    /// removed pages only removed bytes.
    #[test]
    fn page_map_classifies_like_the_ranges() {
        let removed = vec![
            (0, 10),
            (4096, 8192),
            (8200, 20_000),
            (20_000, 20_001),
            (30_000, 41_000),
        ];
        let len = 45_000;
        let pages = page_map(&removed, len);
        let inside = |p: u64| removed.iter().any(|&(s, e)| s <= p && p < e);
        for p in 0..len {
            match pages[(p >> PAGE_SHIFT) as usize] {
                PAGE_LIVE => assert!(!inside(p), "{p}"),
                PAGE_REMOVED => assert!(inside(p), "{p}"),
                _ => {}
            }
        }
        assert_eq!(pages[1], PAGE_REMOVED);
        assert_eq!(pages[0], PAGE_MIXED);
        assert_eq!(pages[5], PAGE_LIVE);
        assert_eq!(pages[9], PAGE_REMOVED);
        assert!(page_map(&[], len).is_empty());
    }
}
