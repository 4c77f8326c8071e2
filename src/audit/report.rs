//! The audit's report: `report.json` (every number, the command line, seeds, model and index
//! ids, timings), one CSV per table, and `report.html`, one self-contained page with every plot
//! as inline SVG and a plain statement, per analysis, of where the paper's findings hold for
//! these models and where they do not.

use super::census::{Census, Censuses};
use super::svg::{fmt_num, LineChart, Series};
use super::{AuditOptions, ModelInfo, Plan, Scored};
use crate::index::Index;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// A finding of the paper checked against this audit's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The analysis (A1 … A8, or "beyond").
    pub analysis: String,
    /// What the paper says.
    pub claim: String,
    /// Whether the numbers here agree (None: cannot be told from this audit).
    pub holds: Option<bool>,
    /// The numbers behind the verdict.
    pub evidence: String,
}

/// Everything the report says, as `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// memaudit's version.
    pub memaudit: String,
    /// The command line.
    pub command: Vec<String>,
    /// Seconds since the Unix epoch when the report was written.
    pub written_at: u64,
    /// The parameters that decide the rows and scores (also `audit.json`).
    pub parameters: serde_json::Value,
    /// The row sets.
    pub plan: Plan,
    /// The models.
    pub models: Vec<ModelInfo>,
    /// Problems with the input that did not stop the audit.
    pub warnings: Vec<String>,
    /// A1/A2.
    pub census: Censuses,
    /// The paper's findings, checked.
    pub findings: Vec<Finding>,
    /// Seconds: the whole run, decoding (all models), analyses.
    pub timings: Timings,
}

/// Where the time went.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// The whole run.
    pub total_seconds: f64,
    /// Decoding, all models.
    pub decode_seconds: f64,
    /// Rows decoded in this run per second of decoding.
    pub rows_per_second: f64,
    /// Analyses and report.
    pub analyses_seconds: f64,
}

/// Runs the analyses on `s` and assembles the report.
pub fn build(
    o: &AuditOptions,
    s: &Scored,
    _index: Option<&Index>,
    warnings: Vec<String>,
    parameters: serde_json::Value,
    started: Instant,
) -> Result<Report> {
    let t0 = Instant::now();
    let census = super::census::run(s, o.seed);
    let mut findings = Vec::new();
    findings.extend(census_findings(s, &census));
    let decode_seconds: f64 = s.models.iter().map(|m| m.decode_seconds).sum();
    let decoded: usize = s.models.iter().map(|m| m.rows_decoded).sum();
    Ok(Report {
        memaudit: env!("CARGO_PKG_VERSION").to_string(),
        command: std::env::args().collect(),
        written_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        parameters,
        plan: s.plan.clone(),
        models: s.models.clone(),
        warnings,
        census,
        findings,
        timings: Timings {
            total_seconds: started.elapsed().as_secs_f64(),
            decode_seconds,
            rows_per_second: if decode_seconds > 0.0 {
                decoded as f64 / decode_seconds
            } else {
                0.0
            },
            analyses_seconds: t0.elapsed().as_secs_f64(),
        },
    })
}

fn pct(e: f64) -> String {
    format!("{:.2}%", 100.0 * e)
}

