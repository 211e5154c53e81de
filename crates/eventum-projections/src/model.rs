//! The read-model contract: the [`Projection`] trait a read model implements, the
//! [`Lookup`]s (secondary indexes) its documents have, and the naming rules.

use eventum_core::{RecordedEvent, SubscriptionTarget};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{InvalidRequest, ProjectionError};
use crate::tx::ProjectionTx;

/// Longest read-model or consumer name, in bytes.
pub const NAME_BYTES_MAX: usize = 128;

/// A read model kept up to date from the event log.
///
/// `apply` must be a deterministic function of the documents it reads and the event: a
/// rebuild replays the log from position 0 and must arrive at the same documents.
pub trait Projection: Send + Sync + 'static {
    /// The read model's name: ASCII letters, digits, `_`, `-`, `.`; at most
    /// [`NAME_BYTES_MAX`] bytes.
    fn name(&self) -> &str;

    /// The version of the projection's code. A stored read model of another version is
    /// rebuilt from position 0 when the projection starts; the old one serves meanwhile.
    fn version(&self) -> u64;

    /// What the projection follows.
    fn target(&self) -> SubscriptionTarget;

    /// The lookups its documents have; changing them also needs a rebuild.
    fn lookups(&self) -> Vec<Lookup> {
        Vec::new()
    }

    /// Applies one event: reads and writes documents through `tx`. An error stops the
    /// projection; nothing of the event's batch is committed.
    fn apply(
        &self,
        tx: &mut ProjectionTx<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError>;
}

/// A secondary index of a read model: the value at `pointer` (a JSON pointer such as
/// `/status`) of every document, mapped to the keys of the documents that have it.
/// Strings index as themselves, numbers and booleans as their JSON text, arrays as each
/// of their scalar elements; missing, `null` and objects are not indexed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    pub name: String,
    pub pointer: String,
}

impl Lookup {
    /// A lookup named `name` on the field at JSON pointer `pointer`.
    pub fn field(name: impl Into<String>, pointer: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            pointer: pointer.into(),
        }
    }

    /// The values `doc` indexes under this lookup.
    pub(crate) fn values(&self, doc: &Value) -> Vec<String> {
        fn scalar(v: &Value) -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }
        match doc.pointer(&self.pointer) {
            Some(Value::Array(items)) => {
                let mut values: Vec<String> = items.iter().filter_map(scalar).collect();
                values.sort_unstable();
                values.dedup();
                values
            }
            Some(v) => scalar(v).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

/// Checks a set of lookups: valid distinct names, pointers that are JSON pointers.
pub(crate) fn check_lookups(lookups: &[Lookup]) -> Result<(), InvalidRequest> {
    let mut seen = std::collections::HashSet::new();
    for l in lookups {
        check_name("lookup", &l.name)?;
        if !(l.pointer.is_empty() || l.pointer.starts_with('/')) {
            return Err(InvalidRequest::BadLookupPointer {
                lookup: l.name.clone(),
                pointer: l.pointer.clone(),
            });
        }
        if !seen.insert(&l.name) {
            return Err(InvalidRequest::DuplicateLookup(l.name.clone()));
        }
    }
    Ok(())
}

/// Checks a read-model or lookup name: non-empty, bounded, `[A-Za-z0-9_.-]`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), InvalidRequest> {
    if name.is_empty() {
        return Err(InvalidRequest::EmptyName { what });
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(InvalidRequest::NameTooLong {
            what,
            len_bytes: name.len(),
            max_bytes: NAME_BYTES_MAX,
        });
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(InvalidRequest::BadNameCharacter {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a user consumer's name: non-empty, bounded, no control characters, not starting
/// with `$` (reserved for projections' own inboxes and checkpoints).
pub fn check_consumer_name(name: &str) -> Result<(), InvalidRequest> {
    let what = "consumer";
    if name.is_empty() {
        return Err(InvalidRequest::EmptyName { what });
    }
    if name.len() > NAME_BYTES_MAX * 2 {
        return Err(InvalidRequest::NameTooLong {
            what,
            len_bytes: name.len(),
            max_bytes: NAME_BYTES_MAX * 2,
        });
    }
    if name.starts_with('$') {
        return Err(InvalidRequest::ReservedConsumerName(name.to_owned()));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidRequest::BadNameCharacter {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_values_from_scalars_and_arrays() {
        let l = Lookup::field("by_tag", "/tags");
        assert_eq!(
            l.values(&json!({"tags": ["b", "a", "b", 3, {"x": 1}]})),
            vec!["3", "a", "b"]
        );
        let s = Lookup::field("by_status", "/status");
        assert_eq!(s.values(&json!({"status": "open"})), vec!["open"]);
        assert_eq!(s.values(&json!({"status": true})), vec!["true"]);
        assert!(s.values(&json!({"status": null})).is_empty());
        assert!(s.values(&json!({})).is_empty());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("read model", "orders.v1-x_y").is_ok());
        assert!(matches!(
            check_name("read model", "a/b"),
            Err(InvalidRequest::BadNameCharacter { .. })
        ));
        assert!(matches!(
            check_name("read model", ""),
            Err(InvalidRequest::EmptyName { .. })
        ));
        assert!(matches!(
            check_consumer_name("$p"),
            Err(InvalidRequest::ReservedConsumerName(_))
        ));
        assert!(matches!(
            check_lookups(&[Lookup::field("a", "x")]),
            Err(InvalidRequest::BadLookupPointer { .. })
        ));
        assert!(matches!(
            check_lookups(&[Lookup::field("a", "/x"), Lookup::field("a", "/y")]),
            Err(InvalidRequest::DuplicateLookup(_))
        ));
    }
}
