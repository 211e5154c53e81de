//! Helpers shared by the fault and crash test binaries: opening stores (real or faulty
//! disk), building recognisable events, remembering what was acknowledged, reading the
//! whole log back and comparing it with what was acknowledged, and finding records in
//! segment files by their bytes.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventum_core::{
    AppendError, EventStore, ExpectedVersion, NewEvent, ReadDirection, RecordedEvent, StorageError,
    StorageErrorKind, StreamName,
};
use eventum_log::codec::{self, Decoded};
use eventum_log::disk::{FaultPlan, FaultyDisk};
use eventum_log::segment::SEGMENT_HEADER_BYTES;
use eventum_log::{LogConfig, LogStore, OpenError};
use uuid::Uuid;

/// Upper bound on any single store operation in these tests: a broken engine must fail
/// the test, not hang it.
pub const WAIT: Duration = Duration::from_secs(20);

/// Awaits `f`, failing the test when it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

/// The default config with a given segment size (small sizes force rollovers).
pub fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

/// Opens `dir` on the real disk, waiting briefly for a lock a previous instance (or a
/// killed child process) may still be releasing.
pub fn open(dir: &Path, config: &LogConfig) -> Arc<LogStore> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match LogStore::open(dir, config.clone()) {
            Ok(store) => return store,
            Err(OpenError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

/// Opens `dir` through a [`FaultyDisk`] and returns the plan that drives its faults.
pub fn open_faulty(dir: &Path, config: &LogConfig) -> (Arc<LogStore>, Arc<FaultPlan>) {
    let plan = Arc::new(FaultPlan::default());
    let disk = Arc::new(FaultyDisk { plan: plan.clone() });
    let store = LogStore::open_with_disk(dir, config.clone(), disk)
        .unwrap_or_else(|e| panic!("open {} with a faulty disk: {e}", dir.display()));
    (store, plan)
}

pub fn stream(name: &str) -> StreamName {
    StreamName::new(name).expect("valid stream name")
}

/// An event whose data names its own id, stream and sequence number, padded to about
/// `pad` bytes, so that a misplaced or garbled event is recognisable.
pub fn event(stream: &str, n: u64, pad: usize) -> NewEvent {
    let id = Uuid::now_v7();
    let data = serde_json::json!({
        "id": id.to_string(),
        "stream": stream,
        "n": n,
        "pad": "x".repeat(pad),
    });
    NewEvent::new(format!("Happened{}", n % 3), &data)
        .expect("valid event")
        .with_id(id)
        .with_metadata(serde_json::json!({"n": n}))
        .expect("valid metadata")
}

/// An event the store acknowledged, with where it said the event went.
#[derive(Clone, Debug, PartialEq)]
pub struct Acked {
    pub stream: String,
    pub version: u64,
    pub position: u64,
    pub id: Uuid,
    pub event_type: String,
    pub data: Bytes,
    pub metadata: Bytes,
}

/// Appends and, on success, returns each event with the version and position the
/// acknowledgement implies (a batch takes consecutive versions and positions).
pub async fn append(
    store: &LogStore,
    stream_name: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Vec<Acked>, AppendError> {
    let n = events.len() as u64;
    let result = within(
        "append",
        store.append(&stream(stream_name), expected, events.clone()),
    )
    .await?;
    let first_version = result.next_expected_version + 1 - n;
    let first_position = result.position + 1 - n;
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, e)| Acked {
            stream: stream_name.to_owned(),
            version: first_version + i as u64,
            position: first_position + i as u64,
            id: e.id(),
            event_type: e.event_type().to_owned(),
            data: e.data().clone(),
            metadata: e.metadata().clone(),
        })
        .collect())
}

/// Like [`append`], but the append must succeed; the events are added to `acked`.
pub async fn append_ok(
    store: &LogStore,
    acked: &mut Vec<Acked>,
    stream_name: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) {
    let events = append(store, stream_name, expected, events)
        .await
        .unwrap_or_else(|e| panic!("append to {stream_name} failed: {e}"));
    acked.extend(events);
}

/// The storage error of a failed append, failing the test on success or a domain error.
pub fn storage_error(result: Result<Vec<Acked>, AppendError>) -> StorageError {
    match result {
        Err(AppendError::Storage(e)) => e,
        Err(other) => panic!("expected a storage error, got {other:?}"),
        Ok(events) => panic!("expected a storage error, but the append succeeded: {events:?}"),
    }
}

/// The next exact expectation for `stream` given what was acknowledged.
pub fn expected_after(acked: &[Acked], stream: &str) -> ExpectedVersion {
    acked
        .iter()
        .rev()
        .find(|a| a.stream == stream)
        .map_or(ExpectedVersion::NoStream, |a| {
            ExpectedVersion::Exact(a.version)
        })
}

