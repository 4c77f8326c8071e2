//! The verdict policy, in one place: a message's verbatim spans (and, when the probe ran, its
//! entropy signals) ⇒ a severity (`none | low | high | critical`) and the reasons for it.
//!
//! Rules, all thresholds from `[severity]` in the configuration:
//! - Each level (`low`, `high`, `critical`) fires when the longest span is at least
//!   `longest_span_chars` **or** the coverage (share of the message's characters inside spans) is at
//!   least `coverage` (with at least one span). The verdict takes the highest level that fires.
//! - When the probe scored the message and a span's boundary score (0..1, see
//!   [`crate::probe::boundary`]) is at least `probe_raise_score`, the severity is raised one level
//!   (never above critical, never from none: the index decides whether there is a copy at all).
//! - A low-entropy run the index does not explain gives `unexplained_run` (default `low`): the
//!   model recites something the corpus index does not hold.
//! - A near-verbatim span (`spans.near`: a corpus passage copied with small edits) fires the
//!   levels by its length like the longest span (`near_verbatim`).
//! - Source rules (`[[severity.sources]]`) look at the metadata of the documents a span occurs
//!   in: a span found only in documents an `allow` rule matches counts toward nothing (listed,
//!   with `allowed_by`); a span found in a document a `deny` rule matches raises the rule's
//!   severity at once. Each rule that fired is a `source_rule` reason naming it.
//!
//! - A text the work budget stopped before its end ([`crate::budget`]) gives `incomplete`, at
//!   `incomplete` (default `low`): its verdict counts what was found up to there.
//!
//! Spans shorter than `spans.min_tokens` model tokens were dropped before (`crate::analyze`).
//!
//! (About 400 lines of rules; the rest of the file is their tests.)

use crate::index::SpanReport;
use crate::probe::boundary::Boundary;
use crate::probe::scoring::Summary;
use serde::{Deserialize, Serialize};

/// How bad a verdict is; ordered.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    None,
    Low,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::None,
        Severity::Low,
        Severity::High,
        Severity::Critical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn raised(self) -> Severity {
        match self {
            Severity::None => Severity::None,
            Severity::Low => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// When one level fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Longest verbatim span, characters.
    pub longest_span_chars: usize,
    /// Share of the message inside spans, 0..1.
    pub coverage: f64,
}

/// The `[severity]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeverityRules {
    pub low: Level,
    pub high: Level,
    pub critical: Level,
    /// Boundary score (0..1) at which the probe raises the severity one level; above 1 disables.
    pub probe_raise_score: f32,
    /// Severity of a low-entropy run the index does not explain; `none` disables.
    pub unexplained_run: Severity,
    /// Least severity of a text the work budget stopped before its end (`[limits]`): the part
    /// past `checked_chars` was not searched; `none` lets what was found decide alone.
    pub incomplete: Severity,
    /// Rules on where a span's text comes from (`[[severity.sources]]`), in order.
    pub sources: Vec<SourceRule>,
}

/// What a source rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceAction {
    /// A span found only in matching documents raises nothing (the owner's own text, a
    /// permissive licence).
    Allow,
    /// A span found in a matching document raises the rule's severity at once.
    Deny,
}

/// One rule on the documents a span occurs in, by a metadata field the index recorded for them
/// (`source`: the input path of the build, `line`; any field of a JSONL input line, such as
/// `license`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRule {
    /// Named in the verdict's reasons and on the spans it decided.
    pub name: String,
    /// `allow` or `deny`.
    pub action: SourceAction,
    /// The metadata field compared.
    pub field: String,
    /// Matches when the field (a string, or a number written out) is one of these...
    #[serde(default)]
    pub equals: Vec<String>,
    /// ...or starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// For `deny`: the severity a matching span raises (default critical).
    #[serde(default = "critical")]
    pub severity: Severity,
}

fn critical() -> Severity {
    Severity::Critical
}

impl SourceRule {
    /// Whether a document with metadata `meta` matches.
    pub fn matches(&self, meta: &serde_json::Value) -> bool {
        let value = match meta.get(&self.field) {
            Some(serde_json::Value::String(v)) => v.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::Bool(b)) => b.to_string(),
            _ => return false,
        };
        self.equals.contains(&value) || self.prefix.as_ref().is_some_and(|p| value.starts_with(p))
    }
}

