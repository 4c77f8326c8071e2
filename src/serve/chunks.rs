//! Streamed outputs: the chunks of one LLM output (`{id, seq, delta, final}`), put back in
//! order, matched as they arrive ([`crate::index::read::incremental`]: a chunk costs its own length
//! plus the span in progress), and ended exactly once.
//!
//! - **Order.** A chunk is applied when every lower `seq` was; one that arrives early waits. A
//!   chunk whose `seq` was already received (at-least-once delivery) is a duplicate: nothing to
//!   do but finish its offset. Late duplicates of an ended output are recognized by the ids of
//!   the last `chunks.remember_ended` ended outputs.
//! - **End.** When the final chunk and every chunk before it are applied; or after
//!   `chunks.idle_timeout_secs` without a chunk, on what arrived: the chunks after a gap are
//!   matched as a separate piece (no span is found across a gap), and [`StreamInfo`] names the
//!   missing `seq` ranges.
//! - **Early alerts.** After each applied chunk the spans so far are judged; the first time they
//!   reach the alert threshold (and each time they reach a higher severity) an alert goes out
//!   before the output ends.
//! - **Bounds.** At most `chunks.max_open_outputs` outputs are open; a chunk that would open one
//!   more is a dead letter. An output keeps at most `chunks.max_output_bytes` of text (waiting
//!   chunks included); a chunk past it is a dead letter and the verdict lists it in `left_out`.
//! - **Offsets.** The pipeline holds each applied chunk's envelope with its output and finishes
//!   all of them after the output's verdict is acknowledged; until then the tracker *parks* them
//!   (they block commits but are not "stuck"). A restart or a revoked partition therefore
//!   re-delivers every chunk of every output without a verdict, and the output is rebuilt from
//!   its first chunk (the outputs of a revoked partition are dropped here at once:
//!   [`Streams::forget_partitions`]). Outputs that ended past the committed offset (their
//!   chunks lie after an open output's) are listed in a note committed with the offset
//!   ([`Streams::commit_note`]); the member that reads the partition next takes them as ended,
//!   so their chunks, delivered again, are duplicates and nothing is judged twice.

use super::message::{dead, ChunkMark, DeadLetter, DeadLetterReason, Decoded, Envelope, Origin};
use super::offsets::Partition;
use crate::analyze::Analyzer;
use crate::config::{ChunksConfig, Limits};
use crate::index::read::incremental::Incremental;
use crate::index::SpanReport;
use crate::verdict::{Severity, Verdict};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How a streamed output's verdict came about (the verdict record's `stream`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    /// False on an early alert (the output is still open), true on the output's one verdict.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Chunks applied.
    pub chunks: u64,
    /// The final chunk and every chunk before it arrived.
    pub complete: bool,
    /// `final` (the final chunk arrived), `idle_timeout`, `input_end` (a file or stdin source
    /// ended), or `open` (an early alert).
    pub ended_by: &'static str,
    /// `[from, to)` ranges of `seq` that never arrived (before the highest one seen).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<[u64; 2]>,
    /// Chunks past `chunks.max_output_bytes`, sent to the dead letters instead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<u64>,
}

/// An output that ended: everything its verdict needs.
pub struct Ended {
    /// The output's id.
    pub id: String,
    /// Its text as received (pieces after a gap follow without a separator).
    pub text: String,
    /// Its spans.
    pub report: SpanReport,
    /// The model its chunks named.
    pub model: Option<String>,
    /// Where its last chunk came from (the verdict's `source`).
    pub origin: Origin,
    /// The envelopes of its applied chunks, finished with its verdict (the last one is the
    /// final chunk's when it arrived).
    pub held: Vec<Envelope>,
    /// How it ended.
    pub info: StreamInfo,
    /// Characters of `text` that earlier answers (the open ones, over HTTP) already covered: a
    /// redacted final answer carries the text from here on.
    pub answered_chars: usize,
}

/// An alert on an output still open.
pub struct EarlyAlert {
    /// The verdict on the text so far (no probe).
    pub verdict: Verdict,
    /// `final: false`, the chunks so far.
    pub info: StreamInfo,
    /// The model its chunks named.
    pub model: Option<String>,
    /// The chunk that raised it.
    pub origin: Origin,
}

