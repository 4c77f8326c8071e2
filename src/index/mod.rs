//! The corpus index: on-disk format, builder, memory-mapped reader, queries and verification.
//!
//! `Index::open(dir)` maps a directory made by [`build::build`] (or [`merge::merge`]);
//! [`Index::spans`] and [`Index::count`] are the queries everything else (the `check` command, the
//! daemon, the offline analyses) calls.
//!
//! An index changes in place by generations ([`generation`]): [`remove::remove`] hides documents
//! (takedown), [`add::add`] appends new shards, [`compact::compact`] erases removed text and merges
//! small shards. Each publishes a new `manifest.json` atomically; readers open one generation and
//! keep it until they reopen.

// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
pub mod add;
#[allow(missing_docs)]
pub mod build;
pub mod compact;
pub mod filter;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod format;
pub mod generation;
pub mod incremental;
pub mod merge;
pub mod near;
pub mod part;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod reader;
pub mod remove;
pub mod search;
pub mod upgrade;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod verify;

pub use reader::{Index, OpenError};
pub use search::{Hit, Span, SpanOptions, SpanReport, DEFAULT_MIN_LEN};