impl Default for SeverityRules {
    fn default() -> Self {
        SeverityRules {
            low: Level {
                longest_span_chars: 50,
                coverage: 0.05,
            },
            high: Level {
                longest_span_chars: 150,
                coverage: 0.25,
            },
            critical: Level {
                longest_span_chars: 400,
                coverage: 0.6,
            },
            probe_raise_score: 0.8,
            unexplained_run: Severity::Low,
            incomplete: Severity::Low,
            sources: Vec::new(),
        }
    }
}

/// A rule that makes no sense; `key` is relative to `[severity]`.
#[derive(Debug)]
pub struct RuleError {
    pub key: String,
    pub message: String,
}

impl SeverityRules {
    pub fn validate(&self) -> Result<(), RuleError> {
        let levels = [
            ("low", self.low),
            ("high", self.high),
            ("critical", self.critical),
        ];
        for (name, l) in levels {
            if !(l.coverage > 0.0 && l.coverage <= 1.0) {
                return Err(RuleError {
                    key: format!("{name}.coverage"),
                    message: "must be in (0, 1]".into(),
                });
            }
            if l.longest_span_chars == 0 {
                return Err(RuleError {
                    key: format!("{name}.longest_span_chars"),
                    message: "must be ≥ 1".into(),
                });
            }
        }
        for w in levels.windows(2) {
            let ((a, la), (b, lb)) = (w[0], w[1]);
            if lb.longest_span_chars < la.longest_span_chars {
                return Err(RuleError {
                    key: format!("{b}.longest_span_chars"),
                    message: format!("must be ≥ {a}.longest_span_chars"),
                });
            }
            if lb.coverage < la.coverage {
                return Err(RuleError {
                    key: format!("{b}.coverage"),
                    message: format!("must be ≥ {a}.coverage"),
                });
            }
        }
        if !(self.probe_raise_score.is_finite() && self.probe_raise_score >= 0.0) {
            return Err(RuleError {
                key: "probe_raise_score".into(),
                message: "must be ≥ 0 (above 1 disables)".into(),
            });
        }
        for (i, r) in self.sources.iter().enumerate() {
            let key = |k: &str| format!("sources[{i}].{k}");
            let bad = |k: &str, m: &str| {
                Err(RuleError {
                    key: key(k),
                    message: m.into(),
                })
            };
            if r.name.trim().is_empty() {
                return bad("name", "must name the rule (verdicts cite it)");
            }
            if r.field.is_empty() {
                return bad(
                    "field",
                    "must name a document metadata field, such as source or license",
                );
            }
            if r.equals.is_empty() && r.prefix.as_deref().is_none_or(str::is_empty) {
                return bad(
                    "equals",
                    "give `equals` (a list of values) or a non-empty `prefix`",
                );
            }
            if r.action == SourceAction::Deny && r.severity == Severity::None {
                return bad("severity", "a deny rule must raise low, high or critical");
            }
        }
        Ok(())
    }

    /// The allow rule that excuses `span`: every occurrence of it was looked at (its count is
    /// its provenance's length, see `spans.max_hits`) and each lies in a document some allow rule
    /// matches. The first rule matching its first occurrence is named.
    pub fn allowed_by(&self, span: &crate::index::Span) -> Option<&SourceRule> {
        if span.hits.is_empty() || span.count != span.hits.len() as u64 {
            return None;
        }
        let allows = || {
            self.sources
                .iter()
                .filter(|r| r.action == SourceAction::Allow)
        };
        if !span
            .hits
            .iter()
            .all(|h| allows().any(|r| r.matches(&h.meta)))
        {
            return None;
        }
        allows().find(|r| r.matches(&span.hits[0].meta))
    }

    /// The first deny rule matching a document `span` was found in.
    pub fn denied_by(&self, span: &crate::index::Span) -> Option<&SourceRule> {
        self.sources
            .iter()
            .filter(|r| r.action == SourceAction::Deny)
            .find(|r| span.hits.iter().any(|h| r.matches(&h.meta)))
    }

