//! Windowing of long token sequences: overlapping windows, each position scored by exactly one.
//!
//! A sequence of `len` tokens has `len − 1` rows to score (row `r` predicts token `r + 1`). Each
//! window covers `start..end` (at most `size` tokens) and *owns* rows `own.start..own.end`; owned
//! ranges partition `0..len − 1`. Every window after the first starts `overlap` tokens before its
//! first owned row, so each of its rows is predicted from at least `overlap + 1` tokens of context
//! (the first window's rows from everything before them). Windows advance by
//! `size − 1 − overlap` tokens; the cost is that share of tokens scored twice.

use anyhow::{ensure, Result};
use std::ops::Range;

/// One window of a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Tokens fed to the model.
    pub tokens: Range<usize>,
    /// Rows whose scores this window supplies (row `r` predicts token `r + 1`).
    pub own: Range<usize>,
}

/// Checks a window size and overlap: `size ≥ 2` and `overlap ≤ size − 2`.
pub fn check(size: usize, overlap: usize) -> Result<()> {
    ensure!(size >= 2, "window size {size}: at least 2 tokens");
    ensure!(
        overlap + 2 <= size,
        "overlap {overlap} must be at most the window size minus 2 ({})",
        size.saturating_sub(2)
    );
    Ok(())
}

/// Plans the windows of a `len`-token sequence (size and overlap as [`check`] requires).
pub fn plan(len: usize, size: usize, overlap: usize) -> Result<Vec<Window>> {
    check(size, overlap)?;
    let rows = len.saturating_sub(1);
    let mut out = Vec::new();
    let (mut start, mut own_start) = (0, 0);
    while own_start < rows {
        let end = (start + size).min(len);
        out.push(Window {
            tokens: start..end,
            own: own_start..end - 1,
        });
        own_start = end - 1;
        // Only used if rows remain, and then own_start ≥ size − 1 > overlap.
        start = own_start.saturating_sub(overlap);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn owned_rows_partition_and_keep_context(len in 0usize..3000, size in 2usize..700, o in 0usize..700) {
            prop_assume!(o + 2 <= size);
            let w = plan(len, size, o).unwrap();
            let mut next = 0;
            for (i, win) in w.iter().enumerate() {
                prop_assert!(win.tokens.len() <= size);
                prop_assert_eq!(win.own.start, next);
                prop_assert!(win.own.start < win.own.end);
                // Each owned row's target is inside the window…
                prop_assert!(win.own.end < win.tokens.end);
                // …and it sees at least `o + 1` tokens of context (or the whole prefix).
                let ctx = win.own.start + 1 - win.tokens.start;
                let enough = if i == 0 { win.tokens.start == 0 } else { ctx > o };
                prop_assert!(enough, "window {} has {} tokens of context", i, ctx);
                next = win.own.end;
            }
            prop_assert_eq!(next, len.saturating_sub(1));
        }
    }

    #[test]
    fn examples() {
        assert!(plan(0, 8, 2).unwrap().is_empty());
        assert!(plan(1, 8, 2).unwrap().is_empty());
        // A text shorter than the overlap: one window.
        assert_eq!(plan(3, 512, 128).unwrap().len(), 1);
        assert_eq!(
            plan(5, 8, 2).unwrap(),
            vec![Window {
                tokens: 0..5,
                own: 0..4
            }]
        );
        assert_eq!(
            plan(12, 6, 2).unwrap(),
            vec![
                Window {
                    tokens: 0..6,
                    own: 0..5
                },
                Window {
                    tokens: 3..9,
                    own: 5..8
                },
                Window {
                    tokens: 6..12,
                    own: 8..11
                },
            ]
        );
        assert!(plan(10, 4, 3).is_err());
        assert!(plan(10, 1, 0).is_err());
    }
}
