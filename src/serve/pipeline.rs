//! The pipeline every source feeds: decode → spans (blocking pool, in batches) → probe (batched,
//! by policy) → verdict → records to the sink → the offset is finished only once the sink
//! acknowledged every record of the message.
//!
//! Concurrency: match batches run on tokio's blocking pool, at most `limits.match_workers` at a
//! time; the probe is one task scoring up to `probe.batch_size` messages per forward pass (the
//! model parallelizes inside); produce acknowledgements are awaited by their own tasks, at most
//! `limits.max_pending_produce` at once. [`Pipeline::run`] returns when its input is closed and
//! every message it took is finished, which is what shutdown waits for.

use super::analyze::{Analyzer, Probed};
use super::message::{decode, DeadLetter, Decoded, Envelope, Origin};
use super::offsets::OffsetTracker;
use crate::config::{Config, InputConfig};
use crate::index::SpanReport;
use crate::metrics::Metrics;
use crate::verdict::{Severity, Verdict};
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::task::TaskTracker;

/// Which output a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Verdicts,
    Alerts,
    DeadLetters,
}

/// One output record: a verdict, an alert or a dead letter.
#[derive(Debug, Clone)]
pub struct Record {
    pub stream: Stream,
    /// The message id (verdicts, alerts) or the source key (dead letters).
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// A header's value, `""` when absent.
    pub fn header(&self, key: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Where records go. `send` resolves once the record is durably accepted (the broker's
/// acknowledgement, or the write to a file); it retries transient failures itself.
pub trait Sink: Send + Sync + 'static {
    fn send(&self, record: Record) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// The verdict as it is written out: the verdict plus where the message came from.
#[derive(Serialize)]
struct VerdictRecord<'a> {
    kind: &'static str,
    #[serde(flatten)]
    verdict: &'a Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    source: &'a Origin,
}

/// A dead letter as the file sink writes it (Kafka carries the raw payload and headers instead).
/// The original line is kept exactly: as `payload` when it is UTF-8, else as `payload_hex`.
#[derive(Serialize)]
pub struct DeadLetterRecord<'a> {
    pub kind: &'static str,
    pub reason: &'static str,
    pub detail: &'a str,
    pub source: &'a Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

impl<'a> DeadLetterRecord<'a> {
    pub fn new(reason: &'static str, detail: &'a str, source: &'a Origin, raw: &'a [u8]) -> Self {
        let text = std::str::from_utf8(raw).ok();
        DeadLetterRecord {
            kind: "dead_letter",
            reason,
            detail,
            source,
            payload: text,
            payload_hex: match text {
                Some(_) => None,
                None => Some(raw.iter().map(|b| format!("{b:02x}")).collect()),
            },
        }
    }
}

/// Headers on every dead letter.
pub fn dead_letter_headers(dl: &DeadLetter, origin: &Origin) -> Vec<(String, String)> {
    vec![
        ("memaudit-reason".into(), dl.reason.code().into()),
        ("memaudit-detail".into(), dl.detail.clone()),
        ("memaudit-source-topic".into(), origin.topic.clone()),
        (
            "memaudit-source-partition".into(),
            origin.partition.to_string(),
        ),
        ("memaudit-source-offset".into(), origin.offset.to_string()),
    ]
}

/// A decoded message with its spans, on its way to the probe or the verdict.
struct Matched {
    origin: Origin,
    received: Instant,
    msg: Decoded,
    report: SpanReport,
}

/// Shared by every pipeline task.
pub struct Pipeline {
    pub analyzer: Arc<Analyzer>,
    pub sink: Arc<dyn Sink>,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub metrics: Arc<Metrics>,
    input: InputConfig,
    alert_at: Severity,
    match_batch: usize,
    probe_batch: usize,
    match_slots: Arc<Semaphore>,
    produce_slots: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl Pipeline {
    pub fn new(
        cfg: &Config,
        analyzer: Arc<Analyzer>,
        sink: Arc<dyn Sink>,
        tracker: Arc<Mutex<OffsetTracker>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Pipeline> {
        Arc::new(Pipeline {
            analyzer,
            sink,
            tracker,
            metrics,
            input: cfg.input.clone(),
            alert_at: cfg.alerts.min_severity,
            match_batch: cfg.limits.match_batch,
            probe_batch: cfg.probe.batch_size,
            match_slots: Arc::new(Semaphore::new(cfg.limits.match_workers)),
            produce_slots: Arc::new(Semaphore::new(cfg.limits.max_pending_produce)),
            tasks: TaskTracker::new(),
        })
    }

    /// Processes everything `rx` delivers; returns when `rx` is closed and every message is
    /// finished. The source must have recorded each envelope in the tracker before sending it.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Envelope>) {
        let (probe_tx, probe_rx) = mpsc::channel::<Matched>(self.probe_batch * 4);
        let prober = tokio::spawn(self.clone().probe_stage(probe_rx));
        while let Some(batch) = recv_batch(&mut rx, self.match_batch).await {
            let slot = self
                .match_slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let this = self.clone();
            let probe_tx = probe_tx.clone();
            self.tasks.spawn(async move {
                let worker = this.clone();
                let results = tokio::task::spawn_blocking(move || worker.match_batch(batch))
                    .await
                    .expect("matching does not panic");
                drop(slot);
                for r in results {
                    match r {
                        Ok((m, wants_probe)) if wants_probe => {
                            // Waiting here is the backpressure from a busy probe.
                            if let Err(e) = probe_tx.send(m).await {
                                this.finish(e.0, None);
                            }
                        }
                        Ok((m, _)) => this.finish(m, None),
                        Err(b) => {
                            let (env, dl) = *b;
                            this.dead_letter(env, dl)
                        }
                    }
                }
            });
        }
        drop(probe_tx);
        // Match tasks hold probe senders: the probe stage ends after the last of them.
        self.tasks.close();
        self.tasks.wait().await;
        prober.await.expect("the probe stage does not panic");
        // The probe stage's last verdicts were spawned after the first wait.
        self.tasks.wait().await;
    }

    /// Decode and match a batch (on the blocking pool).
    #[allow(clippy::type_complexity)]
    fn match_batch(
        &self,
        batch: Vec<Envelope>,
    ) -> Vec<Result<(Matched, bool), Box<(Envelope, DeadLetter)>>> {
        let decode_h = self.metrics.stage("decode");
        let match_h = self.metrics.stage("match");
        batch
            .into_iter()
            .map(|env| {
                let t = Instant::now();
                let msg = match decode(&env.payload, &env.origin, &self.input) {
                    Ok(m) => m,
                    Err(dl) => return Err(Box::new((env, dl))),
                };
                decode_h.observe(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let report = self.analyzer.spans(&msg.text);
                match_h.observe(t.elapsed().as_secs_f64());
                let wants = self.analyzer.wants_probe(&msg.id, &report);
                Ok((
                    Matched {
                        origin: env.origin,
                        received: env.received,
                        msg,
                        report,
                    },
                    wants,
                ))
            })
            .collect()
    }

    /// Batches messages for the probe until its input closes.
    async fn probe_stage(self: Arc<Self>, mut rx: mpsc::Receiver<Matched>) {
        let probe_h = self.metrics.stage("probe");
        while let Some(batch) = recv_batch(&mut rx, self.probe_batch).await {
            let worker = self.clone();
            let t = Instant::now();
            let (batch, scored) = tokio::task::spawn_blocking(move || {
                let texts: Vec<&str> = batch.iter().map(|m| m.msg.text.as_str()).collect();
                let reports: Vec<&SpanReport> = batch.iter().map(|m| &m.report).collect();
                let scored = worker.analyzer.probe(&texts, &reports);
                (batch, scored)
            })
            .await
            .expect("the probe does not panic");
            probe_h.observe(t.elapsed().as_secs_f64());
            match scored {
                Ok(scored) => {
                    for (m, p) in batch.into_iter().zip(scored) {
                        if let Some(e) = p.summary.mean_entropy {
                            self.metrics.entropy.observe(e as f64);
                        }
                        self.finish(m, Some(p));
                    }
                }
                Err(e) => {
                    // A probe failure must not lose messages: verdicts from the index alone.
                    tracing::error!(error = %format!("{e:#}"), "probe failed; verdicts without entropy");
                    for m in batch {
                        self.finish(m, None);
                    }
                }
            }
        }
    }

    /// Verdict, records, and the offset once the sink acknowledged them.
    fn finish(self: &Arc<Self>, m: Matched, probed: Option<Probed>) {
        let verdict = self.analyzer.judge(&m.msg.id, &m.report, probed.as_ref());
        for s in &verdict.spans {
            self.metrics.span_chars.observe(s.chars as f64);
        }
        self.metrics.coverage.observe(verdict.coverage);
        let key = Some(verdict.id.clone().into_bytes());
        let mut records = vec![Record {
            stream: Stream::Verdicts,
            key: key.clone(),
            payload: to_json("verdict", &verdict, &m),
            headers: vec![("memaudit-severity".into(), verdict.severity.name().into())],
        }];
        let alert = verdict.severity >= self.alert_at && verdict.severity > Severity::None;
        if alert {
            records.push(Record {
                stream: Stream::Alerts,
                key,
                payload: to_json("alert", &verdict, &m),
                headers: vec![("memaudit-severity".into(), verdict.severity.name().into())],
            });
        }
        let severity = verdict.severity;
        let this = self.clone();
        self.tasks.spawn(async move {
            let t = Instant::now();
            let _slot = this.produce_slots.acquire().await.expect("never closed");
            let sends: Vec<_> = records.into_iter().map(|r| this.sink.send(r)).collect();
            for r in futures::future::join_all(sends).await {
                if let Err(e) = r {
                    // The sink gave up (shutting down): leave the offset unfinished, so the
                    // message is delivered again after a restart.
                    tracing::warn!(id = %m.msg.id, error = %format!("{e:#}"), "verdict not delivered");
                    return;
                }
            }
            this.metrics.stage("produce").observe(t.elapsed().as_secs_f64());
            this.metrics
                .verdicts
                .with_label_values(&[severity.name()])
                .inc();
            if alert {
                this.metrics.alerts.with_label_values(&[severity.name()]).inc();
            }
            this.metrics.messages.with_label_values(&["verdict"]).inc();
            this.metrics
                .stage("end_to_end")
                .observe(m.received.elapsed().as_secs_f64());
            this.done(&m.origin);
        });
    }

    /// Sends a dead letter; the offset advances once it is acknowledged.
    fn dead_letter(self: &Arc<Self>, env: Envelope, dl: DeadLetter) {
        tracing::debug!(reason = dl.reason.code(), detail = %dl.detail, topic = %env.origin.topic,
            partition = env.origin.partition, offset = env.origin.offset, "dead letter");
        let record = Record {
            stream: Stream::DeadLetters,
            key: env.key.clone(),
            headers: dead_letter_headers(&dl, &env.origin),
            payload: env.payload,
        };
        let this = self.clone();
        let origin = env.origin;
        self.tasks.spawn(async move {
            let _slot = this.produce_slots.acquire().await.expect("never closed");
            match this.sink.send(record).await {
                Ok(()) => {
                    this.metrics
                        .dead_letters
                        .with_label_values(&[dl.reason.code()])
                        .inc();
                    this.metrics
                        .messages
                        .with_label_values(&["dead_letter"])
                        .inc();
                    this.done(&origin);
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "dead letter not delivered"),
            }
        });
    }

    fn done(&self, origin: &Origin) {
        let mut t = self.tracker.lock().expect("tracker lock");
        t.finished(&(origin.topic.clone(), origin.partition), origin.offset);
        self.metrics.in_flight.set(t.in_flight() as i64);
    }
}

fn to_json(kind: &'static str, verdict: &Verdict, m: &Matched) -> Vec<u8> {
    serde_json::to_vec(&VerdictRecord {
        kind,
        verdict,
        model: m.msg.model.as_deref(),
        source: &m.origin,
    })
    .expect("verdicts serialize")
}

/// Waits for one item, then takes whatever else is already queued, up to `max`.
async fn recv_batch<T>(rx: &mut mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = Vec::with_capacity(max);
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(x) => batch.push(x),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// How long `f` may take before the caller gives up, for drains with a deadline.
pub async fn within<F: std::future::Future>(deadline: Instant, f: F) -> Option<F::Output> {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left.max(Duration::from_millis(1)), f)
        .await
        .ok()
}
