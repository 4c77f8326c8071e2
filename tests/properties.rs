//! Span queries equal a brute-force definition, on random and adversarial corpora and texts.
//!
//! The reference works from the definition, not from the index's algorithm: `b(a)` is the furthest
//! character boundary such that `text[a..b(a)]` occurs inside one (normalized) document, found by
//! comparing against every document position; the span at `a` is maximal when it is long enough and
//! the previous start does not reach as far (`b(prev(a)) < b(a)`), i.e. it cannot be extended left.

mod common;

use memaudit::budget::Budget;
use memaudit::corpus::normalize::Normalization;
use memaudit::corpus::normalize::Normalizer;
use memaudit::index::read::incremental::Incremental;
use memaudit::index::read::search::Runs;
use memaudit::index::write::build::SaAlgorithm;
use memaudit::index::{Index, SpanOptions};
use proptest::prelude::*;

fn lcp(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn is_start(t: &[u8], i: usize) -> bool {
    i >= t.len() || (t[i] & 0xC0) != 0x80
}

/// Reference maximal spans (byte ranges of normalized `t`) over normalized `docs`.
fn reference(docs: &[String], t: &[u8], min_chars: usize) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = (0..t.len()).filter(|&i| is_start(t, i)).collect();
    let reach = |a: usize| {
        let mut best = 0;
        for d in docs {
            let d = d.as_bytes();
            for k in 0..d.len() {
                best = best.max(lcp(&t[a..], &d[k..]));
            }
        }
        let mut e = a + best;
        while !is_start(t, e) {
            e -= 1;
        }
        e
    };
    let ends: Vec<usize> = starts.iter().map(|&a| reach(a)).collect();
    let chars = |a: usize, b: usize| t[a..b].iter().filter(|&&c| (c & 0xC0) != 0x80).count();
    let mut out = Vec::new();
    for (i, &a) in starts.iter().enumerate() {
        let b = ends[i];
        if b > a && chars(a, b) >= min_chars && (i == 0 || ends[i - 1] < b) {
            out.push((a, b));
        }
    }
    out
}

fn count_naive(docs: &[String], p: &str) -> u64 {
    docs.iter()
        .map(|d| {
            (0..d.len())
                .filter(|&k| d.as_bytes()[k..].starts_with(p.as_bytes()))
                .count() as u64
        })
        .sum()
}

/// Checks `spans` on `text` against the reference, including counts and provenance.
fn check_against_reference(index: &Index, raw_docs: &[String], text: &str, min_len: usize) {
    let n = Normalizer::new(Normalization::default());
    let docs: Vec<String> = raw_docs
        .iter()
        .map(|d| n.normalize(d))
        .filter(|d| !d.is_empty())
        .collect();
    let t = n.normalize(text);
    let want = reference(&docs, t.as_bytes(), min_len);
    let got = index.maximal_spans(t.as_bytes(), min_len);
    assert_eq!(got, want, "text {text:?} min_len {min_len} docs {docs:?}");
    // The search's runs are the brute-force spans grouped by the definition's rule.
    let mut grouped = Runs::default();
    for &(a, b) in &want {
        grouped.push(t.as_bytes(), a, b);
    }
    let found = index.maximal_runs(t.as_bytes(), min_len, &Budget::unlimited());
    assert_eq!(found.runs, grouped, "text {text:?} min_len {min_len}");
    assert_eq!(found.checked, t.len());

    let report = index.spans(
        text,
        &SpanOptions {
            min_len,
            max_hits: 100,
            tokens: None,
            budget: None,
        },
    );
    assert_eq!(report.spans.len(), grouped.runs.len());
    assert!(report.incomplete.is_none());
    for (s, r) in report.spans.iter().zip(&grouped.runs) {
        let matched = &t[r.start..r.end];
        assert_eq!(s.text, matched);
        assert_eq!(s.repeats, r.repeats);
        assert_eq!(s.count, count_naive(&docs, matched), "count of {matched:?}");
        assert_eq!(s.hits.len() as u64, s.count.min(100));
        for h in &s.hits {
            let shard = &index.shards[h.shard as usize];
            let local = h.doc - shard.entry.first_doc;
            let doc = shard.doc_text(local);
            assert!(
                doc[h.offset as usize..].starts_with(matched.as_bytes()),
                "hit {h:?}"
            );
        }
        assert!(s.start < s.end && s.end <= report.text_chars);
    }
    assert!(report.coverage >= 0.0 && report.coverage <= 1.0);
}

