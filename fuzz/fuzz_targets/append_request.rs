//! Fuzzes the decoders of an append's inputs: the expected-version wire form, event data
//! and metadata. Whatever they accept must satisfy the store's invariants.
#![no_main]

use eventum_core::{ExpectedVersion, NewEvent, StreamName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ExpectedVersion>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = StreamName::new(text) {
            assert!(!name.as_str().is_empty() && name.as_str().len() <= 256);
            assert!(!name.is_system());
        }
    }
    if let Ok(event) = NewEvent::from_json("T", data.to_vec()) {
        // The store serves data as raw JSON text: it must be UTF-8 and well-formed JSON
        // (numbers beyond f64's range are valid JSON and are kept verbatim).
        let text = std::str::from_utf8(event.data()).expect("accepted data is UTF-8");
        assert!(serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok());
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(event) = NewEvent::new("T", &1).and_then(|e| e.with_metadata(value)) {
            let m = event.metadata();
            assert!(m.is_empty() || serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(m).is_ok());
        }
    }
});
