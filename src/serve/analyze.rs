//! The synchronous work on a message, loaded once and shared by every pipeline task: the index
//! lookup, the probe policy, the probe itself and the verdict. Everything here is a plain
//! function of its inputs; [`super::pipeline`] decides where and when it runs.

use crate::config::{Config, ProbePolicy};
use crate::index::{Index, SpanOptions, SpanReport};
use crate::probe::boundary::{self, Boundary, BoundaryOptions, Calibration};
use crate::probe::scoring::Summary;
use crate::probe::tokenizer::Tokenizer;
use crate::probe::{Probe, ProbeOptions};
use crate::verdict::{self, ProbeFindings, SeverityRules, Verdict};
use anyhow::{Context, Result};
use std::sync::Arc;

/// Index, optional model and tokenizer, and the policy knobs.
pub struct Analyzer {
    pub index: Index,
    pub probe: Option<Probe>,
    tokenizer: Option<Arc<Tokenizer>>,
    policy: ProbePolicy,
    sample_rate: f64,
    min_chars: usize,
    min_tokens: usize,
    max_hits: usize,
    rules: SeverityRules,
    boundary: BoundaryOptions,
}

/// What the probe adds to one message.
pub struct Probed {
    pub summary: Summary,
    pub boundary: Boundary,
}

impl Analyzer {
    /// Opens the index and, when the configuration needs it, loads the model and tokenizer.
    pub fn load(cfg: &Config) -> Result<Analyzer> {
        let index = Index::open(&cfg.index.dir)
            .with_context(|| format!("opening the index {}", cfg.index.dir.display()))?;
        let mut probe = None;
        let mut tokenizer = None;
        if cfg.needs_model() {
            let device = crate::probe::device::select(&cfg.model.device)?;
            let path = cfg.model.resolved_path();
            let p = crate::probe::load(
                &path,
                cfg.model.tokenizer.as_deref(),
                &device,
                ProbeOptions {
                    window: cfg.probe.window,
                    overlap: cfg.probe.overlap,
                },
            )
            .with_context(|| {
                format!(
                    "loading the probe model {} (probe.policy = \"{}\"; install the default with \
                     scripts/fetch-model.sh, or set probe.policy = \"off\")",
                    path.display(),
                    cfg.probe.policy.name()
                )
            })?;
            tokenizer = Some(p.tokenizer.clone());
            probe = Some(p);
        } else if cfg.needs_tokenizer() {
            let path = crate::probe::tokenizer::path_for(
                &cfg.model.resolved_path(),
                cfg.model.tokenizer.as_deref(),
            );
            tokenizer = Some(Arc::new(Tokenizer::load(&path).with_context(|| {
                format!(
                    "loading the tokenizer {} (needed by spans.min_tokens)",
                    path.display()
                )
            })?));
        }
        Ok(Analyzer {
            index,
            probe,
            tokenizer,
            policy: cfg.probe.policy,
            sample_rate: cfg.probe.sample_rate,
            min_chars: cfg.spans.min_chars,
            min_tokens: cfg.spans.min_tokens,
            max_hits: cfg.spans.max_hits,
            rules: cfg.severity.clone(),
            boundary: BoundaryOptions {
                calibration: Calibration {
                    novel: cfg.probe.novel_entropy,
                    ..Calibration::default()
                },
                ..BoundaryOptions::default()
            },
        })
    }

    /// The verbatim spans of one text.
    pub fn spans(&self, text: &str) -> SpanReport {
        let count = |s: &str| self.tokenizer.as_ref().map_or(0, |t| t.count(s));
        let opts = SpanOptions {
            min_len: self.min_chars,
            max_hits: self.max_hits,
            tokens: if self.tokenizer.is_some() {
                Some(&count)
            } else {
                None
            },
        };
        self.index.spans(text, &opts)
    }

    /// Whether the probe policy scores this message.
    pub fn wants_probe(&self, id: &str, report: &SpanReport) -> bool {
        if self.probe.is_none() {
            return false;
        }
        match self.policy {
            ProbePolicy::Off => false,
            ProbePolicy::Always => true,
            ProbePolicy::OnMatch => !verdict::kept_spans(report, self.min_tokens).is_empty(),
            ProbePolicy::Sampled => sampled(id, self.sample_rate),
        }
    }

    /// Scores a batch of texts with the probe and reads the boundary signals of their spans.
    pub fn probe(&self, texts: &[&str], reports: &[&SpanReport]) -> Result<Vec<Probed>> {
        let probe = self.probe.as_ref().context("no probe model loaded")?;
        let scores = probe.score(texts)?;
        Ok(scores
            .into_iter()
            .zip(reports)
            .map(|(s, r)| {
                let ranges: Vec<_> = verdict::kept_spans(r, self.min_tokens)
                    .into_iter()
                    .map(|i| r.spans[i].start..r.spans[i].end)
                    .collect();
                Probed {
                    boundary: boundary::analyze(&s.tokens, &ranges, &self.boundary),
                    summary: s.summary,
                }
            })
            .collect())
    }

    /// The verdict.
    pub fn judge(&self, id: &str, report: &SpanReport, probed: Option<&Probed>) -> Verdict {
        verdict::judge(
            id,
            report,
            self.min_tokens,
            probed.map(|p| ProbeFindings {
                summary: &p.summary,
                boundary: &p.boundary,
            }),
            &self.rules,
        )
    }
}

/// Deterministic sampling by id: the same message is sampled on every replay.
pub fn sampled(id: &str, rate: f64) -> bool {
    let h = blake3::hash(id.as_bytes());
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    (x as f64 / u64::MAX as f64) < rate
}

#[cfg(test)]
mod tests {
    #[test]
    fn sampling_is_deterministic_and_near_the_rate() {
        let hits = (0..20_000)
            .filter(|i| super::sampled(&format!("m{i}"), 0.1))
            .count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
        assert_eq!(super::sampled("x", 0.5), super::sampled("x", 0.5));
        assert!(!super::sampled("x", 0.0));
    }
}
