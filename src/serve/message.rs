//! Input messages: the envelope a source hands the pipeline, decoding it into an id and a text,
//! and the reasons a payload is a dead letter instead.
//!
//! Decoding never panics and never drops: every payload is either a [`Decoded`] message or a
//! [`DeadLetter`] with a reason code (the `memaudit-reason` header and the
//! `memaudit_dead_letters_total{reason}` label) and a human-readable detail.

use crate::config::{InputConfig, InputFormat};
use serde_json::Value;

/// Where a message came from: its topic, partition and offset (the file source uses partition 0
/// and the line number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One received message, before decoding.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub origin: Origin,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// When the source received it (for the end-to-end latency).
    pub received: std::time::Instant,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub id: String,
    pub text: String,
    /// The generating model, when the message names it (passed through to the verdict).
    pub model: Option<String>,
    /// Set when the message is one chunk of a streamed output (`text` is its delta).
    pub chunk: Option<ChunkMark>,
    /// The prompt the text answers, when a whole message carries one (`prompt`, a string):
    /// spans it holds too are the model repeating its input
    /// ([`crate::analyze::Analyzer::mark_prompt`]).
    pub prompt: Option<String>,
}

/// Where a chunk goes in its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMark {
    /// Its place in the output, from 0.
    pub seq: u64,
    /// The output's last chunk.
    pub last: bool,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    Oversize,
    InvalidUtf8,
    InvalidJson,
    NotAnObject,
    MissingText,
    TextNotString,
    BadId,
    EmptyPayload,
    /// memaudit failed on this message (a panic in matching, the probe or the verdict): a bug
    /// to report, with the payload kept here so the message can be replayed after the fix.
    Internal,
    /// The broker refused the message's verdict or alert for good (too large, authorization,
    /// unknown topic) even reduced: the input is kept here instead.
    OutputRefused,
    /// A chunk without a usable `id`, `seq` or `final` (see `input.format = "chunks"`).
    BadChunk,
    /// A chunk that would open an output past `chunks.max_open_outputs`.
    TooManyOpenOutputs,
    /// A chunk past its output's `chunks.max_output_bytes` (its output's verdict names it).
    OutputTooLarge,
    /// A chunk whose `seq` its output already received with other text.
    ChunkConflict,
    /// A chunk that would take the bytes held by all open outputs past
    /// `chunks.max_held_bytes`.
    StreamsFull,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 15] = [
        DeadLetterReason::Oversize,
        DeadLetterReason::InvalidUtf8,
        DeadLetterReason::InvalidJson,
        DeadLetterReason::NotAnObject,
        DeadLetterReason::MissingText,
        DeadLetterReason::TextNotString,
        DeadLetterReason::BadId,
        DeadLetterReason::EmptyPayload,
        DeadLetterReason::Internal,
        DeadLetterReason::OutputRefused,
        DeadLetterReason::BadChunk,
        DeadLetterReason::TooManyOpenOutputs,
        DeadLetterReason::OutputTooLarge,
        DeadLetterReason::ChunkConflict,
        DeadLetterReason::StreamsFull,
    ];

    /// The code in headers and metric labels.
    pub fn code(self) -> &'static str {
        match self {
            DeadLetterReason::Oversize => "oversize",
            DeadLetterReason::InvalidUtf8 => "invalid_utf8",
            DeadLetterReason::InvalidJson => "invalid_json",
            DeadLetterReason::NotAnObject => "not_an_object",
            DeadLetterReason::MissingText => "missing_text",
            DeadLetterReason::TextNotString => "text_not_string",
            DeadLetterReason::BadId => "bad_id",
            DeadLetterReason::EmptyPayload => "empty_payload",
            DeadLetterReason::Internal => "internal",
            DeadLetterReason::OutputRefused => "output_refused",
            DeadLetterReason::BadChunk => "bad_chunk",
            DeadLetterReason::TooManyOpenOutputs => "too_many_open_outputs",
            DeadLetterReason::OutputTooLarge => "output_too_large",
            DeadLetterReason::ChunkConflict => "chunk_conflict",
            DeadLetterReason::StreamsFull => "streams_full",
        }
    }
}

/// A payload that goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub reason: DeadLetterReason,
    pub detail: String,
}

pub(crate) fn dead(reason: DeadLetterReason, detail: impl Into<String>) -> DeadLetter {
    DeadLetter {
        reason,
        detail: detail.into(),
    }
}

