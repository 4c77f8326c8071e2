//! `POST /v1/check`: one text judged inline, for a gateway or chat backend that must decide before
//! the response reaches the user.
//!
//! Request: the same payload the stream takes (`{"id"?, "text", "model"?}`, field names from
//! `[input]`, at most `input.max_bytes`), decoded by the same [`decode`]; the judging is the
//! stream's own steps ([`Analyzer::spans`], the probe when `probe.policy` scores the text,
//! [`Analyzer::judge`], `spans.max_reported`). Response: `{"action", "text"?, "verdict"}`, where
//! `action` is `allow | redact | block` by `[actions]` and `text` is the redacted text.
//!
//! Limits, each answered with a JSON error `{"error": CODE, "detail": ...}`: a body over
//! `input.max_bytes` → 413; a body not in within `http.body_timeout_ms` → 408; a malformed body
//! (a broken chunked encoding) → 400 `bad_body`; a bad payload → 400 with the stream's
//! dead-letter reason as the code; `http.max_concurrent_checks` checks already running → 429
//! (a slot is taken only once the body is in); slower than `http.check_timeout_ms` → 503, and
//! the check's work budget is cancelled so it stops and frees its slot; with
//! `http.tokens_file`, a missing or wrong bearer token → 401 (compared in constant time, never
//! logged; the scheme's case does not matter). Every answer is counted in `memaudit_http_requests_total{endpoint,status}`.

use super::chunks::{StreamInfo, Streams};
use super::message::{decode, DeadLetter, DeadLetterReason, Decoded, Envelope, Origin};
use crate::action::{redact_tail, Action, ActionPolicy};
use crate::analyze::Analyzer;
use crate::budget::Budget;
use crate::config::{Config, InputConfig, InputFormat, ProbePolicy};
use crate::index::SpanReport;
use crate::metrics::Metrics;
use crate::verdict::Verdict;
use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The endpoint's path.
pub const CHECK_PATH: &str = "/v1/check";
/// The streamed-output endpoint's path.
pub const CHUNKS_PATH: &str = "/v1/chunks";

/// Everything a check needs, shared by the requests.
pub(crate) struct CheckService {
    analyzer: Arc<Analyzer>,
    metrics: Arc<Metrics>,
    input: InputConfig,
    policy: ProbePolicy,
    sample_rate: f64,
    max_spans: usize,
    actions: ActionPolicy,
    slots: Arc<Semaphore>,
    timeout: Duration,
    /// How long a request's body may take to arrive.
    body_timeout: Duration,
    /// `limits.max_spans`: the spans one text may yield.
    max_found: usize,
    tokens: Vec<Vec<u8>>,
    requests: AtomicU64,
    /// The outputs streamed through `POST /v1/chunks`.
    streams: Arc<Streams>,
    /// The final answers of the outputs ended last, by output key: a final chunk sent again
    /// gets the same answer.
    finals: FinalAnswers,
}

/// The final answers of the last outputs ended over HTTP, at most [`FinalAnswers::MAX`] of them
/// and [`FinalAnswers::MAX_BYTES`] of JSON together, oldest dropped first.
#[derive(Default)]
struct FinalAnswers {
    inner: std::sync::Mutex<FinalInner>,
}

#[derive(Default)]
struct FinalInner {
    by_key: std::collections::HashMap<String, Arc<serde_json::Value>>,
    order: std::collections::VecDeque<(String, usize)>,
    bytes: usize,
}

impl FinalAnswers {
    const MAX: usize = 10_000;
    const MAX_BYTES: usize = 64 << 20;

    fn get(&self, key: &str) -> Option<Arc<serde_json::Value>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_key.get(key).cloned()
    }

    fn put(&self, key: String, answer: serde_json::Value) {
        let size = key.len() + answer.to_string().len();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.by_key.insert(key.clone(), Arc::new(answer)).is_none() {
            inner.order.push_back((key, size));
            inner.bytes += size;
        }
        while inner.order.len() > Self::MAX || inner.bytes > Self::MAX_BYTES {
            let Some((old, n)) = inner.order.pop_front() else {
                break;
            };
            inner.by_key.remove(&old);
            inner.bytes -= n;
        }
    }
}

