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
    join_variant_ref(type_name, &data)
}

/// [`join_variant`] reading the data in place: the name and data are presented to the
/// enum as the one entry of a map (`{"Name": data}`) without building that map, and a
/// unit variant's `null` reads as the variant.
pub fn join_variant_ref<T: DeserializeOwned>(
    type_name: &str,
    data: &Value,
) -> Result<T, CodecError> {
    use serde::de::value::{MapAccessDeserializer, MapDeserializer};
    let entry = MapDeserializer::<_, serde_json::Error>::new(std::iter::once((type_name, data)));
    T::deserialize(MapAccessDeserializer::new(entry)).map_err(|e| CodecError::Decode {
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
    let json = serde_json::to_vec(event).map_err(|e| CodecError::NotAVariant(e.to_string()))?;
    // The common shape, `{"Name":data}`, is cut apart as text: building a `Value` tree
    // and writing it out again cost more than the rest of a command's handling.
    if let Some((name, data)) = split_tagged_text(&json) {
        let name = name.to_owned();
        if let Ok(event) = NewEvent::from_json(name, Bytes::from(json).slice(data)) {
            return Ok(event);
        }
    }
    encode_slowly(event)
}

/// Unit variants (`"Name"`) and anything [`split_tagged_text`] leaves alone.
fn encode_slowly<E: Serialize>(event: &E) -> Result<NewEvent, CodecError> {
    let value = serde_json::to_value(event).map_err(|e| CodecError::NotAVariant(e.to_string()))?;
    let (name, data) = split_variant(value)?;
    Ok(NewEvent::new(name, &data)?)
}

/// `{"Name":data}` as the name and the byte range of `data`, for a name with nothing to
/// unescape. Whether `data` is one whole JSON value is for the caller to check: for a
/// map of several entries it is not.
fn split_tagged_text(json: &[u8]) -> Option<(&str, std::ops::Range<usize>)> {
    let rest = json.strip_prefix(b"{\"")?;
    let quote = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[quote] != b'"' || rest.get(quote + 1) != Some(&b':') || json.last() != Some(&b'}') {
        return None;
    }
    let name = std::str::from_utf8(&rest[..quote]).ok()?;
    let start = 2 + quote + 2;
    (start < json.len() - 1).then_some((name, start..json.len() - 1))
}

/// A recorded event as a typed domain event.
pub fn decode_event<E: DeserializeOwned>(event: &RecordedEvent) -> Result<E, CodecError> {
    decode_parts(&event.event_type, &event.data)
}

/// A type name and JSON data text as a typed value.
pub fn decode_parts<E: DeserializeOwned>(type_name: &str, data: &Bytes) -> Result<E, CodecError> {
    // `{"Name":data}` as text, parsed once into the typed value (no `Value` tree). A unit
    // variant reads `{"Name":null}` as well as `"Name"`. As with serde_json's parser
    // anywhere, a struct variant also reads its fields from an array in declaration order
    // (`{"Created":["a"]}`), a form the codec never writes and a `Value` tree refuses.
    let mut tagged = Vec::with_capacity(data.len() + type_name.len() + 6);
    tagged.push(b'{');
    serde_json::to_writer(&mut tagged, type_name).expect("a string serializes");
    tagged.push(b':');
    tagged.extend_from_slice(data);
    tagged.push(b'}');
    serde_json::from_slice(&tagged).map_err(|e| CodecError::Decode {
        type_name: type_name.to_owned(),
        message: e.to_string(),
    })
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
        let new = encode_event(&Ev::Closed).unwrap();
        assert_eq!(
            (new.event_type(), &new.data()[..]),
            ("Closed", &b"null"[..])
        );
    }

    #[test]
    fn names_with_escapes_and_nested_values_round_trip() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Odd {
            #[serde(rename = "a\"b")]
            Quoted { inner: Vec<Ev> },
            #[serde(rename = "é")]
            Accented(Option<u8>),
        }
        for ev in [
            Odd::Quoted {
                inner: vec![Ev::Closed, Ev::Renamed("}".into())],
            },
            Odd::Accented(None),
            Odd::Accented(Some(7)),
        ] {
            let new = encode_event(&ev).unwrap();
            let back: Odd = decode_parts(new.event_type(), new.data()).unwrap();
            assert_eq!(back, ev);
        }
        assert_eq!(
            encode_event(&Odd::Accented(None)).unwrap().event_type(),
            "é"
        );
        assert_eq!(
            encode_event(&Odd::Quoted { inner: vec![] })
                .unwrap()
                .event_type(),
            "a\"b"
        );
    }

    /// The decoding of the `Value`-tree codec this one replaced: the reference.
    fn decode_through_a_tree<E: DeserializeOwned>(type_name: &str, data: &[u8]) -> Option<E> {
        let data: Value = serde_json::from_slice(data).ok()?;
        let mut map = serde_json::Map::new();
        map.insert(type_name.to_owned(), data);
        serde_json::from_value(Value::Object(map)).ok()
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z}{\\\":, ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("title|x|[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever data a store holds under whichever type name, the text codec decodes
        /// what the tree codec did, to the same value. Beyond it, it reads a struct
        /// variant's fields from an array (see [`decode_parts`]), and nothing else. The
        /// in-place join agrees with the tree exactly. What the codec encodes decodes back
        /// the same.
        #[test]
        fn text_codec_agrees_with_the_tree_codec(
            name in "Created|Renamed|Closed|Nope|[a-zA-Z\"\\\\]{0,6}",
            data in any_json(),
        ) {
            let bytes = Bytes::from(serde_json::to_vec(&data).unwrap());
            let new = decode_parts::<Ev>(&name, &bytes).ok();
            let reference = decode_through_a_tree::<Ev>(&name, &bytes);
            let joined = join_variant_ref::<Ev>(&name, &data).ok();
            proptest::prop_assert_eq!(&joined, &reference);
            match (&new, &reference) {
                (_, Some(_)) => proptest::prop_assert_eq!(&new, &reference),
                (Some(Ev::Created { .. }), None) => proptest::prop_assert!(data.is_array()),
                (Some(other), None) => proptest::prop_assert!(false, "only text decodes {other:?}"),
                (None, None) => {}
            }
            if let Some(ev) = new {
                let encoded = encode_event(&ev).unwrap();
                let back = decode_parts::<Ev>(encoded.event_type(), encoded.data()).unwrap();
                proptest::prop_assert_eq!(back, ev);
            }
        }
    }

    #[test]
    fn data_that_is_not_json_does_not_decode() {
        for data in [&b"1,\"x\":2"[..], b"", b"{", b"nul"] {
            let err = decode_parts::<Ev>("Created", &Bytes::copy_from_slice(data)).unwrap_err();
            assert!(matches!(err, CodecError::Decode { .. }), "{data:?}");
        }
    }

    #[test]
    fn every_variant_shape_joins_from_its_name_and_data() {
        let cases = [
            (
                "Created",
                serde_json::json!({"title": "a"}),
                Ev::Created { title: "a".into() },
            ),
            ("Renamed", serde_json::json!("b"), Ev::Renamed("b".into())),
            ("Closed", Value::Null, Ev::Closed),
        ];
        for (name, data, expected) in cases {
            assert_eq!(join_variant_ref::<Ev>(name, &data).unwrap(), expected);
            assert_eq!(join_variant::<Ev>(name, data).unwrap(), expected);
        }
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
