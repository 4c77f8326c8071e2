//! The memorization score of one row and the groupings the analyses use (spec 0.3 and 0.4).
//!
//! A row's score is `k / K`, where `k` counts the positions at which the greedy continuation equals
//! the true one. Everything downstream selects rows by the integer `k` (never by float equality),
//! and keeps the match bitmap, so shorter continuations, prefix lengths and labels are read from it.

use serde::{Deserialize, Serialize};

/// Which of `K` generated tokens equal the true ones, bit `j` for continuation position `j`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matches {
    /// One flag per continuation position.
    pub bits: Vec<bool>,
}

impl Matches {
    /// Compares a generated continuation with the truth, position by position (free-running: no
    /// alignment after a mismatch).
    pub fn of(generated: &[u32], truth: &[u32]) -> Matches {
        Matches {
            bits: generated.iter().zip(truth).map(|(g, t)| g == t).collect(),
        }
    }

    /// `K`, the continuation length.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// True when there is no continuation.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// `k` over the first `len` positions: the score of the same row at a shorter continuation
    /// (greedy decoding is a prefix-stable process, so one decode of the longest `K` serves all).
    pub fn k(&self, len: usize) -> usize {
        self.bits[..len.min(self.bits.len())]
            .iter()
            .filter(|&&b| b)
            .count()
    }

    /// Number of leading matches.
    pub fn prefix(&self, len: usize) -> usize {
        self.bits[..len.min(self.bits.len())]
            .iter()
            .take_while(|&&b| b)
            .count()
    }

    /// The bitmap as a string of `1` and `0` (how `rows.jsonl` stores it).
    pub fn to_bitstring(&self) -> String {
        self.bits
            .iter()
            .map(|&b| if b { '1' } else { '0' })
            .collect()
    }

    /// Parses [`Matches::to_bitstring`]; `None` on any other character.
    pub fn from_bitstring(s: &str) -> Option<Matches> {
        s.chars()
            .map(|c| match c {
                '1' => Some(true),
                '0' => Some(false),
                _ => None,
            })
            .collect::<Option<Vec<bool>>>()
            .map(|bits| Matches { bits })
    }
}

/// Labels of the 12 census bins (the authors' legend).
pub const CENSUS_BINS: [&str; 12] = [
    "0", "(0,0.1]", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1",
];

/// The census bin of score `k / K` (spec 0.4): `[==0]`, `(0, 0.1]`, `[i/10, (i+1)/10)` for
/// i = 1..9, `[==1]`. In integers, so for K = 16 the bins hold k = {0}, {1}, {2,3}, {4}, {5,6},
/// {7}, {8,9}, {10,11}, {12}, {13,14}, {15}, {16}. (The authors' float edges from `np.arange`
/// agree with this except for K a multiple of 10.)
pub fn census_bin(k: usize, big_k: usize) -> usize {
    assert!(big_k > 0 && k <= big_k, "k = {k} of K = {big_k}");
    if k == 0 {
        0
    } else if k == big_k {
        11
    } else if 10 * k <= big_k {
        1
    } else {
        1 + 10 * k / big_k
    }
}

/// Labels of the 5 transition buckets.
pub const BUCKETS: [&str; 5] = ["very low", "low", "medium", "high", "very high"];

/// The transition bucket of score `k / K` (spec 0.4): ≤ 0.2, ≤ 0.4, ≤ 0.6, ≤ 0.8, > 0.8. For
/// K = 16: k = 0–3, 4–6, 7–9, 10–12, 13–16.
pub fn bucket(k: usize, big_k: usize) -> usize {
    assert!(big_k > 0 && k <= big_k, "k = {k} of K = {big_k}");
    (1..=4).find(|&b| 5 * k <= b * big_k).map_or(4, |b| b - 1)
}

/// The groups of the dynamics analyses, by exact level: memorized (k = K), half (k = K/2),
/// quarter (k = K/4), unmemorized (k = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// k = K.
    Memorized,
    /// k = K/2.
    Half,
    /// k = K/4.
    Quarter,
    /// k = 0.
    Unmemorized,
}

impl Group {
    /// All groups, in report order.
    pub const ALL: [Group; 4] = [
        Group::Memorized,
        Group::Half,
        Group::Quarter,
        Group::Unmemorized,
    ];

    /// The level `k` of this group at continuation length `K` (`None` when K/2 or K/4 is not
    /// an integer).
    pub fn level(self, big_k: usize) -> Option<usize> {
        match self {
            Group::Memorized => Some(big_k),
            Group::Half => big_k.is_multiple_of(2).then_some(big_k / 2),
            Group::Quarter => big_k.is_multiple_of(4).then_some(big_k / 4),
            Group::Unmemorized => Some(0),
        }
    }

    /// The group's name.
    pub fn name(self) -> &'static str {
        match self {
            Group::Memorized => "memorized",
            Group::Half => "half",
            Group::Quarter => "quarter",
            Group::Unmemorized => "unmemorized",
        }
    }

    /// The group a row with `k` of `K` belongs to, if any.
    pub fn of(k: usize, big_k: usize) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.level(big_k) == Some(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_bins_of_k16_are_the_specs() {
        let expect: [&[usize]; 12] = [
            &[0],
            &[1],
            &[2, 3],
            &[4],
            &[5, 6],
            &[7],
            &[8, 9],
            &[10, 11],
            &[12],
            &[13, 14],
            &[15],
            &[16],
        ];
        for (bin, ks) in expect.iter().enumerate() {
            for &k in *ks {
                assert_eq!(census_bin(k, 16), bin, "k = {k}");
            }
        }
    }

    #[test]
    fn census_bins_agree_with_float_edges_for_every_k_below_ten_multiples() {
        // The authors' np.arange edges, compared in f64 against the f32 score they stored.
        let edges: Vec<f64> = (1..10).map(|i| 0.1 * i as f64).collect();
        for big_k in [16usize, 32, 48, 64, 7, 13] {
            for k in 0..=big_k {
                let s = (k as f32 / big_k as f32) as f64;
                let float_bin = if s == 0.0 {
                    0
                } else if s == 1.0 {
                    11
                } else if s <= edges[0] {
                    1
                } else {
                    1 + edges.iter().filter(|&&e| s >= e).count()
                };
                assert_eq!(census_bin(k, big_k), float_bin, "k = {k}, K = {big_k}");
            }
        }
    }

    #[test]
    fn buckets_of_k16_are_the_specs() {
        let b: Vec<usize> = (0..=16).map(|k| bucket(k, 16)).collect();
        assert_eq!(b, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4]);
    }

    #[test]
    fn matches_count_prefixes_and_round_trip() {
        let m = Matches::of(&[1, 2, 9, 4], &[1, 2, 3, 4]);
        assert_eq!((m.k(4), m.k(2), m.prefix(4)), (3, 2, 2));
        assert_eq!(m.to_bitstring(), "1101");
        assert_eq!(Matches::from_bitstring("1101"), Some(m));
        assert_eq!(Matches::from_bitstring("12"), None);
        assert_eq!(Group::of(8, 16), Some(Group::Half));
        assert_eq!(Group::of(4, 16), Some(Group::Quarter));
        assert_eq!(Group::of(5, 16), None);
    }
}
