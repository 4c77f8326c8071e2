//! `memaudit index build`: corpus files in, a complete index directory out (or nothing).
//!
//! One reader thread streams documents in input order, normalizes them and packs them into shards
//! (a document never spans shards). Sealed shards go over a rendezvous channel to a pool of workers
//! that sort suffixes, write the four shard files and checksum them; the pool is sized so that
//! `workers × SHARD_PEAK_FACTOR × shard size` stays inside `--memory-limit`. A shard whose whole
//! sort does not fit (or that is past the 2 GiB libsais sorts at once) is sorted in parts merged
//! from disk by one worker ([`crate::index::write::sort`]): then the memory is the text being
//! read, the text being sorted, and one part's sort. Everything is written
//! into a hidden temporary directory beside the target, `manifest.json` last, and renamed into place
//! at the end: an interrupted build never leaves anything that looks like an index.
//!
//! Why one file of about 600 lines: the build is one pipeline over shared state (the reader, the
//! pool sorting shards within the memory limit, the writers, the manifest), its stages functions
//! here in the order they run.

use crate::corpus::normalize::{Normalization, Normalizer};
use crate::corpus::{self, Item};
use crate::index::format::{
    filter_file_name, max_shard_bytes, sampled_slots, shard_file_name, BuildParams, Change,
    FileEntry, FileHeader, FileKind, FilterParams, FilterSet, Manifest, ShardEntry, SkippedEntry,
    SourceEntry, Totals, FORMAT_NAME, FORMAT_VERSION, HEADER_LEN, MAX_SKIPPED_LISTED, SEPARATOR,
};
use crate::index::write::sort::{self, SortPlan, MAX_WHOLE_SORT};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

/// Peak memory of one shard build as a multiple of its text size: text (1) + 32-bit suffix array
/// (4) + document table, metadata and write buffers (< 1).
pub const SHARD_PEAK_FACTOR: u64 = 6;

/// Suffix array construction algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaAlgorithm {
    /// libsais (Grebnov), through the `libsais` crate: the fastest SA-IS implementation known here.
    Libsais,
    /// The `suffix` crate's SA-IS (pure Rust).
    Suffix,
}

impl SaAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            SaAlgorithm::Libsais => "libsais",
            SaAlgorithm::Suffix => "suffix",
        }
    }
}

/// Everything a build needs.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub shard_bytes: u64,
    pub threads: usize,
    pub memory_limit: u64,
    pub normalization: Normalization,
    pub text_field: String,
    pub force: bool,
    pub algorithm: SaAlgorithm,
    pub progress: bool,
    /// Build only this part of the inputs ([`crate::index::write::part`]).
    pub part: Option<crate::index::write::part::Part>,
    /// How the presence filter is built ([`FilterParams::current`] but in tests, which use a
    /// short reach to exercise it on small texts).
    pub filter: FilterParams,
    /// Every how many positions a suffix goes into the array ([`ShardEntry::sa_step`]):
    /// [`crate::index::format::DEFAULT_SA_STEP`] but where a test or a user asks for another.
    pub sa_step: u32,
}

/// What a build did, for the user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildSummary {
    pub index: PathBuf,
    pub index_id: String,
    pub shards: usize,
    pub documents: u64,
    pub skipped: u64,
    pub ignored_files: u64,
    pub input_bytes: u64,
    pub text_bytes: u64,
    pub seconds: f64,
    /// Input megabytes (10^6) per second of wall time.
    pub mb_per_s: f64,
    /// Peak resident memory of this process (Linux), bytes.
    pub peak_rss_bytes: Option<u64>,
    pub workers: usize,
    pub shard_bytes: u64,
    pub skipped_examples: Vec<SkippedEntry>,
}

/// A shard's contents, packed by the reader (or by `index compact`) and handed to a worker.
pub(crate) struct PendingShard {
    pub(crate) id: u32,
    pub(crate) first_doc: u64,
    pub(crate) text: Vec<u8>,
    /// (text_start, meta_start) per document.
    pub(crate) docs: Vec<(u64, u64)>,
    pub(crate) meta: Vec<u8>,
}

