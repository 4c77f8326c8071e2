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

/// Binds `addr` and serves until `stop` resolves. Binding errors are returned at once, naming
/// the address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
    api: Router,
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
        .with_state(AppState { metrics, ready })
        .merge(api);
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(address = %local, "serving /metrics /healthz /readyz and POST /v1/check");
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
