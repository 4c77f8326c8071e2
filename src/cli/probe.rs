//! `memaudit probe`: every token of a text scored by the probe model (entropy, surprisal, rank),
//! and with `--index` the boundary signals at the edges of its verbatim spans; a table for a
//! person, or JSON.

use anyhow::{bail, Result};
use clap::Args;
use memaudit::analyze::{self, Analyzer};
use memaudit::index::{Index, DEFAULT_MIN_LEN};
use memaudit::probe::boundary::{Boundary, BoundaryOptions, Calibration};
use memaudit::probe::{self, ProbeOptions, TextScore};
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct ProbeArgs {
    /// Text to score: a file, or - (the default) for standard input.
    #[arg(default_value = "-")]
    input: String,
    /// A .gguf model, or a safetensors checkpoint directory (config.json, *.safetensors,
    /// tokenizer.json). Default: the model scripts/fetch-model.sh installs.
    #[arg(long, env = "MEMAUDIT_MODEL")]
    model: Option<PathBuf>,
    /// A tokenizer.json (default: the GGUF's own, or tokenizer.json beside a safetensors model).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// cpu, cuda or cuda:N (cuda needs a build with --features cuda).
    #[arg(long, default_value = "cpu", env = "MEMAUDIT_DEVICE")]
    device: String,
    /// Tokens per window for long texts.
    #[arg(long, default_value_t = ProbeOptions::default().window)]
    window: usize,
    /// Tokens of context repeated between windows.
    #[arg(long, default_value_t = ProbeOptions::default().overlap)]
    overlap: usize,
    /// Tokens scored, from the text's start (the daemon's `probe.max_tokens`).
    #[arg(long, default_value_t = ProbeOptions::default().max_tokens)]
    max_tokens: usize,
    /// Also find verbatim spans in this index and report the entropy at their edges.
    #[arg(long, env = "MEMAUDIT_INDEX")]
    index: Option<PathBuf>,
    /// Minimum span length in characters (with --index).
    #[arg(long, default_value_t = DEFAULT_MIN_LEN)]
    min_len: usize,
    /// The probe model's mean entropy on novel text, nats (calibrates the boundary score).
    #[arg(long, default_value_t = Calibration::default().novel)]
    novel_entropy: f32,
    /// JSON output instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ProbeArgs) -> Result<()> {
    let model = a.model.clone().unwrap_or_else(probe::default_model_path);
    if !model.exists() {
        bail!(
            "{}: no such model; run scripts/fetch-model.sh for the default one, or pass --model",
            model.display()
        );
    }
    // Open the index before the model load so a bad index fails fast.
    let index = a.index.as_deref().map(Index::open).transpose()?;
    let text = super::read_input(&a.input)?;
    let device = probe::device::select(&a.device)?;
    let options = ProbeOptions {
        window: a.window,
        overlap: a.overlap,
        max_tokens: a.max_tokens,
    };
    let p = probe::load(&model, a.tokenizer.as_deref(), &device, options)?;
    // With an index, the daemon's judging steps: spans, then scores and their boundary signals.
    let (scored, spans) = match index {
        None => (p.score(&[&text])?.remove(0), None),
        Some(index) => {
            let options = analyze::Options {
                min_chars: a.min_len,
                max_hits: 1,
                boundary: BoundaryOptions {
                    calibration: Calibration {
                        novel: a.novel_entropy,
                        ..Calibration::default()
                    },
                    ..BoundaryOptions::default()
                },
                ..Default::default()
            };
            let analyzer = Analyzer::new(index, Some(p), None, options)?;
            let report = analyzer.spans(&text);
            let probed = analyzer.probe(&[&text], &[&report])?.remove(0);
            (probed.score, Some(probed.boundary))
        }
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = serde_json::json!({
            "model": model,
            "device": probe::device::name(&device),
            "summary": scored.summary,
            "tokens": scored.tokens,
            "boundary": spans,
        });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&scored, spans.as_ref()))?;
    }
    Ok(())
}

fn opt(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Renders a scored text (and its boundary signals, if any) as plain text.
fn render(s: &TextScore, boundary: Option<&Boundary>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>6}  {:<24} {:>8} {:>9} {:>7}",
        "#", "token", "entropy", "surprisal", "rank"
    );
    for (i, t) in s.tokens.iter().enumerate() {
        let shown: String = format!("{:?}", t.text).chars().take(24).collect();
        let _ = writeln!(
            o,
            "{i:>6}  {shown:<24} {:>8.3} {:>9.3} {:>7}",
            t.entropy, t.surprisal, t.rank
        );
    }
    let m = &s.summary;
    let _ = writeln!(
        o,
        "\n{} tokens; mean entropy {} nats, mean surprisal {} nats, top-1 share {}, low-entropy share {}",
        m.tokens,
        opt(m.mean_entropy),
        opt(m.mean_surprisal),
        opt(m.top1_share),
        opt(m.low_entropy_share)
    );
    if let Some(b) = boundary {
        let _ = writeln!(
            o,
            "\n{} verbatim span(s); boundary score {:.2}",
            b.spans.len(),
            b.score
        );
        for sp in &b.spans {
            let _ = writeln!(
                o,
                "  chars {}..{} (tokens {}..{}): entropy before {} | inside {:.3} | after {}; drop at start {}, jump at end {}; score {:.2}",
                sp.start,
                sp.end,
                sp.first_token,
                sp.end_token,
                opt(sp.entropy_before),
                sp.entropy_inside,
                opt(sp.entropy_after),
                opt(sp.drop_at_start),
                opt(sp.jump_at_end),
                sp.score
            );
        }
        for r in &b.unexplained_runs {
            let _ = writeln!(
                o,
                "  low-entropy run outside any span: chars {}..{} ({} tokens, mean entropy {:.3})",
                r.start, r.end, r.tokens, r.mean_entropy
            );
        }
    }
    o
}
