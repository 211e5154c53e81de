//! The record codec: one event as bytes in a segment, with its CRC-32C. The layout is
//! documented byte by byte in docs/FORMAT.md; change both together.

use bytes::Bytes;
use eventum_core::RecordedEvent;
use uuid::Uuid;

/// Bytes before a record's variable part.
pub const RECORD_HEADER_BYTES: usize = 100;
/// No record is larger than this, whatever the configured limits; a length field above it
/// is garbage.
pub const RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The fixed part of a record, as the writer supplies it.
pub struct RecordHeader<'a> {
    pub position: u64,
    pub group_first_position: u64,
    pub stream_version: u64,
    pub recorded_at_us: i64,
    pub id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
    pub stream: &'a str,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub metadata: &'a [u8],
}

/// Size of the record `encode` would write.
pub fn encoded_len(stream: &str, event_type: &str, data: &[u8], metadata: &[u8]) -> usize {
    RECORD_HEADER_BYTES + stream.len() + event_type.len() + data.len() + metadata.len()
}

/// Appends one record to `buf`.
pub fn encode(r: &RecordHeader<'_>, buf: &mut Vec<u8>) {
    let len = encoded_len(r.stream, r.event_type, r.data, r.metadata);
    let start = buf.len();
    buf.reserve(len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]); // CRC, filled in below
    buf.extend_from_slice(&r.position.to_le_bytes());
    buf.extend_from_slice(&r.group_first_position.to_le_bytes());
    buf.extend_from_slice(&r.stream_version.to_le_bytes());
    buf.extend_from_slice(&r.recorded_at_us.to_le_bytes());
    buf.extend_from_slice(r.id.as_bytes());
    buf.extend_from_slice(r.correlation_id.as_bytes());
    buf.extend_from_slice(r.causation_id.as_bytes());
    buf.extend_from_slice(&(r.stream.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(r.event_type.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(r.metadata.len() as u32).to_le_bytes());
    buf.extend_from_slice(r.stream.as_bytes());
    buf.extend_from_slice(r.event_type.as_bytes());
    buf.extend_from_slice(r.data);
    buf.extend_from_slice(r.metadata);
    debug_assert_eq!(buf.len() - start, len);
    let crc = checksum(&buf[start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32C of a record: its length field and everything after the CRC field.
fn checksum(record: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&record[0..4]), &record[8..])
}

/// What was found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid record of this many bytes.
    Record(usize),
    /// Zeros: the end of the written part of a preallocated segment.
    End,
    /// The buffer ends before the record does; read more.
    Incomplete { needed: usize },
    /// Bytes that are not a valid record.
    Invalid(&'static str),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn uuid_at(b: &[u8], at: usize) -> Uuid {
    Uuid::from_bytes(b[at..at + 16].try_into().expect("16 bytes"))
}

/// Checks the record at the start of `buf` (framing, lengths and checksum).
pub fn check(buf: &[u8]) -> Decoded {
    if buf.len() < 4 {
        return if buf.iter().all(|b| *b == 0) {
            Decoded::End
        } else {
            Decoded::Incomplete { needed: 4 }
        };
    }
    let len = u32_at(buf, 0) as usize;
    if len == 0 {
        return Decoded::End;
    }
    if !(RECORD_HEADER_BYTES..=RECORD_BYTES_MAX).contains(&len) {
        return Decoded::Invalid("record length out of range");
    }
    if buf.len() < len {
        return Decoded::Incomplete { needed: len };
    }
    let parts = u16_at(buf, 88) as usize
        + u16_at(buf, 90) as usize
        + u32_at(buf, 92) as usize
        + u32_at(buf, 96) as usize;
    if RECORD_HEADER_BYTES + parts != len {
        return Decoded::Invalid("record length disagrees with its field lengths");
    }
    if checksum(&buf[..len]) != u32_at(buf, 4) {
        return Decoded::Invalid("checksum mismatch");
    }
    if std::str::from_utf8(
        &buf[RECORD_HEADER_BYTES
            ..RECORD_HEADER_BYTES + u16_at(buf, 88) as usize + u16_at(buf, 90) as usize],
    )
    .is_err()
    {
        return Decoded::Invalid("stream name or event type is not UTF-8");
    }
    Decoded::Record(len)
}

/// The position stored in a checked record.
pub fn position_of(record: &[u8]) -> u64 {
    u64_at(record, 8)
}

/// Set in a record's group-first-position field when the record is the last of its group
/// (positions never reach 2^63). A group whose last record lacks it at the end of the log
/// was cut short by a crash; recovery drops it whole, so no append is half visible.
pub const GROUP_END_FLAG: u64 = 1 << 63;

/// The first position of the group a checked record was written in.
pub fn group_first_position_of(record: &[u8]) -> u64 {
    u64_at(record, 16) & !GROUP_END_FLAG
}

/// Whether a checked record is the last of its group.
pub fn ends_group(record: &[u8]) -> bool {
    u64_at(record, 16) & GROUP_END_FLAG != 0
}

/// Marks the encoded record at the start of `record` as the last of its group and
/// updates its checksum.
pub fn mark_group_end(record: &mut [u8]) {
    let len = u32_at(record, 0) as usize;
    let field = u64_at(record, 16) | GROUP_END_FLAG;
    record[16..24].copy_from_slice(&field.to_le_bytes());
    let crc = checksum(&record[..len]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The event id stored in a checked record.
pub fn id_of(record: &[u8]) -> Uuid {
    uuid_at(record, 40)
}

/// Decodes a record that [`check`] accepted; `record` is exactly its bytes. Data and
/// metadata share `record`'s allocation.
pub fn decode(record: &Bytes) -> RecordedEvent {
    let b = &record[..];
    let stream_len = u16_at(b, 88) as usize;
    let type_len = u16_at(b, 90) as usize;
    let data_len = u32_at(b, 92) as usize;
    let metadata_len = u32_at(b, 96) as usize;
    let mut at = RECORD_HEADER_BYTES;
    let text = |from: usize, len: usize| String::from_utf8_lossy(&b[from..from + len]).into_owned();
    let stream = text(at, stream_len);
    at += stream_len;
    let event_type = text(at, type_len);
    at += type_len;
    let data = record.slice(at..at + data_len);
    at += data_len;
    let metadata = record.slice(at..at + metadata_len);
    RecordedEvent {
        stream,
        version: u64_at(b, 24),
        position: u64_at(b, 8),
        recorded_at_us: u64_at(b, 32) as i64,
        id: uuid_at(b, 40),
        event_type,
        data,
        metadata,
        correlation_id: uuid_at(b, 56),
        causation_id: uuid_at(b, 72),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(buf: &mut Vec<u8>, position: u64) {
        encode(
            &RecordHeader {
                position,
                group_first_position: position,
                stream_version: 3,
                recorded_at_us: 1_700_000_000_000_000,
                id: Uuid::now_v7(),
                correlation_id: Uuid::now_v7(),
                causation_id: Uuid::now_v7(),
                stream: "order-1",
                event_type: "OrderCreated",
                data: br#"{"a":1}"#,
                metadata: br#"{"k":"v"}"#,
            },
            buf,
        );
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        sample(&mut buf, 42);
        let Decoded::Record(len) = check(&buf) else {
            panic!("not a record")
        };
        assert_eq!(len, buf.len());
        let e = decode(&Bytes::from(buf));
        assert_eq!(
            (e.position, e.version, e.stream.as_str()),
            (42, 3, "order-1")
        );
        assert_eq!(
            (&e.data[..], &e.metadata[..]),
            (&br#"{"a":1}"#[..], &br#"{"k":"v"}"#[..])
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        sample(&mut buf, 7);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    !matches!(check(&bad), Decoded::Record(_)),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn group_end_mark_keeps_the_record_valid() {
        let mut buf = Vec::new();
        sample(&mut buf, 9);
        assert!(!ends_group(&buf));
        mark_group_end(&mut buf);
        assert_eq!(check(&buf), Decoded::Record(buf.len()));
        assert!(ends_group(&buf));
        assert_eq!(group_first_position_of(&buf), 9);
        assert_eq!(decode(&Bytes::from(buf)).position, 9);
    }

    proptest::proptest! {
        /// The decoder meets whatever a damaged disk holds: it must never panic, and
        /// whatever it accepts must decode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Decoded::Record(len) = check(&bytes) {
                let e = decode(&Bytes::copy_from_slice(&bytes[..len]));
                proptest::prop_assert_eq!(e.position, position_of(&bytes));
            }
        }

        /// A whole record followed by junk is still read back as the same record.
        #[test]
        fn records_survive_trailing_junk(junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), position in 0u64..1 << 62) {
            let mut buf = Vec::new();
            sample(&mut buf, position);
            let len = buf.len();
            buf.extend_from_slice(&junk);
            proptest::prop_assert_eq!(check(&buf), Decoded::Record(len));
            proptest::prop_assert_eq!(decode(&Bytes::copy_from_slice(&buf[..len])).position, position);
        }
    }

    #[test]
    fn zeros_end_and_short_buffers_ask_for_more() {
        assert_eq!(check(&[0; 16]), Decoded::End);
        let mut buf = Vec::new();
        sample(&mut buf, 1);
        assert!(matches!(check(&buf[..50]), Decoded::Incomplete { .. }));
    }
}
