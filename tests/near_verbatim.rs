//! Near-verbatim spans against brute force: passages of a small corpus copied with words changed
//! are found, each reported edit count is the Levenshtein distance (computed here by the full
//! dynamic programme) between the text and the document passage it names, and novel text gives
//! nothing. Folding undoes zero-width, look-alike and punctuation disguises.

mod common;

use memaudit::budget::Budget;
use memaudit::corpus::fold::fold;
use memaudit::corpus::normalize::{Normalization, Normalizer};
use memaudit::index::read::near::{edit_distance, NearOptions};
use memaudit::index::write::build::SaAlgorithm;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A pseudo-word of 2 to 9 letters.
fn word(rng: &mut StdRng) -> String {
    let n = rng.random_range(2..10);
    (0..n)
        .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
        .collect()
}

fn words(rng: &mut StdRng, n: usize) -> Vec<String> {
    (0..n).map(|_| word(rng)).collect()
}

/// The full edit distance, by the textbook dynamic programme over the whole strings.
fn reference_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            d[i][j] = (d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]))
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
        }
    }
    d[a.len()][b.len()]
}

#[test]
fn edited_copies_are_found_with_their_true_edit_count_and_novel_text_is_not() {
    let mut rng = StdRng::seed_from_u64(3);
    let docs: Vec<String> = (0..40).map(|_| words(&mut rng, 300).join(" ")).collect();
    let dir = tempfile::tempdir().unwrap();
    let index = common::index_of(dir.path(), &docs, 64 << 10, SaAlgorithm::Libsais);
    let norm = Normalizer::new(Normalization::default());
    let opts = NearOptions::default();
    let (mut found, mut tried) = (0, 0);
    for every in [10usize, 20, 50] {
        for _ in 0..30 {
            // About 300 characters of a document, one word in `every` replaced.
            let d = rng.random_range(0..docs.len());
            let w: Vec<&str> = docs[d].split(' ').collect();
            let start = rng.random_range(0..w.len() - 80);
            let mut passage = Vec::new();
            let mut len = 0;
            for x in &w[start..] {
                if len >= 300 {
                    break;
                }
                passage.push(x.to_string());
                len += x.len() + 1;
            }
            let original = passage.join(" ");
            let offset = rng.random_range(0..every);
            for (k, p) in passage.iter_mut().enumerate() {
                if k % every == offset {
                    *p = word(&mut rng);
                }
            }
            let edited = passage.join(" ");
            let text = format!(
                "{} {edited} {}",
                words(&mut rng, 8).join(" "),
                words(&mut rng, 8).join(" ")
            );
            let mapped = norm.normalize_mapped(&text);
            let near = index.near_spans(&mapped, &opts, &Budget::unlimited());
            // One pass for both gives the exact spans of the exact query, and the same near ones.
            let span_opts = memaudit::index::SpanOptions::default();
            let both = index.spans_and_near(&text, &span_opts, &opts);
            assert_eq!(both.spans, index.spans(&text, &span_opts).spans);
            assert_eq!(both.near, near);
            tried += 1;
            let at = text.find(&edited).unwrap();
            let (lo, hi) = (at, at + edited.len()); // ASCII: bytes are characters
                                                    // At each end, a run of unchanged words shorter than a seed and the changed word
                                                    // after it (at most 9 letters and a space) cannot be seeded, so may lie outside.
            let slack = opts.seed_chars + 10;
            let covering = near
                .iter()
                .find(|s| s.start <= lo + slack && s.end + slack >= hi && s.hit.doc == d as u64);
            // Found: a near span covers the passage, or (no word of it changed, or only one at
            // an end) an exact span does.
            let exact = index.maximal_spans(mapped.text.as_bytes(), 50);
            if covering.is_some()
                || exact
                    .iter()
                    .any(|&(a, b)| a <= lo + slack && b + slack >= hi)
            {
                found += 1;
            }
            for s in &near {
                // The passage is the document's text at the offset named.
                let doc = docs[s.hit.doc as usize].as_bytes();
                let off = s.hit.offset as usize;
                assert_eq!(&doc[off..off + s.passage.len()], s.passage.as_bytes());
                // The edit count is the true distance between what the text and the passage
                // hold there (the seeds' alignment is optimal for separated word changes).
                let q: String = text.chars().skip(s.start).take(s.end - s.start).collect();
                let truth = reference_distance(&q, &s.passage);
                assert_eq!(s.edits, truth, "{q:?} vs {:?}", s.passage);
                assert_eq!(edit_distance(&q, &s.passage), truth);
                let sim = 1.0 - truth as f64 / s.len_chars.max(s.doc_chars) as f64;
                assert!((s.similarity - sim).abs() < 1e-12);
                assert!(s.similarity >= opts.min_similarity && s.seeds >= 2);
            }
            let _ = original;
        }
    }
    assert!(found * 100 >= tried * 95, "found {found} of {tried}");
    // Novel text: nothing near-verbatim.
    for _ in 0..300 {
        let text = words(&mut rng, 60).join(" ");
        let near = index.near_spans(&norm.normalize_mapped(&text), &opts, &Budget::unlimited());
        assert!(near.is_empty(), "{text:?}: {near:?}");
    }
}

