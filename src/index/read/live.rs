//! The next generation for a running reader: opened and checked against the one in use
//! ([`open_next`]: refused when older or empty, files it does not already hold checksummed), then
//! read into memory before the swap ([`Index::prepare`]), so no query waits for it. The daemon's
//! follower (`serve::reload`) calls both; the swap itself is the analyzer's
//! (`Analyzer::replace_index`).

use crate::index::format::Manifest;
use crate::index::read::open::{FileId, Index};
use crate::index::read::verify::{checksum_files, mapped_files};
use anyhow::Result;

impl Index {
    /// Reads every page of the presence filter and the search samples once
    /// ([`crate::index::filter::Presence::touch`]), so that queries find them resident: for
    /// long-running users (the daemon calls it before it is ready and before it moves to a new
    /// generation; the benchmarks call it). They are mapped files, so this is page cache shared
    /// with every process serving the index, not private memory, and a generation that keeps a
    /// file finds it still in memory. Without it, the first queries fault the pages in, with
    /// the same answers.
    pub fn prepare(&self) {
        if let Some(p) = &self.presence {
            std::hint::black_box(p.touch());
        }
    }
}

/// A generation [`open_next`] refuses to move to, though its files are sound.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Older than the one in use.
    #[error(
        "{}: generation {found} is older than generation {in_use} in use (a backup copied over \
         the live index?); refused, since it would undo every change since. To serve it on \
         purpose, publish it as a new generation: `memaudit index rollback {} --after {in_use}`",
        manifest.display(),
        dir.display()
    )]
    Older {
        /// The manifest read.
        manifest: std::path::PathBuf,
        /// Its generation.
        found: u64,
        /// The generation in use.
        in_use: u64,
        /// The index directory.
        dir: std::path::PathBuf,
    },
    /// No live document: it would allow every text.
    #[error(
        "{}: generation {generation} holds no live document; refused, since it would allow \
         every text (the daemon reports not ready until a generation with documents is published)",
        manifest.display()
    )]
    Empty {
        /// The manifest read.
        manifest: std::path::PathBuf,
        /// Its generation.
        generation: u64,
    },
}

/// Opens the index in `dir` as a reader that already has `current` open moves to a new
/// generation: every file's size and header are checked by opening, and every shard file
/// `current` does not already hold (same name, same checksum) is checksummed. A takedown adds no
/// file, so this costs one manifest read; an addition, reading its new shards once.
///
/// Refused too: a generation older than `current`'s (a backup restored over a live index would
/// silently undo every takedown since; a rollback is published as a new generation by
/// `memaudit index rollback`), and an index with no live document (which would allow every
/// text: the daemon fails closed instead).
pub fn open_next(dir: &std::path::Path, current: &Index) -> Result<Index> {
    let next = Index::open(dir)?;
    let manifest = Manifest::path(dir);
    if next.generation() < current.generation() {
        return Err(Refused::Older {
            manifest,
            found: next.generation(),
            in_use: current.generation(),
            dir: dir.to_path_buf(),
        }
        .into());
    }
    if next.manifest.live_documents() == 0 {
        return Err(Refused::Empty {
            manifest,
            generation: next.generation(),
        }
        .into());
    }
    // A file `current` holds (same name, same checksum claim) and that is still the file it
    // mapped (same inode, size and modification time) is not read again; one replaced or
    // rewritten under its name since (`cp backup/* idx/`) is.
    let known: std::collections::HashSet<(&str, &str, FileId)> = mapped_files(current)
        .into_iter()
        .map(|(f, id)| (f.name.as_str(), f.blake3.as_str(), id))
        .collect();
    let problems = checksum_files(&next, |f, id| {
        known.contains(&(f.name.as_str(), f.blake3.as_str(), id))
    });
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    Ok(next)
}
