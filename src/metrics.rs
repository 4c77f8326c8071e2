//! Every Prometheus metric the daemon exports, defined once, with its name, help, unit and labels.
//!
//! Names are `memaudit_<noun>_<unit>`; labels have low cardinality only (outcome, severity,
//! reason, stage, topic/partition of the input): never a message id. Internal events map one to
//! one onto these (a verdict produced ⇒ `messages_total{outcome="verdict"}` and
//! `verdicts_total{severity}`), so the dashboard in `config/grafana/` and the rules in
//! `config/prometheus/` read them directly.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Pipeline stages timed by `memaudit_stage_seconds{stage}`.
pub const STAGES: [&str; 5] = ["decode", "match", "probe", "produce", "end_to_end"];

/// All metrics, registered in their own registry.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Messages finished, by outcome: `verdict`, `dead_letter`, or `dropped` (every record the
    /// message had, its dead letter too, was refused by the broker for good).
    pub messages: IntCounterVec,
    /// Verdicts by severity.
    pub verdicts: IntCounterVec,
    /// Alerts produced, by severity.
    pub alerts: IntCounterVec,
    /// Dead letters by reason.
    pub dead_letters: IntCounterVec,
    /// Per-stage latency (per message for decode/match/produce/end_to_end; per batch for probe).
    pub stage_seconds: HistogramVec,
    /// Length of each verbatim span, characters.
    pub span_chars: Histogram,
    /// Share of each message inside spans.
    pub coverage: Histogram,
    /// Mean per-token entropy of each probed message, nats.
    pub entropy: Histogram,
    /// Messages received and not yet finished.
    pub in_flight: IntGauge,
    /// Payload bytes of those messages.
    pub in_flight_bytes: IntGauge,
    /// Age of the oldest unfinished message: its partition cannot commit past it.
    pub oldest_unfinished: IntGauge,
    /// 1 while fetching is paused because `limits.max_in_flight` is reached.
    pub paused: IntGauge,
    /// Jumps in an input partition's offsets (offsets never delivered), and the offsets skipped.
    pub offset_gaps: IntCounterVec,
    /// Offsets skipped by those jumps.
    pub offset_gap_records: IntCounterVec,
    /// Partitions whose commits are held at a gap (`kafka.strict_offsets`).
    pub commit_held: IntGauge,
    /// Records the broker refused for good, by output stream and what became of the message
    /// (`reduced`: a smaller record was written instead; `dead_letter`; `dropped`).
    pub produce_rejected: IntCounterVec,
    /// Consumer lag by input partition (librdkafka statistics).
    pub lag: IntGaugeVec,
    /// Produce attempts that failed (retried until acknowledged or shutdown).
    pub produce_errors: IntCounter,
    /// Offset commits by result.
    pub commits: IntCounterVec,
    /// Partitions assigned to this consumer.
    pub assigned_partitions: IntGauge,
    /// Rebalances by kind (assign, revoke).
    pub rebalances: IntCounterVec,
    /// Index identity and size (value 1 / bytes).
    pub index_info: IntGaugeVec,
    /// Bytes of the index files.
    pub index_bytes: IntGauge,
    /// The index generation in use.
    pub index_generation: IntGauge,
    /// Index reloads by result (ok, failed).
    pub index_reloads: IntCounterVec,
    /// 1 while the latest index generation on disk could not be opened or verified (the daemon
    /// serves the previous one).
    pub index_reload_failed: IntGauge,
    /// Model identity (value 1).
    pub model_info: IntGaugeVec,
    /// HTTP API requests answered, by endpoint and status code.
    pub http_requests: IntCounterVec,
    /// HTTP connections open now (at most `http.max_connections`).
    pub http_connections: IntGauge,
    /// Texts whose search the work budget stopped before their end, by reason (`deadline`,
    /// `spans`, `cancelled`): their verdicts say `incomplete`.
    pub incomplete: IntCounterVec,
    /// The action policy's decisions on judged texts, by endpoint, action and mode (in `audit`
    /// mode every text was allowed: these are the actions enforcing would have taken).
    pub http_actions: IntCounterVec,
    /// HTTP API request durations, by endpoint.
    pub http_seconds: HistogramVec,
    /// Chunks of streamed outputs that needed no verdict of their own, by kind (`duplicate`:
    /// a `seq` already received; `early_alert`: alerts sent before their output ended).
    pub chunks: IntCounterVec,
    /// Streamed outputs ended, by how (`final`, `idle_timeout`).
    pub outputs_ended: IntCounterVec,
    /// Bytes held by the open streamed outputs (at most `chunks.max_held_bytes`).
    pub stream_held_bytes: IntGauge,
    /// Streamed outputs open now.
    pub open_outputs: IntGauge,
    /// Build identity (value 1).
    pub build_info: IntGaugeVec,
}