/// Every event of `$all`, read forward in pages.
pub async fn read_everything(store: &LogStore) -> Vec<RecordedEvent> {
    let page = store.limits().read_events_max;
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map_or(0, |e| e.position + 1);
        let events = within(
            "read_all",
            store.read_all(Some(from), ReadDirection::Forward, page),
        )
        .await
        .unwrap_or_else(|e| panic!("read_all from {from} failed: {e}"));
        let done = events.len() < page;
        out.extend(events);
        if done {
            return out;
        }
    }
}

/// Checks that `$all` positions run 0..len without gaps and every stream's versions run
/// 0.. without gaps, in `$all` order.
pub fn assert_gap_free(events: &[RecordedEvent]) {
    let mut next_version = std::collections::HashMap::<&str, u64>::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, i as u64, "$all has a gap or reordering at {i}");
        let next = next_version.entry(&e.stream).or_default();
        assert_eq!(
            e.version, *next,
            "stream {} has a version gap at position {}",
            e.stream, e.position
        );
        *next += 1;
    }
}

/// Checks that a recorded event is the acknowledged one, byte for byte.
pub fn assert_event_is(actual: &RecordedEvent, expected: &Acked) {
    let what = format!("event at position {}", expected.position);
    assert_eq!(actual.position, expected.position, "{what}: position");
    assert_eq!(actual.stream, expected.stream, "{what}: stream");
    assert_eq!(actual.version, expected.version, "{what}: version");
    assert_eq!(actual.id, expected.id, "{what}: id");
    assert_eq!(actual.event_type, expected.event_type, "{what}: type");
    assert_eq!(actual.data, expected.data, "{what}: data");
    assert_eq!(actual.metadata, expected.metadata, "{what}: metadata");
}

/// Checks that `$all` holds exactly the acknowledged events, byte for byte, and nothing
/// else.
pub async fn assert_log_is(store: &LogStore, acked: &[Acked]) {
    let events = read_everything(store).await;
    assert_gap_free(&events);
    assert_eq!(
        events.len(),
        acked.len(),
        "$all holds {} events, {} were acknowledged",
        events.len(),
        acked.len()
    );
    for (actual, expected) in events.iter().zip(acked) {
        assert_event_is(actual, expected);
    }
    assert_eq!(
        store.head_position(),
        (acked.len() as u64).checked_sub(1),
        "head position"
    );
}

/// The segment files of `dir`, in order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    eventum_log::segment::list(&dir.join("log"))
        .expect("list segments")
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

/// The byte offsets of the whole records at the start of a segment file, and where the
/// valid records end (the first byte that is not a valid record).
pub fn record_offsets(segment: &Path) -> (Vec<u64>, u64) {
    let bytes = std::fs::read(segment).expect("read segment");
    let mut at = SEGMENT_HEADER_BYTES as usize;
    let mut offsets = Vec::new();
    while at < bytes.len() {
        match codec::check(&bytes[at..]) {
            Decoded::Record(len) => {
                offsets.push(at as u64);
                at += len;
            }
            _ => break,
        }
    }
    (offsets, at as u64)
}

/// Writes `bytes` into `file` at `offset`.
pub fn write_at(file: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open segment for writing");
    f.write_all_at(bytes, offset).expect("write segment");
    f.sync_all().expect("sync segment");
}

/// Flips one bit of the byte at `offset` in `file`.
pub fn flip_bit(file: &Path, offset: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .expect("open segment for writing");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).expect("write byte");
    f.sync_all().expect("sync segment");
}

/// Asserts a storage error is of `kind` and, for corruption, names the file and offset.
pub fn assert_corrupt_at(err: &StorageError, file: &Path, offset: u64) {
    assert_eq!(err.kind, StorageErrorKind::Corrupt, "kind of {err:?}");
    assert!(
        err.message.contains(&file.display().to_string()),
        "error does not name {}: {}",
        file.display(),
        err.message
    );
    assert!(
        err.message.contains(&format!("byte offset {offset}")),
        "error does not name byte offset {offset}: {}",
        err.message
    );
}

/// Appends `rounds` batches of 1–97 events of 100–1,000 bytes to five streams; with
/// `pause_every`, sleeps 5 ms every that many rounds, so that the writer goes idle.
pub async fn append_varied(
    store: &LogStore,
    acked: &mut Vec<Acked>,
    rounds: u64,
    pause_every: Option<u64>,
) {
    for round in 0..rounds {
        let name = format!("order-{}", round % 5);
        let events = (0..1 + round % 97)
            .map(|n| event(&name, n, 100 + (round * 37 % 900) as usize))
            .collect();
        let expected = expected_after(acked, &name);
        append_ok(store, acked, &name, expected, events).await;
        if pause_every.is_some_and(|every| round % every == 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
