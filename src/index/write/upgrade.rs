//! `memaudit index upgrade`: brings an index written by an earlier version up to this one's
//! layout, in place, as a new generation.
//!
//! Today that means the presence filter ([`crate::index::filter`]): an index built before filters
//! answers every query by searching every shard; upgrading writes one filter file for all its
//! shards (reading each shard's text once) and publishes it. Answers do not change; what a
//! query reads does. An index already current is left as it is.

use crate::index::format::{filter_file_name, FilterParams, FilterSet};
use crate::index::write::generation::{self, WriterLock};
use crate::index::Index;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// What [`upgrade`] did.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeSummary {
    /// The generation in force after it (unchanged when nothing was to do).
    pub generation: u64,
    /// The index id after it.
    pub index_id: String,
    /// What was brought up to date: empty when the index was current.
    pub upgraded: Vec<String>,
    /// Bytes written.
    pub bytes_written: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Upgrades the index in `dir` in place (under its writer lock).
pub fn upgrade(dir: &Path) -> Result<UpgradeSummary> {
    let started = Instant::now();
    let lock = WriterLock::acquire(dir)?;
    let index = Index::open(dir)?;
    let mut manifest = index.manifest.clone();
    drop(index);
    let current = FilterParams::current();
    let mut upgraded = Vec::new();
    let mut bytes_written = 0;
    if manifest.filter.as_ref().map(|f| f.params) != Some(current) {
        let f = crate::index::filter::write(
            dir,
            &manifest.shards,
            current,
            filter_file_name(manifest.generation + 1, 0),
        )?;
        bytes_written += f.file.bytes;
        upgraded.push(format!(
            "presence filter: {} for {} shard(s)",
            f.file.name,
            manifest.shards.len()
        ));
        manifest.filter = Some(FilterSet {
            params: current,
            files: vec![f],
        });
    }
    if upgraded.is_empty() {
        return Ok(UpgradeSummary {
            generation: manifest.generation,
            index_id: manifest.index_id,
            upgraded,
            bytes_written,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let mut change = generation::change("upgrade", 0);
    change.reason = Some(upgraded.join("; "));
    let generation = lock.publish(&mut manifest, change)?;
    Ok(UpgradeSummary {
        generation,
        index_id: manifest.index_id,
        upgraded,
        bytes_written,
        seconds: started.elapsed().as_secs_f64(),
    })
}
