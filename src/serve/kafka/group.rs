//! The consumer group's side of the Kafka source, run by librdkafka inside the consumer's poll:
//! the rebalance callbacks (drain, commit and forget revoked partitions; seed the gap check of
//! assigned ones; keep the fetch pause across a rebalance), lag statistics, and the committer
//! that every commit goes through.

use super::super::http::Readiness;
use super::super::offsets::{InFlight, Partition};
use super::super::shutdown::Shutdown;
use crate::metrics::Metrics;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Consumer callbacks: rebalance drains, lag statistics.
pub struct GroupContext {
    pub(super) in_flight: Arc<InFlight>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) ready: Arc<Readiness>,
    pub(super) input: String,
    pub(super) drain: Duration,
    /// Where a partition without a committed offset starts (`auto.offset.reset`).
    pub(super) reset: Reset,
    pub(super) shutdown: Shutdown,
    /// Whether fetching is paused for backpressure: the consumer loop decides, a rebalance
    /// applies it to the partitions it assigns.
    pub(super) paused: Arc<AtomicBool>,
    pub(super) committer: Arc<Committer>,
}

/// Commits finished offsets, one commit at a time: its lock is held from reading the offsets
/// until the broker answers, so an interval commit computed before a rebalance drain cannot land
/// after the drain's commit and move the partition's committed offset back (re-delivering to the
/// next owner what was already finished).
pub struct Committer {
    pub(super) one_at_a_time: Mutex<()>,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) metrics: Arc<Metrics>,
}

impl ClientContext for GroupContext {
    fn stats(&self, s: Statistics) {
        if let Some(t) = s.topics.get(&self.input) {
            for (p, part) in &t.partitions {
                // Only partitions this member fetches ("none": not assigned here, e.g. moved to
                // another member, whose lag is that member's to report).
                if *p < 0 || part.fetch_state == "none" {
                    continue;
                }
                // librdkafka reports -1 until the group commits: a partition stuck at its first
                // message would show no lag at all. Nothing committed: all of the log is unread.
                let lag = if part.consumer_lag >= 0 {
                    part.consumer_lag
                } else if part.hi_offset >= 0 && part.lo_offset >= 0 {
                    part.hi_offset - part.lo_offset
                } else {
                    continue;
                };
                self.metrics
                    .lag
                    .with_label_values(&[&self.input, &p.to_string()])
                    .set(lag);
            }
        }
        let up = s.brokers.values().any(|b| b.state == "UP");
        self.ready.broker_reachable.store(up, Ordering::Relaxed);
    }
}

impl ConsumerContext for GroupContext {
    /// Before partitions are taken away: wait (up to the shutdown deadline) until their received
    /// messages are finished, commit, and forget them. Unfinished ones are re-delivered to the
    /// next owner, so nothing is lost either way.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        self.metrics.rebalances.with_label_values(&["revoke"]).inc();
        let parts: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        // A rebalance drains for up to the deadline's length; at shutdown (the consumer's close
        // revokes everything) only until the deadline itself.
        let until = if self.shutdown.is_triggered() {
            self.shutdown.deadline()
        } else {
            Instant::now() + self.drain
        };
        let wait = || loop {
            let left = self.in_flight.pending_in(&parts);
            if left == 0 || Instant::now() >= until {
                return left;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let left = in_place(wait);
        let committed = self
            .committer
            .commit(consumer, Some(&parts), CommitMode::Sync);
        self.in_flight.forget(&parts);
        for p in &parts {
            let _ = self
                .metrics
                .lag
                .remove_label_values(&[&p.0, &p.1.to_string()]);
        }
        tracing::info!(
            partitions = parts.len(),
            unfinished = left,
            committed,
            "partitions revoked after draining"
        );
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.metrics.rebalances.with_label_values(&["assign"]).inc();
            // librdkafka keeps an application pause on a partition across revoke and re-assign:
            // give the new partitions the loop's current state, or a partition paused before
            // the rebalance would never be fetched again.
            let paused = self.paused.load(Ordering::Relaxed);
            let r = if paused {
                consumer.pause(tpl)
            } else {
                consumer.resume(tpl)
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, paused, "setting the fetch state of assigned partitions failed");
            }
            let seeded = in_place(|| self.seed_expected(consumer, tpl));
            tracing::info!(
                partitions = tpl.count(),
                paused,
                seeded,
                "partitions assigned"
            );
        }
        let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.metrics.assigned_partitions.set(n as i64);
        self.ready
            .partitions_assigned
            .store(n > 0, Ordering::Relaxed);
    }
}

impl GroupContext {
    /// Where each assigned partition will be read from, so that the first received offset can
    /// be checked: the group's committed offset, else the start or the end of the log, as
    /// `auto.offset.reset` says. How many partitions were seeded.
    fn seed_expected(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> usize {
        let timeout = Duration::from_secs(5);
        let committed = match consumer.committed_offsets(tpl.clone(), timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading committed offsets failed: the first offset of the assigned partitions is not checked for a gap");
                return 0;
            }
        };
        let mut seeded = 0;
        for e in committed.elements() {
            let next = match (e.offset(), self.reset) {
                (Offset::Offset(o), _) => Some(o),
                (_, Reset::Unchecked) => None,
                (_, reset) => consumer
                    .fetch_watermarks(e.topic(), e.partition(), timeout)
                    .map(|(low, high)| if reset == Reset::Earliest { low } else { high })
                    .ok(),
            };
            let p = (e.topic().to_string(), e.partition());
            if let Some(next) = next {
                self.in_flight.assigned(&p, next);
                seeded += 1;
            }
            self.in_flight.noted(&p, e.metadata());
        }
        seeded
    }
}

/// Runs a blocking wait from inside the consumer's poll on a runtime worker: lets the runtime
/// move its other tasks (the pipeline finishing messages) off this thread meanwhile.
fn in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Committer {
    /// Commits each partition's finished offset that is ahead of its last commit (`only`: just
    /// these partitions). False when the broker refused the commit.
    pub(super) fn commit<C: ConsumerContext, K: Consumer<C>>(
        &self,
        consumer: &K,
        only: Option<&[Partition]>,
        mode: CommitMode,
    ) -> bool {
        let _one_at_a_time = self.one_at_a_time.lock().expect("commit lock");
        let todo = self.in_flight.to_commit(only);
        if todo.is_empty() {
            return true;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset, note) in &todo {
            match tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                Ok(()) => {}
                Err(_) => return false,
            }
            if let (Some(n), Some(mut e)) = (note, tpl.find_partition(topic, *partition)) {
                e.set_metadata(n.as_str());
            }
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                self.metrics.commits.with_label_values(&["ok"]).inc();
                self.in_flight.committed(&todo);
                true
            }
            Err(e) => {
                self.metrics.commits.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "offset commit failed; retried at the next interval");
                false
            }
        }
    }
}

/// `auto.offset.reset`: where a partition with no committed offset is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reset {
    Earliest,
    Latest,
    /// `error` (or an unknown value): librdkafka decides; the first offset is not checked.
    Unchecked,
}

impl Reset {
    pub(super) fn of(value: &str) -> Reset {
        match value {
            "earliest" | "smallest" | "beginning" => Reset::Earliest,
            "latest" | "largest" | "end" => Reset::Latest,
            _ => Reset::Unchecked,
        }
    }
}