/// The answer to one chunk.
#[derive(Serialize)]
struct ChunkResponse {
    id: String,
    seq: u64,
    /// `open` (more chunks expected), `final` (the output's verdict is here), `duplicate`
    /// (this `seq` was already received; nothing changed).
    state: &'static str,
    /// For `open` and `final`: the action on the text so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    /// In audit mode: the action enforcing would take.
    #[serde(skip_serializing_if = "Option::is_none")]
    would: Option<Action>,
    /// For `redact`: the output's text from character `text_from` on (what no earlier answer
    /// carried or let through) with every span replaced by the marker. Answers add up to the
    /// output once: each one's `text_from` is where the one before ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// See `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    text_from: Option<usize>,
    /// For `open`: the verdict on the text so far (no probe); for `final`: the output's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<Verdict>,
    /// For `final`: how the output came together.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<StreamInfo>,
}

/// A check's answer.
#[derive(Serialize)]
struct CheckResponse {
    action: Action,
    /// In audit mode (`actions.mode = "audit"`, where `action` is always `allow`): the action
    /// enforcing would take.
    #[serde(skip_serializing_if = "Option::is_none")]
    would: Option<Action>,
    /// The text with every span replaced by the marker, for `redact`.
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The `model` the request named, passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    verdict: Verdict,
}

/// Equal without an early exit: the time taken does not say how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn error(status: StatusCode, code: &str, detail: impl Into<String>) -> (StatusCode, String) {
    let body = serde_json::json!({"error": code, "detail": detail.into()});
    (status, format!("{body}\n"))
}

