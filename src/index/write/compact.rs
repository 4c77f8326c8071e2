//! `memaudit index compact`: erasure and shard merging, published as a new generation.
//!
//! Shards are grouped left to right: a group takes the next shard while its live text (removed
//! documents count one byte each: they stay as empty documents, so every id keeps its meaning)
//! stays within the shard size. A group of one shard with nothing removed keeps its files; every
//! other group is rewritten as one new shard with the removed documents' text and metadata left
//! out, so after `compact` their bytes are in no file the manifest names, and the old files are
//! unlinked. As in an LSM tree, the shards that additions leave behind are merged back toward the
//! shard size: afterwards any two neighbouring shards together exceed it, so an index of `T`
//! live bytes has fewer than `2T / shard size + 1` shards, and a query's cost (one search per
//! shard) stays bounded however many additions came before.

use crate::index::format::{
    filter_file_name, generation_file_name, max_shard_bytes, FilterParams, FilterSet, Manifest,
    ShardEntry, SEPARATOR,
};
use crate::index::read::open::Shard;
use crate::index::write::build::{build_shard, PendingShard, SaAlgorithm};
use crate::index::write::generation::{self, WriterLock};
use crate::index::write::sort::SortPlan;
use crate::index::Index;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Metadata stored for an erased document.
const ERASED_META: &[u8] = b"{}";

/// What `compact` needs beyond the index.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Target shard size; the index's own when `None`.
    pub shard_bytes: Option<u64>,
    /// Threads for sorting.
    pub threads: usize,
    /// Suffix array construction.
    pub algorithm: SaAlgorithm,
}

/// What a compaction did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactSummary {
    /// The generation published (the old one when there was nothing to do).
    pub generation: u64,
    /// The index id after the change.
    pub index_id: String,
    /// Removed documents whose text is now erased.
    pub erased: u64,
    /// Shards before and after.
    pub shards_before: usize,
    /// See `shards_before`.
    pub shards_after: usize,
    /// New shards written.
    pub shards_written: usize,
    /// Text bytes written into new shards.
    pub bytes_written: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Bytes a shard holds once its removed documents are erased.
fn live_bytes(shard: &Shard) -> u64 {
    let mut bytes = shard.entry.text_bytes;
    for k in 0..shard.entry.documents {
        if shard.is_removed(k) {
            if let Some((text, _)) = shard.doc_bytes(k) {
                bytes -= text.len() as u64 - 1;
            }
        }
    }
    bytes
}

/// Groups of consecutive shard positions, each to become one shard.
fn plan(shards: &[Shard], target: u64) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut size = 0u64;
    for (i, s) in shards.iter().enumerate() {
        let b = live_bytes(s);
        match groups.last_mut() {
            Some(g) if size + b <= target => {
                g.push(i);
                size += b;
            }
            _ => {
                groups.push(vec![i]);
                size = b;
            }
        }
    }
    groups
}

/// Erases the removed documents of the index in `dir` and merges small shards.
pub fn compact(dir: &Path, opts: &CompactOptions) -> Result<CompactSummary> {
    let started = Instant::now();
    let lock = WriterLock::acquire(dir)?;
    let index = Index::open(dir)?;
    let target = opts.shard_bytes.unwrap_or(index.manifest.build.shard_bytes);
    let max_shard = max_shard_bytes(index.manifest.sa_step());
    if !(2..=max_shard).contains(&target) {
        bail!(
            "--shard-size must be between 2 bytes and {max_shard} bytes (4 GiB × the array's step, less 1)"
        );
    }
    let groups = plan(&index.shards, target);
    let shards_before = index.shards.len();
    let untouched = |g: &Vec<usize>| g.len() == 1 && !index.shards[g[0]].has_removed();
    if groups.iter().all(untouched) {
        return Ok(CompactSummary {
            generation: index.manifest.generation,
            index_id: index.manifest.index_id.clone(),
            erased: 0,
            shards_before,
            shards_after: shards_before,
            shards_written: 0,
            bytes_written: 0,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let next_generation = index.manifest.generation + 1;
    let sa_step = index.manifest.sa_step();
    let name = move |id, kind| generation_file_name(next_generation, id, kind);
    let mut entries: Vec<ShardEntry> = Vec::with_capacity(groups.len());
    let (mut written, mut bytes_written) = (0usize, 0u64);
    for (gi, group) in groups.iter().enumerate() {
        let id = gi as u32;
        if untouched(group) {
            let mut e = index.shards[group[0]].entry.clone();
            e.id = id;
            entries.push(e);
            continue;
        }
        let first = &index.shards[group[0]].entry;
        let mut pending = PendingShard::new(id, first.first_doc, 0);
        for &si in group {
            let shard = &index.shards[si];
            for k in 0..shard.entry.documents {
                let (text, meta) = shard.doc_bytes(k).with_context(|| {
                    format!(
                        "{}: document {k} has damaged offsets; run `memaudit index verify`",
                        dir.join(&shard.entry.docs.name).display()
                    )
                })?;
                pending
                    .docs
                    .push((pending.text.len() as u64, pending.meta.len() as u64));
                if shard.is_removed(k) {
                    pending.text.push(SEPARATOR);
                    pending.meta.extend_from_slice(ERASED_META);
                } else {
                    pending.text.extend_from_slice(text);
                    pending.meta.extend_from_slice(meta);
                }
            }
        }
        bytes_written += pending.text.len() as u64;
        written += 1;
        let sort = SortPlan::for_text(pending.text.len() as u64);
        entries.push(build_shard(
            dir,
            pending,
            opts.algorithm,
            opts.threads,
            sa_step,
            sort,
            &name,
        )?);
    }
    let mut manifest: Manifest = index.manifest.clone();
    drop(index);
    // One new filter for everything: the old ones still cover the new shards, but they hold the
    // erased documents' windows, and erasing means leaving no trace of them.
    let params = manifest
        .filter
        .as_ref()
        .map_or_else(FilterParams::current, |f| f.params);
    let filter =
        crate::index::filter::write(dir, &entries, params, filter_file_name(next_generation, 0))?;
    manifest.filter = Some(FilterSet {
        params,
        files: vec![filter],
    });
    let erased = manifest.removed.len() as u64;
    manifest.erased.append(&mut manifest.removed);
    manifest.erased.sort_unstable();
    manifest.totals.text_bytes = entries.iter().map(|e| e.text_bytes).sum();
    manifest.shards = entries;
    let generation = lock.publish(&mut manifest, generation::change("compact", erased))?;
    Ok(CompactSummary {
        generation,
        index_id: manifest.index_id.clone(),
        erased,
        shards_before,
        shards_after: manifest.shards.len(),
        shards_written: written,
        bytes_written,
        seconds: started.elapsed().as_secs_f64(),
    })
}
