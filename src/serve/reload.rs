//! The daemon follows the index: on SIGHUP, and when a poll sees `manifest.json` change, it opens
//! the new generation, checks it, and puts it in use between messages.
//!
//! - **Check.** Opening checks every file's size and header; then every shard file the running
//!   generation does not already hold (same name, same checksum) is hashed against the manifest.
//!   A takedown publishes no new file, so it costs nothing to check; an addition costs reading its
//!   new shards once.
//! - **Filter and search samples.** Read into the page cache before the swap, so no query waits
//!   for them ([`crate::index::Index::prepare`]). They are mapped from the index's filter files,
//!   so a generation keeping a file (a takedown keeps them all) finds it in memory already, and
//!   the daemon holds no copy of its own. Logged as "presence filter and search samples read".
//! - **Swap.** [`crate::analyze::Analyzer::replace_index`] replaces a pointer: a message that
//!   started its search on the old generation finishes on it, every later one uses the new; the
//!   old files are unmapped when the last message using them ends. The pipeline never waits on
//!   the open or the check, which run on the blocking pool.
//! - **Refusal.** A generation that fails to open or check is not used: the daemon keeps serving
//!   the one it has, logs why (the file named), counts `memaudit_index_reloads_total{result=
//!   "failed"}` and sets `memaudit_index_reload_failed` to 1 (alert rule
//!   `MemauditIndexReloadFailed`) until a later generation opens. The same refused manifest is not
//!   retried by the poll; SIGHUP retries it.

use super::shutdown::Shutdown;
use crate::analyze::Analyzer;
use crate::index::format::{FileKind, Manifest};
use crate::index::Index;
use crate::metrics::Metrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sets the metrics that describe the index in use.
pub(crate) fn publish_index_metrics(metrics: &Metrics, index: &Index) {
    metrics.index_info.reset();
    metrics
        .index_info
        .with_label_values(&[index.id(), &index.shards.len().to_string()])
        .set(1);
    metrics.index_bytes.set(
        index
            .shards
            .iter()
            .flat_map(|s| FileKind::ALL.map(|k| s.entry.file(k).bytes))
            .sum::<u64>() as i64,
    );
    metrics.index_generation.set(index.generation() as i64);
}

/// Reads `index`'s presence filter and search samples into the page cache before it serves
/// ([`Index::prepare`]), and logs the time and bytes. They are mapped from its filter files, so a
/// generation that keeps a file (a takedown keeps them all) finds it already in memory, and
/// nothing is copied into this process. An index without a filter (built before filters) is
/// served by searching every shard: the log says how to upgrade it.
pub(crate) fn prepare(index: &Index) {
    let started = Instant::now();
    index.prepare();
    match &index.presence {
        Some(p) => tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            filter_bytes = p.entries.iter().map(|f| f.file.bytes).sum::<u64>(),
            sample_bytes = index.sample_bytes(),
            "presence filter and search samples read"
        ),
        None => tracing::warn!(
            dir = %index.dir.display(),
            "the index has no presence filter or search samples (built by an earlier version): \
             every query searches every shard; run `memaudit index upgrade` on it"
        ),
    }
}

/// Starts following the index in `dir` until shutdown; `hup` is SIGHUP's stream (registered at
/// start-up, so one sent before this task runs is waiting in it).
pub(crate) fn spawn(
    dir: PathBuf,
    poll: Duration,
    analyzer: Arc<Analyzer>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    mut hup: tokio::signal::unix::Signal,
    ready: Arc<super::http::Readiness>,
) {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let manifest = Manifest::path(&dir);
        let read = |p: &std::path::Path| std::fs::read(p).ok();
        // The manifest bytes last seen: in use, or refused. None at the start, so a generation
        // published while the daemon was loading is picked up by the first poll.
        let mut seen: Option<Vec<u8>> = None;
        let mut tick = tokio::time::interval(if poll.is_zero() {
            Duration::from_secs(86_400)
        } else {
            poll
        });
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = shutdown.triggered() => return,
                _ = hup.recv() => true,
                _ = tick.tick(), if !poll.is_zero() => false,
            };
            let now = read(&manifest);
            if !forced && (now.is_none() || now == seen) {
                continue;
            }
            let current = analyzer.index();
            let started = Instant::now();
            let d = dir.clone();
            let opened = tokio::task::spawn_blocking(move || {
                let next = crate::index::read::live::open_next(&d, &current)?;
                // Before the swap, so no query waits for it. An unchanged index (the first poll
                // and a SIGHUP reread the manifest) finds every page in memory already.
                prepare(&next);
                Ok(next)
            })
            .await;
            let opened = match opened {
                Ok(r) => r,
                Err(e) => Err(anyhow::anyhow!("the reload task failed: {e}")),
            };
            seen = now;
            match opened {
                // The same contents under the same generation; a new generation of the same
                // contents (a rebuild, a rollback) is taken, so the generation shown is right.
                Ok(next)
                    if next.id() == analyzer.index().id()
                        && next.generation() == analyzer.index().generation() =>
                {
                    metrics.index_reload_failed.set(0);
                    ready.index_open.store(true, Ordering::Relaxed);
                    tracing::debug!(index_id = next.id(), "index unchanged");
                }
                Ok(next) => {
                    publish_index_metrics(&metrics, &next);
                    let (id, generation) = (next.id().to_string(), next.generation());
                    let old = analyzer.replace_index(next);
                    metrics.index_reloads.with_label_values(&["ok"]).inc();
                    metrics.index_reload_failed.set(0);
                    ready.index_open.store(true, Ordering::Relaxed);
                    tracing::info!(
                        index_id = %id,
                        generation,
                        previous = old.id(),
                        previous_generation = old.generation(),
                        seconds = started.elapsed().as_secs_f64(),
                        "index generation in use"
                    );
                }
                Err(e) => {
                    metrics.index_reloads.with_label_values(&["failed"]).inc();
                    metrics.index_reload_failed.set(1);
                    // An index emptied of every document is what its owner now wants served:
                    // the previous one would let taken-down text pass. Fail closed: not ready.
                    if matches!(
                        e.downcast_ref::<crate::index::read::live::Refused>(),
                        Some(crate::index::read::live::Refused::Empty { .. })
                    ) {
                        ready.index_open.store(false, Ordering::Relaxed);
                    }
                    tracing::error!(
                        error = %format!("{e:#}"),
                        serving = analyzer.index().id(),
                        "the new index generation was refused; still serving the previous one"
                    );
                }
            }
        }
    });
}
