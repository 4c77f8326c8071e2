//! Changing an index in place: the writer lock, publishing a new generation, and cleaning up.
//!
//! Every in-place change (`index remove`, `add`, `compact`) follows one protocol, so that no reader
//! ever sees a half-written index and a writer killed at any point leaves the last complete
//! generation in force:
//!
//! 1. take the writer lock (`.memaudit-writer.lock`, an OS file lock: a second writer is refused
//!    with a clear message, and a killed writer's lock goes with its process);
//! 2. write any new shard files under names no earlier generation used
//!    ([`crate::index::format::generation_file_name`]), never touching a file a manifest names;
//! 3. [`WriterLock::publish`]: write the new manifest to a temporary file, sync it, and rename it over
//!    `manifest.json` (atomic on POSIX), then sync the directory;
//! 4. unlink the shard and filter files the new manifest no longer names, and the leftovers of
//!    killed writers.
//!    A reader that mapped them keeps its mapping; a reader opening the old manifest at that moment
//!    finds a file gone and rereads the manifest ([`crate::index::Index::open`]).

use crate::index::format::{
    is_filter_file_name, is_shard_file_name, Change, FileKind, Manifest, MANIFEST,
};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file inside an index directory.
pub const LOCK_FILE: &str = ".memaudit-writer.lock";
/// Prefix of a writer's work directories inside the index directory (removed when found dead).
pub const WORK_PREFIX: &str = ".work-";

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The exclusive right to change one index; released when dropped or when the process dies.
pub struct WriterLock {
    file: File,
    /// The index directory.
    pub dir: PathBuf,
}

impl Drop for WriterLock {
    /// Unlocks explicitly rather than by closing: the lock belongs to the open file description,
    /// and a child process forked meanwhile by another thread (before its exec closes the
    /// descriptor) holds a copy, which would keep the index locked after this writer finished.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl WriterLock {
    /// Takes the lock of the index in `dir`, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<WriterLock> {
        if !Manifest::path(dir).exists() {
            bail!(
                "{}: no {MANIFEST} here; is this a directory made by `memaudit index build`?",
                dir.display()
            );
        }
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                bail!(
                    "{}: another memaudit command is changing this index ({}); wait for it to \
                     finish and run this again",
                    dir.display(),
                    match holder.trim() {
                        "" => "it holds the lock".to_string(),
                        h => format!("held by {h}"),
                    }
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)?;
        let what = std::env::args()
            .skip(1)
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(file, "pid {}: memaudit {what}", std::process::id());
        let lock = WriterLock {
            file,
            dir: dir.to_path_buf(),
        };
        lock.remove_leftovers(None);
        Ok(lock)
    }

    /// Removes what killed writers left: temporary manifests, work directories, and (given the
    /// manifest in force) shard files it does not name.
    fn remove_leftovers(&self, manifest: Option<&Manifest>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let named: HashSet<&str> = manifest
            .map(|m| m.file_names().collect())
            .unwrap_or_default();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let stale = name.starts_with(&format!("{MANIFEST}.tmp-"))
                || name.starts_with(WORK_PREFIX)
                || name.starts_with(&format!(".{WORK_PREFIX}"))
                || (manifest.is_some()
                    && (FileKind::ALL.iter().any(|&k| is_shard_file_name(&name, k))
                        || is_filter_file_name(&name))
                    && !named.contains(name.as_str()));
            if !stale {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => tracing::debug!(path = %path.display(), "removed a leftover"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover")
                }
            }
        }
    }

    /// A fresh work directory for this writer inside the index directory.
    pub fn work_dir(&self, what: &str) -> Result<PathBuf> {
        let dir = self
            .dir
            .join(format!("{WORK_PREFIX}{what}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        Ok(dir)
    }

    /// Publishes `manifest` as the next generation: bumps the generation, recomputes the id,
    /// appends `change` to the history, swaps the manifest atomically, then unlinks the files the
    /// new generation no longer names. Returns the new generation.
    pub fn publish(&self, manifest: &mut Manifest, mut change: Change) -> Result<u64> {
        manifest.generation += 1;
        manifest.index_id = manifest.id();
        manifest.created_unix = now_unix();
        manifest.memaudit_version = env!("CARGO_PKG_VERSION").into();
        change.generation = manifest.generation;
        change.created_unix = manifest.created_unix;
        change.index_id = manifest.index_id.clone();
        change.shards = manifest.shards.len();
        manifest.history.push(change);
        write_manifest(&self.dir, manifest)?;
        self.remove_leftovers(Some(manifest));
        Ok(manifest.generation)
    }
}

/// Writes `dir/manifest.json` atomically: a temporary file, synced, renamed over it, and the
/// directory synced, so a crash leaves either the old manifest or the new one, whole.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = Manifest::path(dir);
    let tmp = dir.join(format!("{MANIFEST}.tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    serde_json::to_writer_pretty(&mut f, manifest)?;
    f.write_all(b"\n")?;
    f.sync_all()
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))?;
    Ok(())
}

/// A new history entry; [`WriterLock::publish`] fills in the generation, time, id and shards.
pub fn change(action: &str, documents: u64) -> Change {
    Change {
        generation: 0,
        created_unix: 0,
        action: action.into(),
        index_id: String::new(),
        documents,
        ids: Vec::new(),
        reason: None,
        shards: 0,
    }
}

/// Publishes the index now in `dir` (typically a backup restored over it, which a following
/// daemon refuses as older than what it serves) as generation `after + 1`, recorded in the
/// history as a `rollback` with `reason`: the one way to go back on purpose. `after` must be at
/// least the generation in use anywhere (the daemon's `memaudit_index_generation`). Returns the
/// new generation.
pub fn rollback(dir: &Path, after: u64, reason: Option<String>) -> Result<u64> {
    let lock = WriterLock::acquire(dir)?;
    let index = crate::index::Index::open(dir)?;
    let mut manifest = index.manifest.clone();
    drop(index);
    if after < manifest.generation {
        bail!(
            "{}: --after {after} is below the generation on disk ({}); give the generation in \
             use (the daemon's memaudit_index_generation)",
            dir.display(),
            manifest.generation
        );
    }
    let restored = manifest.generation;
    manifest.generation = after;
    let mut c = change("rollback", manifest.live_documents());
    c.reason = Some(match reason {
        Some(r) => format!("generation {restored} published again after {after}: {r}"),
        None => format!("generation {restored} published again after {after}"),
    });
    lock.publish(&mut manifest, c)
}
