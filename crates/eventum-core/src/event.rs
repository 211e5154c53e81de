//! Events: what a caller appends ([`NewEvent`]) and what the store returns
//! ([`RecordedEvent`]). Event bodies stay as validated JSON text end to end, so that the
//! store never re-parses them on the hot path.

use bytes::Bytes;
use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::InvalidInput;
use crate::store::StreamMetadata;
use crate::stream::{METADATA_TYPE, STREAM_DELETED_TYPE, StreamName};

/// An event's identity; UUID v7 when the store assigns it.
pub type EventId = Uuid;

/// Longest event type accepted, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 256;

/// An event to append. Built only through the constructors, which check that `data` is
/// JSON and `metadata` a JSON object, so a `NewEvent` is always well-formed.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    id: EventId,
    event_type: String,
    data: Bytes,
    metadata: Bytes,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
}

impl NewEvent {
    /// An event whose data is `data` serialized to JSON, with a fresh UUID v7.
    pub fn new(event_type: impl Into<String>, data: &impl Serialize) -> Result<Self, InvalidInput> {
        let json =
            serde_json::to_vec(data).map_err(|e| InvalidInput::DataNotJson(e.to_string()))?;
        Self::build(event_type.into(), Bytes::from(json))
    }

    /// An event whose data is JSON text; rejects text that is not JSON.
    pub fn from_json(
        event_type: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> Result<Self, InvalidInput> {
        let data = data.into();
        // JSON text is UTF-8; checking it first matters because skipping a value with
        // `IgnoredAny` does not look inside strings (found by the `append_request` fuzzer).
        let text = std::str::from_utf8(&data)
            .map_err(|e| InvalidInput::DataNotJson(format!("not UTF-8: {e}")))?;
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| InvalidInput::DataNotJson(e.to_string()))?;
        Self::build(event_type.into(), data)
    }

    fn build(event_type: String, data: Bytes) -> Result<Self, InvalidInput> {
        check_event_type(&event_type)?;
        Ok(Self {
            id: Uuid::now_v7(),
            event_type,
            data,
            metadata: Bytes::new(),
            correlation_id: None,
            causation_id: None,
        })
    }

    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the metadata from a JSON object. The keys `correlation_id` and `causation_id`,
    /// when present, must be UUID strings; they are lifted out into typed fields.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Result<Self, InvalidInput> {
        let serde_json::Value::Object(mut object) = metadata else {
            return Err(InvalidInput::MetadataNotObject);
        };
        if let Some(v) = object.remove("correlation_id") {
            self.correlation_id = Some(parse_uuid_field("correlation_id", &v)?);
        }
        if let Some(v) = object.remove("causation_id") {
            self.causation_id = Some(parse_uuid_field("causation_id", &v)?);
        }
        self.metadata = if object.is_empty() {
            Bytes::new()
        } else {
            Bytes::from(serde_json::to_vec(&object).expect("a JSON map always serializes"))
        };
        Ok(self)
    }

    /// Gives this event the user metadata of `template`, shared rather than copied: a
    /// writer that stamps every event it writes alike builds the stamp once. The
    /// correlation and causation ids stay this event's own.
    pub fn with_metadata_of(mut self, template: &NewEvent) -> Self {
        self.metadata = template.metadata.clone();
        self
    }

    pub fn id(&self) -> EventId {
        self.id
    }
    pub fn event_type(&self) -> &str {
        &self.event_type
    }
    /// The data as JSON text.
    pub fn data(&self) -> &Bytes {
        &self.data
    }
    /// The user metadata as JSON object text without the correlation and causation ids;
    /// empty when there is none.
    pub fn metadata(&self) -> &Bytes {
        &self.metadata
    }
    pub fn correlation_id(&self) -> Option<Uuid> {
        self.correlation_id
    }
    pub fn causation_id(&self) -> Option<Uuid> {
        self.causation_id
    }

    /// The event as recorded at `position`, version `version` of `stream`: its type, data
    /// and metadata are moved, not copied, and absent correlation and causation ids
    /// default to the event's own id.
    pub fn into_recorded(
        self,
        stream: String,
        version: u64,
        position: u64,
        recorded_at_us: i64,
    ) -> RecordedEvent {
        RecordedEvent {
            stream,
            version,
            position,
            recorded_at_us,
            id: self.id,
            correlation_id: self.correlation_id.unwrap_or(self.id),
            causation_id: self.causation_id.unwrap_or(self.id),
            event_type: self.event_type,
            data: self.data,
            metadata: self.metadata,
        }
    }

    /// Bytes this event occupies against the per-event size limit.
    pub fn size_bytes(&self) -> usize {
        self.event_type.len() + self.data.len() + self.metadata.len()
    }
}

/// The system events a store records in a stream's metadata stream `$${stream}`; every
/// backend builds them here so that they read the same everywhere.
impl NewEvent {
    /// The marker that soft-deletes `stream`, whose last version was `last_version`.
    pub fn stream_deleted(stream: &StreamName, last_version: Option<u64>) -> Self {
        let data = serde_json::json!({"stream": stream.as_str(), "last_version": last_version});
        Self::new(STREAM_DELETED_TYPE, &data)
            .expect("a JSON object with a valid type is a valid event")
    }

    /// A change of a stream's retention metadata.
    pub fn stream_metadata(metadata: &StreamMetadata) -> Self {
        Self::new(METADATA_TYPE, metadata).expect("stream metadata serializes to a JSON object")
    }
}

fn parse_uuid_field(field: &'static str, value: &serde_json::Value) -> Result<Uuid, InvalidInput> {
    value
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or(InvalidInput::NotAUuid { field })
}