    /// The highest level (critical, high, low) whose thresholds `fires`.
    fn highest(&self, fires: impl Fn(&Level) -> bool) -> Option<(Severity, &Level)> {
        [Severity::Critical, Severity::High, Severity::Low]
            .into_iter()
            .find_map(|s| self.level(s).filter(|l| fires(l)).map(|l| (s, l)))
    }

    fn level(&self, s: Severity) -> Option<&Level> {
        match s {
            Severity::None => None,
            Severity::Low => Some(&self.low),
            Severity::High => Some(&self.high),
            Severity::Critical => Some(&self.critical),
        }
    }
}

/// Why a verdict has its severity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// `longest_span`, `coverage`, `near_verbatim`, `source_rule`, `boundary`,
    /// `unexplained_run` or `incomplete`.
    pub code: &'static str,
    /// The severity this reason alone gives.
    pub severity: Severity,
    pub detail: String,
}

/// Where a span occurs in the corpus (the first few occurrences).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub doc: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The document's `license` (or `licence`) field, when its input gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    pub offset: u64,
}

/// One verbatim span as the verdict reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictSpan {
    /// Character range in the message text.
    pub start: usize,
    pub end: usize,
    pub chars: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// Occurrences in the corpus.
    pub count: u64,
    pub provenance: Vec<Provenance>,
    /// Boundary score (0..1) when the probe ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary_score: Option<f32>,
    /// The allow rule that excused it (it counts toward nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_by: Option<String>,
    /// The deny rule it fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<String>,
    /// The message's prompt holds it too (it counts toward nothing).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_prompt: bool,
}

/// The probe's findings on one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entropy {
    pub tokens: usize,
    pub mean_entropy: Option<f32>,
    pub mean_surprisal: Option<f32>,
    pub low_entropy_share: Option<f32>,
    /// Highest span boundary score.
    pub boundary_score: f32,
    /// Low-entropy runs outside every span: `(start char, end char, tokens)`.
    pub unexplained_runs: Vec<(usize, usize, usize)>,
}

/// One verdict per message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub id: String,
    pub severity: Severity,
    pub reasons: Vec<Reason>,
    pub text_chars: usize,
    /// Share of the text inside verbatim spans.
    pub coverage: f64,
    pub longest_span_chars: usize,
    /// The spans, in text order; at most `spans.max_reported` of them (the longest).
    pub spans: Vec<VerdictSpan>,
    /// How many spans the message has, listed or not.
    pub spans_total: usize,
    /// True when `spans` leaves some out ([`Verdict::keep_longest_spans`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spans_truncated: bool,
    /// Present when the probe scored this message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entropy: Option<Entropy>,
    pub index_id: String,
    /// The index generation the spans were found in (a daemon following the index moves to each
    /// new generation between messages).
    pub index_generation: u64,
    /// Near-verbatim spans (`spans.near`): corpus passages copied with small edits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub near_spans: Vec<VerdictNear>,
    /// The text was folded before matching (`spans.fold`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
    /// The work budget stopped the search before the text's end: how far it got, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<crate::budget::Incomplete>,
}

/// A near-verbatim span as the verdict reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictNear {
    /// Character range in the message text.
    pub start: usize,
    pub end: usize,
    pub chars: usize,
    /// `1 - edits / longer side`, against the corpus passage.
    pub similarity: f64,
    /// Character edits between the text and the passage.
    pub edits: usize,
    /// The passage's document.
    pub provenance: Provenance,
}

impl Verdict {
    /// Keeps the `n` longest spans (ties: the earlier one), still in text order; `spans_total`
    /// keeps the full count. Severity, coverage and reasons are unchanged: they were computed
    /// from every span.
    pub fn keep_longest_spans(&mut self, n: usize) {
        if self.spans.len() <= n {
            return;
        }
        let mut order: Vec<usize> = (0..self.spans.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(self.spans[i].chars), i));
        let mut keep = vec![false; self.spans.len()];
        for &i in &order[..n] {
            keep[i] = true;
        }
        let mut i = 0;
        self.spans.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        self.spans_truncated = true;
    }
}

/// The probe's output for one message, as the verdict needs it.
pub struct ProbeFindings<'a> {
    pub summary: &'a Summary,
    pub boundary: &'a Boundary,
}

