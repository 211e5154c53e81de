//! The bounded in-memory cache of saga instances: least recently used out first. A dropped
//! instance is only a cache miss: its stream has everything.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::instance::Instance;

pub struct InstanceCache<S> {
    entries: LruCache<String, Instance<S>>,
}

impl<S> InstanceCache<S> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("at least 1")),
        }
    }

    /// Takes the instance out (the caller puts it back when done with it).
    pub fn take(&mut self, key: &str) -> Option<Instance<S>> {
        self.entries.pop(key)
    }

    /// Puts the instance in as the most recently used, dropping the least recently used
    /// one when full.
    pub fn put(&mut self, instance: Instance<S>) {
        self.entries.put(instance.key.clone(), instance);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventum_core::StreamName;

    fn inst(key: &str) -> Instance<()> {
        Instance::new(
            key.into(),
            StreamName::system(format!("$saga-t-{key}")).unwrap(),
        )
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut cache = InstanceCache::new(2);
        cache.put(inst("a"));
        cache.put(inst("b"));
        let a = cache.take("a").unwrap();
        cache.put(a);
        cache.put(inst("c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.take("b").is_none());
        assert!(cache.take("a").is_some());
        assert!(cache.take("c").is_some());
    }
}
