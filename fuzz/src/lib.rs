//! What the fuzz targets share: a small adversarial corpus indexed once per process, and a reader
//! that turns the fuzzer's bytes into choices.
//!
//! The corpus holds what makes span search and chaining work hard: runs of one character and of
//! two (`*`, `=-`), a word said over and over, a letter with a combining accent, a run of
//! combining marks alone, CJK, Hangul jamo, whitespace of every kind, text with a NUL, and real
//! prose (the demo corpus), so that any text the fuzzer writes has long periodic matches,
//! normalization that composes and collapses, and ordinary copied passages to find.

use memaudit::analyze::{Analyzer, Options};
use memaudit::corpus::normalize::Normalization;
use memaudit::index::write::build::{build, BuildOptions, SaAlgorithm};
use memaudit::index::Index;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The documents of the adversarial corpus.
pub fn documents() -> Vec<String> {
    let mut docs = vec![
        "*".repeat(72),
        "=-".repeat(36),
        "-".repeat(72),
        "the ".repeat(20),
        "e\u{301}".repeat(36),
        format!("a{}", "\u{301}\u{300}\u{327}".repeat(20)),
        "日本語".repeat(24),
        "\u{1100}\u{1161}\u{11a8}".repeat(20),
        "ab".repeat(30) + &"aab".repeat(10),
        "word \t\n  word\r\n\u{a0}\u{2003}word   ".repeat(6),
        "a line with a NUL \0 inside it, and then more words after it".into(),
        "ǅemal ﬁre Ａｌｐｈａ ⅸ K Å ß ΣΑΣ".into(),
    ];
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/demo/corpus");
    let mut names: Vec<PathBuf> = std::fs::read_dir(demo)
        .expect("data/demo/corpus")
        .map(|e| e.expect("a demo file").path())
        .collect();
    names.sort();
    for p in names {
        docs.push(std::fs::read_to_string(&p).expect("a demo document"));
    }
    docs
}

/// The adversarial corpus, indexed (once per process) in a directory of its own under the
/// system's temporary directory, with the daemon's default normalization.
pub fn index_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_index("full", &documents()))
}

/// Every other document of the adversarial corpus, indexed: another generation to swap to (a
/// takedown of half the corpus, seen from the other side an addition).
pub fn half_index_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let half: Vec<String> = documents().into_iter().step_by(2).collect();
        build_index("half", &half)
    })
}

/// The adversarial corpus with a sparse suffix array (one suffix per [`SPARSE_STEP`]
/// positions), to fuzz against the definition for spans of its minimum length and more.
pub fn sparse_index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| open(&build_index_with("sparse", &documents(), SPARSE_STEP)))
}

/// The step of [`sparse_index`].
pub const SPARSE_STEP: u32 = 4;

fn build_index(name: &str, docs: &[String]) -> PathBuf {
    build_index_with(name, docs, 1)
}

fn build_index_with(name: &str, docs: &[String], sa_step: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memaudit-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let input = dir.join("corpus.jsonl");
    let mut jsonl = String::new();
    for (i, d) in docs.iter().enumerate() {
        jsonl.push_str(&serde_json::json!({ "text": d, "id": format!("d{i}") }).to_string());
        jsonl.push('\n');
    }
    std::fs::write(&input, jsonl).expect("the corpus file");
    let out = dir.join("index");
    build(&BuildOptions {
        out: out.clone(),
        inputs: vec![input],
        shard_bytes: 1 << 20,
        threads: 1,
        memory_limit: 1 << 28,
        normalization: Normalization::default(),
        text_field: "text".into(),
        force: false,
        algorithm: SaAlgorithm::Libsais,
        progress: false,
        part: None,
        // A short reach (6 bytes), so that the filter's segments decide most queries.
        filter: memaudit::index::format::FilterParams {
            kgram: 3,
            window: 4,
            bits_per_key: 14,
            route_bits_per_key: 14,
        },
        // Every suffix but for `sparse_index`: the targets ask for spans of any length (a
        // sparse array answers spans of at least 2 * step - 1 characters).
        sa_step,
    })
    .expect("the adversarial corpus builds");
    out
}

/// The index of the adversarial corpus, opened as the daemon opens it (search sample read).
pub fn open_index() -> Index {
    open(index_dir())
}

/// The index in `dir`, opened as the daemon opens it.
pub fn open(dir: &PathBuf) -> Index {
    let index = Index::open(dir).expect("the fuzz index opens");
    index.prepare();
    index
}

/// One index shared by every run of a target.
pub fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(open_index)
}

/// An analyzer on the adversarial corpus with the given options.
pub fn analyzer(options: Options) -> Analyzer {
    Analyzer::new(open_index(), None, None, options).expect("an analyzer")
}

/// Reads the fuzzer's bytes as a sequence of choices; past the end every choice is 0.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Choices { data }
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let v = u16::from_le_bytes([self.byte(), self.byte()]) as usize;
        v % n
    }

    /// Whether any bytes are left.
    pub fn more(&self) -> bool {
        !self.data.is_empty()
    }

    /// A text of up to `max` bytes: the next length byte's worth of input, as UTF-8 (lossy).
    pub fn text(&mut self, max: usize) -> String {
        let n = (self.byte() as usize).min(max).min(self.data.len());
        let (t, rest) = self.data.split_at(n);
        self.data = rest;
        String::from_utf8_lossy(t).into_owned()
    }

    /// Everything left, as UTF-8 (lossy).
    pub fn rest(&mut self) -> String {
        let t = String::from_utf8_lossy(self.data).into_owned();
        self.data = &[];
        t
    }
}

/// Every maximal span of `t` (normalized bytes) of at least `min_chars` characters, by brute
/// force: `[a, b)` occurs in the corpus, starts and ends on characters, and neither `[a-1, b)`
/// nor `[a, b+1)` (extended to whole characters) occurs. What `Index::maximal_spans` must give.
pub fn brute_force_spans(index: &Index, t: &[u8], min_chars: usize) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = (0..=t.len())
        .filter(|&i| i == t.len() || (t[i] & 0xC0) != 0x80)
        .collect();
    let chars = |a: usize, b: usize| t[a..b].iter().filter(|&&c| (c & 0xC0) != 0x80).count();
    let mut out = Vec::new();
    for (k, &a) in starts.iter().enumerate() {
        if a == t.len() {
            break;
        }
        // The longest match from a (a prefix of something that occurs occurs).
        let mut best = None;
        for &b in &starts[k + 1..] {
            if index.occurs(&t[a..b]) {
                best = Some(b);
            } else {
                break;
            }
        }
        let Some(b) = best else { continue };
        // Maximal on the left: the character before a, with [a, b), does not occur.
        let left = k > 0 && index.occurs(&t[starts[k - 1]..b]);
        if !left && chars(a, b) >= min_chars.max(1) {
            out.push((a, b));
        }
    }
    out
}
