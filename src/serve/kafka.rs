//! The Kafka source and sink: a consumer-group member that feeds the pipeline, pauses fetching
//! when `limits.max_in_flight` messages are unfinished, commits only finished offsets (every
//! `kafka.commit_interval_ms`, before giving partitions up in a rebalance, and at shutdown), and
//! a producer that writes verdicts, alerts and dead letters and reports success only on the
//! broker's acknowledgement.
//!
//! librdkafka is configured with `enable.auto.commit=false`: the committed offset is always the
//! [`OffsetTracker`]'s contiguous finished offset, never the consumer's position.
//!
//! Offsets the broker skips are seen: each assigned partition's first expected offset is its
//! committed offset (or the start of the log), and every received offset is compared with the
//! one expected next; a jump is an offset gap, counted, logged with its range, and in
//! `kafka.strict_offsets` mode never committed past.
//!
//! Produce errors are classified: those the broker will answer the same way however often it is
//! asked (too large, not authorized, unknown topic, invalid record) are [`SendError::Refused`] and
//! the pipeline writes a reduced record or a dead letter instead; every other error is retried.

use super::http::Readiness;
use super::message::{Envelope, Origin};
use super::offsets::{Gap, InFlight, Partition};
use super::output::{Output, PerStream};
use super::pipeline::{Pipeline, SendError, Sink};
use super::shutdown::Shutdown;
use crate::config::{Config, KafkaClient};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The librdkafka configuration of one client: memaudit's defaults, the user's `kafka.options`
/// (SASL, TLS, timeouts, or a default replaced), and the properties memaudit forces
/// ([`Config::kafka_properties`]).
pub fn client_config(cfg: &Config, client: KafkaClient) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in cfg.kafka_properties(client) {
        c.set(k, v);
    }
    c
}

/// Consumer callbacks: rebalance drains, lag statistics.
pub struct GroupContext {
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    input: String,
    drain: Duration,
    /// Where a partition without a committed offset starts (`auto.offset.reset`).
    reset: Reset,
    shutdown: Shutdown,
    /// Whether fetching is paused for backpressure: the consumer loop decides, a rebalance
    /// applies it to the partitions it assigns.
    paused: Arc<AtomicBool>,
    committer: Arc<Committer>,
}