/// The verdict for one message: `report` as [`crate::analyze::Analyzer::spans`] gives it (the
/// token filter applied, coverage final); `probe` when the probe scored it, its boundary
/// signals indexing `report.spans`.
pub fn judge(
    id: &str,
    report: &SpanReport,
    probe: Option<ProbeFindings<'_>>,
    rules: &SeverityRules,
) -> Verdict {
    // Spans an allow rule excuses count toward nothing; the others make the coverage and the
    // longest span.
    let allowed: Vec<Option<&SourceRule>> =
        report.spans.iter().map(|s| rules.allowed_by(s)).collect();
    // So are spans the message's prompt holds (the model repeating its input).
    let excused: Vec<bool> = report
        .spans
        .iter()
        .zip(&allowed)
        .map(|(s, a)| a.is_some() || s.in_prompt)
        .collect();
    let (coverage, longest, counted) = if !excused.contains(&true) {
        (report.coverage, report.longest, report.spans.len())
    } else {
        let kept: Vec<_> = report
            .spans
            .iter()
            .zip(&excused)
            .filter(|(_, &e)| !e)
            .map(|(s, _)| s)
            .collect();
        let covered =
            crate::index::read::search::covered_chars(kept.iter().map(|s| (s.start, s.end)));
        let coverage = if report.text_chars == 0 {
            0.0
        } else {
            covered as f64 / report.text_chars as f64
        };
        (
            coverage,
            kept.iter().map(|s| s.len_chars).max().unwrap_or(0),
            kept.len(),
        )
    };
    let mut reasons = Vec::new();
    if counted > 0 {
        if let Some((s, l)) = rules.highest(|l| longest >= l.longest_span_chars) {
            reasons.push(Reason {
                code: "longest_span",
                severity: s,
                detail: format!(
                    "longest verbatim span {longest} chars ≥ {} ({})",
                    l.longest_span_chars,
                    s.name()
                ),
            });
        }
        if let Some((s, l)) = rules.highest(|l| coverage >= l.coverage) {
            reasons.push(Reason {
                code: "coverage",
                severity: s,
                detail: format!(
                    "{:.1}% of the text is verbatim corpus ≥ {:.1}% ({})",
                    coverage * 100.0,
                    l.coverage * 100.0,
                    s.name()
                ),
            });
        }
    }
    let near_longest = report.near.iter().map(|n| n.len_chars).max().unwrap_or(0);
    if near_longest > 0 {
        if let Some((s, l)) = rules.highest(|l| near_longest >= l.longest_span_chars) {
            let best = report
                .near
                .iter()
                .max_by_key(|n| n.len_chars)
                .expect("not empty");
            reasons.push(Reason {
                code: "near_verbatim",
                severity: s,
                detail: format!(
                    "near-verbatim span {near_longest} chars ≥ {} ({}), {} edits, similarity {:.2}",
                    l.longest_span_chars,
                    s.name(),
                    best.edits,
                    best.similarity
                ),
            });
        }
    }
    let mut fired: Vec<&str> = Vec::new();
    for (s, &e) in report.spans.iter().zip(&excused) {
        if e {
            continue;
        }
        if let Some(r) = rules
            .denied_by(s)
            .filter(|r| !fired.contains(&r.name.as_str()))
        {
            fired.push(&r.name);
            reasons.push(Reason {
                code: "source_rule",
                severity: r.severity,
                detail: format!(
                    "rule `{}` (deny {} {}): a span of {} chars (chars {}..{}) occurs in such a document ({})",
                    r.name,
                    r.field,
                    rule_values(r),
                    s.len_chars,
                    s.start,
                    s.end,
                    r.severity.name()
                ),
            });
        }
    }
    let mut excused: Vec<(&str, usize)> = Vec::new();
    for r in allowed.iter().flatten() {
        match excused.iter_mut().find(|(n, _)| *n == r.name) {
            Some((_, k)) => *k += 1,
            None => excused.push((&r.name, 1)),
        }
    }
    for (name, k) in excused {
        reasons.push(Reason {
            code: "source_rule",
            severity: Severity::None,
            detail: format!(
                "rule `{name}` (allow): {k} span(s) found only in documents it allows raise nothing"
            ),
        });
    }
    if let Some(i) = report.incomplete {
        reasons.push(Reason {
            code: "incomplete",
            severity: rules.incomplete,
            detail: format!(
                "checked {} of {} chars: stopped by the work budget ({})",
                i.checked_chars,
                report.text_chars,
                i.reason.name()
            ),
        });
    }
    let mut severity = reasons.iter().map(|r| r.severity).max().unwrap_or_default();

    let mut spans: Vec<VerdictSpan> = report
        .spans
        .iter()
        .zip(&allowed)
        .map(|(s, allowed)| VerdictSpan {
            start: s.start,
            end: s.end,
            chars: s.len_chars,
            tokens: s.len_tokens,
            count: s.count,
            provenance: s.hits.iter().map(provenance).collect(),
            boundary_score: None,
            allowed_by: allowed.map(|r| r.name.clone()),
            in_prompt: s.in_prompt,
            denied_by: (allowed.is_none() && !s.in_prompt)
                .then(|| rules.denied_by(s).map(|r| r.name.clone()))
                .flatten(),
        })
        .collect();

    let entropy = probe.map(|p| {
        for sig in &p.boundary.spans {
            spans[sig.span].boundary_score = Some(sig.score);
        }
        if severity > Severity::None && p.boundary.score >= rules.probe_raise_score {
            let raised = severity.raised();
            reasons.push(Reason {
                code: "boundary",
                severity: raised,
                detail: format!(
                    "entropy boundary score {:.2} ≥ {:.2}: the model reproduces the span ({} → {})",
                    p.boundary.score,
                    rules.probe_raise_score,
                    severity.name(),
                    raised.name()
                ),
            });
            severity = raised;
        }
        if rules.unexplained_run > Severity::None {
            if let Some(r) = p.boundary.unexplained_runs.iter().max_by_key(|r| r.tokens) {
                reasons.push(Reason {
                    code: "unexplained_run",
                    severity: rules.unexplained_run,
                    detail: format!(
                        "{} tokens at mean entropy {:.2} nats (chars {}..{}) without an index match",
                        r.tokens, r.mean_entropy, r.start, r.end
                    ),
                });
                severity = severity.max(rules.unexplained_run);
            }
        }
        Entropy {
            tokens: p.summary.tokens,
            mean_entropy: p.summary.mean_entropy,
            mean_surprisal: p.summary.mean_surprisal,
            low_entropy_share: p.summary.low_entropy_share,
            boundary_score: p.boundary.score,
            unexplained_runs: p
                .boundary
                .unexplained_runs
                .iter()
                .map(|r| (r.start, r.end, r.tokens))
                .collect(),
        }
    });

    Verdict {
        id: id.to_string(),
        severity,
        reasons,
        text_chars: report.text_chars,
        coverage,
        longest_span_chars: longest,
        spans_total: spans.len(),
        spans_truncated: false,
        spans,
        entropy,
        index_id: report.index_id.clone(),
        index_generation: report.index_generation,
        near_spans: report
            .near
            .iter()
            .map(|n| VerdictNear {
                start: n.start,
                end: n.end,
                chars: n.len_chars,
                similarity: n.similarity,
                edits: n.edits,
                provenance: provenance(&n.hit),
            })
            .collect(),
        folded: report.folded,
        incomplete: report.incomplete,
    }
}