#[test]
fn folding_undoes_disguises_before_matching() {
    let mut rng = StdRng::seed_from_u64(9);
    let docs: Vec<String> = (0..10).map(|_| words(&mut rng, 200).join(" ")).collect();
    let dir = tempfile::tempdir().unwrap();
    let index = common::index_of(dir.path(), &docs, 64 << 10, SaAlgorithm::Libsais);
    let copy: String = docs[4].chars().skip(100).take(200).collect();
    // Zero-width spaces after every word, Cyrillic look-alikes for a and o, fullwidth e.
    let disguised: String = copy
        .chars()
        .map(|c| match c {
            ' ' => " \u{200B}".to_string(),
            'a' => "\u{0430}".to_string(),
            'o' => "\u{043E}".to_string(),
            'e' => "\u{FF45}".to_string(),
            c => c.to_string(),
        })
        .collect();
    let opts = memaudit::index::SpanOptions::default();
    assert!(
        index.spans(&disguised, &opts).spans.is_empty(),
        "the disguise defeats plain matching"
    );
    let f = fold(&disguised);
    let report = index.spans(&f.text, &opts);
    assert_eq!(report.spans.len(), 1, "{report:?}");
    let s = &report.spans[0];
    let (a, b) = f.original_range(s.start, s.end);
    assert!(a <= 2 && b + 2 >= disguised.chars().count(), "{a}..{b}");
}

/// Folding never costs a verbatim match: a corpus can hold curly quotes, Cyrillic words and
/// mathematical letters itself, and a copy of such a document is found with folding on as with
/// it off, beside disguised copies of plain documents.
#[test]
fn folding_keeps_the_verbatim_matches_of_a_corpus_that_holds_what_it_folds() {
    use memaudit::analyze::{Analyzer, Options};
    let mut rng = StdRng::seed_from_u64(21);
    let mut docs: Vec<String> = (0..6).map(|_| words(&mut rng, 120).join(" ")).collect();
    docs.push(format!(
        "\u{201C}{}\u{201D} \u{2014} {}\u{2026}",
        words(&mut rng, 30).join(" "),
        words(&mut rng, 30).join(" ")
    ));
    docs.push(
        "Мороз и солнце; день чудесный! Еще ты дремлешь, друг прелестный — пора, красавица, проснись: открой сомкнуты негой взоры навстречу северной Авроры, звездою севера явись!"
            .to_string(),
    );
    docs.push(format!("𝘈𝘣𝘤 𝘥𝘦𝘧 {} 𝘨𝘩𝘪", words(&mut rng, 40).join(" ")));
    let dir = tempfile::tempdir().unwrap();
    let index = common::index_of(dir.path(), &docs, 64 << 10, SaAlgorithm::Libsais);
    let folding = Analyzer::new(
        index,
        None,
        None,
        Options {
            fold: true,
            near: Some(NearOptions::default()),
            ..Options::default()
        },
    )
    .unwrap();
    for d in &docs[6..] {
        let report = folding.spans(d);
        assert!(report.folded);
        let n = d.chars().count();
        assert_eq!(report.spans.len(), 1, "{d}: {report:?}");
        assert_eq!((report.spans[0].start, report.spans[0].end), (0, n), "{d}");
        assert_eq!(report.covered_chars, n);
    }
    // A disguised copy of a plain document is still found, in the original's characters.
    let copy: String = docs[2].chars().take(200).collect();
    let disguised: String = copy
        .chars()
        .map(|c| match c {
            ' ' => " \u{200B}".to_string(),
            'o' => "\u{043E}".to_string(),
            c => c.to_string(),
        })
        .collect();
    let report = folding.spans(&disguised);
    assert_eq!(report.spans.len(), 1, "{report:?}");
    let n = disguised.chars().count();
    assert!(report.spans[0].start <= 1 && report.spans[0].end + 1 >= n);
}

/// Boilerplate: a passage whose seeds occur in many documents (a licence copied into 200 files)
/// is still chained, once, naming one of them.
#[test]
fn an_edited_copy_of_boilerplate_found_in_many_documents_is_one_near_span() {
    let mut rng = StdRng::seed_from_u64(5);
    let licence = words(&mut rng, 80).join(" ");
    let docs: Vec<String> = (0..200)
        .map(|_| format!("{} {licence} {}", word(&mut rng), word(&mut rng)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let index = common::index_of(dir.path(), &docs, 1 << 20, SaAlgorithm::Libsais);
    let mut w: Vec<String> = licence.split(' ').map(String::from).collect();
    for k in (4..w.len()).step_by(10) {
        w[k] = "CHANGED".to_string();
    }
    let edited = w.join(" ");
    let norm = Normalizer::new(Normalization::default());
    let near = index.near_spans(
        &norm.normalize_mapped(&edited),
        &NearOptions::default(),
        &Budget::unlimited(),
    );
    assert_eq!(near.len(), 1, "{near:?}");
    assert!(near[0].len_chars * 10 >= edited.len() * 8, "{near:?}");
    assert!(near[0].hit.doc < 200);
    // Left out when its seeds are commoner than the bound.
    let bounded = NearOptions {
        max_seed_hits: 100,
        ..NearOptions::default()
    };
    assert!(index
        .near_spans(
            &norm.normalize_mapped(&edited),
            &bounded,
            &Budget::unlimited()
        )
        .is_empty());
}
