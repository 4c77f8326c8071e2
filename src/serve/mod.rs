//! `memaudit serve`: the daemon. Wires a source (Kafka, or JSON lines from a file/stdin) through
//! the [`pipeline`] to a sink, with the HTTP endpoints, signals and systemd notifications.
//!
//! - [`message`]: envelopes, decoding, dead-letter reasons.
//! - [`pipeline`]: the stages, batching, backpressure, finishing offsets after acknowledgement.
//! - [`offsets`]: per-partition contiguous commit tracking, gaps, what is in flight.
//! - [`output`]: the typed records written (verdict, alert, dead letter), encoded by each sink.
//! - [`kafka`]: consumer group (pause/resume, rebalance drain, commits, lag) and producer.
//! - [`mod@file`]: the embedded source and sink (no broker).
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`check`]: `POST /v1/check`, one text judged inline, with an action and redaction.
//! - [`reload`]: following the index's generations (SIGHUP, manifest poll), swapping between
//!   messages.
//! - [`shutdown`]: the shutdown object, signals, systemd notify and watchdog.
//! - [`failpoint`]: fault injection for the tests (`MEMAUDIT_FAILPOINT`).

// Public: what a caller of `run` passes in (a sink of typed records; the demo's) and meets.
pub mod file;
// Documentation debt (Cargo.toml [lints] missing_docs): its public fields mirror formats
// documented elsewhere (the manifest, config/memaudit.toml, the verdict JSON in the README).
#[allow(missing_docs)]
pub mod message;
pub mod output;
pub mod pipeline;
pub mod shutdown;
// The daemon's own machinery.
pub(crate) mod check;
pub mod chunks;
pub(crate) mod failpoint;
pub(crate) mod http;
pub(crate) mod kafka;
pub(crate) mod offsets;
pub(crate) mod reload;

use crate::analyze::{self, Analyzer};
use crate::config::{Config, SourceKind};
use crate::metrics::Metrics;
use crate::probe::boundary::{BoundaryOptions, Calibration};
use crate::probe::tokenizer::{self, Tokenizer};
use crate::probe::ProbeOptions;
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use http::Readiness;
use offsets::{InFlight, OffsetTracker};
use pipeline::{Pipeline, Sink};
use shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything loaded before the first message: the analyzer and the shared observability state.
struct Loaded {
    analyzer: Arc<Analyzer>,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
}

/// Opens the index and loads the model the policy needs; sets the info metrics and readiness.
async fn load(cfg: &Config) -> Result<Loaded> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(Readiness::default());
    let c = cfg.clone();
    let analyzer = tokio::task::spawn_blocking(move || analyzer(&c))
        .await
        .context("loading the analyzer")??;
    reload::publish_index_metrics(&metrics, &analyzer.index());
    ready.index_open.store(true, Ordering::Relaxed);
    let model = if analyzer.probe.is_some() {
        cfg.model.resolved_path().display().to_string()
    } else {
        "none".to_string()
    };
    metrics
        .model_info
        .with_label_values(&[&model, &cfg.model.device, cfg.probe.policy.name()])
        .set(1);
    ready.model_ready.store(true, Ordering::Relaxed);
    Ok(Loaded {
        analyzer: Arc::new(analyzer),
        metrics,
        ready,
    })
}

/// What `memaudit serve --check-config` checks beyond the configuration itself, without
/// loading anything: the index opens, and the model the policy needs exists.
pub fn preflight(cfg: &Config) -> Result<()> {
    crate::index::Index::open(&cfg.index.dir).context("index.dir")?;
    if cfg.needs_model() {
        let m = cfg.model.resolved_path();
        anyhow::ensure!(
            m.exists(),
            "model.path = {} does not exist (probe.policy = \"{}\"): run \
             scripts/fetch-model.sh, set model.path, or set probe.policy = \"off\"",
            m.display(),
            cfg.probe.policy.name()
        );
    }
    Ok(())
}

