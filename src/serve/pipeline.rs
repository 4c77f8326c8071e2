//! The pipeline every source feeds: decode → spans (blocking pool, in batches) → probe (batched,
//! by policy) → verdict → records to the sink → the offset is finished only once the sink
//! acknowledged every record of the message.
//!
//! Every message ends one of three ways, and its offset moves on after each: a **verdict**
//! (and alert); a **dead letter** (undecodable input, a panic while judging it: reason
//! `internal`, or outputs the broker refuses for good even reduced: `output_refused`); or
//! **dropped**, when the dead-letter topic refuses it too (counted, logged as an error). A
//! record is never larger than the sink takes: a verdict lists at most `spans.max_reported`
//! spans and fewer if it is still too large; a dead letter's payload is cut, its original size
//! in a header. Only a sink that gives up (the shutdown deadline) leaves a message unfinished,
//! to be delivered again.
//!
//! Concurrency: match batches run on tokio's blocking pool, at most `limits.match_workers` at a
//! time; the probe is one task scoring up to `probe.batch_size` messages per forward pass (the
//! model parallelizes inside); produce acknowledgements are awaited by their own tasks, at most
//! `limits.max_pending_produce` at once. [`Pipeline::run`] returns when its input is closed and
//! every message it took is finished, which is what shutdown waits for.

use super::chunks::{EarlyAlert, Ended, Pushed, StreamInfo, Streams};
use super::message::{decode, DeadLetter, DeadLetterReason, Decoded, Envelope, Origin};
use super::offsets::InFlight;
use super::output::{DeadLetterOut, Output, Stream, VerdictOut};
use crate::analyze::{Analyzer, Probed};
use crate::config::{Config, InputConfig, InputFormat, ProbePolicy, SourceKind};
use crate::index::SpanReport;
use crate::metrics::Metrics;
use crate::verdict::{Severity, Verdict};
use futures::future::BoxFuture;
use prometheus::Histogram;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::task::TaskTracker;

/// Why a sink did not take a record.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The destination refuses this record for good (too large, not authorized, no such
    /// topic): sending it again cannot help.
    #[error("refused for good: {0}")]
    Refused(String),
    /// The sink gave up (the shutdown deadline, an output it cannot write): the message stays
    /// unfinished and is delivered again after a restart.
    #[error("gave up: {0}")]
    GaveUp(String),
}

/// Where records go. `send` resolves once the record is durably accepted (the broker's
/// acknowledgement, or the write to a file); it retries transient failures itself.
pub trait Sink: Send + Sync + 'static {
    /// Encodes `record` at once (the future owns what it sends) and delivers it.
    fn send(&self, record: &Output) -> BoxFuture<'static, Result<(), SendError>>;

    /// The largest record payload this sink takes (the pipeline keeps every record below it).
    fn max_record_bytes(&self) -> usize {
        usize::MAX
    }
}

/// A decoded message (or a streamed output that ended) with its spans, on its way to the probe
/// or the verdict. Keeps the envelopes: they are finished with the verdict, and a message that
/// cannot be given a verdict becomes a dead letter of each payload.
struct Matched {
    /// One for a whole message; a streamed output's chunks (possibly none: all left out).
    envs: Vec<Envelope>,
    /// The verdict's `source`.
    origin: Origin,
    /// When the first of it was received.
    received: Instant,
    msg: Decoded,
    report: SpanReport,
    /// Set for a streamed output.
    stream: Option<StreamInfo>,
}

/// What matching one envelope gave.
enum Matching {
    /// A whole message, and whether the probe scores it.
    Whole(Box<Matched>, bool),
    /// A message that gets no verdict.
    Dead(Envelope, DeadLetter),
    /// A chunk of a streamed output.
    Chunk(Box<Pushed>),
}

/// Shared by every pipeline task.
pub(crate) struct Pipeline {
    analyzer: Arc<Analyzer>,
    sink: Arc<dyn Sink>,
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
    input: InputConfig,
    policy: ProbePolicy,
    sample_rate: f64,
    alert_at: Severity,
    match_batch: usize,
    probe_batch: usize,
    max_spans: usize,
    /// `[limits]`: each text's work budget.
    limits: crate::config::Limits,
    match_slots: Arc<Semaphore>,
    match_workers: usize,
    produce_slots: Arc<Semaphore>,
    tasks: TaskTracker,
    /// The open streamed outputs (`input.format = "chunks"`).
    streams: Option<Arc<Streams>>,
    /// When the input closes, end the open outputs (a file source) rather than leave them to
    /// be delivered again (Kafka).
    end_outputs_at_close: bool,
}

