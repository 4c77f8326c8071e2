//! Parts of a build for a batch engine: `memaudit index build --part I/N` indexes only part `I`
//! (0-based, as a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`) of `N`, so that `N` machines
//! each build one part of the same inputs.
//!
//! The inputs are split by whole files, in the order the build discovers them (sorted), into `N`
//! contiguous runs of about equal bytes: file `k` goes to part `⌊start_k · N / total⌋`, where
//! `start_k` is the bytes of the files before it. The split depends only on the input list and
//! the file sizes, so every machine computes the same one, and the parts taken in order hold the
//! documents in the order a single build would.

use crate::corpus::InputFile;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Part `index` of `count` (0 ≤ index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Which part, from 0.
    pub index: u32,
    /// How many parts the inputs are split into.
    pub count: u32,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Part {
    type Err = String;

    /// `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Part, String> {
        let usage =
            || format!("{s:?}: expected I/N with 0 <= I < N, e.g. 0/4 (parts count from 0)");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| usage())?,
            n.trim().parse::<u32>().map_err(|_| usage())?,
        );
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Part { index, count })
    }
}

impl Part {
    /// The part of each of `files`, in order (see the module documentation).
    pub fn assign(count: u32, files: &[InputFile]) -> Vec<u32> {
        let total: u128 = files.iter().map(|f| f.bytes as u128).sum();
        let mut start = 0u128;
        files
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let p = match (start * count as u128).checked_div(total) {
                    Some(p) => p as u32,
                    // Only empty files: by position.
                    None => (k as u128 * count as u128 / files.len() as u128) as u32,
                };
                start += f.bytes as u128;
                p
            })
            .collect()
    }

    /// The files of this part; an error when it holds none (more parts than the inputs fill).
    pub fn select(&self, files: Vec<InputFile>) -> Result<Vec<InputFile>> {
        let n = files.len();
        let parts = Part::assign(self.count, &files);
        let mine: Vec<InputFile> = files
            .into_iter()
            .zip(parts)
            .filter(|(_, p)| *p == self.index)
            .map(|(f, _)| f)
            .collect();
        if mine.is_empty() {
            bail!(
                "part {self} holds no input files: {n} files split by size into {} parts leave this one empty; use fewer parts",
                self.count
            );
        }
        Ok(mine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Compression, Layout};

    fn files(sizes: &[u64]) -> Vec<InputFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| InputFile {
                path: format!("f{i:03}.txt").into(),
                layout: Layout::Txt,
                compression: Compression::None,
                bytes,
            })
            .collect()
    }

    #[test]
    fn parts_are_contiguous_cover_every_file_once_and_balance_bytes() {
        let sizes: Vec<u64> = (0..97).map(|i| 1 + (i * 7919 % 1000)).collect();
        for n in [1u32, 2, 3, 4, 7, 16] {
            let fs = files(&sizes);
            let parts = Part::assign(n, &fs);
            assert!(
                parts.windows(2).all(|w| w[0] <= w[1]),
                "contiguous, in order"
            );
            let mut seen = Vec::new();
            for i in 0..n {
                let mine = Part { index: i, count: n }.select(fs.clone()).unwrap();
                let bytes: u64 = mine.iter().map(|f| f.bytes).sum();
                let total: u64 = sizes.iter().sum();
                let fair = total / n as u64;
                // Within one largest file of an equal share.
                assert!(
                    bytes.abs_diff(fair) <= 1000,
                    "part {i}/{n}: {bytes} vs {fair}"
                );
                seen.extend(mine.into_iter().map(|f| f.path));
            }
            let all: Vec<_> = fs.into_iter().map(|f| f.path).collect();
            assert_eq!(seen, all, "the parts in order are the inputs in order");
        }
    }

    #[test]
    fn an_empty_part_and_bad_specs_are_refused() {
        let e = Part { index: 3, count: 4 }
            .select(files(&[10, 10]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("part 3/4 holds no input files"), "{e}");
        assert!(Part { index: 0, count: 4 }
            .select(files(&[0, 0, 0, 0]))
            .is_ok());
        assert_eq!("2/5".parse::<Part>().unwrap(), Part { index: 2, count: 5 });
        for bad in ["5/5", "1/0", "x/2", "1", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Part>().is_err(), "{bad}");
        }
    }
}
