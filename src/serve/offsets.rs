//! Offset tracking for at-least-once delivery: which offsets of each partition are received but
//! not finished, how far each partition may be committed, what is in flight (messages and
//! bytes), and where the broker skipped offsets.
//!
//! A message is *finished* when its verdict (and alert) or its dead letter is acknowledged by the
//! broker. Messages finish out of order (batches, the probe), but a partition's committable
//! offset only moves past offset `o` once `o` and every lower received offset are finished, so a
//! commit never skips an unfinished message. The committable value is Kafka's convention: the
//! next offset to read (last finished + 1).
//!
//! **Gaps.** The tracker cannot tell from the offsets it was given that a record it was never
//! given exists: a broker that answers a fetch with a later batch than the one asked for (tansu
//! 0.6's memory engine does, for a fetch inside a batch) makes `max_seen + 1` committable past
//! records nobody read. So each partition keeps the offset it expects next, seeded at assignment
//! from the group's committed offset (or the start of the log) and then last received + 1; a
//! received offset above it is a [`Gap`]. Kafka has legitimate gaps too (compacted topics,
//! transaction markers, retention deleting what a lagging group had not read), so by default a
//! gap is reported and commits go on; with `strict` the partition's commits stop at the first
//! missing offset until an operator looks (see the README's delivery section).
//!
//! In flight counts every message handed to the pipeline until the pipeline finishes it, also
//! after its partition was forgotten in a rebalance (the pipeline still holds it): the limits
//! that pause fetching must see what is really in memory.

use crate::metrics::Metrics;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A (topic, partition) pair.
pub type Partition = (String, i32);

/// What runs when partitions are revoked ([`InFlight::on_revoke`]).
pub type RevokeHook = Box<dyn Fn(&[Partition]) + Send + Sync>;

/// Writes the note committed with a partition's offset ([`InFlight::on_commit_note`]).
pub type NoteHook = Box<dyn Fn(&Partition, i64) -> String + Send + Sync>;

/// Reads the note the group committed for a partition, when it is assigned.
pub type NotedHook = Box<dyn Fn(&Partition, &str) + Send + Sync>;

/// Offsets the broker skipped: `from..to` were expected and never delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from: i64,
    pub to: i64,
}

impl Gap {
    /// How many offsets are missing.
    pub fn len(&self) -> i64 {
        self.to - self.from
    }

    pub fn is_empty(&self) -> bool {
        self.to <= self.from
    }
}

#[derive(Debug, Default)]
struct State {
    /// Received and not finished, with when each was received.
    pending: BTreeMap<i64, Instant>,
    /// Highest offset received.
    max_seen: Option<i64>,
    /// Last offset committed (next to read), if any.
    committed: Option<i64>,
    /// The next offset the broker should deliver.
    expected: Option<i64>,
    /// Strict mode: the first offset of the earliest gap; nothing at or past it is committed.
    hold: Option<i64>,
}

impl State {
    fn committable(&self) -> Option<i64> {
        let c = match self.pending.first_key_value() {
            Some((&lowest, _)) => Some(lowest),
            None => self.max_seen.map(|m| m + 1),
        };
        match (c, self.hold) {
            (Some(c), Some(h)) => Some(c.min(h)),
            (c, _) => c,
        }
    }
}

