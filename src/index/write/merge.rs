//! `memaudit index merge`: indexes built elsewhere (typically the parts of `index build --part I/N`
//! run on N machines) combined into one, documents in part order so ids are those a single build
//! would give.
//!
//! Nothing is re-sorted: each part's shards become shards of the merged index. By default a shard
//! file is hard-linked ("by reference": no bytes copied, and safe because no memaudit writer ever
//! changes a shard file in place); `--copy` copies, and a part on another filesystem is copied
//! anyway. Parts must agree on what a query sees: normalization and the text field; anything else
//! is refused, naming the part and the difference. Parts that record `--part I/N` must be all N,
//! each once, given in order.

use crate::index::format::{
    filter_file_name, shard_file_name, Change, FileKind, FilterSet, Manifest, Totals,
    MAX_SKIPPED_LISTED,
};
use crate::index::write::build::{check_target, install, work_dir_beside};
use crate::index::write::generation::{now_unix, write_manifest};
use crate::index::Index;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How shard files reach the merged index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Hard links (copies when a part is on another filesystem).
    Link,
    /// Copies.
    Copy,
}

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    /// The merged index.
    pub index: PathBuf,
    /// Its id.
    pub index_id: String,
    /// Parts merged.
    pub parts: usize,
    /// Documents and shards in the result.
    pub documents: u64,
    /// See `documents`.
    pub shards: usize,
    /// Files hard-linked and copied.
    pub linked: usize,
    /// See `linked`.
    pub copied: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Refuses parts that would not answer queries alike, or an incomplete or misordered part set.
fn check_parts(parts: &[(PathBuf, Manifest)]) -> Result<()> {
    let Some((first_dir, first)) = parts.first() else {
        bail!("no parts to merge");
    };
    for (dir, m) in &parts[1..] {
        if m.normalization != first.normalization {
            bail!(
                "{} was built with normalization {} but {} with {}; parts must be built with the \
                 same normalization flags",
                dir.display(),
                serde_json::to_string(&m.normalization)?,
                first_dir.display(),
                serde_json::to_string(&first.normalization)?
            );
        }
        if m.build.text_field != first.build.text_field {
            bail!(
                "{} was built with --text-field {:?} but {} with {:?}",
                dir.display(),
                m.build.text_field,
                first_dir.display(),
                first.build.text_field
            );
        }
    }
    let labelled: Vec<_> = parts.iter().filter_map(|(_, m)| m.build.part).collect();
    if labelled.is_empty() {
        return Ok(());
    }
    if labelled.len() != parts.len() {
        let (dir, _) = parts
            .iter()
            .find(|(_, m)| m.build.part.is_none())
            .expect("one part is unlabelled");
        bail!(
            "{} is a whole index but the others are parts of a `--part I/N` build; merge parts of \
             one build only",
            dir.display()
        );
    }
    let n = labelled[0].count;
    for (i, (dir, m)) in parts.iter().enumerate() {
        let p = m.build.part.expect("checked above");
        if p.count != n {
            bail!(
                "{} is part {p} but {} is part {}; all parts must come from one build into {n} parts",
                dir.display(),
                parts[0].0.display(),
                labelled[0]
            );
        }
        if p.index as usize != i {
            bail!(
                "{} is part {p} but stands at position {i}; give the parts in order, 0/{n} first",
                dir.display()
            );
        }
    }
    if parts.len() as u32 != n {
        bail!(
            "{} part(s) given of {n}: part {}/{n} is missing",
            parts.len(),
            parts.len()
        );
    }
    if let Some(w) = parts.windows(2).find(|w| w[0].1.sources == w[1].1.sources) {
        bail!(
            "{} and {} hold the same inputs",
            w[0].0.display(),
            w[1].0.display()
        );
    }
    Ok(())
}

