//! The probe: tokenization now; the candle entropy model arrives with the probe issue.
//!
//! Today this holds only what the index needs from a tokenizer: counting the tokens of a span, so
//! span lengths can be reported (and thresholded) in tokens as well as characters.

pub mod tokenizer;
