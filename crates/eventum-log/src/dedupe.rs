//! The writer's window of recently written event ids, which recognises a retried append
//! whatever its expectation. It is built so that the writer thread never pauses for it:
//! no table grows, none is freed, and no entry is dropped one by one.

use std::hash::BuildHasher;

use uuid::Uuid;

/// Recently written event ids.
///
/// Two generations instead of a FIFO of single ids. Ids go into `current`; when it holds
/// `capacity`, it becomes `previous`, and the older table is emptied and reused as
/// `current`. The window therefore always covers at least the last `capacity` ids (at most
/// twice that), and no insert pays for evicting one old id, which would be a cache miss
/// into a large table on every event.
///
/// Each table is sized once, at open, and reused from then on. Two kinds of pause of the
/// old design, 6–17 ms each on the writer thread, were measured on the shop over HTTP at
/// 2,000 orders/s (`perf record` of that thread):
/// - a table that doubled as it filled rehashed every id on the writer thread;
/// - a table allocated afresh at each rotation took its first-touch page faults there.
///
/// The old design also dropped a whole generation's shared stream names on the writer
/// thread, a cache miss per id; plain values leave nothing to drop.
pub(crate) struct Dedupe {
    capacity: usize,
    current: IdMap,
    previous: IdMap,
    /// Keys stream names for the table. The per-process seed keeps anyone from choosing
    /// names that collide.
    names: foldhash::quality::RandomState,
}

/// Event id → (stream key, version, position). Plain values, so emptying a table resets
/// its control bytes and touches no entry. foldhash instead of SipHash: ids are 16 bytes,
/// hashed once per event on the writer thread, and its per-process seed keeps chosen ids
/// from colliding on purpose.
type IdMap = foldhash::HashMap<Uuid, (u64, u64, u64)>;

impl Dedupe {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            current: table(capacity),
            previous: table(capacity),
            names: Default::default(),
        }
    }

    /// The key of a stream name in this window. A retry is recognised only when its
    /// stream's key matches. Two names share a key with probability 2⁻⁶⁴, and even then
    /// only a client reusing an event id in the other stream could be answered as a
    /// retry.
    pub fn stream_key(&self, stream: &str) -> u64 {
        self.names.hash_one(stream)
    }

    /// (stream key, version, position) of `id`, if it is in the window.
    pub fn get(&self, id: &Uuid) -> Option<(u64, u64, u64)> {
        self.current
            .get(id)
            .or_else(|| self.previous.get(id))
            .copied()
    }

    pub fn insert(&mut self, id: Uuid, stream_key: u64, version: u64, position: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.current.len() >= self.capacity {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert(id, (stream_key, version, position));
    }

    /// Both tables' capacities, for the tests.
    #[cfg(test)]
    fn table_capacities(&self) -> (usize, usize) {
        (self.current.capacity(), self.previous.capacity())
    }
}

/// An empty table for `capacity` ids. Its pages are touched as it first fills, so the
/// writer takes their page faults during the first two generations of the process and
/// never again. Touching them at open instead (filling with placeholders) cost every open
/// a few milliseconds, and the store's debug-build tests seconds.
fn table(capacity: usize) -> IdMap {
    IdMap::with_capacity_and_hasher(capacity, Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_at_least_the_last_capacity_ids_and_forgets_older_generations() {
        let mut dedupe = Dedupe::new(3);
        let ids: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
        let key = dedupe.stream_key("s");
        for (i, id) in ids.iter().enumerate() {
            dedupe.insert(*id, key, i as u64, 100 + i as u64);
            // Whatever the moment, the last `capacity` ids are recognised.
            for (j, recent) in ids[..=i].iter().enumerate().rev().take(3) {
                let found = dedupe.get(recent).expect("recent id");
                assert_eq!(found, (key, j as u64, 100 + j as u64));
            }
        }
        // Ten inserts with capacity 3: generations rotated at the 4th, 7th and 10th, so
        // only ids 6..10 are left (bounded at twice the capacity).
        assert!(ids[..6].iter().all(|id| dedupe.get(id).is_none()));
        assert!(ids[6..].iter().all(|id| dedupe.get(id).is_some()));
    }

    #[test]
    fn tables_are_sized_at_open_and_keep_their_capacity_through_rotations() {
        let mut dedupe = Dedupe::new(1000);
        let opened = dedupe.table_capacities();
        assert!(opened.0 >= 1000 && opened.1 >= 1000, "{opened:?}");
        let key = dedupe.stream_key("s");
        for i in 0..5000 {
            dedupe.insert(Uuid::now_v7(), key, i, i);
            let now = dedupe.table_capacities();
            assert!(
                now == opened || now == (opened.1, opened.0),
                "a table was reallocated at insert {i}: {now:?}, opened with {opened:?}"
            );
        }
    }

    #[test]
    fn stream_keys_tell_names_apart() {
        let dedupe = Dedupe::new(1);
        assert_eq!(dedupe.stream_key("order-1"), dedupe.stream_key("order-1"));
        assert_ne!(dedupe.stream_key("order-1"), dedupe.stream_key("order-2"));
    }

    #[test]
    fn with_no_capacity_remembers_nothing() {
        let mut dedupe = Dedupe::new(0);
        let id = Uuid::now_v7();
        dedupe.insert(id, dedupe.stream_key("s"), 0, 0);
        assert!(dedupe.get(&id).is_none());
    }
}