/// What one chunk did.
#[derive(Default)]
pub struct Pushed {
    /// Envelopes with nothing to wait for (duplicates): finish them now.
    pub finish_now: Vec<Envelope>,
    /// Chunks refused: send each to the dead letters.
    pub dead: Vec<(Envelope, DeadLetter)>,
    /// The spans so far reached a new alert severity: an alert to send now.
    pub early: Option<EarlyAlert>,
    /// The output ended with this chunk.
    pub ended: Option<Ended>,
    /// The open output's spans and severity after this chunk, when it applied chunks (for an
    /// HTTP caller; an ended output has its verdict instead).
    pub so_far: Option<SoFar>,
}

/// An open output after a chunk applied text to it.
pub struct SoFar {
    /// The spans of the text so far.
    pub report: SpanReport,
    /// Their verdict's severity (no probe).
    pub severity: Severity,
    /// The text no earlier answer covered (the chunks this one applied), from character
    /// `unsent_from` of the output: what a redacted answer carries, so that answers add up to
    /// the output once rather than resending all of it each time.
    pub unsent: String,
    /// See `unsent`.
    pub unsent_from: usize,
}

/// A chunk waiting for the ones before it.
struct Waiting {
    delta: String,
    env: Option<Envelope>,
}

struct Open {
    /// The pieces of text: a new one starts after each gap given up at the idle timeout.
    parts: Vec<Incremental>,
    /// A hash of the text of every `seq` received (applied or waiting): a `seq` sent again with
    /// the same text is a duplicate, with other text a conflict.
    seen: HashMap<u64, u64>,
    /// Set by [`Streams::end`] under this output's lock: a chunk that found the output before it
    /// ended, and locks it after, is a duplicate of an ended output, never applied unseen.
    ended: bool,
    /// Taken out of the map without a verdict (dropped, or refused before it held anything): a
    /// chunk that found it before looks the id up again.
    gone: bool,
    /// The next `seq` to apply.
    next: u64,
    waiting: BTreeMap<u64, Waiting>,
    /// The final chunk's `seq`, once it arrived.
    last_seq: Option<u64>,
    held: Vec<Envelope>,
    model: Option<String>,
    touched: Instant,
    /// Text kept plus text waiting, plus [`CHUNK_COST`] per chunk: what it holds against
    /// `chunks.max_output_bytes`.
    bytes: usize,
    /// `bytes` plus the payloads of the chunks it holds: what it holds against
    /// `chunks.max_held_bytes`, with every other output.
    held_bytes: usize,
    left_out: Vec<u64>,
    missing: Vec<[u64; 2]>,
    /// Characters and bytes of the text so far that earlier answers covered (see [`SoFar`]).
    answered: (usize, usize),
    alerted: Severity,
    chunks: u64,
    partition: Option<Partition>,
    origin: Origin,
}

impl Open {
    fn new(origin: Origin) -> Open {
        Open {
            parts: vec![Incremental::new()],
            seen: HashMap::new(),
            ended: false,
            gone: false,
            next: 0,
            waiting: BTreeMap::new(),
            last_seq: None,
            held: Vec::new(),
            model: None,
            touched: Instant::now(),
            bytes: 0,
            held_bytes: 0,
            left_out: Vec::new(),
            missing: Vec::new(),
            answered: (0, 0),
            alerted: Severity::None,
            chunks: 0,
            partition: Some((origin.topic.clone(), origin.partition)),
            origin,
        }
    }

    /// Applies the waiting chunks that are next in order.
    fn apply_ready(&mut self, analyzer: &Analyzer) {
        while let Some(w) = self.waiting.remove(&self.next) {
            if !w.delta.is_empty() {
                analyzer.push(self.parts.last_mut().expect("one part at least"), &w.delta);
            }
            self.held.extend(w.env);
            self.next += 1;
            self.chunks += 1;
        }
    }

    fn done(&self) -> bool {
        self.last_seq.is_some_and(|l| self.next > l)
    }

    fn info(&self, is_final: bool, ended_by: &'static str) -> StreamInfo {
        StreamInfo {
            is_final,
            chunks: self.chunks,
            complete: self.done() && self.missing.is_empty(),
            ended_by,
            missing: self.missing.clone(),
            left_out: self.left_out.clone(),
        }
    }
}

