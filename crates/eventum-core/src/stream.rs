//! Stream names: validation, the reserved `$` prefix, categories and metadata streams.

use std::fmt;

use crate::error::InvalidInput;

/// Longest stream name accepted, in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 256;

/// Prefix of the system stream that holds a stream's metadata and deletion markers
/// (`$$order-42` belongs to `order-42`).
pub const METADATA_STREAM_PREFIX: &str = "$$";

/// Event type of the marker that soft-deletes a stream, recorded in its metadata stream.
pub const STREAM_DELETED_TYPE: &str = "$stream-deleted";
/// Event type of a change of a stream's retention metadata, recorded in its metadata
/// stream; its data is a [`crate::StreamMetadata`].
pub const METADATA_TYPE: &str = "$metadata";

/// A validated stream name: non-empty, at most [`STREAM_NAME_BYTES_MAX`] bytes, no control
/// characters. Names starting with `$` are reserved for the system and can only be built
/// with [`StreamName::system`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    /// A user stream name; rejects the reserved `$` prefix.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidInput> {
        let name = name.into();
        Self::check_shape(&name)?;
        if name.starts_with('$') {
            return Err(InvalidInput::ReservedStreamName(name));
        }
        Ok(Self(name))
    }

    /// Any well-formed name, `$`-prefixed system streams included.
    pub fn system(name: impl Into<String>) -> Result<Self, InvalidInput> {
        let name = name.into();
        Self::check_shape(&name)?;
        Ok(Self(name))
    }

    fn check_shape(name: &str) -> Result<(), InvalidInput> {
        if name.is_empty() {
            return Err(InvalidInput::EmptyStreamName);
        }
        if name.len() > STREAM_NAME_BYTES_MAX {
            return Err(InvalidInput::StreamNameTooLong {
                len_bytes: name.len(),
                max_bytes: STREAM_NAME_BYTES_MAX,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput::StreamNameControlCharacter);
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The part before the first `-` (`order-42` → `order`); the whole name when it has none.
    pub fn category(&self) -> &str {
        category_of(&self.0)
    }

    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    /// The metadata stream `$${name}` that records this stream's metadata and deletion.
    pub fn metadata_stream(&self) -> StreamName {
        StreamName(format!("{METADATA_STREAM_PREFIX}{}", self.0))
    }

    /// For `$$order-42`, the stream it describes (`order-42`).
    pub fn described_stream(&self) -> Option<StreamName> {
        let rest = self.0.strip_prefix(METADATA_STREAM_PREFIX)?;
        (!rest.is_empty()).then(|| StreamName(rest.to_owned()))
    }
}

/// The category of a stream name: the part before its first `-`.
pub fn category_of(name: &str) -> &str {
    name.split_once('-').map_or(name, |(category, _)| category)
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for StreamName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_is_prefix_before_first_dash() {
        assert_eq!(category_of("order-42"), "order");
        assert_eq!(category_of("order-42-x"), "order");
        assert_eq!(category_of("order"), "order");
        assert_eq!(StreamName::new("user-1").unwrap().category(), "user");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(StreamName::new(""), Err(InvalidInput::EmptyStreamName));
        assert!(matches!(
            StreamName::new("x".repeat(257)),
            Err(InvalidInput::StreamNameTooLong { len_bytes: 257, .. })
        ));
        assert!(StreamName::new("x".repeat(256)).is_ok());
        assert_eq!(
            StreamName::new("a\nb"),
            Err(InvalidInput::StreamNameControlCharacter)
        );
        assert!(matches!(
            StreamName::new("$all"),
            Err(InvalidInput::ReservedStreamName(_))
        ));
        assert!(StreamName::system("$all").is_ok());
    }

    #[test]
    fn metadata_stream_round_trips() {
        let s = StreamName::new("order-42").unwrap();
        let m = s.metadata_stream();
        assert_eq!(m.as_str(), "$$order-42");
        assert_eq!(m.described_stream(), Some(s));
        assert_eq!(StreamName::system("$$").unwrap().described_stream(), None);
    }
}