/// Commits finished offsets, one commit at a time: its lock is held from reading the offsets
/// until the broker answers, so an interval commit computed before a rebalance drain cannot land
/// after the drain's commit and move the partition's committed offset back (re-delivering to the
/// next owner what was already finished).
pub struct Committer {
    one_at_a_time: Mutex<()>,
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
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
            if let Some(next) = next {
                self.in_flight
                    .assigned(&(e.topic().to_string(), e.partition()), next);
                seeded += 1;
            }
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
    fn commit<C: ConsumerContext, K: Consumer<C>>(
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
        for ((topic, partition), offset) in &todo {
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .is_err()
            {
                return false;
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

/// The producer side: one record per `send`, resolved on the broker's acknowledgement.
pub struct KafkaSink {
    producer: FutureProducer,
    topics: PerStream<String>,
    max_record_bytes: usize,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl KafkaSink {
    pub fn new(cfg: &Config, metrics: Arc<Metrics>, shutdown: Shutdown) -> Result<KafkaSink> {
        // acks=all and message.timeout.ms=0 (never give up: a broker restart must not lose
        // verdicts; shutdown bounds the wait) are among the forced properties.
        let producer: FutureProducer = client_config(cfg, KafkaClient::Producer)
            .create()
            .context("creating the Kafka producer (check kafka.brokers and kafka.options)")?;
        Ok(KafkaSink {
            producer,
            topics: PerStream {
                verdicts: cfg.topics.verdicts.clone(),
                alerts: cfg.topics.alerts.clone(),
                dead_letters: cfg.topics.dead_letters.clone(),
            },
            max_record_bytes: cfg.limits.max_record_bytes,
            metrics,
            shutdown,
        })
    }

    /// Waits up to `timeout` for every queued record to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .context("flushing the producer before exit")
    }
}

/// Whether the broker (or librdkafka) will refuse this record however often it is sent.
/// Everything else (a broker down, leaders moving, timeouts, a full queue) is worth retrying.
pub fn refused_for_good(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidRecord
                | C::UnknownTopic
                | C::UnknownTopicOrPartition
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::PolicyViolation
                | C::UnsupportedForMessageFormat
                | C::UnsupportedCompressionType
        )
    )
}

impl Sink for KafkaSink {
    fn send(&self, r: &Output) -> BoxFuture<'static, Result<(), SendError>> {
        let producer = self.producer.clone();
        let topic = self.topics.get(r.stream()).clone();
        // Encoded here, at the edge: a verdict is its JSON keyed by the message id, a dead letter
        // the input's own key and bytes with the reason and origin in headers.
        let (key, payload, headers) = match r {
            Output::Verdict(v) => (
                Some(v.verdict.id.clone().into_bytes()),
                v.json(),
                v.headers(),
            ),
            Output::DeadLetter(d) => (d.key.clone(), d.payload.clone(), d.headers()),
        };
        let metrics = self.metrics.clone();
        let shutdown = self.shutdown.clone();
        Box::pin(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                let mut h = OwnedHeaders::new_with_capacity(headers.len());
                for (k, v) in &headers {
                    h = h.insert(Header {
                        key: k,
                        value: Some(v.as_bytes()),
                    });
                }
                let mut rec = FutureRecord::<[u8], [u8]>::to(&topic)
                    .payload(&payload)
                    .headers(h);
                if let Some(k) = &key {
                    rec = rec.key(k.as_slice());
                }
                let sent = tokio::select! {
                    s = producer.send(rec, Duration::from_secs(1)) => s,
                    _ = tokio::time::sleep_until(shutdown.deadline().into()), if shutdown.is_triggered() => {
                        return Err(SendError::GaveUp(format!("producing to {topic}: not acknowledged by the shutdown deadline")));
                    }
                };
                let err = match sent {
                    Ok(_) => return Ok(()),
                    Err((e, _)) => e,
                };
                metrics.produce_errors.inc();
                if refused_for_good(&err) {
                    return Err(SendError::Refused(format!("{topic}: {err}")));
                }
                if shutdown.is_triggered() && Instant::now() >= shutdown.deadline() {
                    return Err(SendError::GaveUp(format!(
                        "producing to {topic} failed at the shutdown deadline: {err}"
                    )));
                }
                tracing::warn!(topic = %topic, error = %err, "produce failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        })
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }
}

/// Runs `f` (a blocking librdkafka call) on the blocking pool for at most `timeout`: a hung
/// broker cannot hold the caller past it. `None` when it did not return in time (the thread
/// is left to finish on its own).
async fn bounded<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::time::timeout(timeout, tokio::task::spawn_blocking(f))
        .await
        .ok()
        .and_then(Result::ok)
}

/// The Kafka source: a consumer-group member and what its parts share. [`KafkaSource::start`]
/// creates and subscribes it; [`KafkaSource::run`] feeds the pipeline (the fetch loop, the
/// interval commits) until shutdown and then drains. Rebalances are served by
/// [`GroupContext`]'s callbacks inside the consumer's poll.
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<GroupContext>>,
    committer: Arc<Committer>,
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    shutdown: Shutdown,
    /// Shared with [`GroupContext`]: whether fetching is paused for backpressure.
    paused: Arc<AtomicBool>,
    max_in_flight: usize,
    max_in_flight_bytes: usize,
    strict_offsets: bool,
    commit_every: Duration,
}

impl KafkaSource {
    /// Creates the consumer (its configuration: [`client_config`]) and subscribes to the input
    /// topic.
    pub fn start(
        cfg: &Config,
        in_flight: Arc<InFlight>,
        metrics: Arc<Metrics>,
        ready: Arc<Readiness>,
        shutdown: Shutdown,
    ) -> Result<KafkaSource> {
        let paused = Arc::new(AtomicBool::new(false));
        let committer = Arc::new(Committer {
            one_at_a_time: Mutex::new(()),
            in_flight: in_flight.clone(),
            metrics: metrics.clone(),
        });
        let context = GroupContext {
            in_flight: in_flight.clone(),
            metrics: metrics.clone(),
            ready: ready.clone(),
            input: cfg.topics.input.clone(),
            drain: Duration::from_secs_f64(cfg.shutdown.deadline_secs),
            reset: Reset::of(&cfg.kafka_properties(KafkaClient::Consumer)["auto.offset.reset"]),
            shutdown: shutdown.clone(),
            paused: paused.clone(),
            committer: committer.clone(),
        };
        // The defaults (config::DEFAULT_KAFKA_OPTIONS) include cooperative-sticky rebalancing
        // (only the partitions that move are revoked and drained) and a 16 MiB prefetch queue
        // (held at the in-flight limit, librdkafka's queue is the rest of the input memory).
        let consumer: StreamConsumer<GroupContext> = client_config(cfg, KafkaClient::Consumer)
            .create_with_context(context)
            .context("creating the Kafka consumer (check kafka.brokers and kafka.options)")?;
        consumer
            .subscribe(&[&cfg.topics.input])
            .with_context(|| format!("subscribing to topics.input = {}", cfg.topics.input))?;
        tracing::info!(brokers = %cfg.kafka.brokers, topic = %cfg.topics.input, group = %cfg.kafka.group_id, "consuming");
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            committer,
            in_flight,
            metrics,
            ready,
            shutdown,
            paused,
            max_in_flight: cfg.limits.max_in_flight,
            max_in_flight_bytes: cfg.limits.max_in_flight_bytes,
            strict_offsets: cfg.kafka.strict_offsets,
            commit_every: Duration::from_millis(cfg.kafka.commit_interval_ms),
        })
    }

    /// Feeds `pipeline` until shutdown, committing finished offsets on an interval; then
    /// drains the pipeline, flushes `sink` and commits, each step bounded by the deadline.
    pub async fn run(self, pipeline: Arc<Pipeline>, sink: Arc<KafkaSink>) -> Result<()> {
        let (tx, rx) = mpsc::channel::<Envelope>(self.max_in_flight + 1024);
        let pipe = tokio::spawn(pipeline.run(rx));
        let commits = self.spawn_interval_commits();
        self.fetch(tx).await;
        commits.abort();
        self.drain(pipe, sink).await;
        Ok(())
    }

    /// Commits finished offsets every `kafka.commit_interval_ms` until shutdown.
    fn spawn_interval_commits(&self) -> tokio::task::JoinHandle<()> {
        let (consumer, committer, shutdown) = (
            self.consumer.clone(),
            self.committer.clone(),
            self.shutdown.clone(),
        );
        let every = self.commit_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            while !shutdown.is_triggered() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.triggered() => break,
                }
                let (c, k) = (consumer.clone(), committer.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    k.commit(c.as_ref(), None, CommitMode::Sync)
                })
                .await;
            }
        })
    }

    /// The fetch loop: receives messages into `tx` until shutdown, holding input at the
    /// in-flight limits and pausing the partitions when held for long ([`Flow`]).
    async fn fetch(&self, tx: mpsc::Sender<Envelope>) {
        let (max, max_bytes) = (self.max_in_flight, self.max_in_flight_bytes);
        let mut flow = Flow::Open;
        loop {
            let (n, bytes) = self.in_flight.load();
            let full = n >= max || bytes >= max_bytes;
            let next = match flow {
                Flow::Open if full => Flow::Held(Instant::now()),
                Flow::Held(_) if !full => Flow::Open,
                Flow::Held(since) if since.elapsed() >= PAUSE_AFTER => Flow::Paused,
                Flow::Paused if n <= max / 2 && bytes <= max_bytes / 2 => Flow::Open,
                f => f,
            };
            if next.paused() != flow.paused() {
                self.paused.store(next.paused(), Ordering::Relaxed);
                set_paused(self.consumer.as_ref(), next.paused());
            }
            self.metrics.paused.set((next != Flow::Open) as i64);
            flow = next;
            tokio::select! {
                _ = self.shutdown.triggered() => return,
                m = self.consumer.recv(), if !matches!(flow, Flow::Held(_)) => match m {
                    Ok(m) => {
                        let origin = Origin {
                            topic: m.topic().to_string(),
                            partition: m.partition(),
                            offset: m.offset(),
                        };
                        let payload = m.payload().unwrap_or_default().to_vec();
                        let p = (origin.topic.clone(), origin.partition);
                        if let Some(gap) = self.in_flight.received(&p, origin.offset, payload.len()) {
                            report_gap(&self.metrics, &p, gap, self.strict_offsets);
                        }
                        let env = Envelope {
                            origin,
                            key: m.key().map(<[u8]>::to_vec),
                            payload,
                            received: Instant::now(),
                        };
                        if tx.send(env).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "consumer error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                // At the limit: wake when a message finishes (or to re-check).
                _ = self.in_flight.progress(Duration::from_millis(50)), if flow != Flow::Open => {}
            }
        }
    }

    /// At shutdown: finish what was taken (the fetch loop dropped the pipeline's input), flush,
    /// commit; all by the deadline.
    async fn drain(&self, pipe: tokio::task::JoinHandle<()>, sink: Arc<KafkaSink>) {
        self.ready.shutting_down.store(true, Ordering::Relaxed);
        let deadline = self.shutdown.deadline();
        let drained = super::pipeline::within(deadline, pipe).await.is_some();
        let left = || deadline.saturating_duration_since(Instant::now());
        let flush_for = left().max(Duration::from_millis(100));
        match bounded(flush_for, move || sink.flush(flush_for)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "flush incomplete"),
            None => tracing::warn!("flush incomplete at the shutdown deadline"),
        }
        let (c, k) = (self.consumer.clone(), self.committer.clone());
        let committed = bounded(left().max(Duration::from_millis(100)), move || {
            k.commit(c.as_ref(), None, CommitMode::Sync)
        })
        .await;
        let unfinished = self.in_flight.load().0;
        if drained && unfinished == 0 && committed == Some(true) {
            tracing::info!("drained: every received message finished and committed");
        } else {
            tracing::warn!(
                unfinished,
                committed = committed.unwrap_or(false),
                "shutdown deadline reached: unfinished or uncommitted messages will be delivered again"
            );
        }
    }
}