/// Text made of pieces of documents glued together (each from a point `seed` picks): matches
/// at document edges.
fn glued(docs: &[String], seed: u64) -> String {
    docs.iter()
        .enumerate()
        .map(|(i, d)| {
            let c: Vec<char> = d.chars().collect();
            let k = (seed as usize + i) % c.len();
            c[k..].iter().collect::<String>()
        })
        .collect()
}

/// [`check_against_reference`] on `queries`, on [`glued`] pieces of the documents, on every
/// document in full, and on all documents concatenated (longer than any document).
fn check_corpus_texts(
    index: &Index,
    docs: &[String],
    queries: &[String],
    seed: u64,
    min_len: usize,
) {
    for q in queries {
        check_against_reference(index, docs, q, min_len);
    }
    check_against_reference(index, docs, &glued(docs, seed), min_len);
    for d in docs {
        check_against_reference(index, docs, d, min_len);
    }
    check_against_reference(index, docs, &docs.concat(), min_len);
}

fn doc_strategy(alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 1..40).prop_map(|v| v.concat())
}

/// Small alphabets make long repeats likely; multi-byte characters, combining marks and whitespace
/// runs exercise char boundaries and normalization.
const ALPHABET: &[&str] = &[
    "a", "b", "ab", " ", "  ", "é", "e\u{301}", "日本", "\t", "ba", "aaa",
];

/// Characters no document holds: text made of them is novel.
const NOVEL: &[&str] = &["x", "yz", "Ω", "q ", "ü"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn spans_equal_brute_force(
        docs in prop::collection::vec(doc_strategy(ALPHABET), 1..8),
        queries in prop::collection::vec(doc_strategy(ALPHABET), 1..6),
        shard_bytes in 250u64..1000,
        min_len in 1usize..12,
        seed in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = common::index_of(dir.path(), &docs, shard_bytes, SaAlgorithm::Libsais);
        check_corpus_texts(&index, &docs, &queries, seed, min_len);
        // Without the presence filter and search samples (every shard searched whole): the
        // same answers.
        let plain = Index::open(dir.path().join("index")).unwrap().without_filter();
        for q in queries.iter().chain(&docs) {
            check_against_reference(&plain, &docs, q, min_len);
        }
    }

    /// A text pushed in pieces has the spans of the whole text, after every piece.
    /// Quotes of the corpus among novel text, as production sees them: the presence filter's
    /// segments decide what is searched (minimum spans at or above its reach), and the answers
    /// equal the definition's; below its reach everything is searched, with the same answers.
    #[test]
    fn quotes_among_novel_text_equal_brute_force(
        docs in prop::collection::vec(doc_strategy(ALPHABET), 1..8),
        pieces in prop::collection::vec((doc_strategy(NOVEL), any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0usize..60), 1..6),
        shard_bytes in 250u64..1000,
        min_len in 4usize..14,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = common::index_of(dir.path(), &docs, shard_bytes, SaAlgorithm::Libsais);
        let reach = index.presence.as_ref().map(|p| p.params.reach()).unwrap();
        let mut text = String::new();
        for (novel, doc, at, len) in &pieces {
            text.push_str(novel);
            let d: Vec<char> = doc.get(&docs).chars().collect();
            let a = at.index(d.len());
            text.extend(&d[a..(a + len).min(d.len())]);
        }
        check_against_reference(&index, &docs, &text, min_len);
        let t = Normalizer::new(Normalization::default()).normalize(&text);
        prop_assert_eq!(index.filter_segments(t.as_bytes(), min_len).is_some(), min_len >= reach);
    }

    /// A sparse suffix array (every `step`-th suffix) gives the definition's spans, counts and
    /// provenance for every minimum span of at least `2 step - 1` characters; a shorter
    /// minimum is raised to that and reported; a growing text has the whole text's spans.
    #[test]
    fn sparse_arrays_answer_like_the_definition(
        docs in prop::collection::vec(doc_strategy(ALPHABET), 1..8),
        queries in prop::collection::vec(doc_strategy(ALPHABET), 1..5),
        shard_bytes in 250u64..1000,
        step in 2u32..6,
        extra in 0usize..8,
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = common::sparse_index_of(dir.path(), &docs, shard_bytes, SaAlgorithm::Libsais, step);
        let min_len = 2 * step as usize - 1 + extra;
        prop_assert_eq!(index.min_span_chars(), 2 * step as usize - 1);
        check_corpus_texts(&index, &docs, &queries, seed, min_len);
        let glued = glued(&docs, seed);
        let plain = Index::open(dir.path().join("index")).unwrap().without_filter();
        check_against_reference(&plain, &docs, &glued, min_len);
        check_incremental(&index, &glued, &cuts, min_len);
        // A minimum below what the array can answer is raised, and the report says so.
        let report = index.spans(&glued, &SpanOptions { min_len: 1, ..SpanOptions::default() });
        prop_assert_eq!(report.min_len, index.min_span_chars());
    }

    #[test]
    fn growing_text_spans_equal_whole_text_spans(
        docs in prop::collection::vec(doc_strategy(ALPHABET), 1..8),
        noise in prop::collection::vec(doc_strategy(ALPHABET), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        min_len in 1usize..12,
        seed in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = common::index_of(dir.path(), &docs, 400, SaAlgorithm::Libsais);
        // Pieces of documents between novel text: spans start, grow across pieces and end.
        let mut text = String::new();
        for (i, d) in docs.iter().enumerate() {
            let c: Vec<char> = d.chars().collect();
            let k = (seed as usize + i) % c.len();
            text.extend(&c[k..]);
            text.push_str(&noise[i % noise.len()]);
        }
        check_incremental(&index, &text, &cuts, min_len);
        // One character at a time.
        let every: Vec<usize> = (0..text.len()).collect();
        check_incremental(&index, &text, &every, min_len);
    }
}

/// Pushes `text` into an [`Incremental`] in pieces cut at `cuts` (byte positions, moved to char
/// boundaries) and checks that the spans equal the whole text's, after every piece too (the
/// spans of a prefix are what a whole-text query of that prefix finds).
fn check_incremental(index: &Index, text: &str, cuts: &[usize], min_len: usize) {
    let opts = SpanOptions {
        min_len,
        max_hits: 100,
        tokens: None,
        budget: None,
    };
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|&c| {
            let mut c = c % (text.len() + 1);
            while !text.is_char_boundary(c) {
                c -= 1;
            }
            c
        })
        .collect();
    bounds.push(text.len());
    bounds.sort_unstable();
    let mut inc = Incremental::new();
    let mut from = 0;
    for &b in &bounds {
        inc.push(index, &text[from..b], &opts);
        from = b;
        let got = inc.report(index, &opts);
        let want = index.spans(&text[..b], &opts);
        assert_eq!(got, want, "prefix {:?}", &text[..b]);
    }
}

