//! The corpus index: on-disk format, builder, memory-mapped reader, queries and verification.
//!
//! `Index::open(dir)` maps a directory made by [`build::build`]; [`Index::spans`] and
//! [`Index::count`] are the queries everything else (the `check` command, the daemon, the offline
//! analyses) calls.

pub mod build;
pub mod format;
pub mod reader;
pub mod search;
pub mod verify;

pub use reader::{Index, OpenError};
pub use search::{Hit, Span, SpanOptions, SpanReport, DEFAULT_MIN_LEN};
