//! Meta's analytics answers given to `reconcile --analytics`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let _ = wameter_meta::analytics::parse_analytics(&body);
    }
});
