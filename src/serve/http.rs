//! The HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process is up and
//! its pipeline moves) and `/readyz` (index open, model loaded if the policy needs one,
//! partitions assigned, broker reachable; 503 with the failing checks otherwise), and the API
//! routes the caller merges in (`POST /v1/check`, [`super::check`]).

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

/// How connections are bounded (`[http]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest a connection may take to send a request's headers (and so stay idle between
    /// keep-alive requests) before it is closed.
    pub header_timeout: std::time::Duration,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
}

/// Binds `addr` and serves until `stop` resolves. Binding errors are returned at once, naming
/// the address.
///
/// Every connection is bounded: its headers must arrive within `limits.header_timeout`
/// (hyper's timer; the same timer closes a keep-alive connection idle that long), and at most
/// `limits.max_connections` are served at once, so half-sent requests cannot exhaust the
/// process's file descriptors and keep `/healthz` from answering. On `stop`, the listener
/// closes and open connections finish the request in progress.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    api: Router,
    limits: ConnectionLimits,
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
        .with_state(AppState {
            metrics: metrics.clone(),
            ready,
        })
        .merge(api);
    // Any other path or method: a JSON error like the API's, counted as endpoint "other".
    let (m404, m405) = (metrics.clone(), metrics.clone());
    let app = app
        .fallback(move || unknown(m404, StatusCode::NOT_FOUND))
        .method_not_allowed_fallback(move || unknown(m405, StatusCode::METHOD_NOT_ALLOWED));
    let handle = tokio::spawn(accept_loop(listener, app, limits, metrics, stop));
    tracing::info!(address = %local, "serving /metrics /healthz /readyz and POST /v1/check");
    Ok((local, handle))
}

/// Accepts connections while a connection slot is free, each served by hyper's HTTP/1 with the
/// header timeout, until `stop`; then asks every open connection to close after its request.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (closing, closed) = tokio::sync::watch::channel(false);
    let conns = tokio_util::task::TaskTracker::new();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        metrics.http_connections.inc();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closed = closed.clone();
        let metrics = metrics.clone();
        conns.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let closing = async move {
                let _ = closed.wait_for(|c| *c).await;
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            metrics.http_connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    conns.close();
    conns.wait().await;
}

/// The answer to a path (404) or method (405) the server does not have.
async fn unknown(metrics: Arc<Metrics>, status: StatusCode) -> impl IntoResponse {
    metrics
        .http_requests
        .with_label_values(&["other", status.as_str()])
        .inc();
    let (code, detail) = if status == StatusCode::NOT_FOUND {
        (
            "not_found",
            "no such endpoint: GET /metrics, /healthz, /readyz; POST /v1/check, /v1/chunks",
        )
    } else {
        (
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", serde_json::json!({"error": code, "detail": detail})),
    )
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
