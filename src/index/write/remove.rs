//! `memaudit index remove`: takedown. Documents chosen by id or by metadata are hidden from every
//! query at once, in a new generation, without rewriting any shard; `index compact` erases them.

use crate::index::format::Manifest;
use crate::index::write::generation::{self, WriterLock};
use crate::index::Index;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Which documents to take down. A document is chosen when its id is listed, or when every
/// `where` condition holds for its metadata.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Global document ids.
    pub ids: Vec<u64>,
    /// `(key, value)`: the metadata field `key` equals `value` (a string field compared as is,
    /// any other JSON value by its JSON text).
    pub wheres: Vec<(String, String)>,
}

/// What a removal did.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveSummary {
    /// The generation published (the old one when nothing new was removed).
    pub generation: u64,
    /// The index id after the change.
    pub index_id: String,
    /// Documents newly hidden.
    pub removed: u64,
    /// Chosen documents that were already removed or erased.
    pub already_removed: u64,
    /// Removed documents in the index, not yet erased by `compact`.
    pub hidden_not_erased: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Parses `key=value` for `--where`.
pub fn parse_where(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "expected KEY=VALUE (e.g. url=https://example.com/a), got {s:?}"
        )),
    }
}

/// Whether a document's metadata satisfies every condition.
fn matches(meta: &serde_json::Value, wheres: &[(String, String)]) -> bool {
    wheres.iter().all(|(k, want)| match meta.get(k) {
        Some(serde_json::Value::String(v)) => v == want,
        Some(other) => serde_json::from_str::<serde_json::Value>(want).is_ok_and(|w| w == *other),
        None => false,
    })
}

/// The global ids of the documents whose metadata satisfies every condition.
pub fn select_where(index: &Index, wheres: &[(String, String)]) -> Vec<u64> {
    let mut out = Vec::new();
    for shard in &index.shards {
        for k in 0..shard.entry.documents {
            if matches(&shard.doc_meta(k), wheres) {
                out.push(shard.entry.first_doc + k);
            }
        }
    }
    out
}

/// Hides the selected documents in a new generation of the index in `dir`.
pub fn remove(dir: &Path, selection: &Selection, reason: Option<String>) -> Result<RemoveSummary> {
    let started = Instant::now();
    if selection.ids.is_empty() && selection.wheres.is_empty() {
        bail!("nothing selected: give document ids, --ids-file or --where KEY=VALUE");
    }
    let lock = WriterLock::acquire(dir)?;
    let index = Index::open(dir)?;
    let total = index.manifest.totals.documents;
    if let Some(&bad) = selection.ids.iter().find(|&&d| d >= total) {
        bail!(
            "{}: no document {bad}; the index holds ids 0 to {}",
            dir.display(),
            total.saturating_sub(1)
        );
    }
    let mut chosen = selection.ids.clone();
    if !selection.wheres.is_empty() {
        chosen.extend(select_where(&index, &selection.wheres));
    }
    chosen.sort_unstable();
    chosen.dedup();
    let mut manifest: Manifest = index.manifest.clone();
    drop(index);
    let gone = |d: &u64| {
        manifest.removed.binary_search(d).is_ok() || manifest.erased.binary_search(d).is_ok()
    };
    let new: Vec<u64> = chosen.iter().copied().filter(|d| !gone(d)).collect();
    let already = (chosen.len() - new.len()) as u64;
    if new.is_empty() {
        if chosen.is_empty() {
            bail!(
                "{}: no document matches {}",
                dir.display(),
                selection
                    .wheres
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            );
        }
        return Ok(RemoveSummary {
            generation: manifest.generation,
            index_id: manifest.index_id.clone(),
            removed: 0,
            already_removed: already,
            hidden_not_erased: manifest.removed.len() as u64,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    manifest.removed.extend(&new);
    manifest.removed.sort_unstable();
    let mut change = generation::change("remove", new.len() as u64);
    change.ids = new.clone();
    change.reason = reason;
    let generation = lock.publish(&mut manifest, change)?;
    Ok(RemoveSummary {
        generation,
        index_id: manifest.index_id.clone(),
        removed: new.len() as u64,
        already_removed: already,
        hidden_not_erased: manifest.removed.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}
