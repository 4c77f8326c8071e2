//! The embedded source and sink: JSON lines from a file or stdin in, verdicts, alerts and dead
//! letters out to files or stdout. Same pipeline as Kafka; a line's "offset" is its line number
//! (partition 0), so verdicts point back at the input line. Blank lines are skipped.

use super::message::{Envelope, Origin};
use super::offsets::InFlight;
use super::output::{Output, PerStream};
use super::pipeline::{SendError, Sink};
use crate::config::FileConfig;
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Reads `path` (`-` = stdin) line by line into the pipeline until end of input or shutdown.
/// Returns the number of lines sent.
pub async fn read_lines(
    path: &Path,
    tx: mpsc::Sender<Envelope>,
    in_flight: Arc<InFlight>,
    shutdown: super::shutdown::Shutdown,
) -> Result<u64> {
    let (topic, reader): (String, Box<dyn tokio::io::AsyncRead + Unpin + Send>) =
        if path == Path::new("-") {
            ("stdin".into(), Box::new(tokio::io::stdin()))
        } else {
            let f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening file.input {}", path.display()))?;
            (format!("file:{}", path.display()), Box::new(f))
        };
    let mut reader = tokio::io::BufReader::new(reader);
    let mut line = Vec::new();
    let mut n = 0u64;
    let mut sent = 0u64;
    loop {
        line.clear();
        let read = tokio::select! {
            r = reader.read_until(b'\n', &mut line) => r.with_context(|| format!("reading {}", path.display()))?,
            _ = shutdown.triggered() => break,
        };
        if read == 0 {
            break;
        }
        let offset = n as i64;
        n += 1;
        let payload = line.strip_suffix(b"\n").unwrap_or(&line);
        let payload = payload.strip_suffix(b"\r").unwrap_or(payload);
        if payload.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let origin = Origin {
            topic: topic.clone(),
            partition: 0,
            offset,
        };
        in_flight.received(&(origin.topic.clone(), 0), offset, payload.len());
        let env = Envelope {
            origin,
            key: None,
            payload: payload.to_vec(),
            received: Instant::now(),
        };
        if tx.send(env).await.is_err() {
            break;
        }
        sent += 1;
    }
    Ok(sent)
}

/// One output stream, shared when several records go to the same file or stdout.
type Out = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes records as JSON lines: verdicts, alerts and dead letters each to their own file, or
/// to stdout for `-` (every record carries a `kind`, so a shared stream stays readable).
pub struct FileSink {
    outs: PerStream<Out>,
}

impl FileSink {
    /// Opens (appends to) the configured files; `-` is stdout.
    pub fn open(cfg: &FileConfig) -> Result<FileSink> {
        let stdout: Out = Arc::new(Mutex::new(Box::new(std::io::stdout())));
        let mut opened: Vec<(std::path::PathBuf, Out)> = Vec::new();
        let mut open = |p: &Path, key: &str| -> Result<Out> {
            if p == Path::new("-") {
                return Ok(stdout.clone());
            }
            if let Some((_, w)) = opened.iter().find(|(q, _)| q == p) {
                return Ok(w.clone());
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening file.{key} {}", p.display()))?;
            let w: Out = Arc::new(Mutex::new(Box::new(f)));
            opened.push((p.to_path_buf(), w.clone()));
            Ok(w)
        };
        Ok(FileSink {
            outs: PerStream {
                verdicts: open(&cfg.verdicts, "verdicts")?,
                alerts: open(&cfg.alerts, "alerts")?,
                dead_letters: open(&cfg.dead_letters, "dead_letters")?,
            },
        })
    }

    fn write(&self, r: &Output) -> Result<()> {
        let line = match r {
            Output::Verdict(v) => v.json(),
            Output::DeadLetter(d) => d.json(),
        };
        let mut w = self.outs.get(r.stream()).lock().expect("sink lock");
        w.write_all(&line)?;
        w.write_all(b"\n")?;
        w.flush()?;
        Ok(())
    }
}

impl Sink for FileSink {
    fn send(&self, record: &Output) -> BoxFuture<'static, Result<(), SendError>> {
        let r = self
            .write(record)
            .map_err(|e| SendError::GaveUp(format!("writing a record: {e:#}")));
        Box::pin(async move { r })
    }
}
