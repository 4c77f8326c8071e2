//! Fault injection for the tests of what the daemon promises when it fails: with
//! `MEMAUDIT_FAILPOINT=STAGE:MARKER` set, a message whose text contains MARKER panics at STAGE
//! (`match`, `probe` or `verdict`). Unset (always, in production) it costs one load of a
//! `OnceLock` per message and stage.

use std::sync::OnceLock;

fn spec() -> Option<&'static (String, String)> {
    static SPEC: OnceLock<Option<(String, String)>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let v = std::env::var("MEMAUDIT_FAILPOINT").ok()?;
        let (stage, marker) = v.split_once(':')?;
        (!marker.is_empty()).then(|| (stage.to_string(), marker.to_string()))
    })
    .as_ref()
}

/// Panics when the failpoint names `stage` and `text` holds its marker.
pub fn check(stage: &str, text: &str) {
    if let Some((s, marker)) = spec() {
        if s == stage && text.contains(marker.as_str()) {
            panic!("failpoint {stage}: injected panic");
        }
    }
}
