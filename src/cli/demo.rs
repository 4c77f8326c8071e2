//! `memaudit demo`: the daemon's pipeline on a small local corpus, with no broker.

use anyhow::Result;
use clap::Args;
use memaudit::probe;
use std::path::PathBuf;

#[derive(Args)]
pub struct DemoArgs {
    /// Scratch directory for the corpus copy, the index and the records written.
    #[arg(long, default_value = "target/demo")]
    workdir: PathBuf,
    /// Address to serve /metrics on while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9898")]
    http: std::net::SocketAddr,
    /// Keep serving /metrics this many seconds after the last verdict.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Probe model (default: the model installed by scripts/fetch-model.sh, when present).
    #[arg(long, env = "MEMAUDIT_MODEL")]
    model: Option<PathBuf>,
    /// Run with the probe off even when a model is installed.
    #[arg(long)]
    no_probe: bool,
    /// The demo data (corpus and sample outputs).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo"))]
    data: PathBuf,
}

pub fn run(a: DemoArgs) -> Result<()> {
    let model = if a.no_probe {
        None
    } else {
        let m = a.model.unwrap_or_else(probe::default_model_path);
        m.exists().then_some(m)
    };
    super::runtime()?.block_on(memaudit::demo::run(memaudit::demo::DemoOptions {
        data: a.data,
        workdir: a.workdir,
        http: a.http,
        model,
        hold: std::time::Duration::from_secs_f64(a.hold.max(0.0)),
    }))
}
