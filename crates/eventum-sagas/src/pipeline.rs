//! The keyed pipeline both runners share: work for different keys (saga instances, source
//! streams) runs concurrently as tasks, work for one key runs strictly in arrival order,
//! and the durable checkpoint only ever passes positions whose work is finished.
//!
//! Why: handling one event at a time makes a runner's throughput one step per storage
//! sync. Independent keys in flight together let the store's group commit share each
//! sync among many steps, while per-key order keeps every instance's history exactly as
//! it would be sequentially.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;

use tokio::task::JoinSet;

/// What a finished task hands back: its key, the position it covered (none for work that
/// no event caused, like a deadline) and its own result.
pub struct Finished<O> {
    pub key: String,
    pub position: Option<u64>,
    pub output: O,
}

/// Queued work waiting for its key to be free.
struct Queued<W> {
    position: Option<u64>,
    work: W,
}

/// Bounded concurrency by key, with position tracking for the checkpoint.
pub struct Pipeline<W, O> {
    /// Keys with a task running, and the work queued behind it, oldest first.
    active: HashMap<String, VecDeque<Queued<W>>>,
    tasks: JoinSet<Finished<O>>,
    /// Positions received and not yet finished.
    unfinished: BTreeSet<u64>,
    /// Every position before this one has been received.
    next_position: u64,
    tasks_max: usize,
    unfinished_max: usize,
}

