//! `memaudit serve` configuration: one TOML file, overridden by `MEMAUDIT_<SECTION>__<KEY>`
//! environment variables and then by `--set section.key=value` flags; validated up front.
//!
//! Every error names the key (`kafka.group_id`), and where the value came from when it was not the
//! file. Unknown keys are refused, so a typo never silently falls back to a default. The example
//! with every key and its default is `config/memaudit.toml`; it is parsed by a test.
//!
//! Why about 500 lines before the tests: every key is declared here with its doc and default,
//! the reference that `config/memaudit.toml` is checked against.

//!
//! - `mod.rs` (this file): the sections and their checks, each section validating its own keys.
//! - [`kafka`]: the `[kafka]` and `[topics]` sections and the librdkafka properties memaudit
//!   sets (forced, and defaults a user may replace).
//! - [`load`]: reading the file and applying the environment and `--set` overrides.

mod kafka;
mod load;

pub use kafka::{
    DefaultOption, ForcedOption, ForcedValue, KafkaClient, KafkaConfig, Topics,
    DEFAULT_KAFKA_OPTIONS, FORCED_KAFKA_OPTIONS,
};
pub use load::ENV_PREFIX;

use crate::verdict::{Severity, SeverityRules};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration error: the key, what is wrong, and where the value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
    pub origin: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "configuration: {}", self.message)?;
        } else {
            write!(f, "configuration key `{}`: {}", self.key, self.message)?;
        }
        if let Some(o) = &self.origin {
            write!(f, " (set by {o})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: message.into(),
        origin: None,
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub source: SourceConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub topics: Topics,
    #[serde(default)]
    pub file: FileConfig,
    #[serde(default)]
    pub input: InputConfig,
    pub index: IndexConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub probe: ProbeConfig,
    #[serde(default)]
    pub spans: SpanConfig,
    #[serde(default)]
    pub severity: SeverityRules,
    #[serde(default)]
    pub alerts: AlertConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub actions: crate::action::ActionPolicy,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub chunks: ChunksConfig,
}

/// Streamed outputs (`input.format = "chunks"` and `POST /v1/chunks`): how long an output may
/// stay open and how much of them is kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunksConfig {
    /// An output that received no chunk for this long gets its verdict on what arrived, with the
    /// missing chunks named.
    pub idle_timeout_secs: f64,
    /// Outputs open at once; a chunk that would open one more is a dead letter
    /// (`too_many_open_outputs`).
    pub max_open_outputs: usize,
    /// Text kept per output; a chunk past it is a dead letter (`output_too_large`) and the
    /// verdict says which chunks were left out.
    pub max_output_bytes: usize,
    /// Ids of ended outputs remembered, so late duplicates of their chunks are dropped instead of
    /// opening the output again.
    pub remember_ended: usize,
    /// Bytes all open outputs may hold together (text kept and waiting, and a fixed cost per
    /// chunk, so that empty chunks count too, and the payloads of Kafka chunks held until their
    /// output's verdict); a chunk past it is a dead letter
    /// (`streams_full`, 429 over HTTP). Shown in `memaudit_stream_held_bytes`.
    pub max_held_bytes: usize,
}

impl Default for ChunksConfig {
    fn default() -> Self {
        ChunksConfig {
            idle_timeout_secs: 30.0,
            max_open_outputs: 10_000,
            max_output_bytes: 1 << 20,
            remember_ended: 100_000,
            max_held_bytes: 512 << 20,
        }
    }
}

impl ChunksConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.idle_timeout_secs > 0.0 && self.idle_timeout_secs.is_finite()) {
            return Err(err(
                "chunks.idle_timeout_secs",
                "must be a positive number of seconds",
            ));
        }
        if self.max_open_outputs == 0 {
            return Err(err("chunks.max_open_outputs", "must be at least 1"));
        }
        if self.max_held_bytes < self.max_output_bytes {
            return Err(err(
                "chunks.max_held_bytes",
                "must be at least chunks.max_output_bytes",
            ));
        }
        if self.max_output_bytes == 0 {
            return Err(err("chunks.max_output_bytes", "must be at least 1"));
        }
        Ok(())
    }
}

/// Where messages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A Kafka consumer group (`[kafka]`, `[topics]`).
    #[default]
    Kafka,
    /// JSON lines from a file or stdin; records to files or stdout (`[file]`).
    File,
    /// No stream: only the HTTP server, answering POST /v1/check.
    Http,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default)]
    pub kind: SourceKind,
}

