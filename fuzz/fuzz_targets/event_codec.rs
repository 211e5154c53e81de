//! Fuzzes the runtime's event codec (`eventum_runtime::codec`): stored event data under a
//! type name, decoded into a typed enum. Event data reaches the store from any client, so
//! whatever bytes a type name carries must decode to the same value as through a
//! `serde_json::Value` tree, or to an error, and never panic.
#![no_main]

use bytes::Bytes;
use eventum_runtime::codec::{decode_parts, encode_event};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Ev {
    Created { title: String, n: Option<i64> },
    Renamed(String),
    Moved(u32, u32),
    Closed,
}

fuzz_target!(|input: &[u8]| {
    // First byte: the length of the type name that follows; the rest is the data.
    let Some((&len, rest)) = input.split_first() else {
        return;
    };
    let len = usize::from(len).min(rest.len());
    let (name, data) = rest.split_at(len);
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let decoded = decode_parts::<Ev>(name, &Bytes::copy_from_slice(data));
    // The store holds only whole JSON values as data: there the reference applies.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut map = serde_json::Map::new();
        map.insert(name.to_owned(), value);
        let reference = serde_json::from_value::<Ev>(serde_json::Value::Object(map)).ok();
        assert_eq!(decoded.as_ref().ok(), reference.as_ref());
    }
    if let Ok(ev) = decoded {
        let encoded = encode_event(&ev).expect("a decoded event encodes");
        let back = decode_parts::<Ev>(encoded.event_type(), encoded.data()).expect("round trip");
        assert_eq!(back, ev);
    }
});
