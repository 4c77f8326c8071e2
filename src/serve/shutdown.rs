//! Shutdown and systemd: the one object every task watches to know when to stop, the signal
//! handling that triggers it, and the READY / STOPPING / WATCHDOG notifications.
//!
//! First SIGTERM or SIGINT: stop fetching, drain within `shutdown.deadline_secs`, flush, commit,
//! exit 0. A second signal exits at once (status 130): nothing finished is lost, since offsets are
//! committed only for finished messages, and the unfinished ones are delivered again.

use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Shared by every task: `triggered()` resolves when shutdown starts; `deadline()` is when the
/// drain must be over.
#[derive(Clone)]
pub struct Shutdown {
    token: CancellationToken,
    grace: Duration,
    started: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Shutdown {
    /// A shutdown not yet triggered; once it is, the work left has `grace` to finish.
    pub fn new(grace: Duration) -> Shutdown {
        Shutdown {
            token: CancellationToken::new(),
            grace,
            started: Default::default(),
        }
    }

    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        let mut s = self.started.lock().expect("shutdown lock");
        if s.is_none() {
            *s = Some(Instant::now());
            notify(&[sd_notify::NotifyState::Stopping]);
        }
        self.token.cancel();
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when shutdown begins.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// When the drain must end: the trigger time plus the grace period.
    pub fn deadline(&self) -> Instant {
        let s = self.started.lock().expect("shutdown lock");
        s.unwrap_or_else(Instant::now) + self.grace
    }

    /// Triggers on SIGTERM or SIGINT; a second one exits the process at once.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let this = self.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                if n == 0 {
                    tracing::info!(
                        signal = name,
                        deadline_secs = this.grace.as_secs_f64(),
                        "shutting down: draining in-flight messages"
                    );
                    this.trigger();
                } else {
                    tracing::warn!(
                        signal = name,
                        "second signal: exiting now; unfinished messages will be delivered again"
                    );
                    std::process::exit(130);
                }
            }
        });
        Ok(())
    }
}

/// The last resort behind every bounded step of the drain: once shutdown starts, a plain thread
/// (not a runtime task, so a runtime thread stuck in a library call cannot hold it) ends the
/// process at the deadline, whatever is still running. What was not acknowledged by then is
/// not committed either, and is delivered again after the restart.
pub fn exit_at_deadline(shutdown: &Shutdown) {
    let s = shutdown.clone();
    tokio::spawn(async move {
        s.triggered().await;
        let deadline = s.deadline();
        std::thread::spawn(move || {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            tracing::warn!(
                "shutdown deadline reached with work still running: exiting now; unacknowledged \
                 messages stay uncommitted and will be delivered again"
            );
            std::process::exit(0);
        });
    });
}

/// Sends a systemd notification; does nothing outside systemd (`NOTIFY_SOCKET` unset).
pub fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "systemd notification failed");
    }
}

/// Pings the systemd watchdog at half its interval while `healthy()` holds; a stuck pipeline
/// (the check fails) stops the pings and systemd restarts the service.
pub fn spawn_watchdog(shutdown: Shutdown, healthy: impl Fn() -> bool + Send + 'static) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if healthy() {
                        notify(&[sd_notify::NotifyState::Watchdog]);
                    } else {
                        tracing::warn!("pipeline not healthy: withholding the systemd watchdog ping");
                    }
                }
                _ = shutdown.triggered() => {
                    // Keep pinging through the drain: systemd's stop timeout bounds it.
                    loop {
                        tick.tick().await;
                        notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                }
            }
        }
    });
}