impl PendingShard {
    pub(crate) fn new(id: u32, first_doc: u64, capacity: u64) -> Self {
        PendingShard {
            id,
            first_doc,
            text: Vec::with_capacity(capacity as usize),
            docs: Vec::new(),
            meta: Vec::new(),
        }
    }
}

/// Refuses an existing non-empty target unless forced; returns whether something must be replaced.
pub(crate) fn check_target(out: &Path, force: bool) -> Result<bool> {
    match std::fs::metadata(out) {
        Err(_) => Ok(false),
        Ok(m) if !m.is_dir() => bail!("{} exists and is not a directory", out.display()),
        Ok(_) => {
            let non_empty = std::fs::read_dir(out)
                .with_context(|| format!("cannot list {}", out.display()))?
                .next()
                .is_some();
            if non_empty && !force {
                bail!(
                    "{} exists and is not empty; pass --force to replace it with the new index",
                    out.display()
                );
            }
            Ok(true)
        }
    }
}

/// Builds an index. On error nothing is left at `opts.out` that was not there before.
pub fn build(opts: &BuildOptions) -> Result<BuildSummary> {
    let started = Instant::now();
    let replace = check_target(&opts.out, opts.force)?;
    // Rebuilding a live index (--force over one): its writer lock is taken, so no other change
    // runs meanwhile, and its history goes on, so the new build is the next generation and a
    // daemon following the directory moves to it rather than refusing it as older.
    let previous = if replace && Manifest::path(&opts.out).exists() {
        let lock = crate::index::write::generation::WriterLock::acquire(&opts.out)?;
        let old: Option<Manifest> = std::fs::read(Manifest::path(&opts.out))
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok());
        Some((lock, old))
    } else {
        None
    };
    let max_shard = max_shard_bytes(opts.sa_step);
    if opts.shard_bytes < 2 || opts.shard_bytes > max_shard {
        bail!(
            "--shard-size must be between 2 bytes and {max_shard} bytes (4 GiB × --sa-step, less 1)"
        );
    }
    if opts.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let mut found = corpus::discover(&opts.inputs)?;
    if found.files.is_empty() {
        bail!("no input files found (memaudit reads .txt and .jsonl, optionally .gz or .zst)");
    }
    if let Some(part) = opts.part {
        found.files = part.select(std::mem::take(&mut found.files))?;
    }

    // Fit shard size, sort plan and worker count to the memory limit: the reader fills one
    // shard while `workers` shards are being sorted, each whole when that fits, else one at a
    // time in parts (the text being read, the text being sorted, and a part's sort).
    let mut shard_bytes = opts.shard_bytes;
    let limit = opts.memory_limit;
    let per_shard = |s: u64| s * SHARD_PEAK_FACTOR;
    let whole = |s: u64| s <= MAX_WHOLE_SORT && per_shard(s) + s <= limit;
    if !whole(shard_bytes) && 5 * shard_bytes > 2 * limit {
        shard_bytes = (limit * 2 / 5).max(2);
        tracing::warn!(
            shard_bytes,
            "--memory-limit is below what one shard of --shard-size needs; shards shrunk to fit"
        );
    }
    let (workers, plan) = if whole(shard_bytes) {
        let workers =
            (((limit - shard_bytes) / per_shard(shard_bytes)) as usize).clamp(1, opts.threads);
        (workers, SortPlan::Whole)
    } else {
        (
            1,
            SortPlan::parts_within(limit.saturating_sub(2 * shard_bytes), opts.sa_step as usize),
        )
    };
    let sort_threads = (opts.threads / workers).max(1);
    if let SortPlan::Parts(part) = plan {
        tracing::info!(
            shard_bytes,
            part_bytes = part,
            "shards sorted in parts merged from disk, to stay within --memory-limit"
        );
    }

    let (parent, name) = parent_and_name(&opts.out)?;
    remove_dead_builds(&parent, &name);
    let tmp = work_dir_beside(&opts.out, "building")?;

    let result = build_into(opts, &found, &tmp, shard_bytes, workers, sort_threads, plan);
    let (mut manifest, ignored) = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let old = previous.as_ref().and_then(|(_, old)| old.as_ref());
    if let Some(old) = old {
        manifest.generation = old.generation + 1;
        manifest.history = old.history.clone();
    }
    let filter_started = Instant::now();
    let filter = crate::index::filter::write(
        &tmp,
        &manifest.shards,
        opts.filter,
        filter_file_name(manifest.generation, 0),
    );
    match filter {
        Ok(f) => {
            tracing::info!(
                seconds = filter_started.elapsed().as_secs_f64(),
                bytes = f.file.bytes,
                "presence filter built"
            );
            manifest.filter = Some(FilterSet {
                params: opts.filter,
                files: vec![f],
            });
            manifest.index_id = manifest.id();
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    }
    manifest.build.seconds = started.elapsed().as_secs_f64();
    manifest.history.push(Change {
        generation: manifest.generation,
        created_unix: manifest.created_unix,
        action: "build".into(),
        index_id: manifest.index_id.clone(),
        documents: manifest.totals.documents,
        ids: Vec::new(),
        reason: old.map(|o| format!("rebuilt with --force over generation {}", o.generation)),
        shards: manifest.shards.len(),
    });
    crate::index::write::generation::write_manifest(&tmp, &manifest)?;

    install(&tmp, &opts.out, replace)?;
    drop(previous);

    let seconds = started.elapsed().as_secs_f64();
    Ok(BuildSummary {
        index: opts.out.clone(),
        index_id: manifest.index_id.clone(),
        shards: manifest.shards.len(),
        documents: manifest.totals.documents,
        skipped: manifest.totals.skipped,
        ignored_files: ignored,
        input_bytes: manifest.totals.input_bytes,
        text_bytes: manifest.totals.text_bytes,
        seconds,
        mb_per_s: manifest.totals.input_bytes as f64 / 1e6 / seconds.max(1e-9),
        peak_rss_bytes: crate::memory::peak_rss_bytes(),
        workers,
        shard_bytes,
        skipped_examples: manifest.skipped.iter().take(10).cloned().collect(),
    })
}

