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
//! `input.max_bytes` → 413; a bad payload → 400 with the stream's dead-letter reason as the code;
//! `http.max_concurrent_checks` checks already running → 429; slower than `http.check_timeout_ms`
//! → 503; with `http.tokens_file`, a missing or wrong bearer token → 401 (compared in constant
//! time, never logged). Every answer is counted in `memaudit_http_requests_total{endpoint,status}`.

use super::message::{decode, DeadLetterReason, Decoded, Origin};
use crate::action::{redact, Action, ActionPolicy};
use crate::analyze::Analyzer;
use crate::config::{Config, InputConfig, ProbePolicy};
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
use tokio::sync::Semaphore;

/// The endpoint's path.
pub const CHECK_PATH: &str = "/v1/check";

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
    tokens: Vec<Vec<u8>>,
    requests: AtomicU64,
}

/// A check's answer.
#[derive(Serialize)]
struct CheckResponse {
    action: Action,
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
        for code in ["200", "400", "401", "413", "429", "500", "503"] {
            metrics.http_requests.with_label_values(&[CHECK_PATH, code]);
        }
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
            tokens,
            requests: AtomicU64::new(0),
        })
    }

    /// The routes this service adds to the HTTP server.
    pub(crate) fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(CHECK_PATH, post(handler))
            .with_state(self)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        // Every token is compared, so the time does not say which one matched.
        self.tokens.iter().fold(false, |ok, t| {
            ok | constant_time_eq(t, given.trim().as_bytes())
        })
    }

    async fn check(self: Arc<Self>, headers: HeaderMap, body: Body) -> (StatusCode, String) {
        if !self.authorized(&headers) {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid `Authorization: Bearer TOKEN` header is required",
            );
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                "http.max_concurrent_checks checks are running; retry shortly",
            );
        };
        let bytes = match axum::body::to_bytes(body, self.input.max_bytes).await {
            Ok(b) => b,
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    DeadLetterReason::Oversize.code(),
                    format!(
                        "the body is above input.max_bytes = {}",
                        self.input.max_bytes
                    ),
                )
            }
        };
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let origin = Origin {
            topic: "http".into(),
            partition: 0,
            offset: n as i64,
        };
        let msg = match decode(&bytes, &origin, &self.input) {
            Ok(m) => m,
            Err(dl) => {
                let status = if dl.reason == DeadLetterReason::Oversize {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return error(status, dl.reason.code(), dl.detail);
            }
        };
        let this = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            // The permit lives as long as the work, even past a timeout answer, so the limit
            // bounds what runs, not only what waits.
            let _permit = permit;
            this.judge(msg)
        });
        match tokio::time::timeout(self.timeout, work).await {
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
            Ok(Ok(r)) => (
                StatusCode::OK,
                format!(
                    "{}\n",
                    serde_json::to_string(&r).expect("a check response serializes")
                ),
            ),
        }
    }

    /// The stream's judging steps on one text, then the action.
    fn judge(&self, msg: Decoded) -> CheckResponse {
        super::failpoint::check("match", &msg.text);
        let report = self.analyzer.spans(&msg.text);
        let ranges: Vec<(usize, usize)> = report.spans.iter().map(|s| (s.start, s.end)).collect();
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
        let action = self.actions.decide(&verdict);
        // Redaction covers every span, listed in the verdict or not.
        let text =
            (action == Action::Redact).then(|| redact(&msg.text, &ranges, &self.actions.marker));
        CheckResponse {
            action,
            text,
            model: msg.model,
            verdict,
        }
    }
}

async fn handler(State(svc): State<Arc<CheckService>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let metrics = svc.metrics.clone();
    let (status, body) = svc.check(headers, body).await;
    metrics
        .http_requests
        .with_label_values(&[CHECK_PATH, status.as_str()])
        .inc();
    metrics
        .http_seconds
        .with_label_values(&[CHECK_PATH])
        .observe(started.elapsed().as_secs_f64());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
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
