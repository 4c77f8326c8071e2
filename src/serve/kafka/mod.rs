//! The Kafka source: a consumer-group member that feeds the pipeline, holds and then pauses
//! fetching at the in-flight limits, and commits only finished offsets (every
//! `kafka.commit_interval_ms`, before giving partitions up in a rebalance, and at shutdown).
//!
//! librdkafka is configured with `enable.auto.commit=false`: the committed offset is always the
//! [`super::offsets::OffsetTracker`]'s contiguous finished offset, never the consumer's position.
//!
//! Offsets the broker skips are seen: each assigned partition's first expected offset is its
//! committed offset (or the start or end of the log, by `auto.offset.reset`), and every
//! received offset is compared with the one expected next; a jump is an offset gap, counted,
//! logged with its range, and in `kafka.strict_offsets` mode never committed past.
//!
//! - this file: the client configuration, [`KafkaSource`] (start-up, interval commits, the fetch
//!   loop, the drain at shutdown).
//! - [`group`]: the rebalance callbacks, lag statistics, the committer.
//! - [`sink`]: the producer, [`KafkaSink`].

mod group;
mod sink;

pub use sink::KafkaSink;

use super::http::Readiness;
use super::message::{Envelope, Origin};
use super::offsets::{Gap, InFlight, Partition};
use super::pipeline::Pipeline;
use super::shutdown::Shutdown;
use crate::config::{Config, KafkaClient};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use group::{Committer, GroupContext, Reset};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Message;
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
        // Chunks of streamed outputs still open when the input stopped: not work in progress,
        // never committed, read again (with their outputs' other chunks) after a restart.
        let held = self.in_flight.pending_total();
        if drained && unfinished == 0 && committed == Some(true) && held == 0 {
            tracing::info!("drained: every received message finished and committed");
        } else if drained && unfinished == 0 && committed == Some(true) {
            tracing::info!(
                held,
                "drained: every message finished and committed, but for the chunks of streamed outputs still open; they are delivered again after a restart"
            );
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
