//! Span search on the adversarial corpus: the maximal spans of any text equal the brute-force
//! definition (texts up to 300 bytes, min lengths 1-64), the runs expand to exactly those
//! spans, the index with a sparse suffix array finds the same spans from its minimum length on,
//! and a whole report within a span cap never panics and stays within its cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memaudit::budget::Budget;
use memaudit::index::SpanOptions;
use memaudit_fuzz::{brute_force_spans, index, sparse_index, Choices};

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let min_len = 1 + c.below(64);
    let max_spans = 1 + c.below(50);
    let text = c.rest();
    let index = index();
    let mapped = index.normalizer.normalize_mapped(&text);
    let t = mapped.text.as_bytes();
    let found = index.maximal_runs(t, min_len, &Budget::unlimited());
    assert_eq!(
        found.checked,
        t.len(),
        "an unlimited search checks the whole text"
    );
    let spans = found.runs.spans();
    if t.len() <= 300 {
        assert_eq!(spans, brute_force_spans(index, t, min_len), "text {text:?}");
    }
    // A sparse suffix array finds the same spans, from its minimum span length on.
    let sparse = sparse_index();
    if min_len >= sparse.min_span_chars() {
        let found = sparse.maximal_runs(t, min_len, &Budget::unlimited());
        assert_eq!(found.runs.spans(), spans, "sparse, text {text:?}");
    }
    // Each run's members are its first shifted by the period, with the same bytes.
    for r in &found.runs.runs {
        let first = &t[r.start..r.end];
        for (a, b) in r.members() {
            assert_eq!(&t[a..b], first);
        }
    }
    // The whole report, within a cap of spans.
    let budget = Budget::new(None, max_spans);
    let opts = SpanOptions {
        min_len,
        budget: Some(&budget),
        ..SpanOptions::default()
    };
    let report = index.spans(&text, &opts);
    assert!(report.spans.len() <= max_spans + 1);
    for s in &report.spans {
        assert!(s.start < s.end && s.end <= mapped.input_chars, "{s:?}");
        assert!(s.repeats >= 1);
    }
    if report.incomplete.is_none() {
        let unlimited = index.spans(
            &text,
            &SpanOptions {
                min_len,
                ..SpanOptions::default()
            },
        );
        assert_eq!(report.spans, unlimited.spans);
    }
});