/// What a verdict shows of one occurrence: the document, its source and licence, the offset.
fn provenance(h: &crate::index::Hit) -> Provenance {
    Provenance {
        doc: h.doc,
        source: h
            .meta
            .get("source")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        license: ["license", "licence"]
            .iter()
            .find_map(|k| h.meta.get(*k).and_then(|v| v.as_str()))
            .map(str::to_string),
        offset: h.offset,
    }
}

/// A rule's values in words: `= a, b` or `starts with p`.
fn rule_values(r: &SourceRule) -> String {
    let mut parts = Vec::new();
    if !r.equals.is_empty() {
        parts.push(format!("= {}", r.equals.join(" | ")));
    }
    if let Some(p) = &r.prefix {
        parts.push(format!("starts with {p:?}"));
    }
    parts.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::read::search::covered_chars;
    use crate::index::Span;
    use crate::probe::boundary::{Run, SpanSignal};

    fn report(text_chars: usize, spans: &[(usize, usize, Option<usize>)]) -> SpanReport {
        let spans: Vec<Span> = spans
            .iter()
            .map(|&(a, b, t)| Span {
                start: a,
                end: b,
                len_chars: b - a,
                len_tokens: t,
                count: 1,
                hits: vec![],
                text: String::new(),
                repeats: 1,
                period: 0,
                in_prompt: false,
            })
            .collect();
        let covered = covered_chars(spans.iter().map(|s| (s.start, s.end)));
        SpanReport {
            index_id: "idx".into(),
            index_generation: 1,
            min_len: 50,
            text_chars,
            covered_chars: covered,
            coverage: covered as f64 / text_chars as f64,
            longest: spans.iter().map(|s| s.len_chars).max().unwrap_or(0),
            spans,
            near: vec![],
            folded: false,
            incomplete: None,
        }
    }

    /// `(start, end, the (source, license) of each document it occurs in)`.
    type Sourced<'a> = (usize, usize, &'a [(&'a str, &'a str)]);

    /// A report whose spans occur in documents of the given (source, license) pairs.
    fn sourced(text_chars: usize, spans: &[Sourced]) -> SpanReport {
        let mut r = report(
            text_chars,
            &spans
                .iter()
                .map(|&(a, b, _)| (a, b, None))
                .collect::<Vec<_>>(),
        );
        for (s, (_, _, docs)) in r.spans.iter_mut().zip(spans) {
            s.count = docs.len() as u64;
            s.hits = docs
                .iter()
                .enumerate()
                .map(|(i, (src, lic))| crate::index::Hit {
                    doc: i as u64,
                    shard: 0,
                    offset: 0,
                    meta: serde_json::json!({"source": src, "license": lic}),
                })
                .collect();
        }
        r
    }

    fn rules_with(sources: Vec<SourceRule>) -> SeverityRules {
        SeverityRules {
            sources,
            ..SeverityRules::default()
        }
    }

    fn rule(name: &str, action: SourceAction, field: &str, equals: &[&str]) -> SourceRule {
        SourceRule {
            name: name.into(),
            action,
            field: field.into(),
            equals: equals.iter().map(|e| e.to_string()).collect(),
            prefix: None,
            severity: Severity::Critical,
        }
    }

    #[test]
    fn allow_rules_excuse_spans_found_only_in_allowed_documents() {
        let rules = rules_with(vec![
            rule("ours", SourceAction::Allow, "source", &["docs/ours.txt"]),
            rule("mit", SourceAction::Allow, "license", &["MIT"]),
        ]);
        rules.validate().unwrap();
        // A 500-char span in our own document and an MIT one: nothing raised.
        let r = sourced(
            1000,
            &[
                (0, 500, &[("docs/ours.txt", "")]),
                (600, 700, &[("x", "MIT")]),
            ],
        );
        let v = judge("m", &r, None, &rules);
        assert_eq!(v.severity, Severity::None, "{:?}", v.reasons);
        assert_eq!(v.coverage, 0.0);
        assert_eq!(v.spans[0].allowed_by.as_deref(), Some("ours"));
        assert_eq!(v.spans[1].allowed_by.as_deref(), Some("mit"));
        assert_eq!(v.spans[1].provenance[0].license.as_deref(), Some("MIT"));
        assert!(v
            .reasons
            .iter()
            .any(|x| x.code == "source_rule" && x.detail.contains("`ours`")));
        // Also found in a document no rule allows: it counts.
        let r = sourced(
            1000,
            &[(0, 500, &[("docs/ours.txt", ""), ("web/page", "")])],
        );
        assert_eq!(judge("m", &r, None, &rules).severity, Severity::Critical);
        // Not every occurrence listed (count above the hits): not excused.
        let mut r = sourced(1000, &[(0, 500, &[("docs/ours.txt", "")])]);
        r.spans[0].count = 5;
        let v = judge("m", &r, None, &rules);
        assert_eq!(v.severity, Severity::Critical);
        assert!(v.spans[0].allowed_by.is_none());
        // The other spans still count, on their own coverage and length.
        let r = sourced(
            1000,
            &[
                (0, 500, &[("docs/ours.txt", "")]),
                (600, 760, &[("web", "")]),
            ],
        );
        let v = judge("m", &r, None, &rules);
        assert_eq!((v.severity, v.longest_span_chars), (Severity::High, 160));
        assert!((v.coverage - 0.16).abs() < 1e-9);
    }

    #[test]
    fn deny_rules_raise_at_once_and_name_the_rule() {
        let mut gpl = rule("no-gpl", SourceAction::Deny, "license", &["GPL-3.0"]);
        gpl.severity = Severity::High;
        let rules = rules_with(vec![gpl]);
        // A 60-char span (low by length) in a GPL document: high, by the rule.
        let r = sourced(1000, &[(0, 60, &[("a", "MIT"), ("b", "GPL-3.0")])]);
        let v = judge("m", &r, None, &rules);
        assert_eq!(v.severity, Severity::High);
        assert_eq!(v.spans[0].denied_by.as_deref(), Some("no-gpl"));
        let reason = v.reasons.iter().find(|x| x.code == "source_rule").unwrap();
        assert!(
            reason.detail.contains("no-gpl") && reason.detail.contains("GPL-3.0"),
            "{}",
            reason.detail
        );
        // Prefix rules, and no match: the length rules alone.
        let mut p = rule("secrets", SourceAction::Deny, "source", &[]);
        p.prefix = Some("vault/".into());
        let rules = rules_with(vec![p]);
        let r = sourced(1000, &[(0, 60, &[("vault/keys.txt", "")])]);
        assert_eq!(judge("m", &r, None, &rules).severity, Severity::Critical);
        let r = sourced(1000, &[(0, 60, &[("public/x.txt", "")])]);
        assert_eq!(judge("m", &r, None, &rules).severity, Severity::Low);
    }

    #[test]
    fn spans_the_prompt_holds_count_toward_nothing_and_fire_no_rule() {
        let mut gpl = rule("no-gpl", SourceAction::Deny, "license", &["GPL-3.0"]);
        gpl.severity = Severity::High;
        let rules = rules_with(vec![gpl]);
        let mut r = sourced(
            1000,
            &[(0, 500, &[("b", "GPL-3.0")]), (600, 660, &[("web", "")])],
        );
        r.spans[0].in_prompt = true;
        let v = judge("m", &r, None, &rules);
        // Only the 60-char span counts: low by length and coverage, no deny rule.
        assert_eq!((v.severity, v.longest_span_chars), (Severity::Low, 60));
        assert!((v.coverage - 0.06).abs() < 1e-9);
        assert!(v.spans[0].in_prompt && v.spans[0].denied_by.is_none());
        assert!(!v.spans[1].in_prompt);
        assert!(v.reasons.iter().all(|x| x.code != "source_rule"));
        // Every span in the prompt: nothing raised.
        r.spans[1].in_prompt = true;
        assert_eq!(judge("m", &r, None, &rules).severity, Severity::None);
    }

    #[test]
    fn source_rules_are_validated() {
        let bad = |r: SourceRule| rules_with(vec![r]).validate().unwrap_err().key;
        assert_eq!(
            bad(rule("", SourceAction::Allow, "source", &["x"])),
            "sources[0].name"
        );
        assert_eq!(
            bad(rule("a", SourceAction::Allow, "", &["x"])),
            "sources[0].field"
        );
        assert_eq!(
            bad(rule("a", SourceAction::Allow, "source", &[])),
            "sources[0].equals"
        );
        let mut none = rule("a", SourceAction::Deny, "source", &["x"]);
        none.severity = Severity::None;
        assert_eq!(bad(none), "sources[0].severity");
    }

    fn summary() -> Summary {
        Summary {
            tokens: 10,
            mean_entropy: Some(1.0),
            mean_surprisal: Some(1.0),
            top1_share: Some(0.5),
            low_entropy_share: Some(0.5),
        }
    }

    fn signal(start: usize, end: usize, score: f32) -> SpanSignal {
        SpanSignal {
            span: 0,
            start,
            end,
            first_token: 0,
            end_token: 1,
            entropy_before: None,
            entropy_head: 0.0,
            entropy_inside: 0.0,
            entropy_tail: 0.0,
            entropy_after: None,
            drop_at_start: None,
            jump_at_end: None,
            score,
        }
    }

    #[test]
    fn levels_by_span_length_and_coverage() {
        let r = SeverityRules::default();
        assert_eq!(
            judge("a", &report(10_000, &[]), None, &r).severity,
            Severity::None
        );
        // 60-char span in a long text: low by length, coverage 0.6% below every level.
        let v = judge("a", &report(10_000, &[(0, 60, None)]), None, &r);
        assert_eq!(v.severity, Severity::Low);
        assert_eq!(v.reasons.len(), 1);
        assert_eq!(v.reasons[0].code, "longest_span");
        // 160 chars: high.
        let v = judge("a", &report(10_000, &[(0, 160, None)]), None, &r);
        assert_eq!(v.severity, Severity::High);
        // A short text that is mostly a copy: coverage makes it critical.
        let v = judge("a", &report(100, &[(0, 70, None)]), None, &r);
        assert_eq!(v.severity, Severity::Critical);
        assert!(v
            .reasons
            .iter()
            .any(|x| x.code == "coverage" && x.severity == Severity::Critical));
        // 400 chars: critical by length.
        let v = judge("a", &report(100_000, &[(0, 400, None)]), None, &r);
        assert_eq!(v.severity, Severity::Critical);
    }

    #[test]
    fn probe_raises_one_level_and_reports_unexplained_runs() {
        let r = SeverityRules::default();
        let rep = report(10_000, &[(0, 60, None)]);
        let s = summary();
        let b = Boundary {
            spans: vec![signal(0, 60, 0.9)],
            unexplained_runs: vec![],
            score: 0.9,
        };
        let v = judge(
            "a",
            &rep,
            Some(ProbeFindings {
                summary: &s,
                boundary: &b,
            }),
            &r,
        );
        assert_eq!(v.severity, Severity::High);
        assert_eq!(v.spans[0].boundary_score, Some(0.9));
        // Below the raise score: unchanged.
        let b2 = Boundary {
            score: 0.5,
            spans: vec![signal(0, 60, 0.5)],
            unexplained_runs: vec![],
        };
        let p = ProbeFindings {
            summary: &s,
            boundary: &b2,
        };
        assert_eq!(judge("a", &rep, Some(p), &r).severity, Severity::Low);
        // No span: the probe alone cannot raise, but an unexplained run gives low.
        let b3 = Boundary {
            spans: vec![],
            unexplained_runs: vec![Run {
                start: 5,
                end: 200,
                tokens: 40,
                mean_entropy: 0.3,
            }],
            score: 0.0,
        };
        let p = ProbeFindings {
            summary: &s,
            boundary: &b3,
        };
        let v = judge("a", &report(1000, &[]), Some(p), &r);
        assert_eq!(v.severity, Severity::Low);
        assert_eq!(v.reasons[0].code, "unexplained_run");
    }

    #[test]
    fn rules_are_validated() {
        let mut r = SeverityRules::default();
        r.high.longest_span_chars = 10;
        assert_eq!(r.validate().unwrap_err().key, "high.longest_span_chars");
        let mut r = SeverityRules::default();
        r.critical.coverage = 1.5;
        assert_eq!(r.validate().unwrap_err().key, "critical.coverage");
    }

    #[test]
    fn keeping_the_longest_spans_keeps_text_order_and_the_total() {
        let r = report(
            1000,
            &[
                (0, 60, None),
                (100, 300, None),
                (400, 470, None),
                (500, 700, None),
            ],
        );
        let mut v = judge("m", &r, None, &SeverityRules::default());
        let before = (v.severity, v.coverage, v.reasons.clone());
        v.keep_longest_spans(4);
        assert!(!v.spans_truncated);
        v.keep_longest_spans(2);
        let kept: Vec<_> = v.spans.iter().map(|s| s.start).collect();
        assert_eq!(kept, vec![100, 500]);
        assert_eq!((v.spans_total, v.spans_truncated), (4, true));
        assert_eq!((v.severity, v.coverage, v.reasons), before);
    }
}
