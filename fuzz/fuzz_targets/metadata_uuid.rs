//! Fuzzes reading one UUID field out of event metadata
//! (`eventum_core::metadata_field::metadata_uuid`): metadata reaches the store from any
//! client, and stamps (command ids, saga runner ids) are read back from it on every load.
//! Never panics; on a JSON object without duplicate keys it agrees with looking the key up
//! in a `serde_json::Value` tree.
#![no_main]

use eventum_core::metadata_field::metadata_uuid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = metadata_uuid(input, "runner");
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(input) else {
        return;
    };
    // Re-serialized: one entry per key, as every writer of ours produces.
    let text = serde_json::to_vec(&object).expect("a map serializes");
    let expected = object
        .get("runner")
        .and_then(|v| v.as_str())
        .and_then(|s| uuid::Uuid::parse_str(s).ok());
    assert_eq!(metadata_uuid(&text, "runner"), expected);
});