/// The open outputs of one source.
pub struct Streams {
    cfg: ChunksConfig,
    /// The work budget of an output's end (`limits.text_seconds`, `limits.max_spans`): its
    /// near-verbatim and folded matching, the part not done chunk by chunk.
    limits: Limits,
    alert_at: Severity,
    /// Whether ended outputs are noted for commits (a Kafka source); the HTTP API has no
    /// commits, and keeps only the bounded set of ended ids.
    notes: bool,
    /// Bytes held by every open output (`Open::held_bytes` summed), against
    /// `chunks.max_held_bytes`.
    held: std::sync::atomic::AtomicUsize,
    /// `memaudit_stream_outputs_open` and `memaudit_stream_held_bytes`, shared by every source's
    /// `Streams` (the Kafka pipeline's and the HTTP API's).
    open_gauge: prometheus::IntGauge,
    held_gauge: prometheus::IntGauge,
    open: Mutex<HashMap<String, Arc<Mutex<Open>>>>,
    ended: Mutex<(HashSet<String>, VecDeque<String>)>,
    /// Per partition, ended outputs with the highest offset of their chunks there (`i64::MAX`
    /// until a chunk of one learned from a commit note is seen again): what the commit note
    /// lists while the committed offset has not passed them.
    ended_at: Mutex<HashMap<Partition, BTreeMap<String, i64>>>,
}

/// The most bytes of output ids a commit note holds (brokers take 4 KiB of metadata by
/// default); outputs that do not fit may be judged again after a restart (at-least-once).
const NOTE_MAX_BYTES: usize = 3000;

