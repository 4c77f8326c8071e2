//! Near-verbatim chaining on the adversarial corpus, with small seeds so that almost any text
//! has many: never a panic, every near span inside the text with a similarity in range and at
//! least the configured one, and the same answer whether the exact runs are given or found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memaudit::budget::Budget;
use memaudit::index::read::near::NearOptions;
use memaudit_fuzz::{index, Choices};

fuzz_target!(|data: &[u8]| {
    let mut c = Choices::new(data);
    let opts = NearOptions {
        seed_chars: 2 + c.below(30),
        max_gap: c.below(64),
        min_chars: 1 + c.below(80),
        min_similarity: c.below(101) as f64 / 100.0,
        max_seed_hits: 1 + c.below(2000),
    };
    let text = c.rest();
    let index = index();
    let mapped = index.normalizer.normalize_mapped(&text);
    let near = index.near_spans(&mapped, &opts, &Budget::unlimited());
    for s in &near {
        assert!(s.start < s.end && s.end <= mapped.input_chars, "{s:?}");
        assert!((0.0..=1.0).contains(&s.similarity), "{s:?}");
        assert!(s.similarity + 1e-9 >= opts.min_similarity, "{s:?}");
        assert!(s.len_chars >= opts.min_chars, "{s:?}");
        assert!(s.seeds >= 1);
    }
    let runs = index
        .maximal_runs(
            mapped.text.as_bytes(),
            opts.seed_chars,
            &Budget::unlimited(),
        )
        .runs;
    let from_runs = index.near_spans_from(&mapped, &runs.runs, &opts, &Budget::unlimited());
    assert_eq!(near.len(), from_runs.len());
});
