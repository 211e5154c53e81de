//! Fuzzes opening a damaged data directory: a segment file of arbitrary bytes must give
//! an open error or a store whose reads work, never a panic or a hang.
#![no_main]

use eventum_core::{EventStore, ReadDirection};
use eventum_log::{LogConfig, LogStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("eventum-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let mut segment = Vec::with_capacity(32 + data.len());
    // A valid header, so the fuzzer spends its time on records.
    segment.extend_from_slice(b"EVTMSEG\0");
    segment.extend_from_slice(&2u32.to_le_bytes());
    segment.extend_from_slice(&[0; 4]);
    segment.extend_from_slice(&0u64.to_le_bytes());
    segment.extend_from_slice(&[0; 8]);
    let crc = crc(&segment);
    segment[12..16].copy_from_slice(&crc.to_le_bytes());
    segment.extend_from_slice(data);
    std::fs::write(dir.join("log").join(format!("{:020}.seg", 0)), &segment).unwrap();
    let config = LogConfig { segment_bytes: 1 << 20, ..LogConfig::default() };
    if let Ok(store) = LogStore::open(&dir, config) {
        let runtime = tokio_runtime();
        let _ = runtime.block_on(store.read_all(Some(0), ReadDirection::Forward, 1000));
        store.shutdown();
    }
    let _ = std::fs::remove_dir_all(&dir);
});

/// The segment header's checksum: CRC-32C of bytes 0..12 then 16..32 (docs/FORMAT.md).
fn crc(header: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&header[0..12]), &header[16..32])
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
