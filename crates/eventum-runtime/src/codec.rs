//! How typed domain events and commands become store events and JSON envelopes, and back.
//!
//! A domain type is an ordinary serde enum in serde's default (externally tagged) shape:
//! the variant name is the event or command type and its fields are the data. So users
//! write no mapping code, and the names in the log are the names in their source.

use bytes::Bytes;
use eventum_core::{InvalidInput, NewEvent, RecordedEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A value that cannot be mapped to or from its store form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{0} does not serialize to an externally tagged enum variant")]
    NotAVariant(String),
    #[error("type {type_name:?}: {message}")]
    Decode { type_name: String, message: String },
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
}

/// Splits a serialized enum value into `(variant name, data)`.
pub fn split_variant(value: Value) -> Result<(String, Value), CodecError> {
    match value {
        // A unit variant serializes as its name alone.
        Value::String(name) => Ok((name, Value::Null)),
        Value::Object(map) if map.len() == 1 => {
            let (name, data) = map.into_iter().next().expect("one entry");
            Ok((name, data))
        }
        other => Err(CodecError::NotAVariant(truncate(&other.to_string()))),
    }
}

/// Rebuilds a typed enum value from its variant name and data.
pub fn join_variant<T: DeserializeOwned>(type_name: &str, data: Value) -> Result<T, CodecError> {
    let tagged = if data.is_null() {
        Value::String(type_name.to_owned())
    } else {
        let mut map = serde_json::Map::with_capacity(1);
        map.insert(type_name.to_owned(), data);
        Value::Object(map)
    };
    serde_json::from_value(tagged).map_err(|e| CodecError::Decode {
        type_name: type_name.to_owned(),
        message: e.to_string(),
    })
}

/// The name of an enum value's variant, without its data.
pub fn variant_name<T: Serialize>(value: &T) -> Result<String, CodecError> {
    let value = serde_json::to_value(value).map_err(|e| CodecError::NotAVariant(e.to_string()))?;
    split_variant(value).map(|(name, _)| name)
}

/// A typed domain event as a store event (with a fresh id; the caller sets ids and
/// metadata).
pub fn encode_event<E: Serialize>(event: &E) -> Result<NewEvent, CodecError> {
    let value = serde_json::to_value(event).map_err(|e| CodecError::NotAVariant(e.to_string()))?;
    let (name, data) = split_variant(value)?;
    Ok(NewEvent::new(name, &data)?)
}

/// A recorded event as a typed domain event.
pub fn decode_event<E: DeserializeOwned>(event: &RecordedEvent) -> Result<E, CodecError> {
    decode_parts(&event.event_type, &event.data)
}

/// A type name and JSON data text as a typed value.
pub fn decode_parts<E: DeserializeOwned>(type_name: &str, data: &Bytes) -> Result<E, CodecError> {
    let data: Value = serde_json::from_slice(data).map_err(|e| CodecError::Decode {
        type_name: type_name.to_owned(),
        message: e.to_string(),
    })?;
    join_variant(type_name, data)
}

fn truncate(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 80;
    match text.char_indices().nth(SHOWN_CHARS_MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Ev {
        Created { title: String },
        Renamed(String),
        Closed,
    }

    #[test]
    fn variants_round_trip_through_type_and_data() {
        for ev in [
            Ev::Created { title: "a".into() },
            Ev::Renamed("b".into()),
            Ev::Closed,
        ] {
            let new = encode_event(&ev).unwrap();
            let back: Ev = decode_parts(new.event_type(), new.data()).unwrap();
            assert_eq!(back, ev);
        }
        let new = encode_event(&Ev::Created { title: "t".into() }).unwrap();
        assert_eq!(new.event_type(), "Created");
        assert_eq!(&new.data()[..], br#"{"title":"t"}"#);
    }

    #[test]
    fn unknown_type_and_bad_data_are_decode_errors() {
        let err = join_variant::<Ev>("Nope", serde_json::json!({})).unwrap_err();
        assert!(matches!(err, CodecError::Decode { ref type_name, .. } if type_name == "Nope"));
        let err = join_variant::<Ev>("Created", serde_json::json!({"title": 3})).unwrap_err();
        assert!(matches!(err, CodecError::Decode { .. }));
    }

    #[test]
    fn a_struct_is_not_a_variant() {
        #[derive(Serialize)]
        struct S {
            a: u8,
            b: u8,
        }
        assert!(matches!(
            encode_event(&S { a: 1, b: 2 }),
            Err(CodecError::NotAVariant(_))
        ));
    }
}
