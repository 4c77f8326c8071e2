//! `memaudit check`: one text's span report, rendered for a person or as JSON.
//!
//! The query itself is [`crate::index::Index::spans`], the same call the daemon makes; this module
//! only presents its result: the text with every span marked (reverse video on a colour terminal,
//! `[[...]]` otherwise), then a table of spans with counts and the first provenance hit.

use crate::index::SpanReport;
use std::fmt::Write;

/// The readable report. `color` selects ANSI marking over bracket marking.
pub fn render(text: &str, report: &SpanReport, color: bool) -> String {
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
        let _ = writeln!(
            out,
            "{:>3}  {:>13}  {:>6}  {:>6}  {:>8}  {first}",
            i + 1,
            format!("{}..{}", s.start, s.end),
            s.len_chars,
            tokens,
            s.count
        );
    }
    out
}