/// Decodes one payload according to `[input]`.
pub fn decode(payload: &[u8], origin: &Origin, cfg: &InputConfig) -> Result<Decoded, DeadLetter> {
    if payload.len() > cfg.max_bytes {
        return Err(dead(
            DeadLetterReason::Oversize,
            format!(
                "payload is {} bytes, above input.max_bytes = {}",
                payload.len(),
                cfg.max_bytes
            ),
        ));
    }
    if payload.is_empty() {
        return Err(dead(DeadLetterReason::EmptyPayload, "payload is empty"));
    }
    let s = std::str::from_utf8(payload).map_err(|e| {
        dead(
            DeadLetterReason::InvalidUtf8,
            format!("payload is not UTF-8: {e}"),
        )
    })?;
    let fallback_id = || format!("{}/{}/{}", origin.topic, origin.partition, origin.offset);
    match cfg.format {
        InputFormat::Text => Ok(Decoded {
            id: fallback_id(),
            text: s.to_string(),
            model: None,
            chunk: None,
            prompt: None,
        }),
        InputFormat::Chunks => decode_chunk(s, cfg),
        InputFormat::Json => {
            let mut obj = json_object(
                s,
                &format!(
                    "payload is JSON but not an object with `{}`",
                    cfg.text_field
                ),
            )?;
            let text = match obj.remove(&cfg.text_field) {
                Some(Value::String(t)) => t,
                Some(other) => {
                    return Err(dead(
                        DeadLetterReason::TextNotString,
                        format!("`{}` is {}, not a string", cfg.text_field, kind(&other)),
                    ))
                }
                None => {
                    return Err(dead(
                        DeadLetterReason::MissingText,
                        format!("no `{}` field", cfg.text_field),
                    ))
                }
            };
            let id = take_id(&mut obj, &cfg.id_field)
                .map_err(|detail| dead(DeadLetterReason::BadId, detail))?
                .unwrap_or_else(fallback_id);
            Ok(Decoded {
                id,
                text,
                model: take_model(&mut obj),
                chunk: None,
                prompt: take_prompt(&mut obj),
            })
        }
    }
}

/// The payload as a JSON object; otherwise the dead letter (`not_an_object` says `what`).
fn json_object(s: &str, what: &str) -> Result<serde_json::Map<String, Value>, DeadLetter> {
    let v: Distinct = serde_json::from_str(s).map_err(|e| {
        dead(
            DeadLetterReason::InvalidJson,
            format!("payload is not JSON: {e}"),
        )
    })?;
    match v {
        Distinct::Object(obj) => Ok(obj),
        Distinct::Other => Err(dead(DeadLetterReason::NotAnObject, what)),
    }
}