impl CheckService {
    /// The service of `cfg`; reads the token file (refused, with its name, when unreadable or
    /// holding no token).
    pub(crate) fn new(
        cfg: &Config,
        analyzer: Arc<Analyzer>,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let tokens = match &cfg.http.tokens_file {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("http.tokens_file = {}: cannot read it", path.display())
                })?;
                let tokens: Vec<Vec<u8>> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| l.as_bytes().to_vec())
                    .collect();
                anyhow::ensure!(
                    !tokens.is_empty(),
                    "http.tokens_file = {}: holds no token (one per line)",
                    path.display()
                );
                tokens
            }
        };
        for endpoint in [CHECK_PATH, CHUNKS_PATH] {
            for action in [Action::Allow, Action::Redact, Action::Block] {
                metrics.http_actions.with_label_values(&[
                    endpoint,
                    action.name(),
                    cfg.actions.mode.name(),
                ]);
            }
        }
        for code in [
            "200", "400", "401", "408", "409", "413", "429", "500", "503",
        ] {
            metrics.http_requests.with_label_values(&[CHECK_PATH, code]);
            metrics
                .http_requests
                .with_label_values(&[CHUNKS_PATH, code]);
        }
        // Outputs streamed over HTTP have no commits to note their end in.
        let streams = Arc::new(Streams::new(
            cfg.chunks.clone(),
            cfg.limits.clone(),
            cfg.alerts.min_severity,
            false,
            metrics.open_outputs.clone(),
            metrics.stream_held_bytes.clone(),
        ));
        Ok(CheckService {
            analyzer,
            metrics,
            input: cfg.input.clone(),
            policy: cfg.probe.policy,
            sample_rate: cfg.probe.sample_rate,
            max_spans: cfg.spans.max_reported,
            actions: cfg.actions.clone(),
            slots: Arc::new(Semaphore::new(cfg.http.max_concurrent_checks)),
            timeout: Duration::from_millis(cfg.http.check_timeout_ms),
            body_timeout: Duration::from_millis(cfg.http.body_timeout_ms),
            max_found: cfg.limits.max_spans,
            tokens,
            requests: AtomicU64::new(0),
            streams,
            finals: FinalAnswers::default(),
        })
    }

    /// The routes this service adds to the HTTP server.
    pub(crate) fn router(self: Arc<Self>) -> Router {
        // Outputs streamed over HTTP whose client went away: ended at the idle timeout and
        // counted, unjudged: their verdict would have no one to go to, and judging them would
        // be work outside the check slots.
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let ended = this.streams.drop_idle();
                this.metrics
                    .outputs_ended
                    .with_label_values(&["idle_timeout"])
                    .inc_by(ended as u64);
            }
        });
        Router::new()
            .route(CHECK_PATH, post(handler))
            .route(CHUNKS_PATH, post(chunk_handler))
            .with_state(self)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        self.tokens.is_empty() || self.token_index(headers).is_some()
    }

    /// The place in `http.tokens_file` of the token the request carries, if it carries one of
    /// them.
    fn token_index(&self, headers: &HeaderMap) -> Option<usize> {
        if self.tokens.is_empty() {
            return None;
        }
        // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)?;
        // Every token is compared, so the time does not say which one matched.
        let given = given.trim().as_bytes();
        let mut found = None;
        for (k, t) in self.tokens.iter().enumerate() {
            if constant_time_eq(t, given) {
                found = Some(k);
            }
        }
        found
    }

    /// What every request goes through: the token, the body within `input.max_bytes` and
    /// `http.body_timeout_ms`, a slot, and decoding as `format`. The slot is taken only once the
    /// body is in: a client trickling its body holds a connection, never a check slot. Errors
    /// are the answer to send.
    async fn admit(
        &self,
        headers: &HeaderMap,
        body: Body,
        format: InputFormat,
    ) -> Result<(OwnedSemaphorePermit, Decoded, Origin), (StatusCode, String)> {
        if !self.authorized(headers) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid `Authorization: Bearer TOKEN` header is required",
            ));
        }
        let limited = http_body_util::Limited::new(body, self.input.max_bytes);
        let read =
            tokio::time::timeout(self.body_timeout, http_body_util::BodyExt::collect(limited));
        let bytes = match read.await {
            Err(_) => {
                return Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the body did not arrive within http.body_timeout_ms = {}",
                        self.body_timeout.as_millis()
                    ),
                ))
            }
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    DeadLetterReason::Oversize.code(),
                    format!(
                        "the body is above input.max_bytes = {}",
                        self.input.max_bytes
                    ),
                ))
            }
            Ok(Err(e)) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("the body could not be read: {e}"),
                ))
            }
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                "http.max_concurrent_checks checks are running; retry shortly",
            ));
        };
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let origin = Origin {
            topic: "http".into(),
            partition: 0,
            offset: n as i64,
        };
        let input = InputConfig {
            format,
            ..self.input.clone()
        };
        match decode(&bytes, &origin, &input) {
            Ok(m) => Ok((permit, m, origin)),
            Err(dl) => Err(refusal(&dl)),
        }
    }

    /// A budget for one check: `http.check_timeout_ms` and `limits.max_spans`.
    fn budget(&self) -> Arc<Budget> {
        Arc::new(Budget::new(Some(self.timeout), self.max_found))
    }

    /// Runs `f` on the blocking pool within `http.check_timeout_ms`, holding `permit`; `f`'s
    /// work spends `budget`, which the timeout cancels.
    async fn run<R: Serialize + Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        budget: Arc<Budget>,
        f: impl FnOnce() -> Result<R, (StatusCode, String)> + Send + 'static,
    ) -> (StatusCode, String) {
        let work = tokio::task::spawn_blocking(move || {
            // The permit lives as long as the work, even past a timeout answer, so the limit
            // bounds what runs, not only what waits; the work stops soon after the answer,
            // when its budget is cancelled, and frees the slot.
            let _permit = permit;
            f()
        });
        let answer = tokio::time::timeout(self.timeout, work).await;
        if answer.is_err() {
            budget.cancel();
        }
        match answer {
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the check took longer than http.check_timeout_ms = {}",
                    self.timeout.as_millis()
                ),
            ),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a check panicked");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the check failed; see the daemon's log",
                )
            }
            Ok(Ok(Err(e))) => e,
            Ok(Ok(Ok(r))) => (
                StatusCode::OK,
                format!(
                    "{}\n",
                    serde_json::to_string(&r).expect("a check response serializes")
                ),
            ),
        }
    }

    async fn check(self: Arc<Self>, headers: HeaderMap, body: Body) -> (StatusCode, String) {
        // A daemon reading chunks from its stream still takes whole texts here.
        let format = match self.input.format {
            InputFormat::Chunks => InputFormat::Json,
            f => f,
        };
        let (permit, msg, _) = match self.admit(&headers, body, format).await {
            Ok(x) => x,
            Err(e) => return e,
        };
        let this = self.clone();
        let budget = self.budget();
        let spent = budget.clone();
        self.run(permit, budget, move || {
            super::failpoint::check("match", &msg.text);
            let mut report = this.analyzer.spans_within(&msg.text, &spent);
            if let Some(i) = report.incomplete {
                this.metrics
                    .incomplete
                    .with_label_values(&[i.reason.name()])
                    .inc();
            }
            this.analyzer
                .mark_prompt(&mut report, msg.prompt.as_deref());
            Ok(this.judge(CHECK_PATH, msg, report, 0))
        })
        .await
    }

    /// One chunk of a streamed output: put in order, matched incrementally; the answer is the
    /// verdict so far, or the output's verdict with its final chunk.
    async fn chunk(self: Arc<Self>, headers: HeaderMap, body: Body) -> (StatusCode, String) {
        let owner = self.owner(&headers);
        let (permit, mut msg, origin) = match self.admit(&headers, body, InputFormat::Chunks).await
        {
            Ok(x) => x,
            Err(e) => return e,
        };
        let this = self.clone();
        self.run(permit, self.budget(), move || {
            let mark = msg.chunk.expect("decoded as a chunk");
            let id = msg.id.clone();
            // Outputs are their client's: keyed by its token (or namespace) and id, so another
            // client can neither end nor pre-send chunks of it.
            let key = format!("{owner}\u{1f}{id}");
            if mark.last {
                if let Some(done) = this.finals.get(&key) {
                    // The final chunk again (its answer was lost, say): the same answer.
                    return Ok((*done).clone());
                }
            }
            msg.id = key.clone();
            super::failpoint::check("match", &msg.text);
            let offset = origin.offset;
            let env = Envelope {
                origin,
                key: None,
                payload: Vec::new(),
                received: Instant::now(),
            };
            let p = this.streams.push(&this.analyzer, msg, env);
            // This chunk's own refusal is the answer, unless the output ended with it (its final
            // chunk over the output's size, say: the verdict names it in `left_out`). Refusals of
            // other chunks (waiting past the final one) are theirs, not this request's.
            let refused = p
                .dead
                .iter()
                .find(|(env, _)| env.origin.offset == offset)
                .map(|(_, dl)| dl.clone());
            if let (Some(dl), None) = (&refused, &p.ended) {
                return Err(refusal(dl));
            }
            let mut answer = ChunkResponse {
                id: id.clone(),
                seq: mark.seq,
                state: "duplicate",
                action: None,
                would: None,
                text: None,
                text_from: None,
                verdict: None,
                stream: None,
            };
            if let Some(e) = p.ended {
                this.metrics
                    .outputs_ended
                    .with_label_values(&[e.info.ended_by])
                    .inc();
                if let Some(i) = e.report.incomplete {
                    this.metrics
                        .incomplete
                        .with_label_values(&[i.reason.name()])
                        .inc();
                }
                let msg = Decoded {
                    id: id.clone(),
                    text: e.text,
                    model: e.model,
                    chunk: None,
                    prompt: None,
                };
                let from = e.answered_chars;
                let r = this.judge(CHUNKS_PATH, msg, e.report, from);
                answer.state = "final";
                answer.action = Some(r.action);
                answer.would = r.would;
                answer.text_from = r.text.is_some().then_some(from);
                answer.text = r.text;
                answer.verdict = Some(r.verdict);
                answer.stream = Some(e.info);
                let answer = serde_json::to_value(&answer).expect("a chunk answer serializes");
                this.finals.put(key, answer.clone());
                return Ok(answer);
            } else if let Some(so_far) = p.so_far {
                let mut verdict = this.analyzer.judge(&id, &so_far.report, None);
                verdict.keep_longest_spans(this.max_spans);
                let (action, would) = this.act(CHUNKS_PATH, &verdict);
                answer.state = "open";
                answer.action = Some(action);
                answer.would = would;
                if action == Action::Redact {
                    let from = so_far.unsent_from;
                    let ranges = this.analyzer.redactable(&so_far.report);
                    answer.text = Some(redact_tail(
                        &so_far.unsent,
                        from,
                        &ranges,
                        &this.actions.marker,
                    ));
                    answer.text_from = Some(from);
                }
                answer.verdict = Some(verdict);
            } else if p.finish_now.is_empty() {
                // Held until the chunks before it arrive.
                answer.state = "waiting";
            }
            Ok(serde_json::to_value(&answer).expect("a chunk answer serializes"))
        })
        .await
    }

    /// Whose output a chunk belongs to: with `http.tokens_file`, the token it was sent with
    /// (by its place in the file, never the token itself); else the `X-Memaudit-Namespace`
    /// header a caller may set (at most 128 bytes), or none.
    fn owner(&self, headers: &HeaderMap) -> String {
        if let Some(k) = self.token_index(headers) {
            return format!("token{k}");
        }
        headers
            .get("x-memaudit-namespace")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128)
            .map(|v| format!("ns:{v}"))
            .unwrap_or_default()
    }

    /// The action policy on `verdict`, counted for `endpoint`: the action to carry out and, in
    /// audit mode, the one enforcing would.
    fn act(&self, endpoint: &str, verdict: &Verdict) -> (Action, Option<Action>) {
        let decided = self.actions.decide(verdict);
        self.metrics
            .http_actions
            .with_label_values(&[endpoint, decided.name(), self.actions.mode.name()])
            .inc();
        self.actions.carry_out(decided)
    }

    /// The stream's judging steps on one text whose spans are `report`, then the action; a
    /// redacted text is given from character `from` on (0: all of it; a streamed output's
    /// final answer: what its open answers did not cover).
    fn judge(
        &self,
        endpoint: &str,
        msg: Decoded,
        report: SpanReport,
        from: usize,
    ) -> CheckResponse {
        let probed = if self.analyzer.probe.is_some()
            && self.policy.scores(&msg.id, &report, self.sample_rate)
        {
            match self.analyzer.probe(&[msg.text.as_str()], &[&report]) {
                Ok(mut p) => p.pop(),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "probe failed; verdict without entropy");
                    None
                }
            }
        } else {
            None
        };
        let mut verdict = self.analyzer.judge(&msg.id, &report, probed.as_ref());
        verdict.keep_longest_spans(self.max_spans);
        let (action, would) = self.act(endpoint, &verdict);
        // Redaction covers every span, listed in the verdict or not, but those an allow rule
        // excuses.
        let text = (action == Action::Redact).then(|| {
            let ranges = self.analyzer.redactable(&report);
            let tail = msg
                .text
                .char_indices()
                .nth(from)
                .map_or("", |(b, _)| &msg.text[b..]);
            redact_tail(tail, from, &ranges, &self.actions.marker)
        });
        CheckResponse {
            action,
            would,
            text,
            model: msg.model,
            verdict,
        }
    }
}

