//! Query-side folding: the disguises a copied text can wear that the corpus does not, undone
//! before matching, with a map back to the text's own characters.
//!
//! - zero-width and invisible characters (zero-width space, joiners, word joiner, byte-order
//!   mark, soft hyphen, variation selectors) are dropped;
//! - look-alike letters from other scripts (Cyrillic and Greek letters drawn like Latin ones) and
//!   compatibility forms (fullwidth letters and digits, ligatures, mathematical alphanumerics: NFKC)
//!   become their plain Latin form;
//! - typographic punctuation (curly quotes, dashes, the ellipsis, non-breaking and thin spaces)
//!   becomes its ASCII form.
//!
//! Case is not folded here: a case-sensitive index would then miss the text's capitals. A word
//! whose case was changed is a changed word to the near-verbatim chaining
//! ([`crate::index::read::near`]); an index built with `lowercase` matches any case.

use unicode_normalization::char::decompose_compatible;

/// A folded text and, for each of its characters, the original character it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// The folded text.
    pub text: String,
    /// `origin[k]`: the index of the original character folded character `k` came from.
    pub origin: Vec<usize>,
    /// Characters in the original text.
    pub original_chars: usize,
}

impl Folded {
    /// The original character range of folded characters `[start, end)` (non-empty).
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        (self.origin[start], self.origin[end - 1] + 1)
    }
}

fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{034F}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{180E}'
    )
}

/// A Latin letter drawn like `c`, for the Cyrillic and Greek letters that are.
fn latin_look_alike(c: char) -> Option<char> {
    Some(match c {
        'а' => 'a',
        'е' => 'e',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' => 'x',
        'і' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'А' => 'A',
        'В' => 'B',
        'Е' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'Х' => 'X',
        'І' => 'I',
        'Ј' => 'J',
        'Ѕ' => 'S',
        'ο' => 'o',
        'ν' => 'v',
        'ι' => 'i',
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        _ => return None,
    })
}

/// The ASCII form of typographic punctuation and spaces.
fn plain_punctuation(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => "\"",
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => " ",
        _ => return None,
    })
}

/// Folds `text` (see the module's description).
pub fn fold(text: &str) -> Folded {
    let mut out = Folded {
        text: String::with_capacity(text.len()),
        origin: Vec::with_capacity(text.len()),
        original_chars: 0,
    };
    let push = |out: &mut Folded, c: char, i: usize| {
        out.text.push(c);
        out.origin.push(i);
    };
    for (i, c) in text.chars().enumerate() {
        out.original_chars = i + 1;
        if c.is_ascii() {
            push(&mut out, c, i);
        } else if is_compatibility_form(c) {
            // A compatibility form can decompose to a look-alike (mathematical bold capital
            // epsilon to Greek Ε), so its parts are folded as characters of their own.
            decompose_compatible(c, |d| fold_char(d, &mut |f| push(&mut out, f, i)));
        } else {
            fold_char(c, &mut |f| push(&mut out, f, i));
        }
    }
    out
}

/// The folded form of one character that is not a compatibility form, given to `emit`: nothing
/// for an invisible one, the Latin letter for a look-alike, ASCII for typographic punctuation,
/// else the character itself.
fn fold_char(c: char, emit: &mut impl FnMut(char)) {
    if invisible(c) {
        return;
    }
    if let Some(l) = latin_look_alike(c) {
        emit(l);
    } else if let Some(p) = plain_punctuation(c) {
        p.chars().for_each(emit);
    } else {
        emit(c);
    }
}

/// Fullwidth and halfwidth forms, ligatures, and mathematical alphanumerics: characters whose
/// compatibility decomposition is their plain form. (Not every character NFKC changes: accents
/// and other scripts stay as they are.)
fn is_compatibility_form(c: char) -> bool {
    matches!(c,
        '\u{FF01}'..='\u{FF5E}'   // fullwidth ASCII
        | '\u{FB00}'..='\u{FB06}' // Latin ligatures
        | '\u{1D400}'..='\u{1D7FF}' // mathematical alphanumerics
        | '\u{2070}'..='\u{209F}' // super- and subscripts
        | '\u{2460}'..='\u{24FF}' // enclosed alphanumerics
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disguises_are_undone_and_mapped_back() {
        let f = fold("Four\u{200B} sc\u{043E}re \u{201C}and\u{201D} s\u{FF45}ven\u{2026}");
        assert_eq!(f.text, "Four score \"and\" seven...");
        // "score" starts at original character 6 (after the zero-width space).
        let k = f.text.find("score").unwrap();
        assert_eq!(f.original_range(k, k + 5), (6, 11));
        assert_eq!(f.original_chars, 24);
        // The ellipsis maps its three dots to one original character.
        let n = f.text.chars().count();
        assert_eq!(f.original_range(n - 3, n), (23, 24));
        // A mathematical capital epsilon decomposes to the Greek letter, a look-alike of E.
        assert_eq!(fold("\u{1D6AC}AT").text, "EAT");
    }

    proptest::proptest! {
        /// On any text: one origin per folded character, in order, each an original character;
        /// every folded range maps back inside the text; folding twice changes nothing more.
        #[test]
        fn any_text_folds_consistently(
            t in "\\PC{0,40}|[a-zA-Z \u{200B}\u{00AD}\u{FE0F}\u{043E}\u{0391}\u{201C}\u{2026}\u{FF21}\u{FB01}\u{1D400}-\u{1D7FF}\u{2070}-\u{209F}\u{2460}-\u{24FF}]{0,40}"
        ) {
            let f = fold(&t);
            let n = t.chars().count();
            proptest::prop_assert_eq!(f.original_chars, n);
            proptest::prop_assert_eq!(f.origin.len(), f.text.chars().count());
            proptest::prop_assert!(f.origin.windows(2).all(|w| w[0] <= w[1]));
            proptest::prop_assert!(f.origin.iter().all(|&o| o < n));
            for start in 0..f.origin.len() {
                let (a, b) = f.original_range(start, f.origin.len());
                proptest::prop_assert!(a < b && b <= n);
            }
            proptest::prop_assert_eq!(fold(&f.text).text, f.text.clone());
        }
    }

    #[test]
    fn plain_text_and_other_scripts_are_unchanged() {
        for t in ["plain ASCII text.", "día, naïve, 日本語", "Привет мир"] {
            let f = fold(t);
            if t.starts_with("Привет") {
                // Look-alike letters are folded even inside a Cyrillic word; that text then
                // matches no Latin corpus text either way.
                assert_eq!(f.text.chars().count(), t.chars().count());
            } else {
                assert_eq!(f.text, t);
            }
            assert_eq!(f.origin, (0..t.chars().count()).collect::<Vec<_>>());
        }
    }
}
