//! The corpus index, in two sides around one on-disk format.
//!
//! - [`format`](mod@format): what the files of an index directory hold, the one place that says so; and
//!   [`filter`], the presence filter's definition (hashing, minimizers, blocks), which the
//!   writers build and the readers consult.
//! - [`read`]: opening an index (`Index::open` maps a directory), the queries everything else
//!   calls ([`Index::spans`], [`Index::count`]; near-verbatim and streamed matching), checking its
//!   files, and moving to a new generation while serving.
//! - [`write`](mod@write): building an index (whole, or by parts merged after), and changing it in place by
//!   generations: takedown, additions, compaction, upgrades; the writer lock and the publishing
//!   protocol every change follows.
//!
//! Readers open one generation and keep it until they reopen; writers never change a file a
//! manifest names.

pub mod filter;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod format;
pub mod read;
pub mod write;

pub use read::open::{Index, OpenError};
pub use read::search::{Hit, Span, SpanOptions, SpanReport, DEFAULT_MIN_LEN};
