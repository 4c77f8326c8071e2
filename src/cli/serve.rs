//! `memaudit serve`: the daemon, configured from a file, the environment and flags.

use anyhow::{Context, Result};
use clap::Args;
use memaudit::config::Config;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML; every key is in config/memaudit.toml). MEMAUDIT_<SECTION>__<KEY>
    /// environment variables override it, and flags override both.
    #[arg(long, env = "MEMAUDIT_CONFIG")]
    config: Option<PathBuf>,
    /// Set a key: `--set kafka.brokers=host:9092`, `--set kafka.options.sasl.mechanism=PLAIN`
    /// (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Shorthand for --set kafka.brokers=...
    #[arg(long)]
    brokers: Option<String>,
    /// Shorthand for --set index.dir=...
    #[arg(long)]
    index: Option<PathBuf>,
    /// Shorthand for --set http.bind=... (empty turns the HTTP server off).
    #[arg(long)]
    http: Option<String>,
    /// Read JSON lines from FILE (`-` for stdin) instead of Kafka; records go to stdout
    /// (shorthand for --set source.kind=file --set file.input=FILE).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Validate the configuration, open the index and find the model, print the effective
    /// configuration, and exit.
    #[arg(long)]
    check_config: bool,
}

pub fn run(a: ServeArgs) -> Result<()> {
    // SIGHUP asks the daemon to reread the index. Until a handler is installed its default
    // action kills the process, and systemd's Restart=on-failure does not bring it back: so the
    // handler goes in first, and a SIGHUP sent during start-up (index, model) waits in its
    // queue for the reload task.
    let rt = super::runtime()?;
    let hangup = {
        let _entered = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?
    };
    let mut sets = Vec::new();
    if let Some(b) = a.brokers {
        sets.push(format!("kafka.brokers={b}"));
    }
    if let Some(i) = a.index {
        sets.push(format!(
            "index.dir={}",
            toml_string(&i.display().to_string())
        ));
    }
    if let Some(h) = a.http {
        sets.push(format!("http.bind={}", toml_string(&h)));
    }
    if let Some(i) = a.input {
        sets.push("source.kind=file".into());
        sets.push(format!(
            "file.input={}",
            toml_string(&i.display().to_string())
        ));
    }
    sets.extend(a.set);
    let cfg = Config::load(a.config.as_deref(), std::env::vars(), &sets)?;
    if a.check_config {
        memaudit::serve::preflight(&cfg)?;
        // Secrets (librdkafka passwords and keys) shown as `***`.
        let mut shown = cfg.clone();
        shown.kafka = cfg.kafka.redacted();
        print!(
            "{}",
            toml::to_string_pretty(&shown).context("printing the configuration")?
        );
        eprintln!("configuration OK");
        return Ok(());
    }
    let result = rt.block_on(memaudit::serve::run(
        cfg,
        memaudit::serve::Outputs {
            hangup: Some(hangup),
            ..Default::default()
        },
    ));
    // A blocking read that never returns (stdin or a FIFO held open by its writer) must not
    // hold the exit: the runtime does not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

/// A value for `--set`, quoted so paths and addresses stay strings.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
