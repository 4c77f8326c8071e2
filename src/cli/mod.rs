//! The command line, one file per command: its arguments (clap), the call into the library, and
//! the printing of the result. Nothing here decides anything the library could; the library
//! (`src/lib.rs`) never sees clap.
//!
//! - [`index`]: `memaudit index build | verify | stats`.
//! - [`check`]: `memaudit check`, the verbatim spans of one text.
//! - [`probe`]: `memaudit probe`, every token's scores and the boundary signals.
//! - [`serve`]: `memaudit serve`, the daemon.
//! - [`demo`]: `memaudit demo`, the daemon on a small local corpus with its records printed.
//! - [`audit`]: `memaudit audit`, the memorization analyses and their report.

pub mod audit;
pub mod check;
pub mod demo;
pub mod index;
pub mod probe;
pub mod serve;

use anyhow::{Context, Result};
use std::io::Read;

/// The text of `input`: a file, or standard input for `-`.
pub fn read_input(input: &str) -> Result<String> {
    if input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input as UTF-8 text")?;
        Ok(s)
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("{input}: cannot read as UTF-8 text"))
    }
}

/// The multi-threaded runtime the async commands run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