fn census_findings(s: &Scored, c: &Censuses) -> Vec<Finding> {
    let mut out = Vec::new();
    // A1: low scores dominate.
    for b in &c.base {
        let low: f64 = b.shares[..5].iter().map(|e| e.value).sum();
        out.push(Finding {
            analysis: "A1".into(),
            claim: "low-score rows (score < 0.3) dominate; fully memorized rows are a small share"
                .into(),
            holds: Some(low > 0.5 && b.memorized.value < 0.25),
            evidence: format!(
                "{}: {} of rows below 0.3; {} memorized [{}, {}]",
                s.models[b.model].name,
                pct(low),
                pct(b.memorized.value),
                pct(b.memorized.lo),
                pct(b.memorized.hi)
            ),
        });
    }
    // A2: memorized share falls with K, rises with C.
    let k_series =
        |m: usize| -> Vec<&Census> { c.by_continuation.iter().filter(|x| x.model == m).collect() };
    let c_series =
        |m: usize| -> Vec<&Census> { c.by_context.iter().filter(|x| x.model == m).collect() };
    for m in 0..s.models.len() {
        let ks = k_series(m);
        if ks.len() > 1 {
            let falls = ks
                .windows(2)
                .all(|w| w[1].memorized.value <= w[0].memorized.value);
            out.push(Finding {
                analysis: "A2".into(),
                claim: "the memorized share falls as the continuation K grows".into(),
                holds: Some(falls),
                evidence: format!(
                    "{}: {}",
                    s.models[m].name,
                    ks.iter()
                        .map(|x| format!("K={} {}", x.continuation, pct(x.memorized.value)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let cs = c_series(m);
        if cs.len() > 1 {
            let rises = cs
                .windows(2)
                .all(|w| w[1].memorized.value >= w[0].memorized.value);
            out.push(Finding {
                analysis: "A2".into(),
                claim: "the memorized share rises as the context C grows".into(),
                holds: Some(rises),
                evidence: format!(
                    "{}: {}",
                    s.models[m].name,
                    cs.iter()
                        .map(|x| format!(
                            "C={} {} [{}, {}]",
                            x.context,
                            pct(x.memorized.value),
                            pct(x.memorized.lo),
                            pct(x.memorized.hi)
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    out
}

/// Writes `report.json`, the CSV tables and `report.html` into `dir`.
pub fn write(dir: &Path, r: &Report) -> Result<()> {
    let put = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("{}: cannot write", path.display()))
    };
    put("report.json", &serde_json::to_vec_pretty(r)?)?;
    put("census.csv", census_csv(r).as_bytes())?;
    put("report.html", html(r).as_bytes())?;
    Ok(())
}

fn census_csv(r: &Report) -> String {
    let mut s =
        String::from("table,model,context,continuation,rows,bin,count,share,share_lo,share_hi\n");
    let tables = [
        ("base", &r.census.base),
        ("by_continuation", &r.census.by_continuation),
        ("by_context", &r.census.by_context),
    ];
    for (t, list) in tables {
        for c in list.iter() {
            for (b, label) in r.census.bins.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "{t},{},{},{},{},{label},{},{},{},{}",
                    r.models[c.model].name,
                    c.context,
                    c.continuation,
                    c.rows,
                    c.counts[b],
                    c.shares[b].value,
                    c.shares[b].lo,
                    c.shares[b].hi
                );
            }
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>memaudit audit</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}}\
         table{{border-collapse:collapse;font-size:13px;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}\
         th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}.warn{{background:#fff4e0;border:1px solid #e0a040;padding:0.5em 1em}}\
         .holds{{color:#0a7a2a}}.fails{{color:#b00020}}.unknown{{color:#666}}figure{{display:inline-block;margin:0.5em}}code{{background:#f4f4f4;padding:0 3px}}\
         </style></head><body><h1>Memorization audit</h1>"
    );
    let _ = write!(
        h,
        "<p><code>{}</code></p><p>memaudit {} · seed {} · source {} · {} rows in the base set (C={}, K={}) · decoding {:.0} s ({:.2} rows/s) · total {:.0} s</p>",
        esc(&r.command.join(" ")),
        r.memaudit,
        r.parameters["seed"],
        esc(&r.parameters["source"].to_string()),
        r.plan.sets[0].rows,
        r.plan.contexts[0],
        r.plan.continuations[0],
        r.timings.decode_seconds,
        r.timings.rows_per_second,
        r.timings.total_seconds
    );
    h.push_str("<table><tr><th>model</th><th>weights</th><th>hidden size</th><th>vocabulary</th><th>masked token</th></tr>");
    for m in &r.models {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.1} M</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.name),
            m.parameters as f64 / 1e6,
            m.embedding,
            m.vocab,
            m.masked_token
                .map(|t| t.to_string())
                .unwrap_or_else(|| "none".into())
        );
    }
    h.push_str("</table>");
    for w in &r.warnings {
        let _ = write!(h, "<p class=\"warn\">⚠ {}</p>", esc(w));
    }
    h.push_str("<p>One greedy decode of the longest continuation serves every shorter one at the same context: greedy decoding is prefix-stable, so the first K tokens of a longer decode are the K-token decode. Intervals are 95% percentile bootstrap intervals over rows.</p>");
    // Findings first: what a reader wants to know.
    h.push_str("<h2>The paper's findings, checked here</h2><table><tr><th>analysis</th><th>claim</th><th>here</th><th>evidence</th></tr>");
    for f in &r.findings {
        let (class, word) = match f.holds {
            Some(true) => ("holds", "holds"),
            Some(false) => ("fails", "does not hold"),
            None => ("unknown", "cannot tell"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td style=\"text-align:left\">{}</td><td class=\"{class}\">{word}</td><td style=\"text-align:left\">{}</td></tr>",
            f.analysis,
            esc(&f.claim),
            esc(&f.evidence)
        );
    }
    h.push_str("</table>");
    census_html(&mut h, r);
    h.push_str("</body></html>\n");
    h
}

fn census_html(h: &mut String, r: &Report) {
    let c = &r.census;
    h.push_str("<h2 id=\"a1\">A1 · Census: rows by memorization score</h2>");
    let chart = LineChart {
        title: format!(
            "Share of rows per score bin (C={}, K={})",
            r.plan.contexts[0], r.plan.continuations[0]
        ),
        x_label: "score bin".into(),
        y_label: "share of rows (log)".into(),
        log_y: true,
        x_categories: Some(c.bins.iter().map(|s| s.to_string()).collect()),
        series: c
            .base
            .iter()
            .map(|b| Series {
                name: r.models[b.model].name.clone(),
                points: (0..12).map(|i| (i as f64, b.shares[i].value)).collect(),
                band: Some(b.shares.iter().map(|e| (e.lo, e.hi)).collect()),
                bars: true,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let _ = write!(h, "<figure>{}</figure>", chart.render());
    h.push_str("<table><tr><th>model</th><th>rows</th>");
    for b in c.bins {
        let _ = write!(h, "<th>{b}</th>");
    }
    h.push_str("<th>memorized</th><th>k = 0</th><th>mean score</th></tr>");
    for b in &c.base {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td>",
            esc(&r.models[b.model].name),
            b.rows
        );
        for n in b.counts {
            let _ = write!(h, "<td>{n}</td>");
        }
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            ci(&b.memorized, true),
            ci(&b.unmemorized, true),
            ci(&b.mean_score, false)
        );
    }
    h.push_str("</table>");
    if !c.by_continuation.is_empty() || !c.by_context.is_empty() {
        h.push_str("<h2 id=\"a2\">A2 · Continuation and context length</h2>");
        h.push_str(&format!(
            "<p>Continuation panel: the first {} base rows, decoded once to K={}, read at each K. Context panel: {} rows per context size at K={} (all base rows at C={}).</p>",
            r.plan.sets[0].long_rows, r.plan.k_long, r.parameters["rows_per_config"], r.plan.continuations[0], r.plan.contexts[0]
        ));
    }
    for (panel, list, x_label) in [
        (
            "by continuation K",
            &c.by_continuation,
            "continuation K (tokens)",
        ),
        ("by context C", &c.by_context, "context C (tokens)"),
    ] {
        if list.is_empty() {
            continue;
        }
        let series: Vec<Series> = (0..r.models.len())
            .map(|m| {
                let pts: Vec<&Census> = list.iter().filter(|x| x.model == m).collect();
                let x = |c: &Census| {
                    if panel.contains('K') {
                        c.continuation as f64
                    } else {
                        c.context as f64
                    }
                };
                Series {
                    name: r.models[m].name.clone(),
                    points: pts.iter().map(|c| (x(c), c.memorized.value)).collect(),
                    band: Some(
                        pts.iter()
                            .map(|c| (c.memorized.lo, c.memorized.hi))
                            .collect(),
                    ),
                    ..Default::default()
                }
            })
            .collect();
        let chart = LineChart {
            title: format!("Memorized share {panel}"),
            x_label: x_label.into(),
            y_label: "share with k = K".into(),
            series,
            ..Default::default()
        };
        let _ = write!(h, "<figure>{}</figure>", chart.render());
    }
    for (name, list) in [
        ("continuation", &c.by_continuation),
        ("context", &c.by_context),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(h, "<table><tr><th>model ({name} panel)</th><th>C</th><th>K</th><th>rows</th><th>memorized</th><th>k = 0</th><th>mean score</th></tr>");
        for x in list.iter() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.models[x.model].name),
                x.context,
                x.continuation,
                x.rows,
                ci(&x.memorized, true),
                ci(&x.unmemorized, true),
                ci(&x.mean_score, false)
            );
        }
        h.push_str("</table>");
    }
}

/// `value [lo, hi]`, as percentages or plain numbers.
fn ci(e: &super::stats::Estimate, percent: bool) -> String {
    if percent {
        format!("{} [{}, {}]", pct(e.value), pct(e.lo), pct(e.hi))
    } else {
        format!(
            "{} [{}, {}]",
            fmt_num(e.value),
            fmt_num(e.lo),
            fmt_num(e.hi)
        )
    }
}
