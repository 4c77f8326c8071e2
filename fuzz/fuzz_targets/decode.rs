//! Message decoding, as Kafka payloads and HTTP bodies go through it, in each input format:
//! every payload is a message or a dead letter with a reason, never a panic; a decoded message
//! has an id, and its text is the payload's (text format) or a field of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memaudit::config::{InputConfig, InputFormat};
use memaudit::serve::message::{decode, Origin};

fuzz_target!(|data: &[u8]| {
    let origin = Origin {
        topic: "in".into(),
        partition: 0,
        offset: 7,
    };
    for format in [InputFormat::Json, InputFormat::Text, InputFormat::Chunks] {
        for max_bytes in [64, 1_000_000] {
            let cfg = InputConfig {
                format,
                max_bytes,
                ..InputConfig::default()
            };
            match decode(data, &origin, &cfg) {
                Ok(m) => {
                    assert!(data.len() <= max_bytes);
                    assert!(!m.id.is_empty());
                    assert!(m.text.len() <= data.len());
                    if format == InputFormat::Text {
                        assert_eq!(m.text.as_bytes(), data);
                    }
                    assert_eq!(m.chunk.is_some(), format == InputFormat::Chunks);
                }
                Err(dl) => assert!(!dl.reason.code().is_empty() && !dl.detail.is_empty()),
            }
        }
    }
});
