//! Retry scheduling: the exponential backoff of a failed delivery and the bounded
//! schedule of events waiting for their next attempt.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Delay before the next attempt after `attempts_made` deliveries failed:
/// `base × 2^(attempts_made − 1)`, capped at `max`.
pub fn backoff_ms(attempts_made: u32, base_ms: u64, max_ms: u64) -> u64 {
    let doublings = attempts_made.saturating_sub(1).min(63);
    base_ms.saturating_mul(1u64 << doublings).min(max_ms)
}

/// Items waiting for a due time, earliest first; ties keep insertion order. Its size is
/// bounded by the group's in-flight limit, since only a delivery can fail into it.
pub struct RetrySchedule<T> {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    items: std::collections::HashMap<u64, T>,
    next_seq: u64,
}

impl<T> Default for RetrySchedule<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            items: std::collections::HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<T> RetrySchedule<T> {
    pub fn schedule(&mut self, due_ms: u64, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((due_ms, seq)));
        self.items.insert(seq, item);
    }

    /// Takes the next item due at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<T> {
        let Reverse((due, seq)) = *self.heap.peek()?;
        if due > now_ms {
            return None;
        }
        self.heap.pop();
        self.items.remove(&seq)
    }

    /// When the earliest item is due.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let d: Vec<u64> = (1..=6).map(|a| backoff_ms(a, 100, 1_000)).collect();
        assert_eq!(d, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff_ms(200, 100, u64::MAX), u64::MAX);
    }

    #[test]
    fn schedule_releases_in_due_order() {
        let mut s = RetrySchedule::default();
        s.schedule(30, "c");
        s.schedule(10, "a");
        s.schedule(10, "b");
        assert_eq!(s.next_due_ms(), Some(10));
        assert_eq!(s.pop_due(5), None);
        assert_eq!(s.pop_due(10), Some("a"));
        assert_eq!(s.pop_due(10), Some("b"));
        assert_eq!(s.pop_due(29), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.pop_due(100), Some("c"));
        assert!(s.is_empty());
    }
}
