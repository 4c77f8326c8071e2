//! Fault injection for the tests of what the daemon promises when it fails: with
//! `MEMAUDIT_FAILPOINT=STAGE:MARKER` set, a message whose text contains MARKER panics at STAGE
//! (`match`, `probe` or `verdict`), or, with `MEMAUDIT_FAILPOINT_SLEEP_MS=N` also set, is held
//! there N milliseconds instead (a slow message). Unset (always, in production) it costs one
//! load of a `OnceLock` per message and stage.

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

fn sleep_ms() -> Option<u64> {
    static MS: OnceLock<Option<u64>> = OnceLock::new();
    *MS.get_or_init(|| {
        std::env::var("MEMAUDIT_FAILPOINT_SLEEP_MS")
            .ok()?
            .parse()
            .ok()
    })
}

/// Panics (or sleeps) when the failpoint names `stage` and `text` holds its marker.
pub fn check(stage: &str, text: &str) {
    if let Some((s, marker)) = spec() {
        if s == stage && text.contains(marker.as_str()) {
            match sleep_ms() {
                Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
                None => panic!("failpoint {stage}: injected panic"),
            }
        }
    }
}