/// Links (or copies) `from` to `to`; returns whether it was linked.
fn transfer(from: &Path, to: &Path, how: Transfer) -> Result<bool> {
    if how == Transfer::Link && std::fs::hard_link(from, to).is_ok() {
        return Ok(true);
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(false)
}

/// Merges the indexes in `parts`, in order, into a new index at `out`.
pub fn merge(out: &Path, parts: &[PathBuf], how: Transfer, force: bool) -> Result<MergeSummary> {
    let started = Instant::now();
    let mut opened = Vec::with_capacity(parts.len());
    for p in parts {
        let m = Index::open(p)
            .with_context(|| format!("opening part {}", p.display()))?
            .manifest;
        opened.push((p.clone(), m));
    }
    check_parts(&opened)?;
    let replace = check_target(out, force)?;
    let tmp = work_dir_beside(out, "merging")?;
    let result = merge_into(&tmp, &opened, how);
    let (manifest, linked, copied) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    install(&tmp, out, replace)?;
    Ok(MergeSummary {
        index: out.to_path_buf(),
        index_id: manifest.index_id,
        parts: parts.len(),
        documents: manifest.totals.documents,
        shards: manifest.shards.len(),
        linked,
        copied,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn merge_into(
    tmp: &Path,
    parts: &[(PathBuf, Manifest)],
    how: Transfer,
) -> Result<(Manifest, usize, usize)> {
    let first = &parts[0].1;
    let mut m = Manifest {
        shards: Vec::new(),
        sources: Vec::new(),
        skipped: Vec::new(),
        removed: Vec::new(),
        erased: Vec::new(),
        history: Vec::new(),
        generation: 1,
        totals: Totals {
            documents: 0,
            text_bytes: 0,
            input_bytes: 0,
            skipped: 0,
        },
        created_unix: now_unix(),
        memaudit_version: env!("CARGO_PKG_VERSION").into(),
        ..first.clone()
    };
    m.build.part = None;
    m.build.seconds = 0.0;
    let (mut linked, mut copied) = (0, 0);
    for (dir, part) in parts {
        let base = m.totals.documents;
        for shard in &part.shards {
            let mut e = shard.clone();
            e.id = m.shards.len() as u32;
            e.first_doc += base;
            for kind in FileKind::ALL {
                let name = shard_file_name(e.id, kind);
                let from = dir.join(&shard.file(kind).name);
                if transfer(&from, &tmp.join(&name), how)? {
                    linked += 1;
                } else {
                    copied += 1;
                }
                match kind {
                    FileKind::Text => e.text.name = name,
                    FileKind::Sa => e.sa.name = name,
                    FileKind::Docs => e.docs.name = name,
                    FileKind::Meta => e.meta.name = name,
                }
            }
            m.shards.push(e);
        }
        m.removed.extend(part.removed.iter().map(|d| d + base));
        m.erased.extend(part.erased.iter().map(|d| d + base));
        m.sources.extend(part.sources.iter().cloned());
        let room = MAX_SKIPPED_LISTED.saturating_sub(m.skipped.len());
        m.skipped.extend(part.skipped.iter().take(room).cloned());
        m.totals.documents += part.totals.documents;
        m.totals.text_bytes += part.totals.text_bytes;
        m.totals.input_bytes += part.totals.input_bytes;
        m.totals.skipped += part.totals.skipped;
        m.build.seconds += part.build.seconds;
    }
    // The parts' filters together cover every shard, when every part has one built alike.
    m.filter = None;
    let params = parts[0].1.filter.as_ref().map(|f| f.params);
    if parts
        .iter()
        .all(|(_, p)| p.filter.as_ref().map(|f| f.params) == params)
    {
        if let Some(params) = params {
            let mut files = Vec::new();
            let mut base_shard = 0;
            for (dir, part) in parts {
                for f in &part.filter.as_ref().expect("checked above").files {
                    let mut f = f.clone();
                    f.first_shard += base_shard;
                    let name = filter_file_name(1, files.len());
                    if transfer(&dir.join(&f.file.name), &tmp.join(&name), how)? {
                        linked += 1;
                    } else {
                        copied += 1;
                    }
                    f.file.name = name;
                    files.push(f);
                }
                base_shard += part.shards.len() as u32;
            }
            m.filter = Some(FilterSet { params, files });
        }
    }
    m.index_id = m.id();
    m.history.push(Change {
        generation: 1,
        created_unix: m.created_unix,
        action: "merge".into(),
        index_id: m.index_id.clone(),
        documents: m.totals.documents,
        ids: Vec::new(),
        reason: Some(format!("{} parts", parts.len())),
        shards: m.shards.len(),
    });
    write_manifest(tmp, &m)?;
    Ok((m, linked, copied))
}
