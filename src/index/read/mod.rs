//! The reader's side of an index: opening one generation, querying it, checking its files, and
//! moving to the next while serving.
//!
//! - [`open`]: the manifest parsed and every file mapped ([`Index`], [`Shard`]), sizes and headers
//!   checked;
//! - [`search`]: counts and maximal verbatim spans, through the presence filter
//!   ([`crate::index::filter`]) and the suffix arrays;
//! - [`near`]: near-verbatim spans chained from exact seeds;
//! - [`incremental`]: the spans of a streamed output, chunk by chunk;
//! - [`verify`]: checksums and structure (`memaudit index verify`), and [`live`]'s checks;
//! - [`live`]: the next generation opened for a running reader (checked, refused when older or
//!   empty) and read into memory before the swap.
//!
//! [`Index`]: open::Index
//! [`Shard`]: open::Shard

pub mod incremental;
pub mod live;
pub mod near;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod open;
pub mod search;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod verify;
