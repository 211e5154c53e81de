//! The index's in-memory layer: entries indexed since the last flush to redb, readable at
//! once. Appends to one stream land in one growing run here, so a flush writes one run per
//! stream touched since the previous flush instead of one per indexing transaction: under
//! many concurrent single-event writers this turns thousands of B-tree inserts per second
//! into a few hundred.

use std::collections::{BTreeMap, HashMap};

use crate::index::StreamRow;

/// One owner's (a stream's or a category's) entries since the last flush: `(key,
/// position, offset)` where the key is the version (streams) or the position
/// (categories), ascending.
#[derive(Clone, Debug, Default)]
pub(crate) struct MemRun {
    pub entries: Vec<(u64, u64, u64)>,
}

impl MemRun {
    /// The first key held here.
    pub fn first_key(&self) -> Option<u64> {
        self.entries.first().map(|e| e.0)
    }

    /// Up to `limit` entries with key ≥ `from`, ascending.
    pub fn forward_from(&self, from: u64, limit: usize) -> Vec<(u64, u64, u64)> {
        let start = self.entries.partition_point(|e| e.0 < from);
        self.entries[start..].iter().take(limit).copied().collect()
    }

    /// Up to `limit` entries with key ≤ `from`, descending.
    pub fn backward_from(&self, from: u64, limit: usize) -> Vec<(u64, u64, u64)> {
        let end = self.entries.partition_point(|e| e.0 <= from);
        self.entries[..end]
            .iter()
            .rev()
            .take(limit)
            .copied()
            .collect()
    }

    pub fn get(&self, key: u64) -> Option<(u64, u64)> {
        let i = self.entries.binary_search_by_key(&key, |e| e.0).ok()?;
        let (_, position, offset) = self.entries[i];
        Some((position, offset))
    }
}

/// Everything indexed but not yet written to the index file.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    /// Entries held, to decide when to flush.
    pub events: usize,
    /// Stream number of every stream touched since the last flush.
    pub stream_nos: HashMap<String, u64>,
    /// Rows to write at the flush: streams created, deleted or described since the last
    /// one.
    pub rows: HashMap<String, StreamRow>,
    pub stream_runs: HashMap<u64, MemRun>,
    /// Category number of every category touched since the last flush, and whether it is
    /// new (to be written at the flush).
    pub category_nos: HashMap<String, (u64, bool)>,
    pub category_runs: HashMap<u64, MemRun>,
    pub sparse: BTreeMap<u64, u64>,
    /// The reach after the last entry added.
    pub tail: Option<crate::index::IndexTail>,
}

impl Memtable {
    /// The last version of stream `stream_no` held here.
    pub fn last_version(&self, stream_no: u64) -> Option<u64> {
        self.stream_runs
            .get(&stream_no)
            .and_then(|r| r.entries.last())
            .map(|e| e.0)
    }

    pub fn sparse_floor(&self, position: u64) -> Option<(u64, u64)> {
        self.sparse
            .range(..=position)
            .next_back()
            .map(|(p, o)| (*p, *o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_answer_ranges_in_both_directions() {
        let run = MemRun {
            entries: vec![(5, 50, 500), (6, 60, 600), (7, 70, 700)],
        };
        assert_eq!(run.first_key(), Some(5));
        assert_eq!(run.forward_from(6, 10), vec![(6, 60, 600), (7, 70, 700)]);
        assert_eq!(run.forward_from(0, 1), vec![(5, 50, 500)]);
        assert_eq!(run.backward_from(6, 10), vec![(6, 60, 600), (5, 50, 500)]);
        assert_eq!(run.backward_from(4, 10), vec![]);
        assert_eq!(run.get(7), Some((70, 700)));
        assert_eq!(run.get(8), None);
    }
}