/// A JSON payload read with its top-level keys distinct: `{"text": "a", "text": "b"}` is
/// refused (invalid JSON, naming the key) rather than read last-wins, since a gateway in front
/// that reads first-wins would see another text than the one judged.
enum Distinct {
    Object(serde_json::Map<String, Value>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Distinct {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Distinct, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Distinct;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Distinct, A::Error> {
                let mut obj = serde_json::Map::new();
                while let Some(k) = m.next_key::<String>()? {
                    let v: Value = m.next_value()?;
                    if obj.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
                    }
                    obj.insert(k, v);
                }
                Ok(Distinct::Object(obj))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Distinct, A::Error> {
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Distinct::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Distinct, E> {
                Ok(Distinct::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Distinct, E> {
                Ok(Distinct::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Distinct, E> {
                Ok(Distinct::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Distinct, E> {
                Ok(Distinct::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Distinct, E> {
                Ok(Distinct::Other)
            }
            fn visit_unit<E>(self) -> Result<Distinct, E> {
                Ok(Distinct::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The id field: a non-empty string or a number; `None` when absent or null; the problem in
/// words otherwise.
fn take_id(
    obj: &mut serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, String> {
    match obj.remove(field) {
        Some(Value::String(i)) if !i.is_empty() => Ok(Some(i)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(format!(
            "`{field}` is {}, not a non-empty string or a number",
            kind(&other)
        )),
    }
}

/// The prompt, when the payload carries one as a string.
fn take_prompt(obj: &mut serde_json::Map<String, Value>) -> Option<String> {
    match obj.remove("prompt") {
        Some(Value::String(p)) => Some(p),
        _ => None,
    }
}

/// The generating model, when the payload names it.
fn take_model(obj: &mut serde_json::Map<String, Value>) -> Option<String> {
    match obj.remove("model") {
        Some(Value::String(m)) => Some(m),
        _ => None,
    }
}

/// One chunk of a streamed output: `{id, seq, delta, final?, model?}`. Unlike a whole message,
/// a chunk needs its id (it names the output) and its `seq`.
fn decode_chunk(s: &str, cfg: &InputConfig) -> Result<Decoded, DeadLetter> {
    let mut obj = json_object(
        s,
        "payload is JSON but not a chunk object {id, seq, delta, final}",
    )?;
    let bad = |detail: String| dead(DeadLetterReason::BadChunk, detail);
    let id = take_id(&mut obj, &cfg.id_field)
        .map_err(bad)?
        .ok_or_else(|| {
            bad(format!(
                "no `{}`: a chunk must name its output",
                cfg.id_field
            ))
        })?;
    let seq = match obj.remove("seq") {
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().expect("checked"),
        Some(other) => {
            return Err(bad(format!(
                "`seq` is {}, not a whole number from 0",
                kind(&other)
            )))
        }
        None => {
            return Err(bad(
                "no `seq`: a chunk must give its place in the output".into()
            ))
        }
    };
    let text = match obj.remove("delta") {
        Some(Value::String(t)) => t,
        None | Some(Value::Null) => String::new(),
        Some(other) => {
            return Err(dead(
                DeadLetterReason::TextNotString,
                format!("`delta` is {}, not a string", kind(&other)),
            ))
        }
    };
    let last = match obj.remove("final") {
        Some(Value::Bool(b)) => b,
        None | Some(Value::Null) => false,
        Some(other) => {
            return Err(bad(format!(
                "`final` is {}, not true or false",
                kind(&other)
            )))
        }
    };
    Ok(Decoded {
        id,
        text,
        model: take_model(&mut obj),
        chunk: Some(ChunkMark { seq, last }),
        prompt: None,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origin() -> Origin {
        Origin {
            topic: "in".into(),
            partition: 2,
            offset: 7,
        }
    }

    fn cfg() -> InputConfig {
        InputConfig {
            max_bytes: 64,
            ..InputConfig::default()
        }
    }

    #[test]
    fn good_messages() {
        let d = decode(
            br#"{"id":"m1","text":"hello","model":"x"}"#,
            &origin(),
            &cfg(),
        )
        .unwrap();
        assert_eq!((d.id.as_str(), d.text.as_str()), ("m1", "hello"));
        assert_eq!(d.model.as_deref(), Some("x"));
        assert!(d.prompt.is_none());
        let d = decode(
            br#"{"id":"m2","text":"hello","prompt":"say hello"}"#,
            &origin(),
            &InputConfig::default(),
        )
        .unwrap();
        assert_eq!(d.prompt.as_deref(), Some("say hello"));
        // A prompt that is not a string is ignored, as an unknown field is.
        let d = decode(
            br#"{"id":"m3","text":"hello","prompt":{"role":"user"}}"#,
            &origin(),
            &InputConfig::default(),
        )
        .unwrap();
        assert!(d.prompt.is_none());
        let d = decode(br#"{"id":12,"text":""}"#, &origin(), &cfg()).unwrap();
        assert_eq!(d.id, "12");
        let d = decode(br#"{"text":"t"}"#, &origin(), &cfg()).unwrap();
        assert_eq!(d.id, "in/2/7");
        let text = InputConfig {
            format: InputFormat::Text,
            ..cfg()
        };
        let d = decode(b"{not json}", &origin(), &text).unwrap();
        assert_eq!((d.id.as_str(), d.text.as_str()), ("in/2/7", "{not json}"));
    }

    #[test]
    fn every_reason() {
        let r = |p: &[u8]| decode(p, &origin(), &cfg()).unwrap_err().reason;
        assert_eq!(r(&[b'a'; 65]), DeadLetterReason::Oversize);
        assert_eq!(r(b""), DeadLetterReason::EmptyPayload);
        assert_eq!(r(b"\xff\xfe"), DeadLetterReason::InvalidUtf8);
        assert_eq!(r(b"{\"id\":"), DeadLetterReason::InvalidJson);
        assert_eq!(r(b"[1,2]"), DeadLetterReason::NotAnObject);
        assert_eq!(r(br#"{"id":"a"}"#), DeadLetterReason::MissingText);
        assert_eq!(
            r(br#"{"id":"a","text":5}"#),
            DeadLetterReason::TextNotString
        );
        assert_eq!(r(br#"{"id":["a"],"text":"t"}"#), DeadLetterReason::BadId);
    }

    /// `{"text": "harmless", "text": "the quote"}`: a gateway reading first-wins would pass on
    /// another text than the one judged last-wins; such a payload is refused, naming the key.
    #[test]
    fn duplicate_keys_are_refused() {
        let e = decode(br#"{"text":"a","id":"x","text":"b"}"#, &origin(), &cfg()).unwrap_err();
        assert_eq!(e.reason, DeadLetterReason::InvalidJson);
        assert!(e.detail.contains("duplicate key `text`"), "{}", e.detail);
        // Nested objects (metadata) are the caller's, and taken as they are.
        let ok = decode(
            br#"{"text":"a","metadata":{"k":1,"k":2}}"#,
            &origin(),
            &cfg(),
        );
        assert!(ok.is_ok());
        // Other JSON values are still not objects.
        for p in [&b"[1,2]"[..], b"\"s\"", b"1", b"null", b"true"] {
            assert_eq!(
                decode(p, &origin(), &cfg()).unwrap_err().reason,
                DeadLetterReason::NotAnObject
            );
        }
    }

    #[test]
    fn chunks() {
        let c = InputConfig {
            format: InputFormat::Chunks,
            ..cfg()
        };
        let d = decode(
            br#"{"id":"o1","seq":3,"delta":"ab","final":true}"#,
            &origin(),
            &c,
        )
        .unwrap();
        assert_eq!((d.id.as_str(), d.text.as_str()), ("o1", "ab"));
        assert_eq!(d.chunk, Some(ChunkMark { seq: 3, last: true }));
        let d = decode(br#"{"id":7,"seq":0}"#, &origin(), &c).unwrap();
        assert_eq!((d.id.as_str(), d.text.as_str()), ("7", ""));
        assert_eq!(
            d.chunk,
            Some(ChunkMark {
                seq: 0,
                last: false
            })
        );
        let r = |p: &[u8]| decode(p, &origin(), &c).unwrap_err();
        for p in [
            &br#"{"seq":0,"delta":"a"}"#[..],
            br#"{"id":"o","delta":"a"}"#,
            br#"{"id":"o","seq":-1}"#,
            br#"{"id":"o","seq":1.5}"#,
            br#"{"id":"o","seq":"1"}"#,
            br#"{"id":"o","seq":1,"final":"yes"}"#,
            br#"{"id":"","seq":1}"#,
        ] {
            let e = r(p);
            assert_eq!(
                e.reason,
                DeadLetterReason::BadChunk,
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        assert_eq!(
            r(br#"{"id":"o","seq":1,"delta":5}"#).reason,
            DeadLetterReason::TextNotString
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_dead_letter(p in proptest::collection::vec(any::<u8>(), 0..200)) {
            for format in [InputFormat::Json, InputFormat::Text, InputFormat::Chunks] {
                let cfg = InputConfig { format, ..InputConfig::default() };
                match decode(&p, &origin(), &cfg) {
                    Ok(d) => prop_assert!(!d.id.is_empty()),
                    Err(e) => prop_assert!(!e.detail.is_empty()),
                }
            }
        }

        /// Chunk-shaped JSON with fields of every type: a chunk or a dead letter, never a panic.
        #[test]
        fn chunk_like_payloads_decode_or_dead_letter(
            id in prop_oneof![Just("\"o\"".to_string()), Just("7".to_string()), Just("null".to_string()), Just("[1]".to_string()), Just("-1".to_string())],
            seq in prop_oneof![Just("0".to_string()), Just("18446744073709551615".to_string()), Just("-3".to_string()), Just("1e3".to_string()), Just("\"2\"".to_string()), Just("{}".to_string())],
            delta in prop_oneof![Just("\"ab\"".to_string()), Just("null".to_string()), Just("3".to_string())],
            last in prop_oneof![Just("true".to_string()), Just("0".to_string()), Just("null".to_string())],
        ) {
            let p = format!(r#"{{"id":{id},"seq":{seq},"delta":{delta},"final":{last}}}"#);
            let cfg = InputConfig { format: InputFormat::Chunks, ..InputConfig::default() };
            match decode(p.as_bytes(), &origin(), &cfg) {
                Ok(d) => prop_assert!(d.chunk.is_some() && !d.id.is_empty()),
                Err(e) => prop_assert!(!e.detail.is_empty()),
            }
        }
    }
}