#[test]
fn adversarial_cases() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = vec![
        "a".repeat(300),
        "ab".repeat(100),
        "日本語のテキスト日本語".into(),
        "x y z end".into(),
        "é".repeat(20),
    ];
    let index = common::index_of(dir.path(), &docs, 320, SaAlgorithm::Libsais);
    assert!(
        index.shards.len() > 1,
        "documents spread over several shards"
    );
    for text in [
        String::new(),
        "a".into(),
        "a".repeat(1000),
        "ab".repeat(500) + "a",
        "b".repeat(10),
        "日本語".into(),
        "本語のテ".into(),
        "x y z endx y z end".into(),
        "e\u{301}".repeat(30),
        docs.concat(),
        " \t\n ".into(),
    ] {
        for min_len in [1, 2, 5, 50, 400] {
            check_against_reference(&index, &docs, &text, min_len);
        }
    }
}

/// A streamed output that ends in a long run of whitespace after a quote: each push of more
/// whitespace keeps the spans the whole text has (the quote's span ends with the run's space, so
/// its end moves with the run).
#[test]
fn whitespace_pushed_after_a_quote_keeps_whole_text_spans() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = vec!["the quick brown fox jumps over the lazy dog and then".into()];
    let index = common::index_of(dir.path(), &docs, 1 << 20, SaAlgorithm::Libsais);
    let opts = SpanOptions {
        min_len: 10,
        ..SpanOptions::default()
    };
    let mut inc = Incremental::new();
    let mut text = String::from("novel start: the quick brown fox jumps");
    inc.push(&index, &text, &opts);
    for piece in [
        " ",
        "\n\n",
        "\t \u{a0}",
        " ",
        "\n",
        "over the lazy",
        "   ",
        "\n\n\n",
    ] {
        for _ in 0..50 {
            inc.push(&index, piece, &opts);
            text.push_str(piece);
            assert_eq!(
                inc.report(&index, &opts),
                index.spans(&text, &opts),
                "{text:?}"
            );
        }
    }
}

