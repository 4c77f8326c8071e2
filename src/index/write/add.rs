//! `memaudit index add`: new documents into new shards of an existing index, published as a new
//! generation. The new inputs are built exactly as `index build` would build them (the index's
//! own normalization, text field and shard size), in a work directory inside the index, so the
//! time taken is that of the new data alone; the shard files are then moved in under this
//! generation's names and the manifest is swapped.

use crate::index::format::{
    filter_file_name, generation_file_name, FileKind, FilterParams, Manifest, MAX_SKIPPED_LISTED,
};
use crate::index::write::build::{self, BuildOptions, SaAlgorithm};
use crate::index::write::generation::{self, WriterLock};
use crate::index::Index;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `add` needs beyond the index.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// Files or directories to add (read as `index build` reads them).
    pub inputs: Vec<PathBuf>,
    /// Threads for sorting.
    pub threads: usize,
    /// Memory the build of the new shards may use.
    pub memory_limit: u64,
    /// Suffix array construction.
    pub algorithm: SaAlgorithm,
    /// Show a progress bar.
    pub progress: bool,
}

/// What an addition did.
#[derive(Debug, Clone, Serialize)]
pub struct AddSummary {
    /// The generation published.
    pub generation: u64,
    /// The index id after the change.
    pub index_id: String,
    /// Documents added (their ids follow the existing ones).
    pub documents: u64,
    /// The first added document's id.
    pub first_doc: u64,
    /// Documents of the new inputs that were skipped (listed in the manifest).
    pub skipped: u64,
    /// Shards added.
    pub shards_added: usize,
    /// Shards in the index now.
    pub shards: usize,
    /// Bytes of new input read.
    pub input_bytes: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Adds the documents of `opts.inputs` to the index in `dir`.
pub fn add(dir: &Path, opts: &AddOptions) -> Result<AddSummary> {
    let started = Instant::now();
    let lock = WriterLock::acquire(dir)?;
    let mut manifest: Manifest = Index::open(dir)?.manifest;
    let work = lock.work_dir("add")?;
    build::build(&BuildOptions {
        out: work.clone(),
        inputs: opts.inputs.clone(),
        shard_bytes: manifest.build.shard_bytes,
        threads: opts.threads,
        memory_limit: opts.memory_limit,
        normalization: manifest.normalization,
        text_field: manifest.build.text_field.clone(),
        force: false,
        algorithm: opts.algorithm,
        progress: opts.progress,
        part: None,
        filter: manifest
            .filter
            .as_ref()
            .map_or_else(FilterParams::current, |f| f.params),
        sa_step: manifest.sa_step(),
    })
    .context("building the new documents")?;
    let new: Manifest = serde_json::from_slice(&std::fs::read(Manifest::path(&work))?)
        .context("reading the new shards' manifest")?;

    let next_generation = manifest.generation + 1;
    let base_shard = manifest.shards.len() as u32;
    let first_doc = manifest.totals.documents;
    for mut shard in new.shards.iter().cloned() {
        shard.id += base_shard;
        shard.first_doc += first_doc;
        for kind in FileKind::ALL {
            let name = generation_file_name(next_generation, shard.id, kind);
            let entry = match kind {
                FileKind::Text => &mut shard.text,
                FileKind::Sa => &mut shard.sa,
                FileKind::Docs => &mut shard.docs,
                FileKind::Meta => &mut shard.meta,
            };
            std::fs::rename(work.join(&entry.name), dir.join(&name))
                .with_context(|| format!("cannot move {} into the index", entry.name))?;
            entry.name = name;
        }
        manifest.shards.push(shard);
    }
    // The new shards' filter joins the index's, when the index has one built alike; an index
    // without one stays without (`memaudit index upgrade` adds one for everything).
    let joins = match (&mut manifest.filter, &new.filter) {
        (Some(have), Some(added)) if have.params == added.params => Some((have, added)),
        _ => None,
    };
    if let Some((have, added)) = joins {
        for (k, f) in added.files.iter().enumerate() {
            let mut f = f.clone();
            let name = filter_file_name(next_generation, k);
            std::fs::rename(work.join(&f.file.name), dir.join(&name))
                .with_context(|| format!("cannot move {} into the index", f.file.name))?;
            f.file.name = name;
            f.first_shard += base_shard;
            have.files.push(f);
        }
    } else if manifest.filter.is_some() {
        // Parameters differ: the union would not cover the new shards alike.
        manifest.filter = None;
        tracing::warn!(
            "the index's presence filter was built with other parameters than this version's; \
             it is dropped (run `memaudit index upgrade` to build one for everything)"
        );
    }
    manifest.sources.extend(new.sources.iter().cloned());
    let room = MAX_SKIPPED_LISTED.saturating_sub(manifest.skipped.len());
    manifest
        .skipped
        .extend(new.skipped.iter().take(room).cloned());
    manifest.totals.documents += new.totals.documents;
    manifest.totals.text_bytes += new.totals.text_bytes;
    manifest.totals.input_bytes += new.totals.input_bytes;
    manifest.totals.skipped += new.totals.skipped;
    let generation = lock.publish(
        &mut manifest,
        generation::change("add", new.totals.documents),
    )?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(AddSummary {
        generation,
        index_id: manifest.index_id.clone(),
        documents: new.totals.documents,
        first_doc,
        skipped: new.totals.skipped,
        shards_added: new.shards.len(),
        shards: manifest.shards.len(),
        input_bytes: new.totals.input_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
