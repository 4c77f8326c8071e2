//! memaudit: finds the verbatim spans that LLM output shares with a training corpus.
//!
//! The library holds every stage as a plain function; `src/main.rs` is only the command line.
//! - [`corpus`]: reading corpus files and the text normalization shared by build and query.
//! - [`index`]: the memory-mapped suffix-array index: build, open, query, verify.
//! - [`probe`]: tokenization (tokenizer.json, or built from GGUF metadata); the entropy model next.
//! - [`check`]: rendering one text's span report for a person or as JSON.
//! - [`units`]: parsing sizes such as `1GiB` on the command line.

pub mod check;
pub mod corpus;
pub mod index;
pub mod probe;
pub mod units;
