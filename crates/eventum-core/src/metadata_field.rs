//! Reads one UUID field out of an event's metadata without building the whole object:
//! writers that stamp their events (the repository's command id, a saga runner's run id)
//! read the stamp back on every load, so other keys are skipped, not copied.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use uuid::Uuid;

use crate::event::RecordedEvent;

impl RecordedEvent {
    /// The UUID under `key` in the user metadata; `None` when the metadata is empty, is
    /// not a JSON object, lacks the key, or holds something else there.
    pub fn metadata_uuid(&self, key: &str) -> Option<Uuid> {
        metadata_uuid(&self.metadata, key)
    }
}

/// [`RecordedEvent::metadata_uuid`] of metadata JSON text.
pub fn metadata_uuid(metadata: &[u8], key: &str) -> Option<Uuid> {
    if metadata.is_empty() {
        return None;
    }
    let mut reader = serde_json::Deserializer::from_slice(metadata);
    UuidField { key }.deserialize(&mut reader).ok().flatten()
}

/// Finds `key` in a JSON object and parses its value as a UUID.
struct UuidField<'k> {
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for UuidField<'_> {
    type Value = Option<Uuid>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UuidField<'_> {
    type Value = Option<Uuid>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        // Keys with escapes come back owned; plain ones are borrowed from the text.
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.key && found.is_none() {
                found = map.next_value::<Option<Uuid>>().ok().flatten();
                if found.is_none() {
                    return Ok(None);
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190a5a0-0000-7000-8000-000000000001";

    #[test]
    fn finds_the_key_among_others() {
        let text = format!(r#"{{"a":[1,{{"runner":"x"}}],"runner":"{ID}","z":null}}"#);
        assert_eq!(
            metadata_uuid(text.as_bytes(), "runner"),
            Some(ID.parse().unwrap())
        );
        assert_eq!(metadata_uuid(text.as_bytes(), "command_id"), None);
    }

    #[test]
    fn anything_else_is_none() {
        for text in [
            "",
            "[]",
            "not json",
            r#"{"runner":"not a uuid"}"#,
            r#"{"runner":7}"#,
            r#"{"runner":null}"#,
        ] {
            assert_eq!(metadata_uuid(text.as_bytes(), "runner"), None, "{text}");
        }
    }

    #[test]
    fn an_escaped_key_still_matches() {
        let text = format!(r#"{{"run\u006eer":"{ID}"}}"#);
        assert_eq!(
            metadata_uuid(text.as_bytes(), "runner"),
            Some(ID.parse().unwrap())
        );
    }
}