/// Opens the index and, when the configuration needs them, loads the model and tokenizer.
fn analyzer(cfg: &Config) -> Result<Analyzer> {
    // The index's errors name its files; the context names the key.
    let index = crate::index::Index::open(&cfg.index.dir).context("index.dir")?;
    if index.manifest.live_documents() == 0 {
        return Err(crate::index::read::live::Refused::Empty {
            manifest: crate::index::format::Manifest::path(&cfg.index.dir),
            generation: index.generation(),
        })
        .context("index.dir");
    }
    reload::prepare(&index);
    let model = cfg.model.resolved_path();
    let mut probe = None;
    let mut tokenizer = None;
    if cfg.needs_model() {
        let device = crate::probe::device::select(&cfg.model.device)?;
        let options = ProbeOptions {
            window: cfg.probe.window,
            overlap: cfg.probe.overlap,
            max_tokens: cfg.probe.max_tokens,
        };
        probe = Some(
            crate::probe::load(&model, cfg.model.tokenizer.as_deref(), &device, options)
                .with_context(|| {
                    format!(
                        "loading the probe model {} (probe.policy = \"{}\"; install the default \
                         with scripts/fetch-model.sh, or set probe.policy = \"off\")",
                        model.display(),
                        cfg.probe.policy.name()
                    )
                })?,
        );
    } else if cfg.needs_tokenizer() {
        let path = tokenizer::path_for(&model, cfg.model.tokenizer.as_deref());
        tokenizer = Some(Arc::new(Tokenizer::load(&path).with_context(|| {
            format!(
                "loading the tokenizer {} (needed by spans.min_tokens)",
                path.display()
            )
        })?));
    }
    let options = analyze::Options {
        min_chars: cfg.spans.min_chars,
        min_tokens: cfg.spans.min_tokens,
        max_hits: cfg.spans.max_hits,
        boundary: BoundaryOptions {
            calibration: Calibration {
                novel: cfg.probe.novel_entropy,
                ..Calibration::default()
            },
            ..BoundaryOptions::default()
        },
        rules: cfg.severity.clone(),
        near: cfg.spans.near_options(),
        fold: cfg.spans.fold,
    };
    Analyzer::new(index, probe, tokenizer, options)
}

/// What a caller of [`run`] supplies besides the configuration. `Outputs::default()` is
/// `memaudit serve`: the configured sink, nothing run after the input.
#[derive(Default)]
pub struct Outputs {
    /// Records go here instead of the configured files (file source only: the demo prints
    /// them).
    pub sink: Option<Arc<dyn Sink>>,
    /// Runs once the file input is finished and every message drained, while the HTTP server
    /// still answers (with its bound address); the daemon stops when it returns or on a signal.
    pub after_input: Option<AfterInput>,
    /// SIGHUP, registered by the caller as early as it could (`memaudit serve`: before reading
    /// its configuration); [`run`] registers it at its start otherwise.
    pub hangup: Option<tokio::signal::unix::Signal>,
}

/// See [`Outputs::after_input`].
pub type AfterInput =
    Box<dyn FnOnce(Option<SocketAddr>, Shutdown) -> BoxFuture<'static, Result<()>> + Send>;

