//! What the daemon writes, typed: a verdict (or the same verdict as an alert) and a dead letter
//! with the input it keeps and where that input came from. The pipeline builds these; each sink
//! encodes them at its own edge ([`super::kafka::KafkaSink`]: topic, key, payload, headers;
//! [`super::file::FileSink`]: one JSON line), so nothing parses back what it wrote.

use super::chunks::StreamInfo;
use super::message::{DeadLetterReason, Origin};
use crate::verdict::Verdict;
use serde::Serialize;

/// Which output a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// One verdict per message.
    Verdicts,
    /// Verdicts at or above `alerts.min_severity`, again.
    Alerts,
    /// Messages that got no verdict.
    DeadLetters,
}

impl Stream {
    /// The label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Verdicts => "verdicts",
            Stream::Alerts => "alerts",
            Stream::DeadLetters => "dead_letters",
        }
    }
}

/// One value per stream (a topic name, an open file), looked up by [`Stream`].
#[derive(Debug, Clone)]
pub struct PerStream<T> {
    /// For [`Stream::Verdicts`].
    pub verdicts: T,
    /// For [`Stream::Alerts`].
    pub alerts: T,
    /// For [`Stream::DeadLetters`].
    pub dead_letters: T,
}

impl<T> PerStream<T> {
    /// The value for `s`.
    pub fn get(&self, s: Stream) -> &T {
        match s {
            Stream::Verdicts => &self.verdicts,
            Stream::Alerts => &self.alerts,
            Stream::DeadLetters => &self.dead_letters,
        }
    }
}

/// One record for a sink.
#[derive(Debug, Clone)]
pub enum Output {
    /// A verdict or an alert (boxed: several times a dead letter's size).
    Verdict(Box<VerdictOut>),
    /// A dead letter.
    DeadLetter(DeadLetterOut),
}

impl Output {
    /// The stream it goes to.
    pub fn stream(&self) -> Stream {
        match self {
            Output::Verdict(v) if v.alert => Stream::Alerts,
            Output::Verdict(_) => Stream::Verdicts,
            Output::DeadLetter(_) => Stream::DeadLetters,
        }
    }
}

/// A verdict, or the same verdict sent as an alert, with where its message came from.
#[derive(Debug, Clone)]
pub struct VerdictOut {
    /// Sent to the alerts stream (`"kind": "alert"`).
    pub alert: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// The generating model, when the message named it.
    pub model: Option<String>,
    /// Where the message came from.
    pub source: Origin,
    /// Set on a record the broker refused whole and took without its spans and runs: the
    /// refusal.
    pub reduced: Option<String>,
    /// Set for a streamed output: how its verdict came about (or that it is an early alert).
    pub stream: Option<Box<StreamInfo>>,
}

/// The verdict as it is written out: Kafka's payload and the file sink's line are this JSON.
#[derive(Serialize)]
struct VerdictJson<'a> {
    kind: &'static str,
    #[serde(flatten)]
    verdict: &'a Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    source: &'a Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    reduced: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a StreamInfo>,
}

impl VerdictOut {
    /// The record's JSON (the Kafka payload, the file line).
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(&VerdictJson {
            kind: if self.alert { "alert" } else { "verdict" },
            verdict: &self.verdict,
            model: self.model.as_deref(),
            source: &self.source,
            reduced: self.reduced.as_deref(),
            stream: self.stream.as_deref(),
        })
        .expect("verdicts serialize")
    }

    /// Kafka headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("memaudit-severity", self.verdict.severity.name().into())]
    }
}

/// A message that got no verdict, kept whole (or cut to what the sink takes, with its original
/// size) so that it can be replayed.
#[derive(Debug, Clone)]
pub struct DeadLetterOut {
    /// Why the message got no verdict.
    pub reason: DeadLetterReason,
    /// The reason in words (the decoding error, the panic, the refusal).
    pub detail: String,
    /// Where the message came from.
    pub source: Origin,
    /// The input's key.
    pub key: Option<Vec<u8>>,
    /// The input's payload (cut when `original_bytes` is set).
    pub payload: Vec<u8>,
    /// The payload's size before it was cut to fit the sink.
    pub original_bytes: Option<usize>,
}

/// A dead letter as the file sink writes it. The original line is kept exactly: as `payload`
/// when it is UTF-8, else as `payload_hex`.
#[derive(Serialize)]
struct DeadLetterJson<'a> {
    kind: &'static str,
    reason: &'static str,
    detail: &'a str,
    source: &'a Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_bytes: Option<usize>,
}

impl DeadLetterOut {
    /// Kafka headers (the payload is the input's own bytes).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("memaudit-reason", self.reason.code().into()),
            ("memaudit-detail", self.detail.clone()),
            ("memaudit-source-topic", self.source.topic.clone()),
            (
                "memaudit-source-partition",
                self.source.partition.to_string(),
            ),
            ("memaudit-source-offset", self.source.offset.to_string()),
        ];
        if let Some(n) = self.original_bytes {
            h.push(("memaudit-original-bytes", n.to_string()));
            h.push(("memaudit-truncated", "true".into()));
        }
        h
    }

    /// The file sink's line.
    pub fn json(&self) -> Vec<u8> {
        let text = std::str::from_utf8(&self.payload).ok();
        serde_json::to_vec(&DeadLetterJson {
            kind: "dead_letter",
            reason: self.reason.code(),
            detail: &self.detail,
            source: &self.source,
            payload: text,
            payload_hex: match text {
                Some(_) => None,
                None => Some(self.payload.iter().map(|b| format!("{b:02x}")).collect()),
            },
            original_bytes: self.original_bytes,
        })
        .expect("dead letters serialize")
    }
}