/// The answer to a payload that is not a message or chunk memaudit can take: 413 for size
/// limits, 429 for `chunks.max_open_outputs` and `chunks.max_held_bytes`, 409 for a `seq`
/// received before with other text, else 400; the code is the dead-letter reason.
fn refusal(dl: &DeadLetter) -> (StatusCode, String) {
    let status = match dl.reason {
        DeadLetterReason::Oversize | DeadLetterReason::OutputTooLarge => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        DeadLetterReason::TooManyOpenOutputs | DeadLetterReason::StreamsFull => {
            StatusCode::TOO_MANY_REQUESTS
        }
        DeadLetterReason::ChunkConflict => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, dl.reason.code(), dl.detail.clone())
}

/// Counts and times one answer of `endpoint`.
fn answered(
    metrics: &Metrics,
    endpoint: &str,
    started: Instant,
    (status, body): (StatusCode, String),
) -> Response {
    metrics
        .http_requests
        .with_label_values(&[endpoint, status.as_str()])
        .inc();
    metrics
        .http_seconds
        .with_label_values(&[endpoint])
        .observe(started.elapsed().as_secs_f64());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handler(State(svc): State<Arc<CheckService>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let metrics = svc.metrics.clone();
    answered(
        &metrics,
        CHECK_PATH,
        started,
        svc.check(headers, body).await,
    )
}

async fn chunk_handler(
    State(svc): State<Arc<CheckService>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let metrics = svc.metrics.clone();
    answered(
        &metrics,
        CHUNKS_PATH,
        started,
        svc.chunk(headers, body).await,
    )
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
