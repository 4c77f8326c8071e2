//! `memaudit check`: every verbatim span one text shares with the corpus, as JSON or marked up
//! for a person (the text with each span marked, reverse video on a colour terminal, `[[...]]`
//! otherwise, then a table of spans with counts and the first provenance hit).

use anyhow::{Context, Result};
use clap::Args;
use memaudit::analyze::{self, Analyzer};
use memaudit::budget::Budget;
use memaudit::index::read::near::NearOptions;
use memaudit::index::{Index, SpanReport, DEFAULT_MIN_LEN};
use memaudit::probe::tokenizer::Tokenizer;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct CheckArgs {
    /// Index directory.
    #[arg(long, env = "MEMAUDIT_INDEX")]
    index: PathBuf,
    /// Text to check: a file, or - (the default) for standard input.
    #[arg(default_value = "-")]
    input: String,
    /// Minimum span length in characters (after normalization).
    #[arg(long, default_value_t = DEFAULT_MIN_LEN)]
    min_len: usize,
    /// Provenance hits per span.
    #[arg(long, default_value_t = 3)]
    max_hits: usize,
    /// A tokenizer.json, or a .gguf model whose own tokenizer is used; span lengths are then also
    /// given in tokens.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// JSON output (the default when stdout is not a terminal).
    #[arg(long, conflicts_with = "pretty")]
    json: bool,
    /// The readable report even when stdout is not a terminal (spans marked [[like this]]).
    #[arg(long)]
    pretty: bool,
    /// Also find near-verbatim spans: corpus passages copied with small edits (a word changed
    /// here and there), with their edit count and similarity.
    #[arg(long)]
    near: bool,
    /// Fold zero-width, look-alike and typographic characters before matching.
    #[arg(long)]
    fold: bool,
    /// The prompt the text answers (a file): spans it holds too are marked `in_prompt`, the
    /// model repeating its input rather than its training data.
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// Stop the search after this many seconds (the daemon's `limits.text_seconds`); the
    /// report then says how far the text was checked (`incomplete`). Default: no limit.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Stop the search after this many spans (runs of repeats count once; the daemon's
    /// `limits.max_spans`).
    #[arg(long, default_value_t = 20_000)]
    max_spans: usize,
}

pub fn run(a: CheckArgs) -> Result<()> {
    let index = Index::open(&a.index)?;
    let text = super::read_input(&a.input)?;
    let tokenizer = a
        .tokenizer
        .as_deref()
        .map(Tokenizer::load)
        .transpose()?
        .map(Arc::new);
    let options = analyze::Options {
        min_chars: a.min_len,
        max_hits: a.max_hits,
        near: a.near.then(NearOptions::default),
        fold: a.fold,
        ..Default::default()
    };
    let prompt = a
        .prompt
        .as_deref()
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("--prompt {}: cannot read as UTF-8 text", p.display()))
        })
        .transpose()?;
    let analyzer = Analyzer::new(index, None, tokenizer, options)?;
    let budget = Budget::new(
        a.max_seconds.map(std::time::Duration::from_secs_f64),
        a.max_spans,
    );
    let mut report = analyzer.spans_within(&text, &budget);
    analyzer.mark_prompt(&mut report, prompt.as_deref());
    let mut stdout = std::io::stdout().lock();
    let terminal = stdout.is_terminal();
    if a.json || (!terminal && !a.pretty) {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", render(&text, &report, terminal))?;
    }
    Ok(())
}

/// The readable report. `color` selects ANSI marking over bracket marking.
fn render(text: &str, report: &SpanReport, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "index {} · {} span(s) of ≥ {} chars · coverage {:.1}% · longest {} chars",
        report.index_id,
        report.spans.len(),
        report.min_len,
        report.coverage * 100.0,
        report.longest
    );
    if let Some(i) = report.incomplete {
        let _ = writeln!(
            out,
            "incomplete: checked the first {} of {} chars, then stopped ({}; see --max-seconds, --max-spans)",
            i.checked_chars,
            report.text_chars,
            i.reason.name()
        );
    }
    out.push('\n');
    // Mark the union of spans, walking characters once.
    let (open, close) = if color {
        ("\x1b[7m", "\x1b[0m")
    } else {
        ("[[", "]]")
    };
    let mut covered = vec![false; report.text_chars + 1];
    for s in &report.spans {
        for c in &mut covered[s.start..s.end.min(report.text_chars)] {
            *c = true;
        }
    }
    let mut inside = false;
    for (i, ch) in text.chars().enumerate() {
        if covered[i] != inside {
            out.push_str(if covered[i] { open } else { close });
            inside = covered[i];
        }
        out.push(ch);
    }
    if inside {
        out.push_str(close);
    }
    out.push_str("\n\n");
    for n in &report.near {
        let source = n
            .hit
            .meta
            .get("source")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "near-verbatim {}..{}: {} chars, {} edits, similarity {:.2}, doc {} {source} +{}",
            n.start, n.end, n.len_chars, n.edits, n.similarity, n.hit.doc, n.hit.offset
        );
    }
    if !report.near.is_empty() {
        out.push('\n');
    }
    if report.spans.is_empty() {
        out.push_str("no verbatim spans\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>3}  {:>13}  {:>6}  {:>6}  {:>8}  first occurrence",
        "#", "chars", "len", "tokens", "count"
    );
    for (i, s) in report.spans.iter().enumerate() {
        let tokens = s
            .len_tokens
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".into());
        let first = s
            .hits
            .first()
            .map(|h| {
                let source = h.meta.get("source").and_then(|v| v.as_str()).unwrap_or("?");
                let line = h
                    .meta
                    .get("line")
                    .and_then(|v| v.as_u64())
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                format!("doc {} {source}{line} +{}", h.doc, h.offset)
            })
            .unwrap_or_default();
        let echo = if s.in_prompt { "  (in the prompt)" } else { "" };
        let _ = writeln!(
            out,
            "{:>3}  {:>13}  {:>6}  {:>6}  {:>8}  {first}{echo}",
            i + 1,
            format!("{}..{}", s.start, s.end),
            s.len_chars,
            tokens,
            s.count
        );
    }
    out
}