/// Per-partition pending offsets and what is in flight. Not synchronized itself: the daemon
/// keeps it behind one mutex.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: BTreeMap<Partition, State>,
    in_flight: usize,
    in_flight_bytes: usize,
    strict: bool,
    /// Messages held by an open streamed output ([`OffsetTracker::park`]).
    parked: HashSet<(Partition, i64)>,
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker whose partitions stop committing at their first gap.
    pub fn strict() -> Self {
        OffsetTracker {
            strict: true,
            ..Self::default()
        }
    }

    /// The partition was assigned and will be read from `next` (the committed offset, or the
    /// start of the log for a group that never committed): the first offset expected.
    pub fn assigned(&mut self, p: &Partition, next: i64) {
        let s = self.parts.entry(p.clone()).or_default();
        s.expected = Some(next);
        if s.committed.is_none() {
            s.committed = Some(next);
        }
    }

    /// Records a received offset of a message of `bytes` bytes. Offsets of one partition arrive
    /// in increasing order; a lower or repeated one (a re-delivery after a seek) is tracked like
    /// any other. Returns the gap when the broker skipped offsets before this one.
    pub fn received(&mut self, p: &Partition, offset: i64, bytes: usize) -> Option<Gap> {
        let s = self.parts.entry(p.clone()).or_default();
        s.pending.insert(offset, Instant::now());
        self.in_flight += 1;
        self.in_flight_bytes += bytes;
        s.max_seen = Some(s.max_seen.map_or(offset, |m| m.max(offset)));
        let gap = match s.expected {
            Some(e) if offset > e => Some(Gap {
                from: e,
                to: offset,
            }),
            _ => None,
        };
        s.expected = Some(s.expected.map_or(offset + 1, |e| e.max(offset + 1)));
        if let (Some(g), true) = (gap, self.strict) {
            s.hold = Some(s.hold.map_or(g.from, |h| h.min(g.from)));
        }
        gap
    }

    /// Marks a message finished. Returns the partition's new committable offset when it moved.
    /// Counted out of flight even when its partition was forgotten meanwhile.
    pub fn finished(&mut self, p: &Partition, offset: i64, bytes: usize) -> Option<i64> {
        if !self.parked.remove(&(p.clone(), offset)) {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
        }
        let s = self.parts.get_mut(p)?;
        let before = s.committable();
        s.pending.remove(&offset);
        let after = s.committable();
        (after != before).then_some(after).flatten()
    }

    /// Messages handed to the pipeline and not finished, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Payload bytes of those messages.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// A message now held by an open streamed output until the output's verdict: it still
    /// blocks commits past it, but it is not work in progress. It leaves the in-flight counts
    /// (which pause fetching: an output waiting for its next chunk must not stop the fetch of
    /// it; `[chunks]` bounds what outputs hold), the drain of a revoked partition, and the
    /// stuck check.
    pub fn park(&mut self, p: &Partition, offset: i64, bytes: usize) {
        let known = self
            .parts
            .get(p)
            .is_some_and(|s| s.pending.contains_key(&offset));
        if known && self.parked.insert((p.clone(), offset)) {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
        }
    }

    /// A parked message dropped without being finished (its output was dropped at a rebalance
    /// or shutdown): it stays unfinished, to be delivered again.
    pub fn unpark(&mut self, p: &Partition, offset: i64) {
        self.parked.remove(&(p.clone(), offset));
    }

    /// Unfinished messages of one partition that are being worked on (not parked).
    pub fn pending_in(&self, p: &Partition) -> usize {
        if self.parked.is_empty() {
            return self.parts.get(p).map_or(0, |s| s.pending.len());
        }
        self.parts.get(p).map_or(0, |s| {
            s.pending
                .keys()
                .filter(|&&o| !self.parked.contains(&(p.clone(), o)))
                .count()
        })
    }

    /// How long the oldest unfinished message being worked on has waited (its partition cannot
    /// commit past it). Parked messages wait for their output's next chunk, not for memaudit.
    pub fn oldest_pending(&self) -> Option<Duration> {
        self.parts
            .iter()
            .filter_map(|(p, s)| {
                s.pending
                    .iter()
                    .find(|(&o, _)| !self.parked.contains(&(p.clone(), o)))
                    .map(|(_, t)| t.elapsed())
            })
            .max()
    }

    /// Partitions whose commits are held at a gap (strict mode), with the held offset.
    pub fn held(&self) -> Vec<(Partition, i64)> {
        self.parts
            .iter()
            .filter_map(|(p, s)| s.hold.map(|h| (p.clone(), h)))
            .collect()
    }

    /// Partitions whose committable offset is ahead of the last commit, with that offset.
    pub fn to_commit(&self) -> Vec<(Partition, i64)> {
        self.parts
            .iter()
            .filter_map(|(p, s)| {
                let c = s.committable()?;
                s.committed.is_none_or(|d| c > d).then(|| (p.clone(), c))
            })
            .collect()
    }

    /// Every partition's last committed offset (next to read), where one is known.
    pub fn committed_offsets(&self) -> Vec<(Partition, i64)> {
        self.parts
            .iter()
            .filter_map(|(p, s)| s.committed.map(|c| (p.clone(), c)))
            .collect()
    }

    /// Records a successful commit.
    pub fn committed(&mut self, p: &Partition, offset: i64) {
        if let Some(s) = self.parts.get_mut(p) {
            s.committed = Some(s.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// Forgets a partition given up in a rebalance; returns how many of its messages were
    /// still unfinished (they will be re-delivered to the new owner). They stay in flight until
    /// the pipeline finishes them.
    pub fn forget(&mut self, p: &Partition) -> usize {
        self.parts.remove(p).map_or(0, |s| s.pending.len())
    }
}

/// The daemon's one handle on the tracker: owns its lock, keeps the in-flight gauges current,
/// and wakes whoever waits for messages to finish (the fetch loop paused at its limit, drains).
pub struct InFlight {
    tracker: Mutex<OffsetTracker>,
    progress: Notify,
    metrics: Arc<Metrics>,
    /// Called with the partitions [`InFlight::forget`] forgot.
    revoke_hooks: Mutex<Vec<RevokeHook>>,
    /// The commit note's writer and reader, and the last note committed per partition.
    notes: Mutex<Option<(NoteHook, NotedHook)>>,
    last_notes: Mutex<BTreeMap<Partition, String>>,
}

impl InFlight {
    pub fn new(tracker: OffsetTracker, metrics: Arc<Metrics>) -> Arc<InFlight> {
        Arc::new(InFlight {
            tracker: Mutex::new(tracker),
            progress: Notify::new(),
            metrics,
            revoke_hooks: Mutex::new(Vec::new()),
            notes: Mutex::new(None),
            last_notes: Mutex::new(BTreeMap::new()),
        })
    }

    /// The tracker, locked: the only lock site. Each method below holds it for one
    /// bookkeeping step, never across an await or a broker call.
    fn lock(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A partition assigned to this member, to be read from `next`: the first offset the gap
    /// check expects.
    pub fn assigned(&self, p: &Partition, next: i64) {
        self.lock().assigned(p, next);
    }

    /// Messages received and not finished in these partitions.
    pub fn pending_in(&self, parts: &[Partition]) -> usize {
        let t = self.lock();
        parts.iter().map(|p| t.pending_in(p)).sum()
    }

    /// Each partition's finished offset ahead of its last commit (`only`: just these), with
    /// the note to commit beside it; and the partitions whose note changed at the same offset.
    pub fn to_commit(&self, only: Option<&[Partition]>) -> Vec<(Partition, i64, Option<String>)> {
        let (mut todo, positions) = {
            let t = self.lock();
            (t.to_commit(), t.committed_offsets())
        };
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        let last = self.last_notes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(Partition, i64, Option<String>)> = Vec::new();
        if let Some((note, _)) = notes.as_ref() {
            for (p, committed) in positions {
                let at = todo
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map_or(committed, |&(_, c)| c);
                let n = note(&p, at);
                let moved = at != committed;
                if moved || last.get(&p).is_none_or(|l| *l != n) {
                    out.push((p, at, Some(n)));
                }
            }
            todo.clear();
        }
        out.extend(todo.into_iter().map(|(p, c)| (p, c, None)));
        if let Some(only) = only {
            out.retain(|(p, _, _)| only.contains(p));
        }
        out
    }

    /// Writes a note beside each commit (`note(partition, offset)`), and reads the group's note
    /// of each partition assigned (`noted`): the streamed outputs that ended past the
    /// committed offset, so a restart does not judge them again.
    pub fn on_commit_note(&self, note: NoteHook, noted: NotedHook) {
        *self.notes.lock().unwrap_or_else(|e| e.into_inner()) = Some((note, noted));
    }

    /// The note the group committed for partition `p`, read at its assignment.
    pub fn noted(&self, p: &Partition, note: &str) {
        if let Some((_, noted)) = self
            .notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            noted(p, note);
        }
        self.last_notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.clone(), note.to_string());
    }

    /// The broker took these commits.
    pub fn committed(&self, done: &[(Partition, i64, Option<String>)]) {
        let mut t = self.lock();
        let mut last = self.last_notes.lock().unwrap_or_else(|e| e.into_inner());
        for (p, o, note) in done {
            t.committed(p, *o);
            if let Some(n) = note {
                last.insert(p.clone(), n.clone());
            }
        }
    }

    /// How long the oldest unfinished message has waited, and how many partitions are held at
    /// an offset gap (strict mode).
    pub fn health(&self) -> (Duration, usize) {
        let t = self.lock();
        (t.oldest_pending().unwrap_or_default(), t.held().len())
    }

    /// A message handed to the pipeline; the gap before it, if the source skipped offsets.
    pub fn received(&self, p: &Partition, offset: i64, bytes: usize) -> Option<Gap> {
        let mut t = self.lock();
        let gap = t.received(p, offset, bytes);
        self.gauges(&t);
        gap
    }

    /// A message finished (its records acknowledged, or given up for good).
    pub fn finished(&self, p: &Partition, offset: i64, bytes: usize) {
        let mut t = self.lock();
        t.finished(p, offset, bytes);
        self.gauges(&t);
        drop(t);
        self.progress.notify_one();
    }

    /// Forgets partitions given up in a rebalance; how many of their messages were unfinished.
    /// Then runs the revoke hooks (the streamed outputs of those partitions are dropped).
    pub fn forget(&self, parts: &[Partition]) -> usize {
        let mut t = self.lock();
        let n = parts.iter().map(|p| t.forget(p)).sum();
        self.gauges(&t);
        drop(t);
        for hook in self
            .revoke_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            hook(parts);
        }
        n
    }

    /// Runs `hook` whenever partitions are forgotten in a rebalance.
    pub fn on_revoke(&self, hook: RevokeHook) {
        self.revoke_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// See [`OffsetTracker::park`].
    pub fn park(&self, p: &Partition, offset: i64, bytes: usize) {
        let mut t = self.lock();
        t.park(p, offset, bytes);
        self.gauges(&t);
        drop(t);
        self.progress.notify_one();
    }

    /// See [`OffsetTracker::unpark`].
    pub fn unpark(&self, p: &Partition, offset: i64) {
        self.lock().unpark(p, offset);
    }

    /// Messages received and not finished in every partition, parked or dropped ones too.
    pub fn pending_total(&self) -> usize {
        let t = self.lock();
        t.parts.values().map(|s| s.pending.len()).sum()
    }

    /// `(messages, bytes)` in flight.
    pub fn load(&self) -> (usize, usize) {
        let t = self.lock();
        (t.in_flight(), t.in_flight_bytes())
    }

    /// Resolves at the next finished message (or at once if one finished since the last call),
    /// or after `at_most`. For one waiter: the fetch loop.
    pub async fn progress(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.progress.notified()).await;
    }

    fn gauges(&self, t: &OffsetTracker) {
        self.metrics.in_flight.set(t.in_flight() as i64);
        self.metrics.in_flight_bytes.set(t.in_flight_bytes() as i64);
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
            assert_eq!(t.received(&p(0), o, 100), None);
        }
        assert_eq!((t.in_flight(), t.in_flight_bytes()), (5, 500));
        assert_eq!(t.finished(&p(0), 12, 100), None);
        assert_eq!(t.finished(&p(0), 11, 100), None);
        assert_eq!(t.finished(&p(0), 10, 100), Some(13));
        assert_eq!(t.to_commit(), vec![(p(0), 13)]);
        t.committed(&p(0), 13);
        assert!(t.to_commit().is_empty());
        assert_eq!(t.finished(&p(0), 14, 100), None);
        assert_eq!(t.finished(&p(0), 13, 100), Some(15));
        assert_eq!((t.in_flight(), t.in_flight_bytes()), (0, 0));
        assert_eq!(t.to_commit(), vec![(p(0), 15)]);
    }

    #[test]
    fn forgotten_messages_stay_in_flight_until_the_pipeline_finishes_them() {
        let mut t = OffsetTracker::new();
        t.received(&p(1), 0, 10);
        t.received(&p(1), 1, 10);
        assert_eq!(t.forget(&p(1)), 2);
        assert_eq!((t.in_flight(), t.in_flight_bytes()), (2, 20));
        // Re-assigned here and delivered again while the first copies are still in the pipeline.
        t.assigned(&p(1), 0);
        t.received(&p(1), 0, 10);
        assert_eq!(t.in_flight(), 3);
        for _ in 0..2 {
            t.finished(&p(1), 0, 10);
        }
        t.finished(&p(1), 1, 10);
        assert_eq!((t.in_flight(), t.in_flight_bytes()), (0, 0));
    }

    #[test]
    fn a_skipped_batch_is_a_gap_seeded_at_assignment() {
        let mut t = OffsetTracker::new();
        // Committed at 5 (inside a batch 0..10); the broker answers with the batch at 10.
        t.assigned(&p(0), 5);
        assert_eq!(t.received(&p(0), 10, 1), Some(Gap { from: 5, to: 10 }));
        assert_eq!(t.received(&p(0), 11, 1), None);
        // After a pause the broker skips again.
        assert_eq!(t.received(&p(0), 20, 1), Some(Gap { from: 12, to: 20 }));
        // A re-delivery (lower offset) is no gap.
        assert_eq!(t.received(&p(0), 11, 1), None);
        for o in [10, 11, 20, 11] {
            t.finished(&p(0), o, 1);
        }
        // Lenient: commits go past the gaps (they may be compaction or transaction markers).
        assert_eq!(t.to_commit(), vec![(p(0), 21)]);
        assert!(t.held().is_empty());
    }

    #[test]
    fn strict_mode_holds_commits_at_the_first_gap() {
        let mut t = OffsetTracker::strict();
        t.assigned(&p(0), 0);
        for o in [0, 1, 5, 6] {
            t.received(&p(0), o, 1);
            t.finished(&p(0), o, 1);
        }
        assert_eq!(t.to_commit(), vec![(p(0), 2)]);
        assert_eq!(t.held(), vec![(p(0), 2)]);
    }

    #[test]
    fn the_oldest_pending_message_is_seen() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.oldest_pending(), None);
        t.received(&p(0), 0, 1);
        std::thread::sleep(Duration::from_millis(20));
        t.received(&p(1), 0, 1);
        assert!(t.oldest_pending().unwrap() >= Duration::from_millis(20));
        t.finished(&p(0), 0, 1);
        assert!(t.oldest_pending().unwrap() < Duration::from_millis(20));
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
            for &o in &offsets { t.received(&p(0), o, 1); }
            let mut left = offsets.clone();
            let mut last = None;
            for ix in order.iter().take(n) {
                let o = left.remove(ix.index(left.len()));
                if let Some(c) = t.finished(&p(0), o, 1) {
                    prop_assert!(left.iter().all(|&u| u >= c), "commit {c} passes an unfinished offset");
                    prop_assert!(last.is_none_or(|l| c > l));
                    last = Some(c);
                }
            }
            prop_assert_eq!(last, Some(offsets[n - 1] + 1));
            prop_assert_eq!(t.in_flight(), 0);
        }

        /// Every offset a delivery skipped is inside exactly one reported gap, and no delivered
        /// offset is inside one.
        #[test]
        fn gaps_cover_exactly_the_skipped_offsets(
            start in 0i64..5,
            delivered in proptest::collection::btree_set(0i64..200, 1..80),
        ) {
            let mut t = OffsetTracker::new();
            t.assigned(&p(0), start);
            let mut missing = std::collections::BTreeSet::new();
            for &o in delivered.iter().filter(|&&o| o >= start) {
                if let Some(g) = t.received(&p(0), o, 1) {
                    for m in g.from..g.to { prop_assert!(missing.insert(m)); }
                }
            }
            let last = delivered.iter().copied().filter(|&o| o >= start).max();
            if let Some(last) = last {
                let expect: std::collections::BTreeSet<i64> =
                    (start..last).filter(|o| !delivered.contains(o)).collect();
                prop_assert_eq!(missing, expect);
            }
        }
    }
}
