//! `memaudit audit`: how much a model memorized of its training corpus, measured the way Chen,
//! Han & Miyao (2024) did, on any model the probe loads and any index or token file.
//!
//! - [`rows`]: seeded token windows from an index's documents or a token-row file.
//! - [`score`]: the memorization score of a row (k of K), the census bins and groups.

pub mod rows;
pub mod score;