/// The daemon, the one way it starts (`memaudit serve`, `memaudit demo`, and through them the
/// tests): loads the index and model, serves HTTP, runs the configured source through the
/// pipeline until the input ends (file source) or a signal, then drains within the deadline.
pub async fn run(cfg: Config, mut outputs: Outputs) -> Result<()> {
    if outputs.sink.is_some() && cfg.source.kind != SourceKind::File {
        anyhow::bail!("a caller's sink replaces the file sink only (source.kind = \"file\")");
    }
    let hangup = match outputs.hangup.take() {
        Some(h) => h,
        None => tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?,
    };
    let shutdown = Shutdown::new(Duration::from_secs_f64(cfg.shutdown.deadline_secs));
    shutdown
        .listen_for_signals()
        .context("installing signal handlers")?;
    shutdown::exit_at_deadline(&shutdown);
    let Loaded {
        analyzer,
        metrics,
        ready,
    } = load(&cfg).await?;
    reload::spawn(
        cfg.index.dir.clone(),
        Duration::from_secs_f64(cfg.index.poll_secs),
        analyzer.clone(),
        metrics.clone(),
        shutdown.clone(),
        hangup,
        ready.clone(),
    );
    let (http_addr, http) = if cfg.http.bind.is_empty() {
        (None, None)
    } else {
        let s = shutdown.clone();
        let api = Arc::new(check::CheckService::new(
            &cfg,
            analyzer.clone(),
            metrics.clone(),
        )?)
        .router();
        let (addr, h) = http::serve(
            cfg.http.bind.parse().expect("validated"),
            metrics.clone(),
            ready.clone(),
            api,
            http::ConnectionLimits {
                header_timeout: Duration::from_millis(cfg.http.header_timeout_ms),
                max_connections: cfg.http.max_connections,
            },
            async move { s.triggered().await },
        )
        .await?;
        (Some(addr), Some(h))
    };
    let tracker = InFlight::new(
        if cfg.kafka.strict_offsets && cfg.source.kind == SourceKind::Kafka {
            OffsetTracker::strict()
        } else {
            OffsetTracker::new()
        },
        metrics.clone(),
    );
    spawn_health_monitor(&cfg, &shutdown, &metrics, &tracker);

    match cfg.source.kind {
        SourceKind::Http => {
            // No stream: the HTTP server answers checks until a signal.
            ready.partitions_assigned.store(true, Ordering::Relaxed);
            ready.broker_reachable.store(true, Ordering::Relaxed);
            shutdown::notify(&[sd_notify::NotifyState::Ready]);
            shutdown.triggered().await;
        }
        SourceKind::Kafka => {
            let sink = Arc::new(kafka::KafkaSink::new(
                &cfg,
                metrics.clone(),
                shutdown.clone(),
            )?);
            let pipeline = Pipeline::new(
                &cfg,
                analyzer,
                sink.clone() as Arc<dyn Sink>,
                tracker.clone(),
                metrics.clone(),
            );
            let source =
                kafka::KafkaSource::start(&cfg, tracker, metrics, ready, shutdown.clone())?;
            shutdown::notify(&[sd_notify::NotifyState::Ready]);
            source.run(pipeline, sink).await?;
        }
        SourceKind::File => {
            ready.partitions_assigned.store(true, Ordering::Relaxed);
            ready.broker_reachable.store(true, Ordering::Relaxed);
            let sink: Arc<dyn Sink> = match outputs.sink {
                Some(s) => s,
                None => Arc::new(file::FileSink::open(&cfg.file)?),
            };
            let pipeline = Pipeline::new(&cfg, analyzer, sink, tracker.clone(), metrics.clone());
            let (tx, rx) = tokio::sync::mpsc::channel(cfg.limits.max_in_flight);
            let pipe = tokio::spawn(pipeline.run(rx));
            shutdown::notify(&[sd_notify::NotifyState::Ready]);
            let sent =
                file::read_lines(&cfg.file.input, tx, tracker.clone(), shutdown.clone()).await?;
            let finished = if shutdown.is_triggered() {
                pipeline::within(shutdown.deadline(), pipe).await.is_some()
            } else {
                pipe.await.is_ok()
            };
            let left = tracker.load().0;
            tracing::info!(messages = sent, unfinished = left, finished, "input done");
            if let Some(after) = outputs.after_input {
                if !shutdown.is_triggered() {
                    after(http_addr, shutdown.clone()).await?;
                }
            }
            shutdown.trigger();
        }
    }
    if let Some(h) = http {
        // A client holding a request open must not hold the exit past the deadline.
        let abort = h.abort_handle();
        if pipeline::within(shutdown.deadline(), h).await.is_none() {
            abort.abort();
            tracing::warn!("HTTP connections still open at the shutdown deadline: closed");
        }
    }
    Ok(())
}

/// Every second: the age of the oldest unfinished message and the partitions held at a gap
/// (gauges). Pings the systemd watchdog while the pipeline is healthy: not (messages in flight
/// and none finished since the last ping: the whole pipeline is stuck), and no message waiting
/// longer than `limits.stuck_after_secs` (its partition cannot commit past it, even while the
/// others move).
fn spawn_health_monitor(
    cfg: &Config,
    shutdown: &Shutdown,
    metrics: &Arc<Metrics>,
    in_flight: &Arc<InFlight>,
) {
    let stuck = Arc::new(AtomicBool::new(false));
    let (m, t, st, s) = (
        metrics.clone(),
        in_flight.clone(),
        stuck.clone(),
        shutdown.clone(),
    );
    let stuck_after = Duration::from_secs_f64(cfg.limits.stuck_after_secs);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while !s.is_triggered() {
            tick.tick().await;
            let (oldest, held) = t.health();
            m.oldest_unfinished.set(oldest.as_secs() as i64);
            m.commit_held.set(held as i64);
            st.store(oldest >= stuck_after, Ordering::Relaxed);
        }
    });
    let (m, t) = (metrics.clone(), in_flight.clone());
    let last = AtomicU64::new(u64::MAX);
    shutdown::spawn_watchdog(shutdown.clone(), move || {
        let done = ["verdict", "dead_letter", "dropped"]
            .map(|o| m.messages.with_label_values(&[o]).get())
            .iter()
            .sum();
        let before = last.swap(done, Ordering::Relaxed);
        let idle = t.load().0 == 0;
        (idle || done != before) && !stuck.load(Ordering::Relaxed)
    });
}
