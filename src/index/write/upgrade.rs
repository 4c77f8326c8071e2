//! `memaudit index upgrade`: brings an index written by an earlier version up to this one's
//! layout, in place, as a new generation.
//!
//! Two things can be brought up to date, each once:
//! - **The sparse suffix array** (format version 2, [`ShardEntry::sa_step`]): a version 1 index
//!   holds every suffix, 4 bytes per text byte. Upgrading keeps every
//!   [`DEFAULT_SA_STEP`]-th (or the step asked for), streaming each array once into a new file,
//!   so the index shrinks from about 5.3× the text to under 2×. Spans of at least
//!   `2 × step − 1` characters are found as before ([`crate::index::read::search`]).
//! - **The presence filter** ([`crate::index::filter`]): an index built before filters answers
//!   every query by searching every shard; upgrading writes one filter file for all its shards
//!   (reading each shard's text once). A new array needs new search samples, which live in the
//!   filter files, so a step change writes the filter again too.
//!
//! The result is published as one new generation. Answers do not change; what a query reads
//! does. An index already current is left as it is.

use crate::index::format::{
    filter_file_name, generation_file_name, FileHeader, FileKind, FilterParams, FilterSet,
    ShardEntry, U32s, DEFAULT_SA_STEP, FORMAT_VERSION, MAX_SA_STEP,
};
use crate::index::write::build::HashingWriter;
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

/// Upgrades the index in `dir` in place (under its writer lock). `sa_step`: the step every
/// shard's suffix array should have; `None` makes a version 1 index's arrays
/// [`DEFAULT_SA_STEP`] and leaves a version 2 index's as they are. A step can only grow, by a
/// multiple of the one a shard has (a denser array needs the suffixes it dropped: a rebuild).
pub fn upgrade(dir: &Path, sa_step: Option<u32>) -> Result<UpgradeSummary> {
    let started = Instant::now();
    let lock = WriterLock::acquire(dir)?;
    let index = Index::open(dir)?;
    let mut manifest = index.manifest.clone();
    drop(index);
    let current = FilterParams::current();
    let mut upgraded = Vec::new();
    let mut bytes_written = 0;
    let step = sa_step.or((manifest.format_version < 2).then_some(DEFAULT_SA_STEP));
    let mut resampled = 0;
    if let Some(step) = step {
        anyhow::ensure!(
            (1..=MAX_SA_STEP).contains(&step),
            "a suffix array step must be 1 to {MAX_SA_STEP}, not {step}"
        );
        let generation = manifest.generation + 1;
        for shard in &mut manifest.shards {
            if shard.sa_step == step {
                continue;
            }
            anyhow::ensure!(
                step % shard.sa_step == 0,
                "shard {} keeps one suffix per {} positions: a step of {step} would need suffixes \
                 it does not have. Rebuild the index with `memaudit index build --sa-step {step}`",
                shard.id,
                shard.sa_step
            );
            bytes_written += resample(dir, shard, step, generation)?;
            resampled += 1;
        }
        if resampled > 0 {
            upgraded.push(format!(
                "suffix arrays: one suffix per {step} positions kept, in {resampled} shard(s)"
            ));
        }
    }
    if resampled > 0 || manifest.filter.as_ref().map(|f| f.params) != Some(current) {
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
    manifest.format_version = FORMAT_VERSION;
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

/// Writes `shard`'s suffix array again with only the suffixes at multiples of `step`, as a file
/// of `generation`, and records it in `shard`; returns the bytes written. The array is read in
/// suffix order and filtered as it streams, so memory stays a buffer's.
fn resample(dir: &Path, shard: &mut ShardEntry, step: u32, generation: u64) -> Result<u64> {
    let old = crate::index::read::open::map_sa(dir, shard)?;
    let sa = U32s(old.bytes());
    let header = |count| FileHeader {
        kind: FileKind::Sa,
        version: FORMAT_VERSION,
        count,
    };
    // Entries are positions divided by the step: `ratio` old entries make a new one.
    let ratio = step / shard.sa_step;
    let kept = (0..sa.len())
        .filter(|&i| sa.get(i).is_multiple_of(ratio))
        .count() as u64;
    let name = generation_file_name(generation, shard.id, FileKind::Sa);
    let mut w = HashingWriter::create_with(dir, name, &header(kept).encode())?;
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..sa.len() {
        let e = sa.get(i);
        if e.is_multiple_of(ratio) {
            buf.extend_from_slice(&(e / ratio).to_le_bytes());
            if buf.len() >= 1 << 20 {
                w.write(&buf)?;
                buf.clear();
            }
        }
    }
    w.write(&buf)?;
    shard.sa = w.finish()?;
    shard.sa_step = step;
    shard.sa_slots = (step > 1).then_some(kept);
    Ok(shard.sa.bytes)
}
