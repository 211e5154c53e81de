//! Fuzzes the record decoder: arbitrary bytes must never panic it, and anything it accepts
//! must decode to the position its header names.
#![no_main]

use bytes::Bytes;
use eventum_log::codec::{self, Decoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Decoded::Record(len) = codec::check(data) {
        assert!(len <= data.len());
        let event = codec::decode(&Bytes::copy_from_slice(&data[..len]));
        assert_eq!(event.position, codec::position_of(data));
    }
});
