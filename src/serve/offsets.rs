//! Offset tracking for at-least-once delivery: which offsets of each partition are received but
//! not finished, and how far each partition may be committed.
//!
//! A message is *finished* when its verdict (and alert) or its dead letter is acknowledged by the
//! broker. Messages finish out of order (batches, the probe), but a partition's committable
//! offset only moves past offset `o` once `o` and every lower received offset are finished, so a
//! commit never skips an unfinished message. The committable value is Kafka's convention: the
//! next offset to read (last finished + 1).

use std::collections::{BTreeMap, BTreeSet};

/// A (topic, partition) pair.
pub type Partition = (String, i32);

#[derive(Debug, Default)]
struct State {
    /// Received and not finished.
    pending: BTreeSet<i64>,
    /// Highest offset received.
    max_seen: Option<i64>,
    /// Last offset committed (next to read), if any.
    committed: Option<i64>,
}

impl State {
    fn committable(&self) -> Option<i64> {
        match self.pending.first() {
            Some(&lowest) => Some(lowest),
            None => self.max_seen.map(|m| m + 1),
        }
    }
}

/// Per-partition pending offsets. Not synchronized itself: the serve loop keeps it in a mutex.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: BTreeMap<Partition, State>,
    in_flight: usize,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a received offset. Offsets of one partition arrive in increasing order; a lower
    /// or repeated one (a re-delivery after a seek) is tracked like any other.
    pub fn received(&mut self, p: &Partition, offset: i64) {
        let s = self.parts.entry(p.clone()).or_default();
        if s.pending.insert(offset) {
            self.in_flight += 1;
        }
        s.max_seen = Some(s.max_seen.map_or(offset, |m| m.max(offset)));
    }

    /// Marks an offset finished. Returns the partition's new committable offset when it moved.
    pub fn finished(&mut self, p: &Partition, offset: i64) -> Option<i64> {
        let s = self.parts.get_mut(p)?;
        let before = s.committable();
        if s.pending.remove(&offset) {
            self.in_flight -= 1;
        }
        let after = s.committable();
        (after != before).then_some(after).flatten()
    }

    /// Messages received and not finished, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Unfinished messages of one partition.
    pub fn pending_in(&self, p: &Partition) -> usize {
        self.parts.get(p).map_or(0, |s| s.pending.len())
    }

    /// Partitions whose committable offset is ahead of the last commit, with that offset.
    pub fn to_commit(&self) -> Vec<(Partition, i64)> {
        self.parts
            .iter()
            .filter_map(|(p, s)| {
                let c = s.committable()?;
                (Some(c) != s.committed && s.committed.is_none_or(|d| c > d))
                    .then(|| (p.clone(), c))
            })
            .collect()
    }

    /// Records a successful commit.
    pub fn committed(&mut self, p: &Partition, offset: i64) {
        if let Some(s) = self.parts.get_mut(p) {
            s.committed = Some(s.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// Forgets a partition given up in a rebalance; returns how many of its messages were
    /// still unfinished (they will be re-delivered to the new owner).
    pub fn forget(&mut self, p: &Partition) -> usize {
        match self.parts.remove(p) {
            Some(s) => {
                self.in_flight -= s.pending.len();
                s.pending.len()
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(n: i32) -> Partition {
        ("t".into(), n)
    }

    #[test]
    fn commits_stay_contiguous() {
        let mut t = OffsetTracker::new();
        for o in 10..15 {
            t.received(&p(0), o);
        }
        assert_eq!(t.in_flight(), 5);
        assert_eq!(t.finished(&p(0), 12), None);
        assert_eq!(t.finished(&p(0), 11), None);
        assert_eq!(t.finished(&p(0), 10), Some(13));
        assert_eq!(t.to_commit(), vec![(p(0), 13)]);
        t.committed(&p(0), 13);
        assert!(t.to_commit().is_empty());
        assert_eq!(t.finished(&p(0), 14), None);
        assert_eq!(t.finished(&p(0), 13), Some(15));
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.to_commit(), vec![(p(0), 15)]);
        t.received(&p(1), 0);
        assert_eq!(t.forget(&p(1)), 1);
        assert_eq!(t.in_flight(), 0);
    }

    proptest! {
        /// Whatever order messages finish in, the committable offset never passes an unfinished
        /// one, and ends one past the last.
        #[test]
        fn never_passes_an_unfinished_offset(
            n in 1usize..60,
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 60),
        ) {
            let mut t = OffsetTracker::new();
            let offsets: Vec<i64> = (0..n as i64).map(|o| 100 + 2 * o).collect(); // gaps, as after compaction
            for &o in &offsets { t.received(&p(0), o); }
            let mut left = offsets.clone();
            let mut last = None;
            for ix in order.iter().take(n) {
                let o = left.remove(ix.index(left.len()));
                if let Some(c) = t.finished(&p(0), o) {
                    prop_assert!(left.iter().all(|&u| u >= c), "commit {c} passes an unfinished offset");
                    prop_assert!(last.is_none_or(|l| c > l));
                    last = Some(c);
                }
            }
            prop_assert_eq!(last, Some(offsets[n - 1] + 1));
            prop_assert_eq!(t.in_flight(), 0);
        }
    }
}