impl Metrics {
    /// Every metric, registered in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique");
            h
        };
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "memaudit_stage_seconds",
                "Time spent per pipeline stage (probe: per batch; others: per message).",
            )
            .buckets(exponential_buckets(0.000_05, 2.5, 14).expect("buckets")),
            &["stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(stage_seconds.clone()))
            .expect("unique");
        let m = Metrics {
            messages: counter_vec(
                "memaudit_messages_total",
                "Input messages finished, by outcome (verdict, dead_letter, dropped).",
                &["outcome"],
            ),
            verdicts: counter_vec(
                "memaudit_verdicts_total",
                "Verdicts produced, by severity.",
                &["severity"],
            ),
            alerts: counter_vec(
                "memaudit_alerts_total",
                "Alerts produced, by severity.",
                &["severity"],
            ),
            dead_letters: counter_vec(
                "memaudit_dead_letters_total",
                "Messages sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            stage_seconds,
            span_chars: histogram(
                "memaudit_span_length_chars",
                "Length of each verbatim span found, characters.",
                exponential_buckets(32.0, 2.0, 10).expect("buckets"),
            ),
            coverage: histogram(
                "memaudit_coverage_ratio",
                "Share of each message's characters inside verbatim spans.",
                vec![0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0],
            ),
            entropy: histogram(
                "memaudit_entropy_nats",
                "Mean per-token entropy of each probed message, nats.",
                vec![0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0],
            ),
            in_flight: gauge(
                "memaudit_in_flight_messages",
                "Messages received and not yet finished (verdict acknowledged or dead-lettered).",
            ),
            in_flight_bytes: gauge(
                "memaudit_in_flight_bytes",
                "Payload bytes of the messages in flight.",
            ),
            oldest_unfinished: gauge(
                "memaudit_oldest_unfinished_seconds",
                "Age of the oldest message received and not finished (0 when none): its partition cannot commit past it.",
            ),
            offset_gaps: counter_vec(
                "memaudit_offset_gaps_total",
                "Jumps in an input partition's offsets: offsets the broker never delivered.",
                &["topic", "partition"],
            ),
            offset_gap_records: counter_vec(
                "memaudit_offset_gap_records_total",
                "Offsets skipped by those jumps.",
                &["topic", "partition"],
            ),
            commit_held: gauge(
                "memaudit_commit_held_partitions",
                "Input partitions whose commits are held at an offset gap (kafka.strict_offsets).",
            ),
            produce_rejected: counter_vec(
                "memaudit_produce_rejected_total",
                "Records the broker refused for good, by stream and what was done instead (reduced, dead_letter, dropped).",
                &["stream", "result"],
            ),
            paused: gauge(
                "memaudit_fetch_paused",
                "1 while fetching is paused because the in-flight limit is reached.",
            ),
            lag: gauge_vec(
                "memaudit_consumer_lag_messages",
                "Consumer lag per input partition, from librdkafka statistics.",
                &["topic", "partition"],
            ),
            produce_errors: {
                let c = IntCounter::new(
                    "memaudit_produce_errors_total",
                    "Produce attempts that failed (transient failures are retried until acknowledged).",
                )
                .expect("valid metric");
                registry.register(Box::new(c.clone())).expect("unique");
                c
            },
            commits: counter_vec(
                "memaudit_offset_commits_total",
                "Offset commits, by result (ok, error).",
                &["result"],
            ),
            assigned_partitions: gauge(
                "memaudit_assigned_partitions",
                "Input partitions assigned to this consumer.",
            ),
            rebalances: counter_vec(
                "memaudit_rebalances_total",
                "Consumer-group rebalances, by kind (assign, revoke).",
                &["kind"],
            ),
            index_info: gauge_vec(
                "memaudit_index_info",
                "The open index (value 1).",
                &["index_id", "shards"],
            ),
            index_bytes: gauge(
                "memaudit_index_bytes",
                "Size of the open index's files, bytes.",
            ),
            index_generation: gauge(
                "memaudit_index_generation",
                "The index generation in use (index remove/add/compact each publish the next).",
            ),
            index_reloads: counter_vec(
                "memaudit_index_reloads_total",
                "Index generations the daemon tried to open, by result (ok, failed).",
                &["result"],
            ),
            index_reload_failed: gauge(
                "memaudit_index_reload_failed",
                "1 while the newest index generation on disk was refused (the previous one is served).",
            ),
            model_info: gauge_vec(
                "memaudit_model_info",
                "The loaded probe model (value 1); policy off loads none.",
                &["model", "device", "policy"],
            ),
            http_requests: counter_vec(
                "memaudit_http_requests_total",
                "HTTP API requests answered, by endpoint and status code.",
                &["endpoint", "status"],
            ),
            http_connections: gauge(
                "memaudit_http_connections",
                "HTTP connections open now (at most http.max_connections).",
            ),
            incomplete: counter_vec(
                "memaudit_incomplete_total",
                "Texts whose search the work budget stopped before their end, by reason.",
                &["reason"],
            ),
            http_actions: counter_vec(
                "memaudit_http_actions_total",
                "Actions decided by the policy on judged texts, by endpoint, action and mode (audit: not carried out).",
                &["endpoint", "action", "mode"],
            ),
            http_seconds: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "memaudit_http_request_seconds",
                        "HTTP API request durations, by endpoint.",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5, 1.0, 2.5,
                    ]),
                    &["endpoint"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique");
                h
            },
            chunks: counter_vec(
                "memaudit_chunks_total",
                "Chunks of streamed outputs by what they needed beyond their output's verdict (duplicate, early_alert).",
                &["kind"],
            ),
            outputs_ended: counter_vec(
                "memaudit_stream_outputs_ended_total",
                "Streamed outputs given their verdict, by how they ended (final, idle_timeout).",
                &["ended_by"],
            ),
            open_outputs: gauge(
                "memaudit_stream_outputs_open",
                "Streamed outputs open now (chunks received, no verdict yet).",
            ),
            stream_held_bytes: gauge(
                "memaudit_stream_held_bytes",
                "Bytes the open streamed outputs hold (text, waiting chunks, a fixed cost per chunk); at most chunks.max_held_bytes.",
            ),
            build_info: gauge_vec(
                "memaudit_build_info",
                "memaudit build (value 1).",
                &["version"],
            ),
            registry,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Pre-create the label values a dashboard expects, so they read 0 rather than absent.
        for o in ["verdict", "dead_letter", "dropped"] {
            m.messages.with_label_values(&[o]);
        }
        for s in crate::verdict::Severity::ALL {
            m.verdicts.with_label_values(&[s.name()]);
            if s > crate::verdict::Severity::None {
                m.alerts.with_label_values(&[s.name()]);
            }
        }
        for s in STAGES {
            m.stage_seconds.with_label_values(&[s]);
        }
        for r in ["ok", "failed"] {
            m.index_reloads.with_label_values(&[r]);
        }
        for k in ["duplicate", "early_alert"] {
            m.chunks.with_label_values(&[k]);
        }
        for e in ["final", "idle_timeout"] {
            m.outputs_ended.with_label_values(&[e]);
        }
        #[cfg(target_os = "linux")]
        {
            let p = prometheus::process_collector::ProcessCollector::for_self();
            let _ = m.registry.register(Box::new(p));
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail on gathered metrics");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }

    /// The duration histogram of one pipeline stage (one of [`STAGES`]).
    pub fn stage(&self, stage: &str) -> Histogram {
        self.stage_seconds.with_label_values(&[stage])
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_units_and_presence() {
        let m = Metrics::new();
        let text = m.render();
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert!(
                name.starts_with("memaudit_") || name.starts_with("process_"),
                "{name}"
            );
        }
        assert!(text.contains("memaudit_messages_total{outcome=\"dead_letter\"} 0"));
        assert!(text.contains("memaudit_build_info{version="));
    }
}
