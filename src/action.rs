//! What to do with a judged text in the serving path: allow it, redact its spans, or block it.
//!
//! The action follows the verdict's severity through two configured thresholds
//! (`[actions] redact_at`, `block_at`). Redaction replaces each span's characters (overlapping
//! spans merged) with a marker, so the text that leaves contains no character of any span.
//! In audit mode (`[actions] mode = "audit"`) every text is allowed and left as it is, and the
//! answer names the action enforcing would take, so a policy can be watched before it acts.

use crate::verdict::{Severity, Verdict};
use serde::{Deserialize, Serialize};

/// The action taken on one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pass the text on as it is.
    Allow,
    /// Pass it on with every span replaced by the marker.
    Redact,
    /// Do not pass it on.
    Block,
}

impl Action {
    /// The lowercase name, as in the JSON answers and the metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

/// Whether the policy's action is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionMode {
    /// The answer's action is the policy's.
    #[default]
    Enforce,
    /// The answer's action is always `allow`, the text is left as it is, and `would` names the
    /// policy's action: a rollout in shadow, watched on `memaudit_http_actions_total`.
    Audit,
}

impl ActionMode {
    /// The lowercase name, as in the configuration and the metrics' labels.
    pub fn name(self) -> &'static str {
        match self {
            ActionMode::Enforce => "enforce",
            ActionMode::Audit => "audit",
        }
    }
}

/// The thresholds, the marker and the mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionPolicy {
    /// Verdicts at or above this severity are redacted ("none" redacts every text with a span).
    pub redact_at: Severity,
    /// Verdicts at or above this severity are blocked; above `redact_at` or equal to it.
    pub block_at: Severity,
    /// What replaces each redacted span.
    pub marker: String,
    /// `enforce` (the default) or `audit`.
    pub mode: ActionMode,
}

impl Default for ActionPolicy {
    fn default() -> Self {
        ActionPolicy {
            redact_at: Severity::High,
            block_at: Severity::Critical,
            marker: "[redacted: training data]".into(),
            mode: ActionMode::Enforce,
        }
    }
}

impl ActionPolicy {
    /// The action for a verdict: a verdict without spans is always allowed.
    pub fn decide(&self, verdict: &Verdict) -> Action {
        if verdict.spans_total == 0 {
            return Action::Allow;
        }
        if verdict.severity >= self.block_at {
            Action::Block
        } else if verdict.severity >= self.redact_at {
            Action::Redact
        } else {
            Action::Allow
        }
    }

    /// The action to carry out for the policy's `decided` one, and in audit mode the one
    /// enforcing would carry out (`None` when enforcing).
    pub fn carry_out(&self, decided: Action) -> (Action, Option<Action>) {
        match self.mode {
            ActionMode::Enforce => (decided, None),
            ActionMode::Audit => (Action::Allow, Some(decided)),
        }
    }
}

/// `text` with every character range in `spans` (`[start, end)` in characters, any order, may
/// overlap) replaced by `marker`; each run of merged ranges becomes one marker.
pub fn redact(text: &str, spans: &[(usize, usize)], marker: &str) -> String {
    redact_tail(text, 0, spans, marker)
}

/// [`redact`] of `tail`, the part of a text from character `from` on, with `spans` in
/// characters of the whole text: what a streamed answer carries once the text before `from` was
/// answered (a span that began before `from` is marked from `from` on).
pub fn redact_tail(tail: &str, from: usize, spans: &[(usize, usize)], marker: &str) -> String {
    // In characters of `tail`.
    let mut ranges: Vec<(usize, usize)> = spans
        .iter()
        .filter(|&&(a, b)| a < b && b > from)
        .map(|&(a, b)| (a.max(from) - from, b - from))
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out = String::with_capacity(tail.len());
    let mut next = merged.iter().peekable();
    let mut in_span = false;
    for (i, c) in tail.chars().enumerate() {
        while next.peek().is_some_and(|r| i >= r.1) {
            next.next();
            in_span = false;
        }
        match next.peek() {
            Some(&&(a, _)) if i >= a => {
                if !in_span {
                    out.push_str(marker);
                    in_span = true;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_redacted_as_the_whole_text_would_be_from_there_on() {
        // A span that began before the tail is marked from the tail's start.
        assert_eq!(redact_tail("éfghij", 4, &[(2, 6), (8, 9)], "#"), "#gh#j");
        assert_eq!(redact_tail("", 10, &[(2, 6)], "#"), "");
        assert_eq!(redact_tail("xyz", 3, &[(0, 2)], "#"), "xyz");
    }

    #[test]
    fn redaction_replaces_merged_ranges_and_keeps_the_rest() {
        assert_eq!(redact("abcdefghij", &[(2, 4), (3, 6)], "#"), "ab#ghij");
        assert_eq!(redact("abcdefghij", &[(8, 10), (0, 1)], "#"), "#bcdefgh#");
        assert_eq!(redact("abcdefghij", &[(2, 4), (4, 6)], "#"), "ab#ghij");
        assert_eq!(redact("héllo wörld", &[(1, 2), (7, 8)], "*"), "h*llo w*rld");
        assert_eq!(redact("abc", &[], "#"), "abc");
        assert_eq!(redact("abc", &[(1, 99)], "#"), "a#");
    }

    /// Every character outside the ranges survives, in order; none inside does.
    #[test]
    fn redaction_against_brute_force() {
        let text: Vec<char> = "the quick brown fox jumps over the lazy dog"
            .chars()
            .collect();
        let s: String = text.iter().collect();
        let mut seed = 7u64;
        for _ in 0..500 {
            let mut ranges = Vec::new();
            for _ in 0..(seed % 4) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let a = (seed >> 33) as usize % text.len();
                let b = a + (seed >> 50) as usize % 10;
                ranges.push((a, b.min(text.len())));
            }
            seed = seed.wrapping_add(1);
            let kept: String = text
                .iter()
                .enumerate()
                .filter(|(i, _)| !ranges.iter().any(|&(a, b)| a <= *i && *i < b))
                .map(|(_, c)| *c)
                .collect();
            let out = redact(&s, &ranges, "\u{1}");
            assert_eq!(out.replace('\u{1}', ""), kept, "{ranges:?}");
        }
    }
}
