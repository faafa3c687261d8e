//! Any bytes, read as a log line: a canonical event, a notice, or a Meta
//! webhook envelope. The reader must return (an event, items or an error)
//! and never panic. Run: `cargo +nightly fuzz run webhook_envelope`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wameter_core::event::Origin;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = wameter_log::parse_line(text, Origin::default());
    // The envelope walk directly, for JSON the line reader would refuse
    // before reaching it (no `object` key).
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = wameter_meta::parse_envelope(&value, Origin::default());
        let _ = wameter_meta::analytics::parse_analytics(&value);
    }
});
