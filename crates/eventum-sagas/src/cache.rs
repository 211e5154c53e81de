//! The bounded in-memory cache of saga instances: least recently used out first. A dropped
//! instance is only a cache miss: its stream has everything.

use std::collections::HashMap;

use crate::instance::Instance;

pub struct InstanceCache<S> {
    entries: HashMap<String, (u64, Instance<S>)>,
    tick: u64,
    capacity: usize,
}

impl<S> InstanceCache<S> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    /// Takes the instance out (the caller puts it back when done with it).
    pub fn take(&mut self, key: &str) -> Option<Instance<S>> {
        self.entries.remove(key).map(|(_, i)| i)
    }

    pub fn put(&mut self, instance: Instance<S>) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&instance.key) {
            // A linear scan: the cache is small and eviction happens only when it is full.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (tick, _))| *tick)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.tick += 1;
        self.entries
            .insert(instance.key.clone(), (self.tick, instance));
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