/// The file source: `-` is stdin for `input`, stdout for the others.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub input: PathBuf,
    pub verdicts: PathBuf,
    pub alerts: PathBuf,
    pub dead_letters: PathBuf,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            input: "-".into(),
            verdicts: "-".into(),
            alerts: "-".into(),
            dead_letters: "-".into(),
        }
    }
}

/// How a message payload is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// A JSON object with an id and a text field.
    #[default]
    Json,
    /// The whole payload is the text; the id is `topic/partition/offset`.
    Text,
    /// One chunk of a streamed output: a JSON object `{id, seq, delta, final?, model?}`
    /// (`id_field` names the id; `seq` counts from 0). The chunks of an output are put back in
    /// order and matched as they arrive; the output gets one verdict (see `[chunks]`).
    Chunks,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    pub format: InputFormat,
    pub id_field: String,
    pub text_field: String,
    /// Payloads larger than this go to the dead-letter topic.
    pub max_bytes: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            format: InputFormat::Json,
            id_field: "id".into(),
            text_field: "text".into(),
            // librdkafka's own message.max.bytes: what a default producer can write at most.
            max_bytes: 1_000_000,
        }
    }
}

impl InputConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.id_field.is_empty() {
            return Err(err("input.id_field", "must not be empty"));
        }
        if self.text_field.is_empty() {
            return Err(err("input.text_field", "must not be empty"));
        }
        if self.max_bytes == 0 {
            return Err(err("input.max_bytes", "must be > 0"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Index directory built by `memaudit index build`.
    pub dir: PathBuf,
    /// Seconds between checks of the manifest for a new generation (`index remove`, `add`,
    /// `compact`); 0 follows only on SIGHUP.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: f64,
}

fn default_poll_secs() -> f64 {
    2.0
}

impl IndexConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(err("index.dir", "must name the index directory"));
        }
        if !(self.poll_secs.is_finite() && (0.0..=86_400.0).contains(&self.poll_secs)) {
            return Err(err(
                "index.poll_secs",
                "must be between 0 (SIGHUP only) and 86400 seconds",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// GGUF file or Hugging Face directory; empty means the default model installed by
    /// `scripts/fetch-model.sh`.
    pub path: Option<PathBuf>,
    /// tokenizer.json; by default the model's own tokenizer.
    pub tokenizer: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            tokenizer: None,
            device: "cpu".into(),
        }
    }
}

impl ModelConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        crate::probe::device::select(&self.device)
            .map(|_| ())
            .map_err(|e| err("model.device", e.to_string()))
    }

    pub fn resolved_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(crate::probe::default_model_path)
    }
}

/// Whether message `id` falls in a deterministic `rate` share (a hash of the id): the same
/// message is sampled on every replay.
pub fn sampled(id: &str, rate: f64) -> bool {
    let h = blake3::hash(id.as_bytes());
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    (x as f64 / u64::MAX as f64) < rate
}

/// Which messages the entropy probe scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ProbePolicy {
    /// Never: verdicts from the index alone.
    Off,
    /// Messages with at least one verbatim span.
    #[default]
    OnMatch,
    /// A deterministic share (`sample_rate`) of messages, chosen by a hash of the id.
    Sampled,
    /// Every message.
    Always,
}

impl ProbePolicy {
    /// Whether this policy scores the text with message `id` whose spans are `report`
    /// (`sample_rate` for `sampled`). The daemon's stream and its HTTP API both ask this.
    pub fn scores(self, id: &str, report: &crate::index::SpanReport, sample_rate: f64) -> bool {
        match self {
            ProbePolicy::Off => false,
            ProbePolicy::Always => true,
            ProbePolicy::OnMatch => !report.spans.is_empty(),
            ProbePolicy::Sampled => sampled(id, sample_rate),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProbePolicy::Off => "off",
            ProbePolicy::OnMatch => "on-match",
            ProbePolicy::Sampled => "sampled",
            ProbePolicy::Always => "always",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    pub policy: ProbePolicy,
    /// Share of messages scored under `sampled`, in (0, 1].
    pub sample_rate: f64,
    /// Messages scored per forward pass.
    pub batch_size: usize,
    /// Tokens per window and tokens of context repeated between windows.
    pub window: usize,
    pub overlap: usize,
    /// Tokens scored per message, from its start: bounds the probe's time on a degenerate
    /// output (the rest of the text is matched against the index, not scored).
    pub max_tokens: usize,
    /// The model's mean entropy on novel text, nats (boundary-score calibration).
    pub novel_entropy: f32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            policy: ProbePolicy::OnMatch,
            sample_rate: 0.01,
            batch_size: 8,
            window: 512,
            overlap: 128,
            max_tokens: crate::probe::ProbeOptions::default().max_tokens,
            novel_entropy: crate::probe::boundary::Calibration::default().novel,
        }
    }
}