impl Pipeline {
    /// The pipeline of the configured limits and policy, writing to `sink`.
    pub(crate) fn new(
        cfg: &Config,
        analyzer: Arc<Analyzer>,
        sink: Arc<dyn Sink>,
        in_flight: Arc<InFlight>,
        metrics: Arc<Metrics>,
    ) -> Arc<Pipeline> {
        let streams = (cfg.input.format == InputFormat::Chunks).then(|| {
            Arc::new(Streams::new(
                cfg.chunks.clone(),
                cfg.limits.clone(),
                cfg.alerts.min_severity,
                true,
                metrics.open_outputs.clone(),
                metrics.stream_held_bytes.clone(),
            ))
        });
        if let Some(streams) = &streams {
            let (note, noted) = (streams.clone(), streams.clone());
            in_flight.on_commit_note(
                Box::new(move |p, offset| note.commit_note(p, offset)),
                Box::new(move |p, n| noted.noted(p, n)),
            );
            // The outputs of a revoked partition are rebuilt by its next owner.
            let (streams, tracker) = (streams.clone(), in_flight.clone());
            in_flight.on_revoke(Box::new(move |parts| {
                let dropped = streams.forget_partitions(parts);
                for env in &dropped {
                    tracker.unpark(&(env.origin.topic.clone(), env.origin.partition), env.origin.offset);
                }
                if !dropped.is_empty() {
                    tracing::info!(chunks = dropped.len(), "streamed outputs of revoked partitions dropped; their next owner reads them again");
                }
            }));
        }
        Arc::new(Pipeline {
            analyzer,
            sink,
            in_flight,
            metrics,
            input: cfg.input.clone(),
            policy: cfg.probe.policy,
            sample_rate: cfg.probe.sample_rate,
            alert_at: cfg.alerts.min_severity,
            match_batch: cfg.limits.match_batch,
            probe_batch: cfg.probe.batch_size,
            max_spans: cfg.spans.max_reported,
            limits: cfg.limits.clone(),
            match_slots: Arc::new(Semaphore::new(cfg.limits.match_workers)),
            match_workers: cfg.limits.match_workers,
            produce_slots: Arc::new(Semaphore::new(cfg.limits.max_pending_produce)),
            tasks: TaskTracker::new(),
            streams,
            end_outputs_at_close: cfg.source.kind != SourceKind::Kafka,
        })
    }