/// Checks an event type: non-empty, at most [`EVENT_TYPE_BYTES_MAX`] bytes, no control
/// characters.
pub fn check_event_type(event_type: &str) -> Result<(), InvalidInput> {
    if event_type.is_empty() {
        return Err(InvalidInput::EmptyEventType);
    }
    if event_type.len() > EVENT_TYPE_BYTES_MAX {
        return Err(InvalidInput::EventTypeTooLong {
            len_bytes: event_type.len(),
            max_bytes: EVENT_TYPE_BYTES_MAX,
        });
    }
    if event_type.chars().any(char::is_control) {
        return Err(InvalidInput::EventTypeControlCharacter);
    }
    Ok(())
}

/// An event as the store recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: String,
    /// 0-based version within the stream.
    pub version: u64,
    /// Global position in `$all`: strictly increasing and gap-free from 0.
    pub position: u64,
    /// Microseconds since the Unix epoch, UTC.
    pub recorded_at_us: i64,
    pub id: EventId,
    pub event_type: String,
    /// JSON text.
    pub data: Bytes,
    /// User metadata as JSON object text (empty for none), without the two ids below.
    pub metadata: Bytes,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
}

impl RecordedEvent {
    pub fn category(&self) -> &str {
        crate::stream::category_of(&self.stream)
    }

    /// `recorded_at` as RFC 3339 with microseconds.
    pub fn recorded_at_rfc3339(&self) -> String {
        format_rfc3339_us(self.recorded_at_us)
    }

    /// The metadata object as callers see it: user keys plus `correlation_id` and
    /// `causation_id`.
    pub fn metadata_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut object = if self.metadata.is_empty() {
            serde_json::Map::new()
        } else {
            serde_json::from_slice(&self.metadata).unwrap_or_default()
        };
        object.insert(
            "correlation_id".into(),
            self.correlation_id.to_string().into(),
        );
        object.insert("causation_id".into(), self.causation_id.to_string().into());
        object
    }
}

/// Formats microseconds since the epoch as RFC 3339 UTC (`2026-11-23T10:00:00.123456Z`).
pub fn format_rfc3339_us(us: i64) -> String {
    let nanos = i128::from(us) * 1_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        ),
        Err(_) => "invalid-timestamp".to_owned(),
    }
}

/// JSON form: `{id, stream, version, position, type, data, metadata, recorded_at}`.
impl Serialize for RecordedEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let data: &RawValue =
            serde_json::from_slice(&self.data).map_err(serde::ser::Error::custom)?;
        let mut st = s.serialize_struct("RecordedEvent", 8)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("stream", &self.stream)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("position", &self.position)?;
        st.serialize_field("type", &self.event_type)?;
        st.serialize_field("data", data)?;
        st.serialize_field("metadata", &self.metadata_json())?;
        st.serialize_field("recorded_at", &self.recorded_at_rfc3339())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_non_json_data() {
        assert!(matches!(
            NewEvent::from_json("T", &b"{not json"[..]),
            Err(InvalidInput::DataNotJson(_))
        ));
        assert!(NewEvent::from_json("T", &b"[1,2]"[..]).is_ok());
        // A JSON string holding invalid UTF-8 (the fuzzer's find).
        assert!(matches!(
            NewEvent::from_json("T", &b"\"\xff6\""[..]),
            Err(InvalidInput::DataNotJson(_))
        ));
    }

    #[test]
    fn metadata_of_a_template_is_shared_and_the_ids_stay_the_events_own() {
        let template = NewEvent::new("Stamp", &json!({}))
            .unwrap()
            .with_metadata(json!({"runner": "r1", "correlation_id": Uuid::now_v7()}))
            .unwrap();
        let own = Uuid::now_v7();
        let e = NewEvent::new("T", &json!(1))
            .unwrap()
            .with_correlation_id(own)
            .with_metadata_of(&template);
        assert_eq!(&e.metadata()[..], br#"{"runner":"r1"}"#);
        assert_eq!(e.metadata().as_ptr(), template.metadata().as_ptr());
        assert_eq!(e.correlation_id(), Some(own));
        assert_eq!(e.causation_id(), None);
    }

    #[test]
    fn metadata_ids_are_lifted_and_checked() {
        let c = Uuid::now_v7();
        let e = NewEvent::new("T", &json!({}))
            .unwrap()
            .with_metadata(json!({"correlation_id": c.to_string(), "k": 1}))
            .unwrap();
        assert_eq!(e.correlation_id(), Some(c));
        assert_eq!(&e.metadata()[..], br#"{"k":1}"#);
        assert_eq!(
            NewEvent::new("T", &1)
                .unwrap()
                .with_metadata(json!({"causation_id": "x"})),
            Err(InvalidInput::NotAUuid {
                field: "causation_id"
            })
        );
        assert_eq!(
            NewEvent::new("T", &1).unwrap().with_metadata(json!([1])),
            Err(InvalidInput::MetadataNotObject)
        );
    }

    #[test]
    fn recorded_event_serializes_with_merged_metadata() {
        let id = Uuid::now_v7();
        let e = RecordedEvent {
            stream: "order-1".into(),
            version: 0,
            position: 5,
            recorded_at_us: 1_700_000_000_123_456,
            id,
            event_type: "OrderCreated".into(),
            data: Bytes::from_static(br#"{"a":1}"#),
            metadata: Bytes::new(),
            correlation_id: id,
            causation_id: id,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["data"], json!({"a": 1}));
        assert_eq!(v["metadata"]["correlation_id"], json!(id.to_string()));
        assert_eq!(v["recorded_at"], json!("2023-11-14T22:13:20.123456Z"));
    }
}