impl<W, O: Send + 'static> Pipeline<W, O> {
    pub fn new(from: u64, tasks_max: usize, unfinished_max: usize) -> Self {
        Self {
            active: HashMap::new(),
            tasks: JoinSet::new(),
            unfinished: BTreeSet::new(),
            next_position: from,
            tasks_max: tasks_max.max(1),
            unfinished_max: unfinished_max.max(1),
        }
    }

    /// Whether another event may be received: a new key would find a free task slot, and
    /// the unfinished positions stay within their bound.
    pub fn has_room(&self) -> bool {
        self.tasks.len() < self.tasks_max && self.unfinished.len() < self.unfinished_max
    }

    /// Nothing is running or queued.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Records that the event at `position` was received and needs no work.
    pub fn skip(&mut self, position: u64) {
        self.next_position = self.next_position.max(position + 1);
    }

    /// Every position before this one has been received (finished or not).
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// The position a checkpoint may record: every event before it is finished.
    pub fn checkpoint_position(&self) -> u64 {
        self.unfinished
            .first()
            .copied()
            .unwrap_or(self.next_position)
    }

    /// Accepts `work` for `key`. Returns it back when the key is free, so the caller
    /// starts it now with [`Self::start`]; otherwise it waits behind the key's running
    /// task and comes out of [`Self::finish`] later.
    pub fn submit(&mut self, key: &str, position: Option<u64>, work: W) -> Option<W> {
        if let Some(position) = position {
            self.unfinished.insert(position);
            self.skip(position);
        }
        match self.active.get_mut(key) {
            Some(queue) => {
                queue.push_back(Queued { position, work });
                None
            }
            None => {
                self.active.insert(key.to_owned(), VecDeque::new());
                Some(work)
            }
        }
    }

    /// Whether `key` has a task running.
    #[cfg(test)]
    pub fn is_active(&self, key: &str) -> bool {
        self.active.contains_key(key)
    }

    /// Runs `task` for `key` (which [`Self::submit`] or [`Self::finish`] just handed out).
    pub fn start<F>(&mut self, key: String, position: Option<u64>, task: F)
    where
        F: Future<Output = O> + Send + 'static,
    {
        debug_assert!(self.active.contains_key(&key));
        self.tasks.spawn(async move {
            let output = task.await;
            Finished {
                key,
                position,
                output,
            }
        });
    }

    /// The next finished task; pending forever when none runs (for `select!`).
    pub async fn next_finished(&mut self) -> Result<Finished<O>, tokio::task::JoinError> {
        match self.tasks.join_next().await {
            Some(result) => result,
            None => std::future::pending().await,
        }
    }

    /// Marks `finished`'s position done and hands out the key's next queued work, if any
    /// (the key stays active then, and the caller must start it).
    pub fn finish(&mut self, key: &str, position: Option<u64>) -> Option<(Option<u64>, W)> {
        if let Some(position) = position {
            self.unfinished.remove(&position);
        }
        let queue = self.active.get_mut(key)?;
        match queue.pop_front() {
            Some(next) => Some((next.position, next.work)),
            None => {
                self.active.remove(key);
                None
            }
        }
    }

    /// Waits for the running tasks to end without starting queued work. Gives back every
    /// outcome; positions stay unfinished until the caller marks the successful ones
    /// with [`Self::mark_finished`], so a failed one keeps the checkpoint before it.
    pub async fn drain(&mut self) -> Vec<Result<Finished<O>, tokio::task::JoinError>> {
        let mut outcomes = Vec::new();
        while let Some(result) = self.tasks.join_next().await {
            outcomes.push(result);
        }
        outcomes
    }

    /// Marks a drained task's position finished.
    pub fn mark_finished(&mut self, position: Option<u64>) {
        if let Some(position) = position {
            self.unfinished.remove(&position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_in_order_many_keys_together_checkpoint_behind_the_slowest() {
        let mut p: Pipeline<u32, u32> = Pipeline::new(10, 8, 100);
        // Key a: two works; key b: one. Only the first of a's starts.
        assert_eq!(p.submit("a", Some(10), 1), Some(1));
        assert_eq!(p.submit("a", Some(11), 2), None);
        assert_eq!(p.submit("b", Some(12), 3), Some(3));
        p.skip(13);
        assert_eq!(p.next_position(), 14);
        assert_eq!(p.checkpoint_position(), 10);

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        p.start("a".into(), Some(10), async move {
            rx.await.unwrap();
            1
        });
        p.start("b".into(), Some(12), async { 3 });
        let done = p.next_finished().await.unwrap();
        assert_eq!((done.key.as_str(), done.output), ("b", 3));
        assert_eq!(p.finish("b", Some(12)), None);
        // a's first work is still running: the checkpoint must not pass it.
        assert_eq!(p.checkpoint_position(), 10);
        assert!(p.is_active("a") && !p.is_active("b"));

        tx.send(()).unwrap();
        let done = p.next_finished().await.unwrap();
        assert_eq!(done.output, 1);
        // a's queued work comes out next, in order.
        assert_eq!(p.finish("a", Some(10)), Some((Some(11), 2)));
        assert_eq!(p.checkpoint_position(), 11);
        p.start("a".into(), Some(11), async { 2 });
        let done = p.next_finished().await.unwrap();
        assert_eq!(p.finish(&done.key, done.position), None);
        assert_eq!(p.checkpoint_position(), 14);
        assert!(p.is_idle());
    }

    #[tokio::test]
    async fn draining_leaves_positions_unfinished_until_marked() {
        let mut p: Pipeline<(), bool> = Pipeline::new(0, 8, 100);
        for (key, position, ok) in [("a", 0, false), ("b", 1, true)] {
            p.submit(key, Some(position), ());
            p.start(key.into(), Some(position), async move { ok });
        }
        for f in p.drain().await {
            let f = f.unwrap();
            if f.output {
                p.mark_finished(f.position);
            }
        }
        // The failed work at 0 keeps the checkpoint before it.
        assert_eq!(p.checkpoint_position(), 0);
    }

    #[tokio::test]
    async fn room_is_bounded_by_tasks_and_unfinished_positions() {
        let mut p: Pipeline<(), ()> = Pipeline::new(0, 1, 3);
        assert!(p.has_room());
        p.submit("a", Some(0), ());
        p.start("a".into(), Some(0), std::future::pending());
        assert!(!p.has_room(), "one task slot, taken");
        let mut q: Pipeline<(), ()> = Pipeline::new(0, 8, 2);
        q.submit("a", Some(0), ());
        q.submit("a", Some(1), ());
        assert!(!q.has_room(), "two unfinished positions, the bound");
    }
}
