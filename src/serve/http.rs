//! The HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process is up and
//! its pipeline moves) and `/readyz` (index open, model loaded if the policy needs one,
//! partitions assigned, broker reachable; 503 with the failing checks otherwise).

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Readiness checks, set by the parts that own them.
#[derive(Default)]
pub struct Readiness {
    pub index_open: AtomicBool,
    /// True when the model is loaded or the policy needs none.
    pub model_ready: AtomicBool,
    pub partitions_assigned: AtomicBool,
    pub broker_reachable: AtomicBool,
    pub shutting_down: AtomicBool,
}

impl Readiness {
    /// Each check with its state.
    pub fn checks(&self) -> [(&'static str, bool); 5] {
        [
            ("index_open", self.index_open.load(Ordering::Relaxed)),
            ("model_ready", self.model_ready.load(Ordering::Relaxed)),
            (
                "partitions_assigned",
                self.partitions_assigned.load(Ordering::Relaxed),
            ),
            (
                "broker_reachable",
                self.broker_reachable.load(Ordering::Relaxed),
            ),
            (
                "not_shutting_down",
                !self.shutting_down.load(Ordering::Relaxed),
            ),
        ]
    }

    pub fn ready(&self) -> bool {
        self.checks().iter().all(|(_, ok)| *ok)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
}

/// Binds `addr` and serves until `stop` resolves. Binding errors are returned at once, naming
/// the address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on http.bind = {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, ready });
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(address = %local, "serving /metrics /healthz /readyz");
    Ok((local, handle))
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn ready_handler(State(s): State<AppState>) -> impl IntoResponse {
    let checks = s.ready.checks();
    let body = serde_json::json!({
        "ready": s.ready.ready(),
        "checks": checks.iter().map(|(k, v)| (k.to_string(), serde_json::Value::Bool(*v)))
            .collect::<serde_json::Map<_, _>>(),
    });
    let code = if s.ready.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
}

/// A minimal HTTP GET over loopback, for the demo and the tests (`/metrics` of a running
/// daemon); returns the status code and body.
pub fn get_local(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = raw.get(split + 4..).unwrap_or_default();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let len = String::from_utf8_lossy(&s[..eol]);
        let rest = &s[eol + 2..];
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}