/// Periodic text streamed in pieces (a model repeating one token or line): the spans, kept as
/// runs while they arrive, equal the whole text's after every piece; loose combining marks have
/// no restart point, so a push drops more members than it keeps ends of and matches again.
#[test]
fn periodic_text_pushed_in_pieces_keeps_whole_text_spans() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = vec![
        "*".repeat(72),
        "=-".repeat(36),
        "the cat sat on the mat. ".repeat(3),
        "\u{301}".repeat(40),
    ];
    let index = common::index_of(dir.path(), &docs, 1 << 20, SaAlgorithm::Libsais);
    for (unit, min_len, piece) in [
        ("*", 10, 1),
        ("*", 50, 7),
        ("=-", 20, 3),
        ("the cat sat on the mat. ", 30, 5),
        ("\u{301}", 5, 2),
        ("\u{301}", 5, 600),
    ] {
        let opts = SpanOptions {
            min_len,
            ..SpanOptions::default()
        };
        let text = unit.repeat(2000 / unit.len() + 1);
        let chars: Vec<char> = text.chars().collect();
        let mut inc = Incremental::new();
        let mut so_far = String::new();
        for p in chars.chunks(piece) {
            let p: String = p.iter().collect();
            inc.push(&index, &p, &opts);
            so_far.push_str(&p);
            assert_eq!(
                inc.report(&index, &opts),
                index.spans(&so_far, &opts),
                "{unit:?} min {min_len} after {} chars",
                so_far.chars().count()
            );
        }
        assert!(
            inc.spans().len() <= 3,
            "{unit:?}: {} spans",
            inc.spans().len()
        );
    }
}

/// An output open across a new index generation is matched on the new one: after its next chunk,
/// and at its end with no chunk after the swap, its spans are those of the whole text on the new
/// generation (an addition's passage found; after a takedown, gone).
#[test]
fn an_output_open_across_a_swap_is_matched_on_the_new_generation() {
    use memaudit::analyze::{Analyzer, Options};
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let quote = "four score and seven years ago our fathers brought forth on this continent";
    let other = "a different document about the rolling hills of the countryside in spring";
    let open_a = || Index::open(dir_a.path().join("index")).unwrap();
    common::index_of(
        dir_a.path(),
        &[other.to_string()],
        1 << 20,
        SaAlgorithm::Libsais,
    );
    common::index_of(
        dir_b.path(),
        &[other.to_string(), quote.to_string()],
        1 << 20,
        SaAlgorithm::Libsais,
    );
    let open_b = || Index::open(dir_b.path().join("index")).unwrap();
    let options = Options {
        min_chars: 20,
        ..Options::default()
    };
    let analyzer = Analyzer::new(open_a(), None, None, options).unwrap();
    let text = format!("novel words first, then {quote} and after it: {other}. the end");
    let (first, rest) = text.split_at(40);
    let spans_of = |inc: &Incremental| analyzer.report_parts(std::slice::from_ref(inc), true).spans;

    // The next chunk after the addition finds the quote.
    let mut inc = Incremental::new();
    analyzer.push(&mut inc, first);
    analyzer.replace_index(open_b());
    analyzer.push(&mut inc, rest);
    let on_b = analyzer.spans(&text).spans;
    assert!(
        on_b.iter().any(|s| s.text.contains("four score")),
        "{on_b:?}"
    );
    assert_eq!(spans_of(&inc), on_b);

    // No chunk after the takedown: the end's report is the new generation's.
    analyzer.replace_index(open_a());
    let on_a = analyzer.spans(&text).spans;
    assert!(
        !on_a.iter().any(|s| s.text.contains("four score")),
        "{on_a:?}"
    );
    assert_eq!(spans_of(&inc), on_a);

    // Everything pushed on one generation, ended on another.
    let mut inc = Incremental::new();
    analyzer.push(&mut inc, first);
    analyzer.push(&mut inc, rest);
    analyzer.replace_index(open_b());
    assert_eq!(spans_of(&inc), on_b);
}