/// How the consumer loop takes input, by what is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Below the limits: receiving.
    Open,
    /// At a limit, since then: not receiving, but the partitions keep fetching into
    /// librdkafka's bounded queue. Most waits at the limit are short (a batch finishing), and
    /// a pause would cost a fetch round trip on resume and throw away what was fetched.
    Held(Instant),
    /// At a limit for longer than [`PAUSE_AFTER`]: the partitions are paused, so the loop can
    /// keep polling (rebalances are served, and the group does not evict a member that stops
    /// polling for `max.poll.interval.ms`). Open again when both counts are down to half.
    Paused,
}

impl Flow {
    fn paused(self) -> bool {
        self == Flow::Paused
    }
}

/// `auto.offset.reset`: where a partition with no committed offset is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
    /// `error` (or an unknown value): librdkafka decides; the first offset is not checked.
    Unchecked,
}

impl Reset {
    fn of(value: &str) -> Reset {
        match value {
            "earliest" | "smallest" | "beginning" => Reset::Earliest,
            "latest" | "largest" | "end" => Reset::Latest,
            _ => Reset::Unchecked,
        }
    }
}

/// How long the loop holds input at the limit before it pauses the partitions.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// Counts and logs offsets the broker never delivered.
fn report_gap(metrics: &Metrics, p: &Partition, gap: Gap, strict: bool) {
    let labels = [p.0.as_str(), &p.1.to_string()];
    metrics.offset_gaps.with_label_values(&labels).inc();
    metrics
        .offset_gap_records
        .with_label_values(&labels)
        .inc_by(gap.len() as u64);
    tracing::warn!(
        topic = %p.0,
        partition = p.1,
        from = gap.from,
        to = gap.to,
        missing = gap.len(),
        held = strict,
        "offset gap: the broker skipped these offsets (legitimate after compaction, transaction \
         markers or retention; otherwise records were never delivered)"
    );
}

fn set_paused<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>, pause: bool) {
    let Ok(a) = consumer.assignment() else {
        return;
    };
    let r = if pause {
        consumer.pause(&a)
    } else {
        consumer.resume(&a)
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, pause, "pausing/resuming fetch failed");
    }
}

#[cfg(test)]
mod tests {
    use super::refused_for_good;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

    #[test]
    fn only_answers_that_cannot_change_are_refusals() {
        let produce = KafkaError::MessageProduction;
        for c in [
            C::MessageSizeTooLarge,
            C::TopicAuthorizationFailed,
            C::UnknownTopicOrPartition,
            C::InvalidRecord,
        ] {
            assert!(refused_for_good(&produce(c)), "{c:?}");
        }
        for c in [
            C::QueueFull,
            C::NotEnoughReplicas,
            C::RequestTimedOut,
            C::AllBrokersDown,
            C::NotLeaderForPartition,
            C::InvalidMessage,
        ] {
            assert!(!refused_for_good(&produce(c)), "{c:?}");
        }
    }
}
