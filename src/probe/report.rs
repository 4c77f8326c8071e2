//! The readable output of `memaudit probe`: a per-token table (token, entropy, surprisal, rank),
//! the text's summary, and with an index the boundary signals of each span. `--json` prints the
//! same data as JSON instead (see `main.rs`).

use super::boundary::Boundary;
use super::scoring::TextScore;
use std::fmt::Write;

fn opt(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Renders a scored text (and its boundary signals, if any) as plain text.
pub fn render(s: &TextScore, boundary: Option<&Boundary>) -> String {
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
