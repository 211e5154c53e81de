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
#[derive(Clone, Debug, Default)]
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

    /// Removes what `flushed`, an earlier copy of this memtable now in the index file,
    /// holds, and keeps whatever was added since. Runs only grow at their end, so the
    /// flushed part of each run is its first entries; a row changed since the copy stays
    /// to be written again; names stay known while they still have entries here.
    pub fn remove_flushed(&mut self, flushed: &Memtable) {
        drain_runs(&mut self.stream_runs, &flushed.stream_runs);
        drain_runs(&mut self.category_runs, &flushed.category_runs);
        for (name, row) in &flushed.rows {
            if self.rows.get(name) == Some(row) {
                self.rows.remove(name);
            }
        }
        for name in flushed.stream_nos.keys() {
            let Some(no) = self.stream_nos.get(name) else {
                continue;
            };
            if !self.stream_runs.contains_key(no) && !self.rows.contains_key(name) {
                self.stream_nos.remove(name);
            }
        }
        for name in flushed.category_nos.keys() {
            let Some((no, new)) = self.category_nos.get_mut(name) else {
                continue;
            };
            // Written by the flush: no longer new.
            *new = false;
            let no = *no;
            if !self.category_runs.contains_key(&no) {
                self.category_nos.remove(name);
            }
        }
        if let Some(last) = flushed.sparse.keys().next_back() {
            self.sparse = self.sparse.split_off(&(last + 1));
        }
        self.events = self.events.saturating_sub(flushed.events);
    }

    pub fn sparse_floor(&self, position: u64) -> Option<(u64, u64)> {
        self.sparse
            .range(..=position)
            .next_back()
            .map(|(p, o)| (*p, *o))
    }
}

/// Drops from each run of `live` as many leading entries as `flushed`'s run holds.
fn drain_runs(live: &mut HashMap<u64, MemRun>, flushed: &HashMap<u64, MemRun>) {
    for (no, run) in flushed {
        let Some(current) = live.get_mut(no) else {
            continue;
        };
        let n = run.entries.len().min(current.entries.len());
        debug_assert_eq!(current.entries[..n], run.entries[..n], "runs only grow");
        current.entries.drain(..n);
        if current.entries.is_empty() {
            live.remove(no);
        }
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

    fn run(entries: &[(u64, u64, u64)]) -> MemRun {
        MemRun {
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn removing_a_flushed_copy_keeps_what_was_added_since() {
        let mut live = Memtable::default();
        live.stream_nos.insert("a-1".into(), 0);
        live.stream_nos.insert("b-1".into(), 1);
        live.rows.insert("a-1".into(), StreamRow::default());
        live.rows.insert(
            "b-1".into(),
            StreamRow {
                stream_no: 1,
                ..StreamRow::default()
            },
        );
        live.stream_runs.insert(0, run(&[(0, 0, 10)]));
        live.stream_runs.insert(1, run(&[(0, 1, 20)]));
        live.category_nos.insert("a".into(), (0, true));
        live.category_nos.insert("b".into(), (1, true));
        live.category_runs.insert(0, run(&[(0, 0, 10)]));
        live.category_runs.insert(1, run(&[(1, 1, 20)]));
        live.sparse.insert(0, 10);
        live.events = 2;
        let flushed = live.clone();

        // Added while the copy was being written: one more event of b-1, which is
        // also deleted meanwhile (its row changes).
        live.stream_runs
            .get_mut(&1)
            .unwrap()
            .entries
            .push((1, 2, 30));
        live.category_runs
            .get_mut(&1)
            .unwrap()
            .entries
            .push((2, 2, 30));
        live.rows.get_mut("b-1").unwrap().deleted = true;
        live.events = 3;

        live.remove_flushed(&flushed);
        assert_eq!(live.events, 1);
        assert!(!live.stream_runs.contains_key(&0), "a-1 is all in the file");
        assert_eq!(live.stream_runs[&1].entries, vec![(1, 2, 30)]);
        assert_eq!(live.category_runs[&1].entries, vec![(2, 2, 30)]);
        assert!(!live.category_runs.contains_key(&0));
        assert!(!live.rows.contains_key("a-1"), "written unchanged");
        assert!(
            live.rows["b-1"].deleted,
            "changed since the copy: written again"
        );
        assert!(!live.stream_nos.contains_key("a-1"));
        assert_eq!(live.stream_nos.get("b-1"), Some(&1));
        assert!(!live.category_nos.contains_key("a"));
        assert_eq!(
            live.category_nos.get("b"),
            Some(&(1, false)),
            "written once"
        );
        assert!(live.sparse.is_empty());
    }
}
