//! The configurable bounds on what one request may carry.

use crate::error::InvalidInput;
use crate::event::NewEvent;

/// Input bounds enforced before anything is written. Every backend applies the same
/// checks through [`Limits::check_batch`], so a rejected request writes nothing anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest event (type + data + metadata), in bytes.
    pub event_bytes_max: usize,
    /// Most events in one append.
    pub batch_events_max: usize,
    /// Largest append (sum of its events), in bytes.
    pub batch_bytes_max: usize,
    /// Most events one read returns.
    pub read_events_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            event_bytes_max: 1024 * 1024,
            batch_events_max: 10_000,
            batch_bytes_max: 16 * 1024 * 1024,
            read_events_max: 10_000,
        }
    }
}

impl Limits {
    /// Checks an append batch: non-empty, within the counts and sizes, no repeated id.
    pub fn check_batch(&self, events: &[NewEvent]) -> Result<(), InvalidInput> {
        if events.is_empty() {
            return Err(InvalidInput::EmptyBatch);
        }
        if events.len() > self.batch_events_max {
            return Err(InvalidInput::BatchTooManyEvents {
                events: events.len(),
                max_events: self.batch_events_max,
            });
        }
        let mut total_bytes = 0usize;
        for (index, event) in events.iter().enumerate() {
            let size_bytes = event.size_bytes();
            if size_bytes > self.event_bytes_max {
                return Err(InvalidInput::EventTooLarge {
                    index,
                    size_bytes,
                    max_bytes: self.event_bytes_max,
                });
            }
            total_bytes += size_bytes;
        }
        if total_bytes > self.batch_bytes_max {
            return Err(InvalidInput::BatchTooLarge {
                size_bytes: total_bytes,
                max_bytes: self.batch_bytes_max,
            });
        }
        if events.len() > 1 {
            let mut ids: Vec<_> = events.iter().map(NewEvent::id).collect();
            ids.sort_unstable();
            if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                return Err(InvalidInput::DuplicateEventId(w[0]));
            }
        }
        Ok(())
    }

    /// Checks a read's requested count.
    pub fn check_read_limit(&self, limit: usize) -> Result<(), InvalidInput> {
        if limit == 0 || limit > self.read_events_max {
            return Err(InvalidInput::ReadLimitOutOfRange {
                limit,
                max: self.read_events_max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> NewEvent {
        NewEvent::from_json("T", format!("\"{}\"", "x".repeat(n))).unwrap()
    }

    #[test]
    fn batch_bounds() {
        let l = Limits {
            event_bytes_max: 100,
            batch_events_max: 3,
            batch_bytes_max: 150,
            read_events_max: 10,
        };
        assert_eq!(l.check_batch(&[]), Err(InvalidInput::EmptyBatch));
        assert!(l.check_batch(&[ev(10), ev(10), ev(10)]).is_ok());
        assert!(matches!(
            l.check_batch(&[ev(1), ev(1), ev(1), ev(1)]),
            Err(InvalidInput::BatchTooManyEvents { events: 4, .. })
        ));
        assert!(matches!(
            l.check_batch(&[ev(1), ev(200)]),
            Err(InvalidInput::EventTooLarge { index: 1, .. })
        ));
        assert!(matches!(
            l.check_batch(&[ev(90), ev(90)]),
            Err(InvalidInput::BatchTooLarge { .. })
        ));
        let e = ev(1);
        assert_eq!(
            l.check_batch(&[e.clone(), e.clone()]),
            Err(InvalidInput::DuplicateEventId(e.id()))
        );
        assert!(l.check_read_limit(0).is_err());
        assert!(l.check_read_limit(11).is_err());
        assert!(l.check_read_limit(10).is_ok());
    }
}
