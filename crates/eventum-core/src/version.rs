//! Stream versions: what an append expects and what a stream actually is.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The optimistic-concurrency condition of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have this version (0-based).
    Exact(u64),
}

/// What a stream is at the moment of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActualVersion {
    NoStream,
    Version(u64),
}

impl ActualVersion {
    /// The version the next event of this stream gets.
    pub fn next_version(self) -> u64 {
        match self {
            ActualVersion::NoStream => 0,
            ActualVersion::Version(v) => v + 1,
        }
    }

    pub fn as_option(self) -> Option<u64> {
        match self {
            ActualVersion::NoStream => None,
            ActualVersion::Version(v) => Some(v),
        }
    }

    pub fn from_option(v: Option<u64>) -> Self {
        v.map_or(ActualVersion::NoStream, ActualVersion::Version)
    }
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn is_satisfied_by(self, actual: ActualVersion) -> bool {
        match (self, actual) {
            (ExpectedVersion::Any, _) => true,
            (ExpectedVersion::NoStream, ActualVersion::NoStream) => true,
            (ExpectedVersion::StreamExists, ActualVersion::Version(_)) => true,
            (ExpectedVersion::Exact(e), ActualVersion::Version(a)) => e == a,
            _ => false,
        }
    }

    /// Parses the wire form: `any`, `no_stream`, `exists` or a number.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "any" => Some(ExpectedVersion::Any),
            "no_stream" => Some(ExpectedVersion::NoStream),
            "exists" => Some(ExpectedVersion::StreamExists),
            n => n.parse().ok().map(ExpectedVersion::Exact),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::StreamExists => f.write_str("exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

impl fmt::Display for ActualVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActualVersion::NoStream => f.write_str("no_stream"),
            ActualVersion::Version(v) => write!(f, "{v}"),
        }
    }
}

/// Wire form: `"any"`, `"no_stream"`, `"exists"` or a JSON number.
impl Serialize for ExpectedVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExpectedVersion::Exact(v) => s.serialize_u64(*v),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectedVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(u64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Number(n) => Ok(ExpectedVersion::Exact(n)),
            Wire::Text(t) => ExpectedVersion::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "expected_version must be \"any\", \"no_stream\", \"exists\" or a non-negative integer, got {t:?}"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActualVersion::*;
    use ExpectedVersion::*;

    #[test]
    fn satisfaction_table() {
        assert!(Any.is_satisfied_by(ActualVersion::NoStream));
        assert!(Any.is_satisfied_by(Version(3)));
        assert!(ExpectedVersion::NoStream.is_satisfied_by(ActualVersion::NoStream));
        assert!(!ExpectedVersion::NoStream.is_satisfied_by(Version(0)));
        assert!(StreamExists.is_satisfied_by(Version(0)));
        assert!(!StreamExists.is_satisfied_by(ActualVersion::NoStream));
        assert!(Exact(2).is_satisfied_by(Version(2)));
        assert!(!Exact(2).is_satisfied_by(Version(3)));
        assert!(!Exact(0).is_satisfied_by(ActualVersion::NoStream));
    }

    #[test]
    fn wire_form_round_trips() {
        for v in [Any, ExpectedVersion::NoStream, StreamExists, Exact(7)] {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(serde_json::from_str::<ExpectedVersion>(&json).unwrap(), v);
        }
        assert!(serde_json::from_str::<ExpectedVersion>("\"sometimes\"").is_err());
        assert!(serde_json::from_str::<ExpectedVersion>("-1").is_err());
    }
}
