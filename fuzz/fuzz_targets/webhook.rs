//! A webhook body as `serve` receives it (after its signature is checked):
//! JSON → Meta's envelope → events, notices, problems, ignored items.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wameter_core::event::Origin;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let _ = wameter_meta::parse_envelope(&body, Origin { source: 0, line: 1 });
    }
});