/// Bytes a chunk costs its output beyond its text (its `seq` record, its envelope): so that a
/// stream of empty chunks is bounded too.
pub const CHUNK_COST: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Streams {
    /// No open output yet; early alerts at `alert_at` and above; an output's end within
    /// `limits`' work budget; `notes`: ended outputs are noted for commits (a Kafka source). The
    /// gauges count this source's outputs with the others'.
    pub fn new(
        cfg: ChunksConfig,
        limits: Limits,
        alert_at: Severity,
        notes: bool,
        open_gauge: prometheus::IntGauge,
        held_gauge: prometheus::IntGauge,
    ) -> Streams {
        Streams {
            cfg,
            limits,
            alert_at,
            notes,
            held: std::sync::atomic::AtomicUsize::new(0),
            open_gauge,
            held_gauge,
            open: Mutex::new(HashMap::new()),
            ended: Mutex::new((HashSet::new(), VecDeque::new())),
            ended_at: Mutex::new(HashMap::new()),
        }
    }

    /// Outputs open now.
    pub fn open_count(&self) -> usize {
        lock(&self.open).len()
    }

    /// Takes one decoded chunk (`msg.chunk` set) with its envelope.
    pub fn push(&self, analyzer: &Analyzer, msg: Decoded, env: Envelope) -> Pushed {
        let mut out = Pushed::default();
        let ChunkMark { seq, last } = msg.chunk.expect("a chunk");
        if seq == u64::MAX {
            let d = dead(
                DeadLetterReason::BadChunk,
                format!(
                    "seq {seq} of output `{}` is past the last one allowed",
                    msg.id
                ),
            );
            out.dead.push((env, d));
            return out;
        }
        // The ended set is read under the open map's lock, which `end` holds while it moves an
        // id from one to the other: an output is never opened again between the two.
        let entry = {
            let mut open = lock(&self.open);
            if lock(&self.ended).0.contains(&msg.id) {
                drop(open);
                self.duplicate_of_ended(&msg.id, env, &mut out);
                return out;
            }
            match open.get(&msg.id) {
                Some(o) => o.clone(),
                None if open.len() >= self.cfg.max_open_outputs => {
                    let d = dead(
                        DeadLetterReason::TooManyOpenOutputs,
                        format!(
                            "output `{}` would be open output {} (chunks.max_open_outputs = {})",
                            msg.id,
                            open.len() + 1,
                            self.cfg.max_open_outputs
                        ),
                    );
                    out.dead.push((env, d));
                    return out;
                }
                None => {
                    let o = Arc::new(Mutex::new(Open::new(env.origin.clone())));
                    open.insert(msg.id.clone(), o.clone());
                    self.open_gauge.inc();
                    o
                }
            }
        };
        let mut o = lock(&entry);
        if o.ended {
            drop(o);
            self.duplicate_of_ended(&msg.id, env, &mut out);
            return out;
        }
        if o.gone {
            // Taken out of the map after this chunk found it: look it up again.
            drop(o);
            return self.push(analyzer, msg, env);
        }
        o.touched = Instant::now();
        o.origin = env.origin.clone();
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            msg.text.hash(&mut h);
            last.hash(&mut h);
            h.finish()
        };
        if let Some(&before) = o.seen.get(&seq) {
            if before == hash {
                out.finish_now.push(env);
            } else {
                let d = dead(
                    DeadLetterReason::ChunkConflict,
                    format!(
                        "seq {seq} of output `{}` was received before with other text; the first \
                         one stands",
                        msg.id
                    ),
                );
                out.dead.push((env, d));
            }
            return out;
        }
        if let Some(l) = o.last_seq.filter(|&l| seq > l) {
            let d = dead(
                DeadLetterReason::BadChunk,
                format!(
                    "seq {seq} comes after the final chunk (seq {l}) of output `{}`",
                    msg.id
                ),
            );
            out.dead.push((env, d));
            return out;
        }
        let mut w = Waiting {
            delta: msg.text,
            env: Some(env),
        };
        let cost = w.delta.len() + CHUNK_COST;
        let oversize = o.bytes + cost > self.cfg.max_output_bytes;
        // A chunk refused for its output's size still holds its record (its `seq`, its place
        // in `left_out`): CHUNK_COST of it, so that refused chunks are bounded too. A chunk kept
        // also holds its payload (a Kafka message's, kept for a dead letter until the output's
        // verdict is written), which counts against the cap on all outputs, not the output's
        // size.
        let payload = w.env.as_ref().map_or(0, |e| e.payload.len());
        let (charge, charge_held) = if oversize {
            (CHUNK_COST, CHUNK_COST)
        } else {
            (cost, cost + payload)
        };
        if !self.take_held(charge_held) {
            // Not this output's fault: the chunk is refused and may be sent again.
            let d = dead(
                DeadLetterReason::StreamsFull,
                format!(
                    "the open outputs hold chunks.max_held_bytes = {}; chunk {seq} of output `{}` \
                     refused, send it again later",
                    self.cfg.max_held_bytes, msg.id
                ),
            );
            out.dead.push((w.env.take().expect("set above"), d));
            if o.seen.is_empty() {
                // This chunk opened the output: it holds nothing, and goes.
                o.gone = true;
                drop(o);
                if lock(&self.open).remove(&msg.id).is_some() {
                    self.open_gauge.dec();
                }
            }
            return out;
        }
        if oversize {
            let d = dead(
                DeadLetterReason::OutputTooLarge,
                format!(
                    "chunk {seq} of output `{}` would make it {} bytes (chunks.max_output_bytes = {}); \
                     the output's verdict is on the chunks kept",
                    msg.id,
                    o.bytes + cost,
                    self.cfg.max_output_bytes
                ),
            );
            out.dead.push((w.env.take().expect("set above"), d));
            w.delta.clear();
            o.left_out.push(seq);
        }
        o.bytes += charge;
        o.held_bytes += charge_held;
        o.seen.insert(seq, hash);
        if last {
            o.last_seq = Some(seq);
        }
        if o.model.is_none() {
            o.model = msg.model;
        }
        o.waiting.insert(seq, w);
        let applied = o.chunks;
        o.apply_ready(analyzer);
        if o.done() {
            drop(o);
            out.ended = self.end(analyzer, &msg.id, "final", &mut out.dead);
            return out;
        }
        if o.chunks > applied {
            let report = analyzer.report_parts(&o.parts, false);
            let verdict = analyzer.judge(&msg.id, &report, None);
            if verdict.severity >= self.alert_at
                && verdict.severity > Severity::None
                && verdict.severity > o.alerted
            {
                o.alerted = verdict.severity;
                out.early = Some(EarlyAlert {
                    verdict: verdict.clone(),
                    info: o.info(false, "open"),
                    model: o.model.clone(),
                    origin: o.origin.clone(),
                });
            }
            let part = o.parts.last().expect("one part at least");
            let (from_chars, from_bytes) = o.answered;
            let unsent = part.text()[from_bytes..].to_string();
            o.answered = (part.chars(), part.text().len());
            out.so_far = Some(SoFar {
                report,
                severity: verdict.severity,
                unsent,
                unsent_from: from_chars,
            });
        }
        out
    }

    /// A chunk of an output that already ended: nothing to do but finish its offset (and, for
    /// a Kafka source, note where the output's chunks reach).
    fn duplicate_of_ended(&self, id: &str, env: Envelope, out: &mut Pushed) {
        let o = &env.origin;
        if let Some(max) = lock(&self.ended_at)
            .get_mut(&(o.topic.clone(), o.partition))
            .and_then(|m| m.get_mut(id))
        {
            *max = if *max == i64::MAX {
                o.offset
            } else {
                (*max).max(o.offset)
            };
        }
        out.finish_now.push(env);
    }

    /// Reserves `n` bytes of `chunks.max_held_bytes`; false (nothing reserved) when they do not
    /// fit.
    fn take_held(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        let max = self.cfg.max_held_bytes;
        let ok = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                (h + n <= max).then_some(h + n)
            })
            .is_ok();
        if ok {
            self.held_gauge.add(n as i64);
        }
        ok
    }

    /// Gives back the bytes an output held.
    fn release_held(&self, n: usize) {
        self.held.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        self.held_gauge.sub(n as i64);
    }

    /// Ends output `id` now (if it is still open): its verdict's material. Chunks still waiting
    /// after a gap are matched as separate pieces; chunks waiting past the final one are refused
    /// into `dead`.
    fn end(
        &self,
        analyzer: &Analyzer,
        id: &str,
        ended_by: &'static str,
        dead_out: &mut Vec<(Envelope, DeadLetter)>,
    ) -> Option<Ended> {
        let entry = self.close(id)?;
        let mut o = lock(&entry);
        if self.notes {
            let mut at = lock(&self.ended_at);
            for env in &o.held {
                let e = &env.origin;
                let max = at
                    .entry((e.topic.clone(), e.partition))
                    .or_default()
                    .entry(id.to_string())
                    .or_insert(e.offset);
                *max = (*max).max(e.offset);
            }
        }
        // Give up on gaps: each run of waiting chunks after one is a new piece.
        while let Some((&seq, _)) = o.waiting.first_key_value() {
            if o.last_seq.is_some_and(|l| seq > l) {
                let w = o.waiting.remove(&seq).expect("present");
                if let Some(env) = w.env {
                    let d = dead(
                        DeadLetterReason::BadChunk,
                        format!("seq {seq} comes after the final chunk of output `{id}`"),
                    );
                    dead_out.push((env, d));
                }
                continue;
            }
            let next = o.next;
            o.missing.push([next, seq]);
            o.next = seq;
            o.parts.push(Incremental::new());
            o.apply_ready(analyzer);
        }
        if let Some(l) = o.last_seq.filter(|&l| o.next <= l) {
            let next = o.next;
            o.missing.push([next, l + 1]);
        }
        let report = analyzer.report_parts_within(&o.parts, true, &self.limits.budget());
        let text: String = o.parts.iter().map(|p| p.text()).collect();
        let info = o.info(true, ended_by);
        Some(Ended {
            id: id.to_string(),
            text,
            report,
            model: o.model.take(),
            origin: o.origin.clone(),
            held: std::mem::take(&mut o.held),
            info,
            answered_chars: o.answered.0,
        })
    }

    /// Ends every output idle for longer than `chunks.idle_timeout_secs`; refused chunks go to
    /// `dead`.
    pub fn expire(
        &self,
        analyzer: &Analyzer,
        dead: &mut Vec<(Envelope, DeadLetter)>,
    ) -> Vec<Ended> {
        self.idle_ids()
            .into_iter()
            .filter_map(|id| self.end(analyzer, &id, "idle_timeout", dead))
            .collect()
    }

    /// Ends every output idle for longer than `chunks.idle_timeout_secs` without a verdict (the
    /// HTTP API's outputs, whose client went away): their bytes are freed and later chunks of
    /// them are duplicates. Returns how many.
    pub fn drop_idle(&self) -> usize {
        self.idle_ids()
            .into_iter()
            .filter(|id| self.close(id).is_some())
            .count()
    }

    /// The outputs idle for longer than `chunks.idle_timeout_secs`. They are looked at one by
    /// one without the map's lock, so a busy output (a chunk being matched) holds up neither
    /// new chunks nor the others.
    fn idle_ids(&self) -> Vec<String> {
        let idle = Duration::from_secs_f64(self.cfg.idle_timeout_secs);
        let all: Vec<(String, Arc<Mutex<Open>>)> = lock(&self.open)
            .iter()
            .map(|(id, o)| (id.clone(), o.clone()))
            .collect();
        all.into_iter()
            .filter(|(_, o)| lock(o).touched.elapsed() >= idle)
            .map(|(id, _)| id)
            .collect()
    }

    /// Takes output `id` out of the open map (if it is still there) and into the ended set,
    /// under the map's lock (see [`Streams::push`]), marks it ended and gives its bytes back.
    fn close(&self, id: &str) -> Option<Arc<Mutex<Open>>> {
        let entry = {
            let mut open = lock(&self.open);
            let entry = open.remove(id)?;
            let mut ended = lock(&self.ended);
            if ended.0.insert(id.to_string()) {
                ended.1.push_back(id.to_string());
            }
            while ended.1.len() > self.cfg.remember_ended {
                if let Some(old) = ended.1.pop_front() {
                    ended.0.remove(&old);
                }
            }
            entry
        };
        self.open_gauge.dec();
        let mut o = lock(&entry);
        o.ended = true;
        self.release_held(o.held_bytes);
        drop(o);
        Some(entry)
    }

    /// The note committed with partition `p` at `committed`: the ids of the outputs that ended
    /// with chunks at or past it (`{"ended": [...]}`), which a restart must not judge again.
    pub fn commit_note(&self, p: &Partition, committed: i64) -> String {
        let mut at = lock(&self.ended_at);
        let Some(m) = at.get_mut(p) else {
            return String::new();
        };
        m.retain(|_, max| *max >= committed);
        let mut ids = Vec::new();
        let mut bytes = 0;
        for id in m.keys() {
            bytes += id.len() + 3;
            if bytes > NOTE_MAX_BYTES {
                tracing::warn!(partition = ?p, listed = ids.len(), total = m.len(), "more ended outputs past the commit than its note holds; the others may be judged again after a restart");
                break;
            }
            ids.push(id.as_str());
        }
        if ids.is_empty() {
            return String::new();
        }

        serde_json::json!({ "ended": ids }).to_string()
    }

    /// Reads the note the group committed for partition `p`: its outputs count as ended.
    pub fn noted(&self, p: &Partition, note: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(note) else {
            return;
        };
        let Some(ids) = v["ended"].as_array() else {
            return;
        };
        let mut ended = lock(&self.ended);
        let mut at = lock(&self.ended_at);
        let m = at.entry(p.clone()).or_default();
        for id in ids.iter().filter_map(|i| i.as_str()) {
            if ended.0.insert(id.to_string()) {
                ended.1.push_back(id.to_string());
            }
            m.entry(id.to_string()).or_insert(i64::MAX);
        }
    }

    /// Ends every open output now, on what arrived (`ended_by`: why).
    pub fn end_all(
        &self,
        analyzer: &Analyzer,
        ended_by: &'static str,
        dead: &mut Vec<(Envelope, DeadLetter)>,
    ) -> Vec<Ended> {
        let ids: Vec<String> = lock(&self.open).keys().cloned().collect();
        ids.into_iter()
            .filter_map(|id| self.end(analyzer, &id, ended_by, dead))
            .collect()
    }

    /// Drops the open outputs whose chunks came from `parts` (revoked in a rebalance: the next
    /// owner re-reads them from the last commit). Returns the envelopes they held.
    pub fn forget_partitions(&self, parts: &[Partition]) -> Vec<Envelope> {
        self.drop_where(|o| o.partition.as_ref().is_some_and(|p| parts.contains(p)))
    }

    /// Every open output, dropped (at shutdown): the envelopes they held.
    pub fn drop_all(&self) -> Vec<Envelope> {
        self.drop_where(|_| true)
    }

    /// Drops the open outputs `which` selects, without a verdict; returns the envelopes they
    /// held (applied and waiting chunks), which stay unfinished.
    fn drop_where(&self, which: impl Fn(&Open) -> bool) -> Vec<Envelope> {
        let mut open = lock(&self.open);
        let mut envs = Vec::new();
        open.retain(|_, o| {
            let mut o = lock(o);
            if !which(&o) {
                return true;
            }
            o.gone = true;
            self.release_held(o.held_bytes);
            self.open_gauge.dec();
            envs.append(&mut o.held);
            envs.extend(
                std::mem::take(&mut o.waiting)
                    .into_values()
                    .filter_map(|w| w.env),
            );
            false
        });
        envs
    }
}