    /// Processes everything `rx` delivers; returns when `rx` is closed and every message is
    /// finished. The source must have recorded each envelope in [`InFlight`] before sending it.
    pub(crate) async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Envelope>) {
        let (probe_tx, probe_rx) = mpsc::channel::<Matched>(self.probe_batch * 4);
        let prober = tokio::spawn(self.clone().probe_stage(probe_rx));
        let sweeper = tokio::spawn(self.clone().sweep_idle_outputs(probe_tx.clone()));
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
                // match_one catches panics per message, so the task itself cannot fail.
                let results = tokio::task::spawn_blocking(move || {
                    // The stage histograms, looked up once per batch.
                    let stages = (
                        worker.metrics.stage("decode"),
                        worker.metrics.stage("match"),
                    );
                    batch
                        .into_iter()
                        .map(|e| worker.match_one(e, &stages))
                        .collect::<Vec<_>>()
                })
                .await
                .expect("match_one catches panics");
                drop(slot);
                for r in results {
                    match r {
                        Matching::Whole(m, wants_probe) => {
                            this.to_verdict(*m, wants_probe, &probe_tx).await
                        }
                        Matching::Dead(env, dl) => this.dead_letter(env, dl),
                        Matching::Chunk(p) => this.chunk_done(p, &probe_tx).await,
                    }
                }
            });
        }
        // Every chunk taken is pushed into its output before the open ones are ended or
        // dropped: wait for the match batches still running (each holds a slot).
        let all_slots = self
            .match_slots
            .acquire_many(self.match_workers as u32)
            .await
            .expect("the semaphore is never closed");
        drop(all_slots);
        if let (Some(streams), true) = (&self.streams, self.end_outputs_at_close) {
            // A file or stdin will not be read again: what it holds is all there is.
            let (this, streams) = (self.clone(), streams.clone());
            let (ended, dead) = tokio::task::spawn_blocking(move || {
                let mut dead = Vec::new();
                (
                    streams.end_all(&this.analyzer, "input_end", &mut dead),
                    dead,
                )
            })
            .await
            .expect("ending outputs does not panic");
            for (env, dl) in dead {
                self.dead_letter(env, dl);
            }
            for e in ended {
                self.output_ended(e, &probe_tx).await;
            }
        } else if let Some(streams) = &self.streams {
            let left = streams.drop_all();
            for env in &left {
                let o = &env.origin;
                self.in_flight
                    .unpark(&(o.topic.clone(), o.partition), o.offset);
            }
            if !left.is_empty() {
                tracing::info!(chunks = left.len(), "open streamed outputs left without a verdict; their chunks are delivered again after a restart");
            }
        }
        sweeper.abort();
        drop(probe_tx);
        // Match tasks hold probe senders: the probe stage ends after the last of them.
        self.tasks.close();
        self.tasks.wait().await;
        prober.await.expect("the probe stage catches panics");
        // The probe stage's last verdicts were spawned after the first wait.
        self.tasks.wait().await;
    }

    /// Decodes and matches one message (on the blocking pool). A panic while matching makes
    /// the message a dead letter with reason `internal`.
    fn match_one(&self, env: Envelope, (decode_h, match_h): &(Histogram, Histogram)) -> Matching {
        let t = Instant::now();
        let msg = match decode(&env.payload, &env.origin, &self.input) {
            Ok(m) => m,
            Err(dl) => return Matching::Dead(env, dl),
        };
        decode_h.observe(t.elapsed().as_secs_f64());
        let t = Instant::now();
        if msg.chunk.is_some() {
            let streams = self
                .streams
                .as_ref()
                .expect("chunks are decoded only with streams");
            let (text, payload) = (msg.text.clone(), env.payload.clone());
            let origin = env.origin.clone();
            // Held by its output until the output's verdict (finishing it unparks it).
            self.in_flight.park(
                &(origin.topic.clone(), origin.partition),
                origin.offset,
                payload.len(),
            );
            let pushed = catch_unwind(AssertUnwindSafe(|| {
                super::failpoint::check("match", &text);
                streams.push(&self.analyzer, msg, env)
            }));
            match_h.observe(t.elapsed().as_secs_f64());
            return match pushed {
                Ok(p) => Matching::Chunk(Box::new(p)),
                // The chunk's envelope was consumed; its payload is kept for the dead letter.
                Err(p) => Matching::Dead(
                    Envelope {
                        origin,
                        key: None,
                        payload,
                        received: Instant::now(),
                    },
                    internal("matching", &*p),
                ),
            };
        }
        let matched = catch_unwind(AssertUnwindSafe(|| {
            super::failpoint::check("match", &msg.text);
            let mut report = self.analyzer.spans_within(&msg.text, &self.limits.budget());
            if let Some(i) = report.incomplete {
                self.metrics
                    .incomplete
                    .with_label_values(&[i.reason.name()])
                    .inc();
            }
            self.analyzer
                .mark_prompt(&mut report, msg.prompt.as_deref());
            let wants = self.wants_probe(&msg.id, &report);
            (report, wants)
        }));
        let (report, wants) = match matched {
            Ok(x) => x,
            Err(p) => return Matching::Dead(env, internal("matching", &*p)),
        };
        match_h.observe(t.elapsed().as_secs_f64());
        Matching::Whole(
            Box::new(Matched {
                origin: env.origin.clone(),
                received: env.received,
                envs: vec![env],
                msg,
                report,
                stream: None,
            }),
            wants,
        )
    }

    /// Sends a matched message or ended output on: to the probe when it wants scoring, else
    /// straight to its verdict.
    async fn to_verdict(
        self: &Arc<Self>,
        m: Matched,
        wants_probe: bool,
        probe_tx: &mpsc::Sender<Matched>,
    ) {
        if wants_probe {
            // Waiting here is the backpressure from a busy probe.
            if let Err(e) = probe_tx.send(m).await {
                self.finish(e.0, None);
            }
        } else {
            self.finish(m, None);
        }
    }

    /// What a chunk did: duplicates finished, refusals dead-lettered, an early alert sent, and
    /// an ended output on to its verdict.
    async fn chunk_done(self: &Arc<Self>, p: Box<Pushed>, probe_tx: &mpsc::Sender<Matched>) {
        for env in &p.finish_now {
            self.metrics.chunks.with_label_values(&["duplicate"]).inc();
            self.done(env);
        }
        for (env, dl) in p.dead {
            self.dead_letter(env, dl);
        }
        if let Some(a) = p.early {
            self.early_alert(a);
        }
        if let Some(e) = p.ended {
            self.output_ended(e, probe_tx).await;
        }
    }

    async fn output_ended(self: &Arc<Self>, e: Ended, probe_tx: &mpsc::Sender<Matched>) {
        self.metrics
            .outputs_ended
            .with_label_values(&[e.info.ended_by])
            .inc();
        if let Some(i) = e.report.incomplete {
            self.metrics
                .incomplete
                .with_label_values(&[i.reason.name()])
                .inc();
        }
        let wants = self.wants_probe(&e.id, &e.report);
        let m = Matched {
            received: e
                .held
                .iter()
                .map(|h| h.received)
                .min()
                .unwrap_or_else(Instant::now),
            envs: e.held,
            origin: e.origin,
            msg: Decoded {
                id: e.id,
                text: e.text,
                model: e.model,
                chunk: None,
                prompt: None,
            },
            report: e.report,
            stream: Some(e.info),
        };
        self.to_verdict(m, wants, probe_tx).await;
    }

    /// An alert on an output still open: sent at once; its offsets wait for the output's verdict.
    fn early_alert(self: &Arc<Self>, a: EarlyAlert) {
        let this = self.clone();
        let EarlyAlert {
            mut verdict,
            info,
            model,
            origin,
        } = a;
        verdict.keep_longest_spans(self.max_spans);
        self.tasks.spawn(async move {
            let _slot = this.produce_slots.acquire().await.expect("never closed");
            let severity = verdict.severity;
            let out = VerdictOut {
                alert: true,
                verdict,
                model,
                source: origin,
                reduced: None,
                stream: Some(Box::new(info)),
            };
            match this.send_verdict(out).await {
                Ok(()) => {
                    this.metrics.alerts.with_label_values(&[severity.name()]).inc();
                    this.metrics.chunks.with_label_values(&["early_alert"]).inc();
                }
                Err(e) => tracing::warn!(error = %e, "an early alert was not delivered; the output's verdict will carry it"),
            }
        });
    }

    /// Ends idle streamed outputs every second, until the pipeline stops.
    async fn sweep_idle_outputs(self: Arc<Self>, probe_tx: mpsc::Sender<Matched>) {
        let Some(streams) = self.streams.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let this = self.clone();
            let streams = streams.clone();
            let swept = tokio::task::spawn_blocking(move || {
                let mut dead = Vec::new();
                let ended = streams.expire(&this.analyzer, &mut dead);
                (ended, dead)
            })
            .await;
            let Ok((ended, dead)) = swept else {
                continue;
            };
            for (env, dl) in dead {
                self.dead_letter(env, dl);
            }
            for e in ended {
                self.output_ended(e, &probe_tx).await;
            }
        }
    }

    /// Whether the probe policy scores this message.
    fn wants_probe(&self, id: &str, report: &SpanReport) -> bool {
        self.analyzer.probe.is_some() && self.policy.scores(id, report, self.sample_rate)
    }

    /// Batches messages for the probe until its input closes. A failed or panicking forward
    /// pass loses nothing: its messages get verdicts from the index alone.
    async fn probe_stage(self: Arc<Self>, mut rx: mpsc::Receiver<Matched>) {
        let probe_h = self.metrics.stage("probe");
        while let Some(batch) = recv_batch(&mut rx, self.probe_batch).await {
            let worker = self.clone();
            let t = Instant::now();
            let (batch, scored) = tokio::task::spawn_blocking(move || {
                let texts: Vec<&str> = batch.iter().map(|m| m.msg.text.as_str()).collect();
                let reports: Vec<&SpanReport> = batch.iter().map(|m| &m.report).collect();
                let scored = catch_unwind(AssertUnwindSafe(|| {
                    for t in &texts {
                        super::failpoint::check("probe", t);
                    }
                    worker.analyzer.probe(&texts, &reports)
                }))
                .unwrap_or_else(|p| Err(anyhow::anyhow!("{}", panic_text(&*p))));
                (batch, scored)
            })
            .await
            .expect("the probe's panics are caught");
            probe_h.observe(t.elapsed().as_secs_f64());
            match scored {
                Ok(scored) => {
                    for (m, p) in batch.into_iter().zip(scored) {
                        if let Some(e) = p.score.summary.mean_entropy {
                            self.metrics.entropy.observe(e as f64);
                        }
                        self.finish(m, Some(p));
                    }
                }
                Err(e) => {
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
        let judged = catch_unwind(AssertUnwindSafe(|| {
            super::failpoint::check("verdict", &m.msg.text);
            self.analyzer.judge(&m.msg.id, &m.report, probed.as_ref())
        }));
        let mut verdict: Verdict = match judged {
            Ok(v) => v,
            Err(p) => {
                let dl = internal("judging", &*p);
                for env in m.envs {
                    self.dead_letter(env, dl.clone());
                }
                return;
            }
        };
        verdict.keep_longest_spans(self.max_spans);
        for s in &verdict.spans {
            self.metrics.span_chars.observe(s.chars as f64);
        }
        self.metrics.coverage.observe(verdict.coverage);
        let alert = verdict.severity >= self.alert_at && verdict.severity > Severity::None;
        let this = self.clone();
        self.tasks.spawn(async move {
            let t = Instant::now();
            let _slot = this.produce_slots.acquire().await.expect("never closed");
            let severity = verdict.severity;
            let out = |alert: bool, verdict: Verdict| VerdictOut {
                alert,
                verdict,
                model: m.msg.model.clone(),
                source: m.origin.clone(),
                reduced: None,
                stream: m.stream.clone().map(Box::new),
            };
            let for_alert = alert.then(|| out(true, verdict.clone()));
            let (v, a) = futures::join!(this.send_verdict(out(false, verdict)), async {
                match for_alert {
                    Some(v) => this.send_verdict(v).await,
                    None => Ok(()),
                }
            });
            let mut refused = Vec::new();
            for r in [v, a] {
                match r {
                    Ok(()) => {}
                    Err(SendError::GaveUp(e)) => {
                        tracing::warn!(id = %m.msg.id, error = %e, "verdict not delivered; the message will be delivered again");
                        return;
                    }
                    Err(SendError::Refused(e)) => refused.push(e),
                }
            }
            if !refused.is_empty() {
                let dl = DeadLetter {
                    reason: DeadLetterReason::OutputRefused,
                    detail: format!("the broker refused the verdict or alert, also reduced: {}", refused.join("; ")),
                };
                for env in m.envs {
                    this.send_dead_letter(env, dl.clone()).await;
                }
                return;
            }
            this.metrics.stage("produce").observe(t.elapsed().as_secs_f64());
            this.metrics.verdicts.with_label_values(&[severity.name()]).inc();
            if alert {
                this.metrics.alerts.with_label_values(&[severity.name()]).inc();
            }
            this.metrics.messages.with_label_values(&["verdict"]).inc();
            this.metrics
                .stage("end_to_end")
                .observe(m.received.elapsed().as_secs_f64());
            for env in &m.envs {
                this.done(env);
            }
        });
    }

    /// Sends a verdict or alert that fits the sink (fewer spans until it does); a record the
    /// broker still refuses for good is sent once more reduced to its summary (no spans, no
    /// runs), with the refusal in `reduced`.
    async fn send_verdict(&self, mut out: VerdictOut) -> Result<(), SendError> {
        let max = self.sink.max_record_bytes();
        while max < usize::MAX && out.json().len() > max && !out.verdict.spans.is_empty() {
            let half = out.verdict.spans.len() / 2;
            out.verdict.keep_longest_spans(half);
        }
        let mut record = Output::Verdict(Box::new(out));
        let e = match self.sink.send(&record).await {
            Err(SendError::Refused(e)) => e,
            other => return other,
        };
        let Output::Verdict(out) = &mut record else {
            unreachable!("built as a verdict above")
        };
        let stream = if out.alert {
            Stream::Alerts
        } else {
            Stream::Verdicts
        };
        tracing::error!(id = %out.verdict.id, stream = stream.name(), error = %e, "the broker refused a record for good; sending it reduced");
        out.verdict.keep_longest_spans(0);
        if let Some(en) = &mut out.verdict.entropy {
            en.unexplained_runs.clear();
        }
        out.reduced = Some(e);
        let r = self.sink.send(&record).await;
        let result = if r.is_ok() { "reduced" } else { "dead_letter" };
        self.metrics
            .produce_rejected
            .with_label_values(&[stream.name(), result])
            .inc();
        r
    }

    /// Sends a dead letter (spawned; the offset advances once it is acknowledged).
    fn dead_letter(self: &Arc<Self>, env: Envelope, dl: DeadLetter) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let _slot = this.produce_slots.acquire().await.expect("never closed");
            this.send_dead_letter(env, dl).await
        });
    }

    /// A dead letter carries the original payload, cut to what the sink takes (the original
    /// size in `memaudit-original-bytes`). Refused for good, the message is dropped: counted
    /// and logged, and its partition moves on.
    async fn send_dead_letter(&self, env: Envelope, dl: DeadLetter) {
        let origin = &env.origin;
        tracing::debug!(reason = dl.reason.code(), detail = %dl.detail, topic = %origin.topic,
            partition = origin.partition, offset = origin.offset, "dead letter");
        let mut out = DeadLetterOut {
            reason: dl.reason,
            detail: dl.detail.clone(),
            source: origin.clone(),
            key: env.key.clone(),
            payload: env.payload.clone(),
            original_bytes: None,
        };
        // Room for the payload: what the sink takes, less the key, the headers (with the two a
        // cut adds) and framing.
        out.original_bytes = Some(env.payload.len());
        let room = self
            .sink
            .max_record_bytes()
            .saturating_sub(
                out.headers()
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 8)
                    .sum::<usize>(),
            )
            .saturating_sub(env.key.as_ref().map_or(0, Vec::len) + 128);
        if out.payload.len() > room {
            out.payload.truncate(room);
        } else {
            out.original_bytes = None;
        }
        let record = Output::DeadLetter(out);
        match self.sink.send(&record).await {
            Ok(()) => {
                self.metrics
                    .dead_letters
                    .with_label_values(&[dl.reason.code()])
                    .inc();
                self.metrics
                    .messages
                    .with_label_values(&["dead_letter"])
                    .inc();
            }
            Err(SendError::Refused(e)) => {
                tracing::error!(reason = dl.reason.code(), topic = %origin.topic, partition = origin.partition,
                    offset = origin.offset, error = %e, "the dead-letter topic refused the message for good: dropped");
                self.metrics
                    .produce_rejected
                    .with_label_values(&["dead_letters", "dropped"])
                    .inc();
                self.metrics.messages.with_label_values(&["dropped"]).inc();
            }
            Err(SendError::GaveUp(e)) => {
                tracing::warn!(error = %e, "dead letter not delivered; the message will be delivered again");
                return;
            }
        }
        self.done(&env);
    }

    fn done(&self, env: &Envelope) {
        let o = &env.origin;
        self.in_flight
            .finished(&(o.topic.clone(), o.partition), o.offset, env.payload.len());
    }
}

/// The dead letter for a message memaudit failed on.
fn internal(stage: &str, p: &(dyn std::any::Any + Send)) -> DeadLetter {
    DeadLetter {
        reason: DeadLetterReason::Internal,
        detail: format!("panic while {stage}: {}", panic_text(p)),
    }
}

/// The message of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
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

#[cfg(test)]
mod tests {
    #[test]
    fn sampling_is_deterministic_and_near_the_rate() {
        let hits = (0..20_000)
            .filter(|i| crate::config::sampled(&format!("m{i}"), 0.1))
            .count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
        assert_eq!(
            crate::config::sampled("x", 0.5),
            crate::config::sampled("x", 0.5)
        );
        assert!(!crate::config::sampled("x", 0.0));
    }
}
