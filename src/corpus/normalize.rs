//! Text normalization shared by index build and query, with a map back to the original text.
//!
//! The same [`Normalizer`] runs over every corpus document at build time and over every query, so a
//! verbatim match never depends on invisible formatting. What it does is recorded in the index
//! manifest ([`Normalization`]):
//!
//! - NUL is always replaced: it is the document separator inside shard text.
//! - `collapse_whitespace` (default on): every run of Unicode whitespace and NUL becomes one space.
//! - `nfc` (default on): Unicode NFC. The input is cut into segments at characters that start a
//!   composition boundary (canonical combining class 0 and NFC quick-check Yes) and each segment is
//!   composed on its own, so every output byte maps back to a small range of input characters.
//! - `lowercase` (default off): per-character Unicode lowercase mapping; verbatim means verbatim, so
//!   it is opt-in.
//! - `stream_safe` (on for indexes built since it exists; off when a manifest does not name it): a
//!   segment ends after [`MAX_JOINED`] characters that join it (combining marks, conjoining
//!   jamo), as Unicode's Stream-Safe Text Format (UAX #15) bounds them. Real text never has that
//!   many in a row; without the bound, a model writing combining marks for ever makes one segment
//!   of its whole output, which a streamed output has to compose again at every chunk.
//!
//! [`Normalizer::normalize_mapped`] also returns, for every output byte, the range of input
//! characters it came from; spans found on normalized text are reported in the user's characters.

use serde::{Deserialize, Serialize};
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// Normalized text plus, for each of its bytes, the input character range it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    /// The normalized text.
    pub text: String,
    /// `origin[b] = (first input char, one past last input char)` for output byte `b`.
    pub origin: Vec<(u32, u32)>,
    /// Number of characters in the input.
    pub input_chars: usize,
}

impl Mapped {
    /// Input character range covered by the output byte range `[start, end)` (non-empty).
    pub fn input_range(&self, start: usize, end: usize) -> (usize, usize) {
        (
            self.origin[start].0 as usize,
            self.origin[end - 1].1 as usize,
        )
    }
}

/// How text is normalized before it is indexed or queried. Recorded in the manifest and applied
/// identically to queries, so a match never depends on formatting the user cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    /// Every run of Unicode whitespace (and NUL) becomes one ASCII space.
    pub collapse_whitespace: bool,
    /// Unicode NFC, applied segment by segment (see [`Normalizer`]).
    pub nfc: bool,
    /// Per-character Unicode lowercase mapping (a simple case fold).
    pub lowercase: bool,
    /// An NFC segment ends after [`MAX_JOINED`] characters joined to it. Off for a manifest
    /// written before it existed (its index was built without it).
    #[serde(default)]
    pub stream_safe: bool,
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization {
            collapse_whitespace: true,
            nfc: true,
            lowercase: false,
            stream_safe: true,
        }
    }
}

/// Characters joined to one NFC segment at most, with `stream_safe` (UAX #15's bound on
/// non-starters): the next one starts a segment of its own.
pub const MAX_JOINED: usize = 30;

/// Applies one [`Normalization`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalizer {
    /// The normalization applied.
    pub spec: Normalization,
}

/// Receives normalized output: the plain build path ignores origins, the query path keeps them.
trait Sink {
    fn push(&mut self, c: char, from: u32, to: u32);
    fn ends_with_space(&self) -> bool;
    fn extend_last(&mut self, to: u32);
}

impl Sink for String {
    #[inline]
    fn push(&mut self, c: char, _: u32, _: u32) {
        String::push(self, c)
    }
    #[inline]
    fn ends_with_space(&self) -> bool {
        self.as_bytes().last() == Some(&b' ')
    }
    #[inline]
    fn extend_last(&mut self, _: u32) {}
}

impl Sink for Mapped {
    #[inline]
    fn push(&mut self, c: char, from: u32, to: u32) {
        self.text.push(c);
        for _ in 0..c.len_utf8() {
            self.origin.push((from, to));
        }
    }
    #[inline]
    fn ends_with_space(&self) -> bool {
        self.text.as_bytes().last() == Some(&b' ')
    }
    #[inline]
    fn extend_last(&mut self, to: u32) {
        if let Some(last) = self.origin.last_mut() {
            last.1 = to;
        }
    }
}

/// Where NFC segments start, read character by character: the one definition `run` (what is
/// normalized) and `restart_points` (where a growing text may be cut) share.
#[derive(Default)]
struct Segments {
    /// Characters joined to the current segment (`stream_safe` bounds them).
    joined: usize,
}

