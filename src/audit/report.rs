//! The audit's report: `report.json` (every number, the command line, seeds, model and index
//! ids, timings), one CSV per table, and `report.html`, one self-contained page with every plot
//! as inline SVG and a plain statement, per analysis, of where the paper's findings hold for
//! these models and where they do not.

use super::census::{Census, Censuses};
use super::curves::{Boundary, Curve};
use super::duplication::{Duplication, PrefixLevel};
use super::embeddings::Embeddings;
use super::entropy::Entropy;
use super::frequency::Frequency;
use super::predictor::Predictor;
use super::score::Group;
use super::svg::{fmt_num, Heatmap, LineChart, Series};
use super::transitions::Transition;
use super::{AuditOptions, Inputs, ModelInfo, Plan, Scored};
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
    /// A3 (two or more models).
    pub transitions: Vec<Transition>,
    /// A4/A5.
    pub frequency: Option<Frequency>,
    /// A7.
    pub entropy: Entropy,
    /// Memorization by corpus count of the row (index source only).
    pub duplication: Vec<Duplication>,
    /// Continuity of partial memorization (spec Q11).
    pub prefixes: Vec<PrefixLevel>,
    /// A6, per model.
    pub embeddings: Vec<Embeddings>,
    /// A8, per model.
    pub predictors: Vec<Predictor>,
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
    inputs: &Inputs,
    mut warnings: Vec<String>,
    parameters: serde_json::Value,
    started: Instant,
) -> Result<Report> {
    let t0 = Instant::now();
    let census = super::census::run(s, o.seed);
    let transitions = super::transitions::run(s);
    let entropy = super::entropy::run(s, o.seed);
    let counts = super::frequency::counts_for(
        s,
        inputs.tokenizers,
        inputs.index,
        inputs.token_file,
        &o.cache_dir,
        o.progress,
    )?;
    let frequency = Some(super::frequency::run(s, &counts, o.seed));
    drop(counts);
    let duplication = match inputs.index {
        Some(index) => super::duplication::run(s, index, inputs.tokenizers, o.seed)?,
        None => Vec::new(),
    };
    let prefixes = super::duplication::prefixes(s);
    let mut embeddings = Vec::new();
    let mut predictors = Vec::new();
    for (m, info) in s.models.iter().enumerate() {
        embeddings.extend(super::embeddings::run(
            s,
            m,
            &inputs.hidden[m],
            info.embedding,
        ));
        match super::predictor::run(
            s,
            m,
            &inputs.hidden[m],
            info.embedding,
            &o.predictor,
            o.seed,
            &inputs.device,
        )? {
            Some(p) => predictors.push(p),
            None => warnings.push(format!(
                "{}: too few rows to train the predictor (A8)",
                info.name
            )),
        }
    }
    let k0 = s.plan.continuations[0];
    for m in 0..s.models.len() {
        for g in Group::ALL {
            let Some(level) = g.level(k0) else { continue };
            let n = s
                .rows(m, "base")
                .iter()
                .filter(|r| r.matches.k(k0) == level)
                .count();
            if n < 10 {
                warnings.push(format!(
                    "{}: only {n} base rows in the {} group (k = {level}): its curves are not readable; audit more rows (--rows)",
                    s.models[m].name,
                    g.name()
                ));
            }
        }
    }
    let mut findings = Vec::new();
    findings.extend(census_findings(s, &census));
    findings.extend(transition_findings(s, &transitions));
    if let Some(f) = &frequency {
        findings.extend(frequency_findings(s, f));
    }
    findings.extend(entropy_findings(s, &entropy));
    findings.extend(beyond_findings(s, &duplication, &prefixes));
    findings.extend(embedding_findings(s, &embeddings));
    findings.extend(predictor_findings(s, &predictors));
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
        transitions,
        frequency,
        entropy,
        duplication,
        prefixes,
        embeddings,
        predictors,
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
            // From the shortest to the longest K (steps between may wobble within their intervals).
            let falls = ks[ks.len() - 1].memorized.value < ks[0].memorized.value;
            let any = ks.iter().any(|x| x.memorized.value > 0.0);
            out.push(Finding {
                analysis: "A2".into(),
                claim:
                    "the memorized share falls as the continuation K grows (shortest vs longest K)"
                        .into(),
                holds: any.then_some(falls),
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
            let rises = cs[cs.len() - 1].memorized.value > cs[0].memorized.value;
            out.push(Finding {
                analysis: "A2".into(),
                claim: "the memorized share rises as the context C grows (shortest vs longest C)"
                    .into(),
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
        "<p><code>{}</code></p><p>memaudit {} · seed {} · source {} · {} rows in the base set (C={}, K={}) · {} · total {:.0} s</p>",
        esc(&r.command.join(" ")),
        r.memaudit,
        r.parameters["seed"],
        esc(&r.parameters["source"].to_string()),
        r.plan.sets[0].rows,
        r.plan.contexts[0],
        r.plan.continuations[0],
        if r.models.iter().any(|m| m.rows_decoded > 0) {
            format!(
                "{} rows decoded in {:.0} s ({:.2} rows/s)",
                r.models.iter().map(|m| m.rows_decoded).sum::<usize>(),
                r.timings.decode_seconds,
                r.timings.rows_per_second
            )
        } else {
            "every row from an earlier run of this audit (resumed)".to_string()
        },
        r.timings.total_seconds
    );
    h.push_str("<table><tr><th>model</th><th>architecture</th><th>weights</th><th>hidden size</th><th>vocabulary</th><th>masked token</th></tr>");
    for m in &r.models {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.name),
            esc(&m.architecture),
            if m.parameters >= 1_000_000 {
                format!("{:.1} M", m.parameters as f64 / 1e6)
            } else {
                format!("{:.1} k", m.parameters as f64 / 1e3)
            },
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
    dynamics_html(&mut h, r);
    model_html(&mut h, r);
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

fn boundary_of(b: &[Boundary], m: usize, g: Group) -> Option<&Boundary> {
    b.iter().find(|x| x.model == m && x.group == g)
}

fn transition_findings(s: &Scored, t: &[Transition]) -> Vec<Finding> {
    t.iter()
        .map(|x| {
            let stay: Vec<f64> = (0..5).map(|i| x.p[i][i]).collect();
            let dominant =
                (0..5).all(|i| x.from_sizes[i] == 0 || (0..5).all(|j| x.p[i][j] <= x.p[i][i]));
            Finding {
                analysis: "A3".into(),
                claim: "most rows stay in their bucket from one model to the other".into(),
                holds: Some(dominant),
                evidence: format!(
                    "{} → {}: stay {} (very low … very high); very high stays very high {}",
                    s.models[x.from].name,
                    s.models[x.to].name,
                    stay.iter()
                        .map(|p| fmt_num(*p))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    fmt_num(x.p[4][4])
                ),
            }
        })
        .collect()
}

fn frequency_findings(s: &Scored, f: &Frequency) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in 0..s.models.len() {
        let b = &f.unigram_boundaries;
        let name = &s.models[m].name;
        if let Some(u) = boundary_of(b, m, Group::Unmemorized) {
            out.push(Finding {
                analysis: "A4".into(),
                claim: "negative boundary effect: unmemorized rows continue with a rarer token than the last context token".into(),
                holds: Some(u.diff < 0.0),
                evidence: format!("{name}: unmemorized F(C−1) {} → F(C) {} ({} rows)", fmt_num(u.last_context), fmt_num(u.first_continuation), u.rows),
            });
        }
        if let Some(mm) = boundary_of(b, m, Group::Memorized) {
            out.push(Finding {
                analysis: "A4".into(),
                claim:
                    "positive boundary effect: memorized rows continue with a more frequent token"
                        .into(),
                holds: if mm.rows >= 10 {
                    Some(mm.diff > 0.0)
                } else {
                    None
                },
                evidence: format!(
                    "{name}: memorized F(C−1) {} → F(C) {} ({} rows)",
                    fmt_num(mm.last_context),
                    fmt_num(mm.first_continuation),
                    mm.rows
                ),
            });
            if let Some(u) = boundary_of(b, m, Group::Unmemorized) {
                out.push(Finding {
                    analysis: "A5".into(),
                    claim: "memorized rows have lower context and higher continuation frequency than unmemorized rows".into(),
                    holds: if mm.rows >= 10 {
                        Some(mm.context_mean < u.context_mean && mm.continuation_mean > u.continuation_mean)
                    } else {
                        None
                    },
                    evidence: format!(
                        "{name}: context M {} vs U {}; continuation M {} vs U {}",
                        fmt_num(mm.context_mean),
                        fmt_num(u.context_mean),
                        fmt_num(mm.continuation_mean),
                        fmt_num(u.continuation_mean)
                    ),
                });
            }
        }
        if let Some(h) = boundary_of(b, m, Group::Half) {
            out.push(Finding {
                analysis: "A4".into(),
                claim: "half-memorized rows stay frequent up to the continuation's middle, then drop (matches form a prefix)".into(),
                holds: if h.rows >= 10 { Some(h.at_half < h.before_half) } else { None },
                evidence: format!("{name}: half F(C+K/2−1) {} → F(C+K/2) {} ({} rows)", fmt_num(h.before_half), fmt_num(h.at_half), h.rows),
            });
        }
    }
    out
}

fn entropy_findings(s: &Scored, e: &Entropy) -> Vec<Finding> {
    let mut out = Vec::new();
    let b = &e.boundaries;
    for m in 0..s.models.len() {
        let name = &s.models[m].name;
        if let Some(u) = boundary_of(b, m, Group::Unmemorized) {
            out.push(Finding {
                analysis: "A7".into(),
                claim: "inverse boundary effect: entropy jumps where unmemorized rows' continuation starts".into(),
                holds: Some(u.diff > 0.0),
                evidence: format!("{name}: unmemorized H(C−1) {} → H(C) {} nats ({} rows)", fmt_num(u.last_context), fmt_num(u.first_continuation), u.rows),
            });
        }
        if let Some(mm) = boundary_of(b, m, Group::Memorized) {
            out.push(Finding {
                analysis: "A7".into(),
                claim: "entropy falls where memorized rows' continuation starts".into(),
                holds: if mm.rows >= 10 {
                    Some(mm.diff < 0.0)
                } else {
                    None
                },
                evidence: format!(
                    "{name}: memorized H(C−1) {} → H(C) {} nats ({} rows)",
                    fmt_num(mm.last_context),
                    fmt_num(mm.first_continuation),
                    mm.rows
                ),
            });
            if let Some(u) = boundary_of(b, m, Group::Unmemorized) {
                out.push(Finding {
                    analysis: "A7".into(),
                    claim: "memorized rows are already low-entropy inside the context".into(),
                    holds: if mm.rows >= 10 {
                        Some(mm.context_mean < u.context_mean)
                    } else {
                        None
                    },
                    evidence: format!(
                        "{name}: context mean M {} vs U {} nats",
                        fmt_num(mm.context_mean),
                        fmt_num(u.context_mean)
                    ),
                });
            }
        }
        if let Some(h) = boundary_of(b, m, Group::Half) {
            out.push(Finding {
                analysis: "A7".into(),
                claim: "half-memorized rows' entropy jumps again at the continuation's middle"
                    .into(),
                holds: if h.rows >= 10 {
                    Some(h.at_half > h.before_half)
                } else {
                    None
                },
                evidence: format!(
                    "{name}: half H(C+K/2−1) {} → H(C+K/2) {} nats ({} rows)",
                    fmt_num(h.before_half),
                    fmt_num(h.at_half),
                    h.rows
                ),
            });
        }
    }
    // Entropy falls with model size.
    if s.models.len() > 1 {
        let mut by_size: Vec<(usize, f64)> = (0..s.models.len())
            .map(|m| {
                let rows = s.rows(m, "base");
                let c = s.plan.contexts[0];
                let mean = rows
                    .iter()
                    .map(|r| {
                        r.entropy[..c - 1].iter().map(|&x| x as f64).sum::<f64>()
                            / (c - 1).max(1) as f64
                    })
                    .sum::<f64>()
                    / rows.len().max(1) as f64;
                (s.models[m].parameters, mean)
            })
            .collect();
        by_size.sort_by_key(|x| x.0);
        out.push(Finding {
            analysis: "A7".into(),
            claim: "entropy falls with model size".into(),
            holds: Some(by_size.windows(2).all(|w| w[1].1 <= w[0].1)),
            evidence: by_size
                .iter()
                .map(|(p, h)| {
                    format!(
                        "{:.0}M params: context mean {} nats",
                        *p as f64 / 1e6,
                        fmt_num(*h)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    out
}

fn beyond_findings(s: &Scored, d: &[Duplication], p: &[PrefixLevel]) -> Vec<Finding> {
    let mut out = Vec::new();
    for x in d {
        out.push(Finding {
            analysis: "beyond".into(),
            claim: "rows that occur more often in the corpus are memorized more (Carlini et al.'s log-linear trend)".into(),
            holds: if x.slope_per_decade.lo.is_finite() { Some(x.slope_per_decade.lo > 0.0) } else { None },
            evidence: format!(
                "{}: mean score rises {} [{}, {}] per tenfold count",
                s.models[x.model].name,
                fmt_num(x.slope_per_decade.value),
                fmt_num(x.slope_per_decade.lo),
                fmt_num(x.slope_per_decade.hi)
            ),
        });
    }
    for m in 0..s.models.len() {
        let levels: Vec<&PrefixLevel> = p.iter().filter(|x| x.model == m).collect();
        let rows: usize = levels.iter().map(|x| x.rows).sum();
        let prefix: usize = levels.iter().map(|x| x.prefix_rows).sum();
        if rows > 0 {
            out.push(Finding {
                analysis: "Q11".into(),
                claim: "partially memorized rows match a prefix of the continuation (\"memorized tokens are continuous\")".into(),
                holds: Some(2 * prefix > rows),
                evidence: format!(
                    "{}: {prefix} of {rows} partially matched rows ({}) match exactly a prefix",
                    s.models[m].name,
                    pct(prefix as f64 / rows as f64)
                ),
            });
        }
    }
    out
}

/// A line chart of curves, one series per model and group.
fn curve_chart(
    title: &str,
    y_label: &str,
    curves: &[Curve],
    models: &[ModelInfo],
    c: usize,
    k: usize,
    log_y: bool,
) -> String {
    LineChart {
        title: title.into(),
        x_label: "position in the row".into(),
        y_label: y_label.into(),
        log_y,
        markers: vec![
            ((c - 1) as f64, "last context token".into()),
            (c as f64, "first continuation token".into()),
            ((c + k / 2) as f64, "continuation middle".into()),
        ],
        series: curves
            .iter()
            .map(|cv| Series {
                name: if models.len() > 1 {
                    format!("{} · {}", models[cv.model].name, cv.group.name())
                } else {
                    format!("{} ({} rows)", cv.group.name(), cv.rows)
                },
                points: cv
                    .mean
                    .iter()
                    .enumerate()
                    .map(|(i, e)| ((i + cv.first_position) as f64, e.value))
                    .collect(),
                // A band over a handful of rows says nothing and hides the other curves.
                band: (cv.rows >= 10).then(|| cv.mean.iter().map(|e| (e.lo, e.hi)).collect()),
                dashed: cv.model > 0,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .render()
}

fn boundary_table(h: &mut String, b: &[Boundary], models: &[ModelInfo], unit: &str) {
    let _ = write!(
        h,
        "<table><tr><th>model</th><th>group</th><th>rows</th><th>at C−1</th><th>at C</th><th>difference</th><th>context mean</th><th>continuation mean</th><th>at C+K/2−1</th><th>at C+K/2</th></tr>"
    );
    for x in b {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&models[x.model].name),
            x.group.name(),
            x.rows,
            fmt_num(x.last_context),
            fmt_num(x.first_continuation),
            fmt_num(x.diff),
            fmt_num(x.context_mean),
            fmt_num(x.continuation_mean),
            fmt_num(x.before_half),
            fmt_num(x.at_half)
        );
    }
    let _ = write!(h, "</table><p>Values in {unit}.</p>");
}

fn dynamics_html(h: &mut String, r: &Report) {
    let (c, k) = (r.plan.contexts[0], r.plan.continuations[0]);
    if !r.transitions.is_empty() {
        h.push_str("<h2 id=\"a3\">A3 · Transitions between models</h2><p>P(bucket under the second model | bucket under the first), on the same base rows. Buckets by score: very low ≤ 0.2, low ≤ 0.4, medium ≤ 0.6, high ≤ 0.8, very high &gt; 0.8, labelled in their true order. Each matrix's rows sum to 1 and Σ<sub>i</sub> N<sub>from</sub>[i]·P[i][j] equals N<sub>to</sub>[j] (largest error shown).</p>");
        for t in &r.transitions {
            let hm = Heatmap {
                title: format!("{} → {}", r.models[t.from].name, r.models[t.to].name),
                rows: super::transitions::labels()
                    .iter()
                    .zip(t.from_sizes)
                    .map(|(l, n)| format!("{l} ({n})"))
                    .collect(),
                cols: super::transitions::labels()
                    .iter()
                    .zip(t.to_sizes)
                    .map(|(l, n)| format!("{l} ({n})"))
                    .collect(),
                values: t.p.iter().map(|row| row.to_vec()).collect(),
                row_axis: r.models[t.from].name.clone(),
                col_axis: r.models[t.to].name.clone(),
                annotate: true,
            };
            let _ = write!(
                h,
                "<figure>{}<figcaption>invariant error {}</figcaption></figure>",
                hm.render(),
                fmt_num(t.invariant_error())
            );
        }
    }
    if let Some(f) = &r.frequency {
        h.push_str("<h2 id=\"a4\">A4/A5 · Frequency dynamics</h2>");
        let _ = write!(
            h,
            "<p>Mean corpus count of the token at each position, per group (corpus tokens per model: {}). Counts within documents, with each model's tokenizer.</p>",
            f.corpus_tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        );
        let _ = write!(
            h,
            "<figure>{}</figure>",
            curve_chart(
                "Unigram count of the token at each position",
                "mean count",
                &f.unigram,
                &r.models,
                c,
                k,
                false
            )
        );
        boundary_table(h, &f.unigram_boundaries, &r.models, "unigram counts");
        let _ = write!(
            h,
            "<figure>{}</figure>",
            curve_chart(
                "Bigram count of (t[p−1], t[p])",
                "mean count",
                &f.bigram_ending,
                &r.models,
                c,
                k,
                false
            )
        );
        h.push_str("<p>Bigram counts, in both conventions the paper leaves open: the pair ending at p (chart and first table) and the pair starting at p (second table).</p>");
        boundary_table(
            h,
            &f.bigram_ending_boundaries,
            &r.models,
            "counts of the bigram ending at each position",
        );
        boundary_table(
            h,
            &f.bigram_starting_boundaries,
            &r.models,
            "counts of the bigram starting at each position",
        );
    }
    h.push_str("<h2 id=\"a7\">A7 · Entropy dynamics</h2><p>Entropy H(p) of the model's prediction of token p: over the true context up to C−1, then over its own greedy continuation (end-of-text masked as in decoding). Bands are 95% bootstrap intervals of the mean.</p>");
    let _ = write!(
        h,
        "<figure>{}</figure>",
        curve_chart(
            "Entropy at each position",
            "mean entropy (nats)",
            &r.entropy.curves,
            &r.models,
            c,
            k,
            false
        )
    );
    boundary_table(h, &r.entropy.boundaries, &r.models, "nats");
    if !r.duplication.is_empty() || !r.prefixes.is_empty() {
        h.push_str("<h2 id=\"beyond\">Beyond the paper</h2>");
    }
    if !r.duplication.is_empty() {
        h.push_str("<h3>Memorization against duplication</h3><p>Each base row's text (context and continuation) counted in the index; rows binned by count.</p>");
        let chart = LineChart {
            title: "Mean score by corpus count of the row".into(),
            x_label: "corpus count (log2 bin lower edge)".into(),
            y_label: "mean score".into(),
            series: r
                .duplication
                .iter()
                .map(|d| Series {
                    name: r.models[d.model].name.clone(),
                    points: d
                        .bins
                        .iter()
                        .map(|b| ((b.lo as f64).log2(), b.mean_score.value))
                        .collect(),
                    band: Some(
                        d.bins
                            .iter()
                            .map(|b| (b.mean_score.lo, b.mean_score.hi))
                            .collect(),
                    ),
                    bars: true,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let _ = write!(h, "<figure>{}</figure>", chart.render());
        h.push_str("<table><tr><th>model</th><th>count</th><th>rows</th><th>memorized</th><th>mean score</th></tr>");
        for d in &r.duplication {
            for b in &d.bins {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}–{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r.models[d.model].name),
                    b.lo,
                    b.hi,
                    b.rows,
                    ci(&b.memorized, true),
                    ci(&b.mean_score, false)
                );
            }
        }
        h.push_str("</table>");
    }
    if !r.prefixes.is_empty() {
        h.push_str("<h3>Continuity of partial memorization</h3><p>For rows with 0 &lt; k &lt; K: the share whose matches are exactly the first k tokens, and the mean number of leading matches.</p>");
        let chart = LineChart {
            title: "Share of partially memorized rows that match a prefix".into(),
            x_label: "matched tokens k".into(),
            y_label: "share matching exactly a prefix".into(),
            series: (0..r.models.len())
                .map(|m| Series {
                    name: r.models[m].name.clone(),
                    points: r
                        .prefixes
                        .iter()
                        .filter(|p| p.model == m)
                        .map(|p| (p.k as f64, p.prefix_rows as f64 / p.rows as f64))
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let _ = write!(h, "<figure>{}</figure>", chart.render());
        h.push_str("<table><tr><th>model</th><th>k</th><th>rows</th><th>exact prefix</th><th>mean leading matches</th><th>first token matches</th></tr>");
        for p in &r.prefixes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.models[p.model].name),
                p.k,
                p.rows,
                p.prefix_rows,
                fmt_num(p.mean_prefix),
                pct(p.first_matches)
            );
        }
        h.push_str("</table>");
    }
}

fn embedding_findings(s: &Scored, e: &[Embeddings]) -> Vec<Finding> {
    let mut out = Vec::new();
    for x in e {
        let name = &s.models[x.model].name;
        // Distance shrinks across steps: mean over levels of the drift, first step vs last.
        let first: f64 = x.drift.iter().map(|d| d[0]).sum::<f64>() / x.drift.len() as f64;
        let last: f64 = x
            .drift
            .iter()
            .map(|d| *d.last().unwrap_or(&f64::NAN))
            .sum::<f64>()
            / x.drift.len() as f64;
        out.push(Finding {
            analysis: "A6".into(),
            claim: "the Euclidean distance between levels shrinks as tokens are generated".into(),
            holds: if last.is_finite() {
                Some(last < first)
            } else {
                None
            },
            evidence: format!(
                "{name}: mean distance to level {} {} at the first step, {} at the last",
                x.reference_level,
                fmt_num(first),
                fmt_num(last)
            ),
        });
        let n = x.levels.len();
        if n > 1 {
            let lo = x
                .cosine
                .iter()
                .flatten()
                .copied()
                .fold(f64::INFINITY, f64::min);
            out.push(Finding {
                analysis: "A6".into(),
                claim: "level means stay similar in direction (high cosine similarity) while their distances differ".into(),
                holds: Some(lo > 0.8),
                evidence: format!(
                    "{name}: lowest cosine between level means {}; largest L2 {}",
                    fmt_num(lo),
                    fmt_num(x.l2.iter().flatten().copied().fold(0.0, f64::max))
                ),
            });
        }
    }
    out
}

fn predictor_findings(s: &Scored, p: &[Predictor]) -> Vec<Finding> {
    p.iter()
        .map(|x| Finding {
            analysis: "A8".into(),
            claim: "a predictor reading hidden states and entropies recovers which tokens are memorized, beyond the baselines (paper: ≈80% token accuracy)".into(),
            holds: Some(x.test.token > x.majority.token.max(x.entropy_threshold.token)),
            evidence: format!(
                "{}: token accuracy {} (majority {}, entropy threshold {}); full-row accuracy {} (majority {})",
                s.models[x.model].name,
                pct(x.test.token),
                pct(x.majority.token),
                pct(x.entropy_threshold.token),
                pct(x.test.full),
                pct(x.majority.full)
            ),
        })
        .collect()
}

fn model_html(h: &mut String, r: &Report) {
    if !r.embeddings.is_empty() {
        h.push_str("<h2 id=\"a6\">A6 · Embedding dynamics</h2><p>Last-layer hidden states (after the final norm). Level means at the last decoding step (position C+K−2), their cosine similarity and Euclidean distance; a PCA of every row's state and of the level means; and, at each decoding step, the distance of each level's mean state over the context and the tokens generated so far to the half level's.</p>");
    }
    for e in &r.embeddings {
        let name = &r.models[e.model].name;
        let labels: Vec<String> = e
            .levels
            .iter()
            .zip(&e.level_rows)
            .map(|(k, n)| format!("k={k} ({n})"))
            .collect();
        for (title, values) in [("cosine similarity", &e.cosine), ("L2 distance", &e.l2)] {
            let hm = Heatmap {
                title: format!("{name}: {title} of level means"),
                rows: labels.clone(),
                cols: e.levels.iter().map(|k| k.to_string()).collect(),
                values: values.clone(),
                row_axis: "level k".into(),
                col_axis: "level k".into(),
                annotate: e.levels.len() <= 10,
            };
            let _ = write!(h, "<figure>{}</figure>", hm.render());
        }
        let k = r.plan.continuations[0];
        let bucket_of = |kk: usize| super::score::bucket(kk, k);
        let groups = (0..5)
            .map(|b| {
                let pts: Vec<(f64, f64)> = e
                    .rows_pca
                    .iter()
                    .filter(|p| bucket_of(p.2) == b)
                    .map(|p| (p.0, p.1))
                    .collect();
                (super::score::BUCKETS[b].to_string(), pts, Vec::new())
            })
            .chain([(
                "level means".to_string(),
                e.levels_pca.clone(),
                e.levels.iter().map(|k| format!("k={k}")).collect(),
            )])
            .collect();
        let sc = super::svg::Scatter {
            title: format!("{name}: PCA of hidden states at the last step"),
            x_label: format!("PC1 ({})", pct(e.explained[0])),
            y_label: format!("PC2 ({})", pct(e.explained[1])),
            groups,
        };
        let _ = write!(h, "<figure>{}</figure>", sc.render());
        let chart = LineChart {
            title: format!(
                "{name}: distance to level {} across decoding steps (levels of ≥ 10 rows)",
                e.reference_level
            ),
            x_label: "decoding step".into(),
            y_label: "L2 distance of mean states".into(),
            series: e
                .levels
                .iter()
                .zip(&e.drift)
                .zip(&e.level_rows)
                .filter(|((l, _), n)| **l != e.reference_level && **n >= 10)
                .map(|(x, _)| x)
                .map(|(l, d)| Series {
                    name: format!("k={l}"),
                    points: d
                        .iter()
                        .enumerate()
                        .map(|(i, v)| ((i + 1) as f64, *v))
                        .collect(),
                    ..Default::default()
                })
                .take(8)
                .collect(),
            ..Default::default()
        };
        let _ = write!(h, "<figure>{}</figure>", chart.render());
    }
    if r.predictors.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"a8\">A8 · Predicting memorized tokens</h2><p>A Transformer over the row's hidden states (context and continuation; attention across positions unless the parity switch says across the batch), then per continuation position with that step's entropy, predicts whether the greedy token equals the true one. Seeded 70/15/15 split; the epoch best on validation is scored on test. Baselines: always the training majority; \"matches\" when the step's entropy is below a threshold fitted on the training split.</p>");
    h.push_str("<table><tr><th>model</th><th>train/val/test rows</th><th>positive share</th><th>token accuracy</th><th>full accuracy</th><th>majority token/full</th><th>entropy threshold token/full</th><th>best epoch</th><th>seconds</th></tr>");
    for p in &r.predictors {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}/{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{} / {} (H &lt; {})</td><td>{}</td><td>{:.1}</td></tr>",
            esc(&r.models[p.model].name),
            p.split[0],
            p.split[1],
            p.split[2],
            pct(p.positive_share),
            pct(p.test.token),
            pct(p.test.full),
            pct(p.majority.token),
            pct(p.majority.full),
            pct(p.entropy_threshold.token),
            pct(p.entropy_threshold.full),
            fmt_num(p.threshold),
            p.best_epoch,
            p.seconds
        );
    }
    h.push_str("</table>");
    let chart = LineChart {
        title: "Validation token accuracy by epoch".into(),
        x_label: "epoch".into(),
        y_label: "token accuracy".into(),
        series: r
            .predictors
            .iter()
            .map(|p| Series {
                name: r.models[p.model].name.clone(),
                points: p
                    .validation_curve
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ((i + 1) as f64, *v))
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let _ = write!(h, "<figure>{}</figure>", chart.render());
    let o = &r.predictors[0].options;
    let _ = write!(
        h,
        "<p>Predictor: width {}, {} layers, {} heads, head {}, Adam lr {}, batch {}, ≤{} epochs (patience {}), attention across {}, fully memorized rows {}.</p>",
        o.dim,
        o.layers,
        o.heads,
        o.head_dim,
        o.lr,
        o.batch,
        o.epochs,
        o.patience,
        if o.attend_batch { "the batch (the authors' behaviour)" } else { "positions" },
        if o.include_memorized { "included" } else { "left out (as the authors did)" }
    );
}