impl ProbeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.policy == ProbePolicy::Sampled
            && !(self.sample_rate > 0.0 && self.sample_rate <= 1.0)
        {
            return Err(err(
                "probe.sample_rate",
                "must be in (0, 1] when policy = \"sampled\"",
            ));
        }
        if self.batch_size == 0 {
            return Err(err("probe.batch_size", "must be > 0"));
        }
        crate::probe::window::check(self.window, self.overlap)
            .map_err(|e| err("probe.overlap", e.to_string()))?;
        if !(self.novel_entropy.is_finite() && self.novel_entropy > 0.6) {
            return Err(err(
                "probe.novel_entropy",
                "must be a number of nats above 0.6",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanConfig {
    /// Minimum span length in characters (normalized text).
    pub min_chars: usize,
    /// Minimum span length in model tokens; 0 turns the token filter off. Counting tokens needs the
    /// model's tokenizer, which is then loaded even with the probe off.
    pub min_tokens: usize,
    /// Provenance hits reported per span.
    pub max_hits: usize,
    /// Spans listed in a verdict: the longest ones, with the total in `spans_total` and
    /// `spans_truncated` set when some were left out. Bounds the verdict's size.
    pub max_reported: usize,
    /// Look for near-verbatim spans too (`crate::index::read::near`).
    pub near: bool,
    /// Their seeds' least length, characters.
    pub near_seed_chars: usize,
    /// The longest gap between chained seeds, bytes.
    pub near_max_gap: usize,
    /// The shortest near span reported, characters.
    pub near_min_chars: usize,
    /// The least similarity reported (0..1).
    pub near_min_similarity: f64,
    /// Seeds found in more places than this are left out (too common to say where a passage
    /// comes from); bounds a query's work on boilerplate.
    pub near_max_seed_hits: usize,
    /// Fold zero-width, look-alike and typographic characters before matching
    /// (`crate::corpus::fold`); recorded in the verdict.
    pub fold: bool,
}

impl SpanConfig {
    /// The near-verbatim options, when `near` is on.
    pub fn near_options(&self) -> Option<crate::index::read::near::NearOptions> {
        self.near.then_some(crate::index::read::near::NearOptions {
            seed_chars: self.near_seed_chars,
            max_gap: self.near_max_gap,
            min_chars: self.near_min_chars,
            min_similarity: self.near_min_similarity,
            max_seed_hits: self.near_max_seed_hits,
        })
    }
}

impl Default for SpanConfig {
    fn default() -> Self {
        let near = crate::index::read::near::NearOptions::default();
        SpanConfig {
            min_chars: crate::index::DEFAULT_MIN_LEN,
            min_tokens: 0,
            max_hits: 3,
            max_reported: 100,
            near: false,
            near_seed_chars: near.seed_chars,
            near_max_gap: near.max_gap,
            near_min_chars: near.min_chars,
            near_min_similarity: near.min_similarity,
            near_max_seed_hits: near.max_seed_hits,
            fold: false,
        }
    }
}

impl SpanConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.min_chars == 0 {
            return Err(err("spans.min_chars", "must be ≥ 1"));
        }
        if self.max_reported == 0 {
            return Err(err("spans.max_reported", "must be > 0"));
        }
        if self.near_seed_chars == 0 {
            return Err(err("spans.near_seed_chars", "must be ≥ 1"));
        }
        if !(self.near_min_similarity > 0.0 && self.near_min_similarity <= 1.0) {
            return Err(err("spans.near_min_similarity", "must be in (0, 1]"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Verdicts at or above this severity are also produced to the alerts topic.
    pub min_severity: Severity,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            min_severity: Severity::High,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address for /metrics, /healthz, /readyz and POST /v1/check; empty turns the server off.
    pub bind: String,
    /// Checks answered at once by POST /v1/check; more are answered 429.
    pub max_concurrent_checks: usize,
    /// Longest a check may take; slower ones are answered 503 and their work stopped.
    pub check_timeout_ms: u64,
    /// Longest a request's body may take to arrive once its headers are in (408 after it).
    pub body_timeout_ms: u64,
    /// Longest a connection may take to send a request's headers, and stay idle between
    /// keep-alive requests; it is closed after it.
    pub header_timeout_ms: u64,
    /// Connections open at once; more wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
    /// A file of bearer tokens, one per line, that POST /v1/check requires (`Authorization:
    /// Bearer TOKEN`); empty: no authentication. /metrics and the health endpoints stay open.
    pub tokens_file: Option<std::path::PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: "127.0.0.1:9898".into(),
            max_concurrent_checks: 64,
            check_timeout_ms: 2000,
            body_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            max_connections: 1024,
            tokens_file: None,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.bind.is_empty() && self.bind.parse::<SocketAddr>().is_err() {
            return Err(err(
                "http.bind",
                format!("`{}` is not an address like 127.0.0.1:9898", self.bind),
            ));
        }
        if self.max_concurrent_checks == 0 {
            return Err(err("http.max_concurrent_checks", "must be > 0"));
        }
        for (k, v) in [
            ("http.check_timeout_ms", self.check_timeout_ms),
            ("http.body_timeout_ms", self.body_timeout_ms),
            ("http.header_timeout_ms", self.header_timeout_ms),
            ("http.max_connections", self.max_connections as u64),
        ] {
            if v == 0 {
                return Err(err(k, "must be > 0"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Messages received but not yet finished (verdict acknowledged); fetching pauses above it.
    pub max_in_flight: usize,
    /// Messages matched against the index per blocking task.
    pub match_batch: usize,
    /// Match batches running at once.
    pub match_workers: usize,
    /// Produce requests awaiting acknowledgement at once.
    pub max_pending_produce: usize,
    /// Payload bytes received but not yet finished; fetching also pauses above it.
    pub max_in_flight_bytes: usize,
    /// Largest record written (verdict, alert, dead letter), below the producer's
    /// `message.max.bytes` (librdkafka's default 1,000,000): a verdict keeps fewer spans and a
    /// dead letter's payload is cut (its original size in a header) to fit.
    pub max_record_bytes: usize,
    /// A message unfinished this long means its partition is stuck: the systemd watchdog
    /// pings stop and `memaudit_oldest_unfinished_seconds` shows it.
    pub stuck_after_secs: f64,
    /// The most time the search of one text may take (spans, provenance, near chaining); a text
    /// that needs more gets a verdict marked `incomplete` with how far it was checked
    /// (`crate::budget`). HTTP checks stop at `http.check_timeout_ms` instead. A streamed
    /// output's end (its near-verbatim and folded matching) runs within the same budget.
    pub text_seconds: f64,
    /// The most spans (runs of repeats count once) one text may yield before its search stops
    /// as `incomplete`: bounds a text's memory whatever it and the corpus hold.
    pub max_spans: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: 4096,
            match_batch: 64,
            match_workers: 2,
            max_pending_produce: 8192,
            max_in_flight_bytes: 256 << 20,
            max_record_bytes: 900_000,
            stuck_after_secs: 600.0,
            text_seconds: 5.0,
            max_spans: 20_000,
        }
    }
}

impl Limits {
    /// A new budget for one text: `text_seconds` from now, `max_spans` spans.
    pub fn budget(&self) -> crate::budget::Budget {
        crate::budget::Budget::new(
            Some(std::time::Duration::from_secs_f64(self.text_seconds)),
            self.max_spans,
        )
    }

    /// `producer_max`: the producer's `message.max.bytes`, which every record must fit below.
    fn validate(&self, producer_max: usize) -> Result<(), ConfigError> {
        for (k, v) in [
            ("limits.max_in_flight", self.max_in_flight),
            ("limits.match_batch", self.match_batch),
            ("limits.match_workers", self.match_workers),
            ("limits.max_pending_produce", self.max_pending_produce),
            ("limits.max_in_flight_bytes", self.max_in_flight_bytes),
            ("limits.max_spans", self.max_spans),
        ] {
            if v == 0 {
                return Err(err(k, "must be > 0"));
            }
        }
        if self.max_record_bytes < 4096 || self.max_record_bytes + 1024 > producer_max {
            return Err(err(
                "limits.max_record_bytes",
                format!(
                    "must be at least 4096 and 1024 below the producer's message.max.bytes \
                     ({producer_max}), which also counts the key, headers and framing"
                ),
            ));
        }
        if !(self.text_seconds.is_finite() && self.text_seconds > 0.0) {
            return Err(err(
                "limits.text_seconds",
                "must be a number of seconds > 0",
            ));
        }
        if !(self.stuck_after_secs.is_finite() && self.stuck_after_secs > 0.0) {
            return Err(err(
                "limits.stuck_after_secs",
                "must be a number of seconds > 0",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Time from SIGTERM to exit: finish in-flight work, flush, commit.
    pub deadline_secs: f64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            deadline_secs: 30.0,
        }
    }
}

impl ShutdownConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.deadline_secs.is_finite() && self.deadline_secs > 0.0) {
            return Err(err("shutdown.deadline_secs", "must be > 0"));
        }
        Ok(())
    }
}

impl Config {
    /// Checks values serde cannot (ranges, non-empty names, parseable addresses): each section
    /// checks its own keys; the Kafka sections only when they are used.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.source.kind == SourceKind::Kafka {
            self.kafka.validate()?;
            self.topics.validate()?;
        }
        self.input.validate()?;
        self.index.validate()?;
        self.probe.validate()?;
        if self.probe.policy != ProbePolicy::Off {
            self.model.validate()?;
        }
        self.spans.validate()?;
        self.severity.validate()?;
        self.http.validate()?;
        self.chunks.validate()?;
        if self.actions.block_at < self.actions.redact_at {
            return Err(err(
                "actions.block_at",
                "must be at or above actions.redact_at",
            ));
        }
        if self.source.kind == SourceKind::Http && self.http.bind.is_empty() {
            return Err(err(
                "http.bind",
                "source.kind = \"http\" serves POST /v1/check: give it an address",
            ));
        }
        self.limits.validate(self.producer_max_message_bytes())?;
        self.shutdown.validate()
    }

    /// Whether the model (and its tokenizer) must be loaded.
    pub fn needs_model(&self) -> bool {
        self.probe.policy != ProbePolicy::Off
    }

    /// Whether a tokenizer must be loaded (probe on, or spans filtered by tokens).
    pub fn needs_tokenizer(&self) -> bool {
        self.needs_model() || self.spans.min_tokens > 0
    }
}

impl From<crate::verdict::RuleError> for ConfigError {
    fn from(e: crate::verdict::RuleError) -> Self {
        err(&format!("severity.{}", e.key), e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(toml: &str, env: &[(&str, &str)], sets: &[&str]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        Config::load(
            Some(&p),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    const MINIMAL: &str = "[index]\ndir = \"/tmp/idx\"\n";

    #[test]
    fn defaults_fill_a_minimal_file() {
        let c = load(MINIMAL, &[], &[]).unwrap();
        assert_eq!(c.kafka.group_id, "memaudit");
        assert_eq!(c.probe.policy, ProbePolicy::OnMatch);
        assert_eq!(c.alerts.min_severity, Severity::High);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load(&format!("{MINIMAL}[kafka]\ngroup = \"x\"\n"), &[], &[]).unwrap_err();
        assert_eq!(e.key, "kafka.group");
        assert!(e.message.contains("unknown field `group`"), "{e}");
        let e = load(&format!("{MINIMAL}[kafak]\n"), &[], &[]).unwrap_err();
        assert!(e.to_string().contains("unknown field `kafak`"), "{e}");
        let e = load(MINIMAL, &[("MEMAUDIT_PROBE__POLICYY", "off")], &[]).unwrap_err();
        assert!(e.to_string().contains("unknown field `policyy`"), "{e}");
        assert!(e.to_string().contains("MEMAUDIT_PROBE__POLICYY"), "{e}");
    }

    #[test]
    fn bad_values_are_named_with_their_origin() {
        let e = load(
            &format!("{MINIMAL}[probe]\npolicy = \"sometimes\"\n"),
            &[],
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "probe.policy");
        let e = load(MINIMAL, &[], &["limits.max_in_flight=-3"]).unwrap_err();
        assert_eq!(e.key, "limits.max_in_flight");
        assert!(e.to_string().contains("--set limits.max_in_flight"), "{e}");
        let e = load(MINIMAL, &[], &["http.bind=localhost"]).unwrap_err();
        assert_eq!(e.key, "http.bind");
        let e = load(
            MINIMAL,
            &[],
            &["probe.policy=sampled", "probe.sample_rate=0"],
        )
        .unwrap_err();
        assert_eq!(e.key, "probe.sample_rate");
        let e = load(MINIMAL, &[], &["topics.input=memaudit-verdicts"]).unwrap_err();
        assert_eq!(e.key, "topics.input");
        let e = load(MINIMAL, &[], &["kafka.options.enable.auto.commit=true"]).unwrap_err();
        assert_eq!(e.key, "kafka.options.enable.auto.commit");
        let e = load(MINIMAL, &[], &["kafka.options.acks=1"]).unwrap_err();
        assert_eq!(e.key, "kafka.options.acks");
        assert!(e.to_string().contains("must stay `all`"), "{e}");
        let e = load(MINIMAL, &[], &["kafka.options.message.timeout.ms=300000"]).unwrap_err();
        assert_eq!(e.key, "kafka.options.message.timeout.ms");
        let e = load("", &[], &[]).unwrap_err();
        assert!(e.to_string().contains("missing field `index`"), "{e}");
    }

    /// Regression: `auto.offset.reset`, `linger.ms` and the other defaults used to pass
    /// validation and then be overwritten. A user's value now reaches the client; a forced
    /// property is refused at start (above) and never silently replaced.
    #[test]
    fn kafka_options_take_effect_or_are_refused() {
        let c = load(MINIMAL, &[], &[]).unwrap();
        let consumer = c.kafka_properties(KafkaClient::Consumer);
        assert_eq!(consumer["auto.offset.reset"], "earliest");
        assert_eq!(consumer["enable.auto.commit"], "false");
        assert_eq!(consumer["group.id"], "memaudit");
        assert!(!consumer.contains_key("acks"));
        let c = load(
            MINIMAL,
            &[],
            &[
                "kafka.options.auto.offset.reset=latest",
                "kafka.options.linger.ms=50",
                "kafka.options.partition.assignment.strategy=range",
            ],
        )
        .unwrap();
        let consumer = c.kafka_properties(KafkaClient::Consumer);
        assert_eq!(consumer["auto.offset.reset"], "latest");
        assert_eq!(consumer["partition.assignment.strategy"], "range");
        let producer = c.kafka_properties(KafkaClient::Producer);
        assert_eq!(producer["linger.ms"], "50");
        assert_eq!(producer["acks"], "all");
        assert_eq!(producer["message.timeout.ms"], "0");
        // Every user option reaches both clients (librdkafka ignores the other side's).
        for props in [&consumer, &producer] {
            for (k, v) in &c.kafka.options {
                assert_eq!(&props[k], v, "{k}");
            }
        }
    }

    #[test]
    fn env_then_flags_override_the_file() {
        let c = load(
            &format!("{MINIMAL}[kafka]\nbrokers = \"a:1\"\ngroup_id = \"g\"\n"),
            &[
                ("MEMAUDIT_KAFKA__BROKERS", "b:2"),
                ("MEMAUDIT_KAFKA__GROUP_ID", "from-env"),
                ("MEMAUDIT_KAFKA__OPTIONS__SASL__MECHANISM", "PLAIN"),
                ("MEMAUDIT_LIMITS__MAX_IN_FLIGHT", "77"),
                ("MEMAUDIT_MODEL", "ignored: no double underscore"),
            ],
            &[
                "kafka.group_id=from-flag",
                "kafka.options.security.protocol=SASL_SSL",
            ],
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "b:2");
        assert_eq!(c.kafka.group_id, "from-flag");
        assert_eq!(c.limits.max_in_flight, 77);
        assert_eq!(c.kafka.options["sasl.mechanism"], "PLAIN");
        assert_eq!(c.kafka.options["security.protocol"], "SASL_SSL");
    }

    #[test]
    fn the_shipped_example_is_valid_and_complete() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/memaudit.toml");
        let c = Config::load(Some(&p), std::iter::empty(), &[]).unwrap();
        // Every key is written out in the example, with the default value.
        let example: toml::Table = std::fs::read_to_string(&p).unwrap().parse().unwrap();
        let defaults = toml::Table::try_from(&c).unwrap();
        fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(s) if !path.ends_with("options") => {
                        keys(s, &format!("{path}."), out)
                    }
                    _ => out.push(path),
                }
            }
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys(&example, "", &mut a);
        keys(&defaults, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(a, b, "config/memaudit.toml must list every key");
    }
}