impl Segments {
    /// Whether `c` is a space to `spec` (a run of them is one space when collapsing), and
    /// whether a new segment starts at `c` (a space, a composition boundary, or past
    /// [`MAX_JOINED`] joined characters).
    #[inline]
    fn next(&mut self, spec: Normalization, c: char) -> (bool, bool) {
        let is_space = c == '\0' || (spec.collapse_whitespace && c.is_whitespace());
        let boundary = if is_space || !spec.nfc || nfc_boundary(c) {
            self.joined = 0;
            true
        } else if spec.stream_safe && self.joined >= MAX_JOINED {
            self.joined = 1;
            true
        } else {
            self.joined += 1;
            false
        };
        (is_space, boundary)
    }
}

/// True when a composition can never reach back across the start of `c`.
#[inline]
fn nfc_boundary(c: char) -> bool {
    c.is_ascii()
        || (canonical_combining_class(c) == 0
            && is_nfc_quick(std::iter::once(c)) == IsNormalized::Yes)
}

impl Normalizer {
    /// A normalizer for `spec`.
    pub fn new(spec: Normalization) -> Self {
        Normalizer { spec }
    }

    /// Whether normalization restarts at `c`: what `c` and the characters after it become does
    /// not depend on anything before it (a non-space character no composition reaches back
    /// across). So `normalize(a + b) == normalize(a) + normalize(b)` when `b` starts with such a
    /// character, which lets a growing text be normalized from such a point on
    /// ([`crate::index::read::incremental`]).
    pub fn restarts_at(&self, c: char) -> bool {
        let is_space = c == '\0' || (self.spec.collapse_whitespace && c.is_whitespace());
        !is_space && (!self.spec.nfc || nfc_boundary(c))
    }