/// Periodic texts against corpora holding shorter runs of them (a model repeating one token or
/// line; a corpus with `*****` and `=-=-=-` rulers): the search skips the periodic stretches,
/// and its spans, expanded from runs, still equal the brute force, whatever the number of phases
/// per period (`ab` and `ba` runs of different lengths make two spans per period).
#[test]
fn periodic_texts_equal_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = vec![
        "*".repeat(72),
        "ab".repeat(36),
        "ba".repeat(30) + "b",
        "the cat sat on the mat".into(),
        "=-".repeat(20) + "=",
        "日本".repeat(25),
        "xyz ".repeat(15),
        "aabaabaa".into(),
        "abaabaaba".into(),
        "+-".repeat(24) + " the end of a ruler, long enough to count",
        // Loose combining marks, two bytes each, alternating.
        "\u{301}\u{300}".repeat(20),
    ];
    let index = common::index_of(dir.path(), &docs, 200, SaAlgorithm::Libsais);
    for text in [
        "*".repeat(700),
        "ab".repeat(300),
        "ba".repeat(300) + "!",
        "the cat sat on the mat ".repeat(30),
        "=-".repeat(300),
        "日本".repeat(200),
        "xyz ".repeat(150),
        "aab".repeat(200),
        // A corpus run shorter than the minimum span, then what does occur.
        "+-".repeat(400) + " the end of a ruler, long enough to count",
        "+-".repeat(400) + "the cat sat on the mat",
        format!("{}novel words here{}", "*".repeat(300), "ab".repeat(200)),
        // Found by fuzzing (fuzz/regressions/span_search): a periodic stretch of two-byte
        // characters whose last member's match compared a byte of the character after the
        // stretch; the skip once repeated that member past where the text stops repeating.
        format!("{}{}", "\u{301}".repeat(3), "\u{300}\u{301}"),
        format!("{}{}", "\u{301}".repeat(9), "\u{300}\u{301}".repeat(6)),
    ] {
        for min_len in [1, 2, 5, 20, 50] {
            check_against_reference(&index, &docs, &text, min_len);
        }
    }
    // A long periodic text costs a few entries, not one per position.
    let t = "*".repeat(100_000);
    let found = index.maximal_runs(t.as_bytes(), 50, &Budget::unlimited());
    assert_eq!(found.runs.runs.len(), 1, "{:?}", found.runs.runs);
    assert_eq!(found.runs.runs[0].repeats, 100_000 - 72 + 1);
}

/// A budget stops the search with what was found before it, and says how far it got.
#[test]
fn a_budget_stops_the_search_and_reports_how_far_it_got() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = (0..200)
        .map(|i| format!("document {i} reads {}", "word ".repeat(i % 13 + 10)))
        .collect();
    let index = common::index_of(dir.path(), &docs, 1 << 20, SaAlgorithm::Libsais);
    let text: String = docs
        .iter()
        .map(|d| format!("{d} | novel {} |", d.len()))
        .collect();
    let full = index.spans(
        &text,
        &SpanOptions {
            min_len: 20,
            ..SpanOptions::default()
        },
    );
    assert!(full.incomplete.is_none() && full.spans.len() > 100);
    // A cap of 10 spans: the first 10 (and one more) found, and the text checked up to there.
    let budget = Budget::new(None, 10);
    let capped = index.spans(
        &text,
        &SpanOptions {
            min_len: 20,
            budget: Some(&budget),
            ..SpanOptions::default()
        },
    );
    let inc = capped.incomplete.expect("stopped by the cap");
    assert_eq!(inc.reason, memaudit::budget::Stop::Spans);
    assert_eq!(capped.spans.len(), 11);
    assert_eq!(capped.spans[..], full.spans[..11]);
    assert!(
        inc.checked_chars > capped.spans[10].start && inc.checked_chars <= full.spans[11].start
    );
    // Cancelled before it starts: nothing found, nothing checked.
    let budget = Budget::unlimited();
    budget.cancel();
    let none = index.spans(
        &text,
        &SpanOptions {
            min_len: 20,
            budget: Some(&budget),
            ..SpanOptions::default()
        },
    );
    assert!(none.spans.is_empty());
    assert_eq!(
        none.incomplete.map(|i| (i.checked_chars, i.reason)),
        Some((0, memaudit::budget::Stop::Cancelled))
    );
}

#[test]
fn suffix_crate_and_libsais_agree() {
    let docs: Vec<String> = (0..50)
        .map(|i| format!("document {i} says {} and then", "la ".repeat(i % 7)))
        .collect();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let a = common::index_of(d1.path(), &docs, 1 << 20, SaAlgorithm::Libsais);
    let b = common::index_of(d2.path(), &docs, 1 << 20, SaAlgorithm::Suffix);
    assert_eq!(
        a.manifest.shards[0].sa.blake3,
        b.manifest.shards[0].sa.blake3
    );
    check_against_reference(&b, &docs, "document 3 says la la la and then document 4", 5);
}

#[test]
fn counts_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<String> = (0..40)
        .map(|i| format!("common phrase number {}", i % 4))
        .collect();
    let index = common::index_of(dir.path(), &docs, 100, SaAlgorithm::Libsais);
    assert!(index.shards.len() >= 4);
    assert_eq!(index.count("common phrase"), 40);
    assert_eq!(index.count("phrase number 3"), 10);
    assert_eq!(
        index.count("common  phrase\n number 3"),
        10,
        "queries are normalized like the corpus"
    );
    assert_eq!(index.count("number 3common"), 0, "never across documents");
    assert_eq!(index.count(""), 0);
}