/// The directory `out` goes in (created if missing) and `out`'s own name.
fn parent_and_name(out: &Path) -> Result<(PathBuf, String)> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((parent, name))
}

/// A fresh hidden directory beside `out` (`.NAME.WHAT-PID`) to write a new index into, so that
/// nothing at `out` looks like an index until [`install`] renames it there.
pub(crate) fn work_dir_beside(out: &Path, what: &str) -> Result<PathBuf> {
    let (parent, name) = parent_and_name(out)?;
    let tmp = parent.join(format!(".{name}.{what}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    Ok(tmp)
}

/// Renames the finished index in `tmp` to `out`, moving an old one aside first and removing it
/// after (`replace`, from [`check_target`]).
pub(crate) fn install(tmp: &Path, out: &Path, replace: bool) -> Result<()> {
    if replace {
        let (parent, name) = parent_and_name(out)?;
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(out, &old)
            .with_context(|| format!("cannot move the old {} aside", out.display()))?;
        std::fs::rename(tmp, out)
            .with_context(|| format!("cannot move the new index to {}", out.display()))?;
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove the old index at {}", old.display()))?;
    } else {
        std::fs::rename(tmp, out)
            .with_context(|| format!("cannot move the new index to {}", out.display()))?;
    }
    Ok(())
}

/// Removes the work directories of killed builds of the same index: `.NAME.building-PID` where no
/// process PID is alive (Linux; elsewhere they are left for the user).
fn remove_dead_builds(parent: &Path, name: &str) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let prefix = format!(".{name}.building-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            tracing::info!(dir = %e.path().display(), "removing the work directory of a killed build");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Reads, packs and builds every shard into `dir`; returns the manifest (without build time).
fn build_into(
    opts: &BuildOptions,
    found: &corpus::Discovered,
    dir: &Path,
    shard_bytes: u64,
    workers: usize,
    sort_threads: usize,
    plan: SortPlan,
) -> Result<(Manifest, u64)> {
    let total_input: u64 = found.files.iter().map(|f| f.bytes).sum();
    let pb = crate::progress::bar(
        total_input,
        opts.progress,
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    );
    let normalizer = Normalizer::new(opts.normalization);
    let (tx, rx) = mpsc::sync_channel::<PendingShard>(0);
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let built = Arc::new(AtomicU64::new(0));

    std::thread::scope(|scope| -> Result<(Manifest, u64)> {
        let mut handles = Vec::new();
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            let built = Arc::clone(&built);
            let algorithm = opts.algorithm;
            let sa_step = opts.sa_step;
            handles.push(scope.spawn(move || -> Result<Vec<ShardEntry>> {
                let mut out = Vec::new();
                loop {
                    let next = rx.lock().expect("receiver lock").recv();
                    let Ok(shard) = next else { break };
                    out.push(build_shard(
                        dir,
                        shard,
                        algorithm,
                        sort_threads,
                        sa_step,
                        plan,
                        &shard_file_name,
                    )?);
                    built.fetch_add(1, Ordering::Relaxed);
                }
                Ok(out)
            }));
        }

        let counter = Arc::new(AtomicU64::new(0));
        let read_started = Instant::now();
        let mut sources = Vec::new();
        let mut skipped = Vec::new();
        let mut skipped_total = 0u64;
        let mut next_doc = 0u64;
        let mut next_shard = 0u32;
        let mut current = PendingShard::new(0, 0, shard_bytes);
        let mut send_failed = false;
        let mut text_bytes = 0u64;

        for file in &found.files {
            let mut entry = SourceEntry {
                path: file.path.display().to_string(),
                bytes: file.bytes,
                documents: 0,
                skipped: 0,
            };
            let mut on_skip = |s: corpus::Skipped, entry: &mut SourceEntry| {
                entry.skipped += 1;
                skipped_total += 1;
                if skipped.len() < MAX_SKIPPED_LISTED {
                    skipped.push(SkippedEntry {
                        source: s.source,
                        line: s.line,
                        reason: s.reason,
                    });
                }
            };
            corpus::read_file(file, &opts.text_field, Arc::clone(&counter), &mut |item| {
                pb.set_position(counter.load(Ordering::Relaxed));
                let doc = match item {
                    Item::Skipped(s) => return on_skip(s, &mut entry),
                    Item::Doc(d) => d,
                };
                let text = normalizer.normalize(&doc.text);
                let need = text.len() as u64 + 1;
                let line = doc.meta.get("line").and_then(|l| l.as_u64());
                if text.is_empty() {
                    return on_skip(
                        corpus::Skipped {
                            source: entry.path.clone(),
                            line,
                            reason: "empty document".into(),
                        },
                        &mut entry,
                    );
                }
                if need > shard_bytes {
                    let reason = format!(
                        "document of {need} bytes is larger than the shard size ({shard_bytes} bytes); raise --shard-size"
                    );
                    return on_skip(
                        corpus::Skipped {
                            source: entry.path.clone(),
                            line,
                            reason,
                        },
                        &mut entry,
                    );
                }
                if current.text.len() as u64 + need > shard_bytes {
                    let full = std::mem::replace(
                        &mut current,
                        PendingShard::new(next_shard + 1, next_doc, shard_bytes),
                    );
                    next_shard += 1;
                    pb.set_message(format!("{} shard(s) sorted", built.load(Ordering::Relaxed)));
                    if tx.send(full).is_err() {
                        send_failed = true;
                    }
                }
                let meta = serde_json::to_vec(&doc.meta).expect("metadata serializes");
                current
                    .docs
                    .push((current.text.len() as u64, current.meta.len() as u64));
                current.text.extend_from_slice(text.as_bytes());
                current.text.push(SEPARATOR);
                current.meta.extend_from_slice(&meta);
                text_bytes += need;
                next_doc += 1;
                entry.documents += 1;
            });
            sources.push(entry);
            if send_failed {
                break;
            }
        }
        tracing::info!(
            seconds = read_started.elapsed().as_secs_f64(),
            bytes = text_bytes,
            "input read and normalized"
        );
        if !current.docs.is_empty() && !send_failed {
            pb.set_message("sorting the last shard".to_string());
            let _ = tx.send(current);
        }
        drop(tx);

        let mut shards = Vec::new();
        let mut first_err = None;
        for h in handles {
            match h.join().expect("shard worker panicked") {
                Ok(s) => shards.extend(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        pb.finish_and_clear();
        if let Some(e) = first_err {
            return Err(e);
        }
        if shards.is_empty() {
            bail!(
                "no documents could be read ({} skipped); the first reasons: {}",
                skipped_total,
                skipped
                    .iter()
                    .take(3)
                    .map(|s| format!("{}: {}", s.source, s.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        shards.sort_by_key(|s| s.id);
        let manifest = Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            index_id: Manifest::compute_id(&shards, &[], None),
            memaudit_version: env!("CARGO_PKG_VERSION").into(),
            created_unix: crate::index::write::generation::now_unix(),
            normalization: opts.normalization,
            build: BuildParams {
                shard_bytes,
                threads: opts.threads,
                memory_limit: opts.memory_limit,
                sa_algorithm: opts.algorithm.name().into(),
                text_field: opts.text_field.clone(),
                seconds: 0.0,
                part: opts.part,
            },
            totals: Totals {
                documents: next_doc,
                text_bytes,
                input_bytes: sources.iter().map(|s| s.bytes).sum(),
                skipped: skipped_total,
            },
            sources,
            skipped,
            shards,
            generation: 1,
            removed: Vec::new(),
            erased: Vec::new(),
            history: Vec::new(),
            filter: None,
        };
        Ok((manifest, found.ignored))
    })
}

/// A file writer that counts and hashes what it writes.
pub(crate) struct HashingWriter {
    inner: BufWriter<File>,
    hasher: blake3::Hasher,
    bytes: u64,
    name: String,
}

impl HashingWriter {
    fn create(dir: &Path, name: String, header: FileHeader) -> Result<Self> {
        Self::create_with(dir, name, &header.encode())
    }

    /// A writer whose file starts with the 32 header bytes `header`.
    pub(crate) fn create_with(dir: &Path, name: String, header: &[u8]) -> Result<Self> {
        let path = dir.join(&name);
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, f),
            hasher: blake3::Hasher::new(),
            bytes: 0,
            name,
        };
        w.write(header)?;
        Ok(w)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.inner
            .write_all(bytes)
            .with_context(|| format!("cannot write {}", self.name))
    }

    /// Syncs the file and makes it read-only: a shard file never changes once written (later
    /// generations write new files), and a mapped file rewritten in place would crash its
    /// readers (SIGBUS on a truncation), so the mode refuses that to any user but root.
    pub(crate) fn finish(self) -> Result<FileEntry> {
        use std::os::unix::fs::PermissionsExt;
        let f = self.inner.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
            .with_context(|| format!("cannot sync {}", self.name))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o444))
            .with_context(|| format!("cannot make {} read-only", self.name))?;
        Ok(FileEntry {
            name: self.name,
            bytes: self.bytes,
            blake3: self.hasher.finalize().to_hex().to_string(),
        })
    }
}

/// Sorts the suffixes of `text`; returns the suffix array with separator suffixes removed.
pub fn suffix_array(
    text: &[u8],
    docs: usize,
    algorithm: SaAlgorithm,
    threads: usize,
) -> Result<Vec<u32>> {
    let mut sa: Vec<u32> = match algorithm {
        SaAlgorithm::Libsais => {
            let sa = sort::libsais(text, threads)?;
            // Positions are non-negative and below 2^31: reinterpreting as u32 is exact.
            sa.into_iter().map(|p| p as u32).collect()
        }
        SaAlgorithm::Suffix => {
            let s = std::str::from_utf8(text).context("shard text is not UTF-8")?;
            suffix::SuffixTable::new(s).table().to_vec()
        }
    };
    // Suffixes that begin with SEPARATOR (0x00) sort first; queries never start with it.
    debug_assert!(sa[..docs].iter().all(|&p| text[p as usize] == SEPARATOR));
    sa.drain(..docs);
    Ok(sa)
}

/// Sorts a packed shard's suffixes as `plan` says and writes its four files into `dir`, named by
/// `name`, with a suffix array of one suffix per `sa_step` positions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_shard(
    dir: &Path,
    shard: PendingShard,
    algorithm: SaAlgorithm,
    threads: usize,
    sa_step: u32,
    plan: SortPlan,
    name: &dyn Fn(u32, FileKind) -> String,
) -> Result<ShardEntry> {
    anyhow::ensure!(sa_step >= 1, "the suffix array step must be at least 1");
    let n_docs = shard.docs.len() as u64;
    let text_bytes = shard.text.len() as u64;
    anyhow::ensure!(
        text_bytes <= max_shard_bytes(sa_step),
        "a shard of {text_bytes} bytes is past the {} bytes a suffix array of step {sa_step} can address",
        max_shard_bytes(sa_step)
    );
    let header = |kind, count| FileHeader {
        kind,
        version: FORMAT_VERSION,
        count,
    };
    let step = sa_step as usize;
    let text = &shard.text;
    let sa_slots = sampled_slots(text, step);

    let sort_started = Instant::now();
    let mut w = ArrayWriter {
        w: HashingWriter::create(
            dir,
            name(shard.id, FileKind::Sa),
            header(FileKind::Sa, sa_slots),
        )?,
        buf: Vec::with_capacity(1 << 20),
        step: sa_step as u64,
        written: 0,
    };
    match plan {
        SortPlan::Whole => {
            let sa = suffix_array(text, shard.docs.len(), algorithm, threads)?;
            for p in sa {
                if p.is_multiple_of(sa_step) {
                    w.push(u64::from(p))?;
                }
            }
        }
        SortPlan::Parts(part) => {
            sort::in_parts(text, step, part, threads, dir, &mut |p| w.push(p))?;
        }
    }
    anyhow::ensure!(
        w.written == sa_slots,
        "the sort gave {} suffixes where the text has {sa_slots} sampled positions",
        w.written
    );
    let sa_entry = w.finish()?;
    let sort_seconds = sort_started.elapsed().as_secs_f64();
    let write_started = Instant::now();

    let mut w = HashingWriter::create(
        dir,
        name(shard.id, FileKind::Text),
        header(FileKind::Text, text_bytes),
    )?;
    w.write(&shard.text)?;
    let text = w.finish()?;
    drop(shard.text);

    let mut w = HashingWriter::create(
        dir,
        name(shard.id, FileKind::Docs),
        header(FileKind::Docs, n_docs + 1),
    )?;
    for &(t, m) in shard
        .docs
        .iter()
        .chain(std::iter::once(&(text_bytes, shard.meta.len() as u64)))
    {
        w.write(&t.to_le_bytes())?;
        w.write(&m.to_le_bytes())?;
    }
    let docs = w.finish()?;

    let mut w = HashingWriter::create(
        dir,
        name(shard.id, FileKind::Meta),
        header(FileKind::Meta, shard.meta.len() as u64),
    )?;
    w.write(&shard.meta)?;
    let meta = w.finish()?;

    debug_assert_eq!(text.bytes, HEADER_LEN as u64 + text_bytes);
    tracing::info!(
        shard = shard.id,
        bytes = text_bytes,
        documents = n_docs,
        sort_seconds,
        write_seconds = write_started.elapsed().as_secs_f64(),
        "shard built"
    );
    Ok(ShardEntry {
        id: shard.id,
        first_doc: shard.first_doc,
        documents: n_docs,
        text_bytes,
        meta_bytes: shard.meta.len() as u64,
        text,
        sa: sa_entry,
        docs,
        meta,
        sa_step,
        sa_slots: (sa_step > 1).then_some(sa_slots),
    })
}

/// The suffix array file as it is written: positions divided by the step, as u32 LE.
struct ArrayWriter {
    w: HashingWriter,
    buf: Vec<u8>,
    step: u64,
    written: u64,
}

impl ArrayWriter {
    fn push(&mut self, p: u64) -> Result<()> {
        let entry = u32::try_from(p / self.step).context("a position past the array's range")?;
        self.buf.extend_from_slice(&entry.to_le_bytes());
        self.written += 1;
        if self.buf.len() >= 1 << 20 {
            self.w.write(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<FileEntry> {
        self.w.write(&self.buf)?;
        self.w.finish()
    }
}