    /// Every place in `s` (a text, or a part of one starting where normalization restarts)
    /// where normalization restarts: `(byte, character)` of each character `c` for which
    /// [`Normalizer::restarts_at`] holds, and, with `stream_safe`, of each that ends a segment
    /// for its length (those depend on the characters before them, so are found in order).
    pub fn restart_points<'a>(&self, s: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
        let spec = self.spec;
        let mut segments = Segments::default();
        s.char_indices().enumerate().filter_map(move |(i, (b, c))| {
            let (is_space, boundary) = segments.next(spec, c);
            (boundary && !is_space).then_some((b, i))
        })
    }

    /// Whether `c` is whitespace this normalization collapses: a run of such characters becomes
    /// one space, so appending more of them to a text that ends in one changes nothing but how
    /// many input characters that space stands for.
    pub fn collapses(&self, c: char) -> bool {
        self.spec.collapse_whitespace && (c == '\0' || c.is_whitespace())
    }

    /// Normalizes `input` (build path: no origin map).
    pub fn normalize(&self, input: &str) -> String {
        let mut out = String::with_capacity(input.len());
        self.run(input, &mut out);
        out
    }

    /// Normalizes `input` and maps every output byte back to input characters (query path).
    pub fn normalize_mapped(&self, input: &str) -> Mapped {
        let mut out = Mapped {
            text: String::with_capacity(input.len()),
            origin: Vec::with_capacity(input.len()),
            input_chars: 0,
        };
        out.input_chars = self.run(input, &mut out);
        out
    }

    /// Core loop; returns the number of input characters.
    fn run<S: Sink>(&self, input: &str, out: &mut S) -> usize {
        let spec = self.spec;
        // Pending NFC segment: input byte range and first char index.
        let mut seg: Option<(usize, usize, u32)> = None;
        // Whether the previous input char was collapsed whitespace (so a run continues).
        let mut in_space_run = false;
        let mut segments = Segments::default();
        let mut nchars: u32 = 0;
        for (byte, c) in input.char_indices() {
            let ci = nchars;
            nchars += 1;
            let (is_space, boundary) = segments.next(spec, c);
            if boundary {
                if let Some((s, e, first)) = seg.take() {
                    self.flush(&input[s..e], first, ci, out);
                }
            }
            if is_space {
                if spec.collapse_whitespace && in_space_run && out.ends_with_space() {
                    out.extend_last(ci + 1);
                } else {
                    out.push(' ', ci, ci + 1);
                }
                in_space_run = true;
                continue;
            }
            in_space_run = false;
            match &mut seg {
                Some((_, e, _)) => *e = byte + c.len_utf8(),
                None => seg = Some((byte, byte + c.len_utf8(), ci)),
            }
        }
        if let Some((s, e, first)) = seg.take() {
            self.flush(&input[s..e], first, nchars, out);
        }
        nchars as usize
    }

    /// Emits one segment (input chars `first..end`), composed and case-mapped as configured.
    #[inline]
    fn flush<S: Sink>(&self, seg: &str, first: u32, end: u32, out: &mut S) {
        let single = seg.len() == 1 || seg.chars().nth(1).is_none();
        if single {
            let c = seg.chars().next().expect("non-empty segment");
            self.emit(c, first, end, out);
        } else if self.spec.nfc {
            for c in seg.nfc() {
                self.emit(c, first, end, out);
            }
        } else {
            for c in seg.chars() {
                self.emit(c, first, end, out);
            }
        }
    }

    #[inline]
    fn emit<S: Sink>(&self, c: char, first: u32, end: u32, out: &mut S) {
        if self.spec.lowercase && !c.is_ascii_lowercase() {
            for l in c.to_lowercase() {
                out.push(l, first, end);
            }
        } else {
            out.push(c, first, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(ws: bool, nfc: bool, lower: bool) -> Normalizer {
        Normalizer::new(Normalization {
            collapse_whitespace: ws,
            nfc,
            lowercase: lower,
            stream_safe: true,
        })
    }

    proptest::proptest! {
        /// Cutting a text before a character where normalization restarts changes nothing.
        #[test]
        fn normalization_restarts_where_it_says(
            text in "[ a\\te\u{301}\u{e9}A\u{3000}\u{0}]{0,24}|[a\u{301}\u{300}\u{327}\u{1161} ]{0,100}",
            ws: bool, nfc: bool, lower: bool, safe: bool,
        ) {
            let mut n = n(ws, nfc, lower);
            n.spec.stream_safe = safe;
            let whole = n.normalize(&text);
            let points: Vec<usize> = n.restart_points(&text).map(|(b, _)| b).collect();
            for (i, c) in text.char_indices() {
                if n.restarts_at(c) {
                    proptest::prop_assert!(points.contains(&i));
                }
            }
            for i in points {
                let parts = n.normalize(&text[..i]) + &n.normalize(&text[i..]);
                proptest::prop_assert_eq!(&parts, &whole, "cut at byte {}", i);
            }
        }
    }

    #[test]
    fn a_manifest_from_before_stream_safe_keeps_its_normalization() {
        let old: Normalization =
            serde_json::from_str(r#"{"collapse_whitespace":true,"nfc":true,"lowercase":false}"#)
                .unwrap();
        assert!(!old.stream_safe);
        assert!(Normalization::default().stream_safe);
    }

    #[test]
    fn stream_safe_bounds_a_segment_of_joined_characters() {
        let marks = "\u{301}\u{300}".repeat(40);
        let text = format!("a{marks}");
        let safe = Normalizer::new(Normalization::default());
        let points: Vec<usize> = safe.restart_points(&text).map(|(_, i)| i).collect();
        assert_eq!(points, vec![0, 31, 61]);
        // The same marks in the same order: nothing in this text reorders or composes across a
        // segment's end.
        let unsafe_spec = Normalization {
            stream_safe: false,
            ..Normalization::default()
        };
        assert_eq!(
            safe.normalize(&text),
            Normalizer::new(unsafe_spec).normalize(&text)
        );
        assert_eq!(
            Normalizer::new(unsafe_spec).restart_points(&text).count(),
            1
        );
    }

    #[test]
    fn collapses_whitespace_runs_and_nul() {
        let d = Normalizer::new(Normalization::default());
        assert_eq!(d.normalize("a \t\n b\0\0c"), "a b c");
        assert_eq!(d.normalize("  lead"), " lead");
        assert_eq!(n(false, true, false).normalize("a \0b"), "a  b");
    }

    #[test]
    fn nfc_composes_and_maps_back() {
        let d = Normalizer::new(Normalization::default());
        let m = d.normalize_mapped("cafe\u{301} ok");
        assert_eq!(m.text, "caf\u{e9} ok");
        assert_eq!(m.input_chars, 8);
        // 'é' is two output bytes from input chars 3..5.
        assert_eq!(m.origin[3], (3, 5));
        assert_eq!(m.origin[4], (3, 5));
        assert_eq!(m.input_range(0, m.text.len()), (0, 8));
        assert_eq!(m.input_range(6, 8), (6, 8));
    }

    #[test]
    fn whitespace_run_maps_to_whole_run() {
        let d = Normalizer::new(Normalization::default());
        let m = d.normalize_mapped("a  \n b");
        assert_eq!(m.text, "a b");
        assert_eq!(m.origin[1], (1, 5));
        assert_eq!(m.input_range(0, 3), (0, 6));
    }

    #[test]
    fn lowercase_is_opt_in() {
        assert_eq!(n(true, true, true).normalize("ÀB C"), "àb c");
        assert_eq!(n(true, true, false).normalize("ÀB C"), "ÀB C");
    }

    #[test]
    fn plain_and_mapped_agree() {
        for s in [
            "",
            " ",
            "x\u{301}\u{302}y",
            "한국어 텍스트",
            "A\u{30A}\u{323}",
            "\u{1100}\u{1161}",
            "  \t",
        ] {
            for spec in [
                n(true, true, false),
                n(false, false, false),
                n(true, true, true),
            ] {
                let m = spec.normalize_mapped(s);
                assert_eq!(spec.normalize(s), m.text, "{s:?}");
                assert_eq!(m.origin.len(), m.text.len());
                // Idempotent: normalizing twice changes nothing.
                assert_eq!(spec.normalize(&m.text), m.text, "{s:?}");
            }
        }
    }
}
